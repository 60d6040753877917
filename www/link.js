// Reading a link: `?preset=tiny&seed=3&sft.steps=200&backend=cpu&lesson=4` opens the page so set
// up. Every part of the link the page does not take is named once, with why, in the words the
// learner typed: an unknown name, a value of the wrong type or out of range (the core validates
// the settings: `src/rlhf/config.rs`), a step the lesson does not have, a name given twice (the
// last one is read). Nothing in the link can reach an object's prototype: a setting's name must
// be a path of the core's own defaults.
import { SETTINGS, BACKENDS, MODES, MAX_WORKERS } from './state.js';

/** The view's own keys (not settings of the run). */
const VIEW_KEYS = new Set(['mode', 'lesson', 'backend', 'workers']);
const LONG = 64;

const cut = (text) => (text.length > LONG ? `${text.slice(0, LONG - 1)}…` : text);
/** A name as the notice shows it: plain names as they are, anything else quoted (and cut when long). */
export const shownName = (key) => (key === '' ? '(a part with no name)' : /^[\w.-]+$/.test(key) && key.length <= LONG ? key : JSON.stringify(cut(key)));
/** A value as the notice echoes it: quoted, cut when long. */
export const shownValue = (raw) => JSON.stringify(cut(raw));

/**
 * Reads the URL into {backend, workers, overrides, problems, view}: `overrides` maps each
 * setting's path to the text the link gives it (checked later, against the core's defaults, by
 * `validated`); `problems` names the parts of the view's keys not taken. `lessonSteps`: how many
 * steps the lesson has.
 */
export function readUrl(search, { lessonSteps = Infinity } = {}) {
  const parts = [...new URLSearchParams(search)];
  const problems = [];
  const overrides = new Map();
  let backend = 'auto';
  let workers = 'auto';
  // Not settings of the run but of the view: which mode, which lesson step (null: not in the link).
  const view = { mode: null, lesson: null };
  // A name given more than once: the last is read; each earlier one is named as not taken.
  const last = new Map(parts.map(([key], i) => [key, i]));
  parts.forEach(([key, raw], i) => {
    if (last.get(key) !== i) {
      problems.push(`${shownName(key)}=${shownValue(raw)}: ignored (${shownName(key)} is given again later in the link; the last one is read)`);
      return;
    }
    const got = `(got ${shownValue(raw)})`;
    if (key === 'mode') {
      if (MODES.includes(raw)) view.mode = raw;
      else problems.push(`mode: must be lesson or lab ${got}; ignored`);
    } else if (key === 'lesson') {
      const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
      if (Number.isSafeInteger(n) && n >= 1 && n <= lessonSteps) view.lesson = n;
      else problems.push(`lesson: no such step ${got}; the lesson's steps are 1 to ${lessonSteps}; ignored`);
      // A link to the lesson opens the lesson, even at a step it does not have.
      if (!parts.some(([k]) => k === 'mode')) view.mode = 'lesson';
    } else if (key === 'backend') {
      if (BACKENDS.includes(raw)) backend = raw;
      else problems.push(`backend: must be auto, webgpu or cpu ${got}; using auto`);
    } else if (key === 'workers') {
      const n = /^\d+$/.test(raw) ? Number(raw) : Number.NaN;
      if (raw === 'auto') workers = 'auto';
      else if (Number.isInteger(n) && n >= 1 && n <= MAX_WORKERS) workers = n;
      else problems.push(`workers: must be auto or a whole number from 1 to ${MAX_WORKERS} ${got}; using auto`);
    } else {
      overrides.set(key, raw);
    }
  });
  return { backend, workers, overrides, problems, view };
}

/** The default at `path`, following own properties only; undefined when the path names none. */
function ownPath(object, path) {
  let node = object;
  for (const key of path.split('.')) {
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

function setOwnPath(object, path, value) {
  const keys = path.split('.');
  let node = object;
  for (const k of keys.slice(0, -1)) node = node[k];
  node[keys.at(-1)] = value;
}

/**
 * The text of a setting as its type: {value} or {why} (why it is not a value of that type). The
 * type is the settings table's where it has the setting, else the default's.
 */
function parse(path, raw, fallback) {
  const kind = SETTINGS.find((s) => s.key === path)?.kind
    ?? ({ boolean: 'bool', string: 'text', number: 'number' }[typeof fallback]);
  const text = raw.trim();
  if (kind === 'bool') {
    if (['true', '1', 'on'].includes(text)) return { value: true };
    if (['false', '0', 'off'].includes(text)) return { value: false };
    return { why: 'must be true or false' };
  }
  if (kind !== 'int' && kind !== 'number') return { value: raw }; // a choice or a text: the core checks it
  const n = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) ? Number(text) : Number.NaN;
  if (Number.isNaN(n)) return { why: kind === 'int' ? 'is not a whole number' : 'is not a number' };
  if (!Number.isFinite(n)) return { why: 'is not a finite number (out of range)' };
  if (kind !== 'int') return { value: n };
  if (!/^[-+]?\d+$/.test(text)) return { why: 'must be a whole number' };
  return Number.isSafeInteger(n) ? { value: n } : { why: 'is out of range (a whole number this large is not exact)' };
}

/** The core's message about `path`, in plainer words where serde's are cryptic. */
function plain(path, message) {
  const text = message.startsWith(`${path}: `) ? message.slice(path.length + 2) : message;
  if (/^invalid value: integer `-\d+`, expected u/.test(text)) return 'must not be negative';
  if (/^invalid type: floating point `[^`]*`, expected u/.test(text)) return 'must be a whole number';
  return text;
}

/**
 * Applies the link's settings to the core's defaults, each checked by the core: a name that is not
 * a setting, a value that is not of its type, or one the core refuses (alone, or beside the others
 * the link gives) is named once and left at its default; the rest are applied.
 * @param {Map<string, string>} overrides setting path → the text the link gives it
 * @param {(json: string) => Promise<void>} validate rejects with the core's message
 * @returns {Promise<{config: object, problems: string[]}>}
 */
export async function validated(defaults, overrides, validate) {
  const problems = [];
  const candidates = [];
  for (const [path, raw] of overrides) {
    const fallback = ownPath(defaults, path);
    if (fallback === undefined || VIEW_KEYS.has(path)) { problems.push(`${shownName(path)}: no such setting; ignored`); continue; }
    if (fallback !== null && typeof fallback === 'object') { problems.push(`${shownName(path)}: a group of settings, not one; ignored`); continue; }
    const { value, why } = parse(path, raw, fallback);
    if (why) problems.push(`${path}: ${why} (got ${shownValue(raw)}); using the default ${JSON.stringify(fallback)}`);
    else candidates.push({ path, raw, value, fallback });
  }
  const build = (list) => {
    const config = structuredClone(defaults);
    for (const c of list) setOwnPath(config, c.path, c.value);
    return config;
  };
  const check = async (list) => {
    try { await validate(JSON.stringify(build(list))); return null; } catch (e) { return e.message ?? String(e); }
  };
  // All together first (settings valid only together pass); else one at a time, in passes, each
  // beside those already taken, until a pass takes none: what is left is refused, by its own name.
  if (candidates.length && (await check(candidates)) != null) {
    const taken = [];
    let pending = candidates;
    for (let progress = true; progress && pending.length;) {
      progress = false;
      const left = [];
      for (const c of pending) {
        c.message = await check([...taken, c]);
        if (c.message == null) { taken.push(c); progress = true; } else left.push(c);
      }
      pending = left;
    }
    for (const c of pending) {
      const why = plain(c.path, c.message);
      problems.push(`${c.path}: ${why}${/\(got /.test(why) ? '' : ` (got ${shownValue(c.raw)})`}; using the default ${JSON.stringify(c.fallback)}`);
    }
    return { config: build(taken), problems };
  }
  return { config: build(candidates), problems };
}
