// One table of every setting the page shows, and the whole state to and from the URL.
//
// Defaults, ranges and validation live in Rust (`config.rs`), the single source of truth: the
// worker sends the defaults and validates a candidate config; this table only says how to show
// each setting and what it means. A shared link (`?preset=tiny&seed=3&sft.steps=200&backend=cpu`)
// opens the lab configured; a value the core refuses is reported and replaced by its default.

/** @typedef {{key: string, label: string, help: string, kind: 'number'|'int'|'bool'|'select', options?: string[], equation?: string}} Setting */

/** @type {Setting[]} */
export const SETTINGS = [
  { key: 'preset', label: 'Model size', kind: 'select', options: ['micro', 'tiny', 'small'], help: 'micro: 1 layer, d=32 · tiny: 2 layers, d=64 (~110k parameters) · small: 4 layers, d=128.' },
  { key: 'seed', label: 'Seed', kind: 'int', help: 'Seeds the weights, the data, the minibatch order and the sampling noise: the same seed gives the same run.' },
  { key: 'sft.learning_rate', label: 'Learning rate', kind: 'number', help: 'Adam step size for supervised fine-tuning.', equation: 'sft' },
  { key: 'sft.batch_size', label: 'Batch', kind: 'int', help: 'Demonstrations per step.', equation: 'sft' },
  { key: 'sft.steps', label: 'Steps', kind: 'int', help: 'Optimizer steps; when they are done, a frozen copy becomes π_ref.', equation: 'sft' },
  { key: 'sft.completion_only', label: 'Completion-only loss', kind: 'bool', help: 'Count only the completion tokens (the prompt is given, not demonstrated); off: every token.', equation: 'sft' },
  { key: 'sft.eval_every', label: 'Evaluate every', kind: 'int', help: 'Steps between held-out evaluations.', equation: 'sft' },
];

export const BACKENDS = ['auto', 'webgpu', 'cpu'];

export function getPath(object, path) {
  return path.split('.').reduce((o, k) => (o == null ? undefined : o[k]), object);
}

export function setPath(object, path, value) {
  const keys = path.split('.');
  let node = object;
  for (const k of keys.slice(0, -1)) node = node[k] ??= {};
  node[keys.at(-1)] = value;
}

/** Converts a text value (from a URL or an input) to the setting's type; NaN/garbage stays visible. */
export function coerce(setting, text) {
  switch (setting.kind) {
    case 'bool': return text === true || text === 'true' || text === '1' || text === 'on';
    case 'int': return /^-?\d+$/.test(String(text).trim()) ? Number(text) : Number.NaN;
    case 'number': return String(text).trim() === '' ? Number.NaN : Number(text);
    default: return String(text);
  }
}

/**
 * Reads the URL into {backend, overrides, problems}. Unknown keys are problems; values are
 * checked later by the core (see `validated`).
 */
export function readUrl(search) {
  const params = new URLSearchParams(search);
  const overrides = {};
  const problems = [];
  let backend = 'auto';
  for (const [key, raw] of params) {
    if (key === 'backend') {
      if (BACKENDS.includes(raw)) backend = raw;
      else problems.push(`backend: must be auto, webgpu or cpu (got "${raw}"); using auto`);
      continue;
    }
    const setting = SETTINGS.find((s) => s.key === key) ?? (key.includes('.') ? { key, kind: 'number' } : null);
    if (!setting) { problems.push(`${key}: no such setting; ignored`); continue; }
    setPath(overrides, key, coerce(setting, raw));
  }
  return { backend, overrides, problems };
}

/** Writes the settings that differ from the defaults into the URL (no reload). */
export function writeUrl(config, defaults, backend) {
  const params = new URLSearchParams();
  if (backend !== 'auto') params.set('backend', backend);
  const walk = (obj, prefix) => {
    for (const [k, v] of Object.entries(obj)) {
      const path = prefix ? `${prefix}.${k}` : k;
      if (v && typeof v === 'object') walk(v, path);
      else if (getPath(defaults, path) !== v) params.set(path, String(v));
    }
  };
  walk(config, '');
  const query = params.toString();
  history.replaceState(null, '', query ? `?${query}` : location.pathname);
}

function merge(base, overrides) {
  const out = structuredClone(base);
  const walk = (obj, prefix) => {
    for (const [k, v] of Object.entries(obj)) {
      const path = prefix ? `${prefix}.${k}` : k;
      if (v && typeof v === 'object' && !Array.isArray(v)) walk(v, path);
      else setPath(out, path, v);
    }
  };
  walk(overrides, '');
  return out;
}

/**
 * Merges overrides into the defaults and asks the core to validate; every refused field is
 * reported and reset to its default, until the config is valid.
 * @param {(json: string) => Promise<void>} validate rejects with the core's message
 */
export async function validated(defaults, overrides, validate) {
  let config = merge(defaults, overrides);
  const problems = [];
  // A number that is not finite cannot even be written as JSON: refuse it here, by name.
  const walk = (obj, prefix) => {
    for (const [k, v] of Object.entries(obj)) {
      const path = prefix ? `${prefix}.${k}` : k;
      if (v && typeof v === 'object') walk(v, path);
      else if (typeof v === 'number' && !Number.isFinite(v)) {
        problems.push(`${path}: must be a finite number (got ${v}); using the default ${JSON.stringify(getPath(defaults, path))}`);
        setPath(config, path, getPath(defaults, path));
      }
    }
  };
  walk(overrides, '');
  for (let attempt = 0; attempt < 64; attempt++) {
    try {
      await validate(JSON.stringify(config));
      return { config, problems };
    } catch (e) {
      const message = e.message ?? String(e);
      // "sft.learning_rate: must be ..." or serde's "config: unknown field `x`" / "invalid type".
      const field = /^([a-z_]+(?:\.[a-z_]+)*):/.exec(message)?.[1];
      const unknown = /unknown field `([a-z_]+)`/.exec(message)?.[1];
      if (unknown) {
        const section = field && getPath(config, field) && typeof getPath(config, field) === 'object' ? getPath(config, field) : config;
        problems.push(`${field ? `${field}.` : ''}${unknown}: no such setting; ignored`);
        delete section[unknown];
      } else if (field && getPath(defaults, field) !== undefined) {
        problems.push(`${message}; using the default ${JSON.stringify(getPath(defaults, field))}`);
        setPath(config, field, structuredClone(getPath(defaults, field)));
      } else {
        problems.push(`${message}; using the defaults`);
        return { config: structuredClone(defaults), problems };
      }
    }
  }
  return { config: structuredClone(defaults), problems };
}
