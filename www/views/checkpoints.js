// Checkpoints and data: the models this browser holds (download — as the lab's checkpoint or as a
// Hugging Face folder — load, delete), uploads of either kind checked by the core before anything is
// stored, and the metric history exported as CSV or JSON.
import { el } from './common.js';

const MAX_UPLOAD_BYTES = 64 << 20;
const ROLES = {
  base: 'base model (before SFT)',
  sft: 'π_ref, the SFT model',
  reward: 'r_φ, the reward model',
  policy: 'π_θ, the PPO policy',
  dpo: 'π_dpo, the DPO policy',
  grpo: 'π_grpo, the GRPO/RLOO policy',
};
// The roles a Hugging Face folder can be loaded as: the models stages start from.
const LOADABLE = { '': 'the role the folder names', base: ROLES.base, sft: ROLES.sft, reward: ROLES.reward };

/** Metric rows ({stage, time, metrics}) as one JSON array of flat objects. */
export function metricsToJson(rows) {
  return JSON.stringify(rows.map(({ stage, time, metrics }) => ({ stage, time: new Date(time).toISOString(), ...metrics })), null, 1);
}

/** Metric rows as CSV: stage, time, then every metric name any row has (sorted); blanks where absent. */
export function metricsToCsv(rows) {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort();
  const cell = (v) => {
    const text = v == null ? '' : String(v);
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text; // RFC 4180 quoting
  };
  const lines = [['stage', 'time', ...keys].map(cell).join(',')];
  for (const { stage, time, metrics } of rows) lines.push([stage, new Date(time).toISOString(), ...keys.map((k) => metrics[k])].map(cell).join(','));
  return `${lines.join('\n')}\n`;
}

function download(name, parts, type) {
  const url = URL.createObjectURL(new Blob(parts, { type }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export async function mountCheckpoints(root, store) {
  const { client, storage, events } = store;
  const body = el('tbody');
  const empty = el('p', { class: 'muted', text: 'No checkpoints yet: each stage saves its model here when it ends.' });
  const uploadInput = el('input', { type: 'file', id: 'checkpoint-upload', accept: '.rlhf,application/octet-stream' });
  const uploadLabel = el('label', { for: 'checkpoint-upload', text: 'Upload a checkpoint' });
  const hfInput = el('input', { type: 'file', id: 'hf-upload', accept: '.zip,application/zip' });
  const hfLabel = el('label', { for: 'hf-upload', text: 'Load a Hugging Face folder (.zip)' });
  const hfRole = el('select', { id: 'hf-role', 'aria-label': 'Load the Hugging Face folder as' },
    ...Object.entries(LOADABLE).map(([value, text]) => el('option', { value, text: `as ${text}` })));
  const hfStatus = el('p', { class: 'muted', role: 'status', id: 'hf-status' });
  const csv = el('button', { text: 'Export metrics as CSV' });
  const json = el('button', { text: 'Export metrics as JSON' });
  const history = el('p', { class: 'muted' });

  root.append(el('section', { class: 'panel', id: 'data', 'aria-labelledby': 'data-title' },
    el('h2', { id: 'data-title', text: 'Checkpoints and data' }),
    el('p', { class: 'objective', text: 'Models are saved in burn\'s record format behind a header that names the model, its configuration and the vocabulary, with a checksum. An upload is checked by the core before anything is stored: a file for another model, vocabulary or role, or a damaged one, is refused and changes nothing.' }),
    el('p', { class: 'muted', text: '"Hugging Face" downloads a model as a GPT-2 folder in one .zip — config.json, model.safetensors, tokenizer.json, generation_config.json and a model card — that transformers loads with from_pretrained. A folder zipped again (exported here, or saved from Python) loads back as the base model, π_ref or r_φ, checked whole first.' }),
    el('table', { class: 'checkpoints' },
      el('thead', {}, el('tr', {}, ...['checkpoint', 'saved', 'size', 'details', ''].map((t) => el('th', { text: t })))),
      body),
    empty,
    el('div', { class: 'controls' }, uploadLabel, uploadInput),
    el('div', { class: 'controls' }, hfLabel, hfRole, hfInput),
    hfStatus,
    el('h3', { text: 'Metric history' }),
    history,
    el('div', { class: 'controls' }, csv, json)));

  async function load(role, bytes, from) {
    const header = await client.call('load', bytes);
    events.emit('checkpoint-loaded', { role: header.role, from });
    return header;
  }

  async function refresh() {
    const list = await storage.listCheckpoints().catch(() => []);
    list.sort((a, b) => Object.keys(ROLES).indexOf(a.role) - Object.keys(ROLES).indexOf(b.role));
    empty.hidden = list.length > 0;
    body.replaceChildren(...list.map(({ role, note, time, size }) => {
      const details = Object.entries(note ?? {}).filter(([k]) => k !== 'stage')
        .map(([k, v]) => `${k.replace(/_/g, ' ')} ${typeof v === 'number' ? Number(v.toPrecision(4)) : v}`).join(' · ');
      const actions = el('td', { class: 'actions' },
        el('button', { text: 'Download', 'aria-label': `Download ${role} checkpoint`, onclick: () => downloadRole(role) }),
        el('button', { text: 'Hugging Face', 'aria-label': `Download ${role} as a Hugging Face folder`, onclick: () => downloadHf(role) }),
        el('button', { text: 'Load', 'aria-label': `Load ${role} checkpoint`, onclick: () => loadStored(role) }),
        el('button', { text: 'Delete', 'aria-label': `Delete ${role} checkpoint`, onclick: () => remove(role) }));
      return el('tr', { 'data-role': role },
        el('td', { text: `${role} — ${ROLES[role] ?? role}` }),
        el('td', { text: new Date(time).toLocaleString() }),
        el('td', { class: 'num', text: `${(size / 1024).toFixed(0)} KiB` }),
        el('td', { class: 'muted', text: details }),
        actions);
    }));
    const rows = await storage.allMetrics().catch(() => []);
    const perStage = {};
    for (const r of rows) perStage[r.stage] = (perStage[r.stage] ?? 0) + 1;
    history.textContent = rows.length
      ? `${rows.length} steps recorded in this browser: ${Object.entries(perStage).map(([s, n]) => `${s} ${n}`).join(', ')}.`
      : 'No steps recorded yet.';
    csv.disabled = json.disabled = rows.length === 0;
  }

  async function downloadRole(role) {
    const stored = await storage.getCheckpoint(role);
    if (!stored) return store.notify(`There is no ${role} checkpoint any more.`, 'error');
    download(`rlhf-${role}-${store.config.preset}.rlhf`, [stored.bytes], 'application/octet-stream');
  }

  async function downloadHf(role) {
    try {
      const stored = await storage.getCheckpoint(role);
      if (!stored) throw new Error(`there is no ${role} checkpoint any more`);
      hfStatus.textContent = `Writing ${role} as a Hugging Face folder…`;
      const zip = await client.call('exportHf', stored.bytes.slice(), JSON.stringify(stored.note ?? {}));
      download(`rlhf-lab-${role}-${store.config.preset}-hf.zip`, [zip], 'application/zip');
      hfStatus.textContent = `Downloaded ${role} (${ROLES[role] ?? role}) as a Hugging Face folder: ${(zip.byteLength / 1024).toFixed(0)} KiB zipped.`;
    } catch (e) {
      hfStatus.textContent = '';
      store.notify(`The ${role} model was not exported: ${e.message}`, 'error');
    }
  }

  async function loadStored(role) {
    try {
      const stored = await storage.getCheckpoint(role);
      if (!stored) throw new Error(`there is no ${role} checkpoint any more`);
      await load(role, stored.bytes, `the stored ${role} checkpoint`);
      store.notify(`Loaded the stored ${role} checkpoint (${ROLES[role] ?? role}).`);
    } catch (e) {
      store.notify(`The ${role} checkpoint was not loaded: ${e.message}`, 'error');
    }
  }

  async function remove(role) {
    if (!window.confirm(`Delete the ${role} checkpoint (${ROLES[role] ?? role}) from this browser?`)) return;
    await storage.deleteCheckpoint(role);
    await refresh();
  }

  uploadInput.addEventListener('change', async () => {
    const file = uploadInput.files?.[0];
    uploadInput.value = '';
    if (!file) return;
    if (file.size > MAX_UPLOAD_BYTES) {
      store.notify(`${file.name} was refused: ${(file.size / 2 ** 20).toFixed(1)} MiB is over the ${MAX_UPLOAD_BYTES / 2 ** 20} MiB limit for a checkpoint.`, 'error');
      return;
    }
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const header = await load(null, bytes, file.name);
      await storage.putCheckpoint(header.role, bytes, { stage: header.role, uploaded: file.name });
      store.notify(`Loaded ${file.name}: ${ROLES[header.role] ?? header.role}.`);
      await refresh();
    } catch (e) {
      store.notify(`${file.name} was refused: ${e.message}`, 'error');
    }
  });
  hfInput.addEventListener('change', async () => {
    const file = hfInput.files?.[0];
    hfInput.value = '';
    if (!file) return;
    if (file.size > MAX_UPLOAD_BYTES) {
      store.notify(`${file.name} was refused: ${(file.size / 2 ** 20).toFixed(1)} MiB is over the ${MAX_UPLOAD_BYTES / 2 ** 20} MiB limit.`, 'error');
      return;
    }
    hfStatus.textContent = `Checking ${file.name}…`;
    try {
      const zip = new Uint8Array(await file.arrayBuffer());
      // The core checks the whole folder and returns the lab's checkpoint; loading it checks again.
      const bytes = await client.call('importHf', zip, hfRole.value);
      const header = await load(null, bytes.slice(), file.name);
      await storage.putCheckpoint(header.role, bytes, { stage: header.role, uploaded: file.name, format: 'Hugging Face' });
      hfStatus.textContent = `Loaded ${file.name} as ${ROLES[header.role] ?? header.role}.`;
      store.notify(`Loaded ${file.name}: ${ROLES[header.role] ?? header.role}.`);
      await refresh();
    } catch (e) {
      const why = e.message.replace(/^checkpoint refused: /, '');
      hfStatus.textContent = `${file.name} was not loaded: ${why}${/[.!?]$/.test(why) ? '' : '.'} Nothing was changed.`;
      store.notify(`${file.name} was refused: ${e.message}`, 'error');
    }
  });
  csv.addEventListener('click', async () => download('rlhf-metrics.csv', [metricsToCsv(await storage.allMetrics())], 'text/csv'));
  json.addEventListener('click', async () => download('rlhf-metrics.json', [metricsToJson(await storage.allMetrics())], 'application/json'));

  events.on('checkpoint-saved', () => refresh());
  client.on((event) => { if (event.event === 'stopped') refresh(); });
  await refresh();
  return { name: 'data', title: 'Checkpoints and data', state: () => 'ready', refresh };
}
