// The labeling panel's files: download every label as JSON lines, and import a label file —
// checked whole by the core (every line, the vocabulary, every word) before one transaction
// stores all of it; a refused file changes nothing.
import { el } from './common.js';

const MAX_FILE_BYTES = 16 << 20; // as the core's labels::MAX_LABEL_FILE_BYTES

/** `added(records, count)` is called after an import is stored, with the new total. */
export function mountLabelFiles(store, { added }) {
  const { client, storage } = store;
  const download = el('button', { text: 'Download labels', disabled: true });
  const input = el('input', { type: 'file', id: 'labels-import', accept: '.jsonl,.ndjson,.txt,application/jsonl,application/x-ndjson,text/plain' });
  const error = el('p', { class: 'import-error', role: 'alert' });
  const status = el('p', { class: 'import-status', role: 'status' });
  let busy = false;

  download.addEventListener('click', async () => {
    const text = await storage.labelsJsonl();
    const url = URL.createObjectURL(new Blob([text], { type: 'application/jsonl' }));
    const stamp = new Date().toISOString().slice(0, 19).replace(/[T:]/g, '-');
    const a = el('a', { href: url, download: `rlhf-lab-labels-${stamp}.jsonl`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  });

  async function importFile(file) {
    error.textContent = '';
    status.textContent = '';
    const refuse = (why) => { error.textContent = `${file.name} was not imported: ${why}. Nothing was changed.`; };
    if (file.size > MAX_FILE_BYTES) {
      refuse(`it is ${(file.size / 2 ** 20).toFixed(1)} MB, and label files of at most 16 MB are accepted`);
      return;
    }
    status.textContent = `Checking ${file.name}…`;
    let records;
    try {
      const text = await file.text();
      const n = await client.call('checkLabels', text);
      // The core accepted every line: now they are parsed here the same way (blank lines skipped).
      records = text.split(/\r?\n/).filter((line) => line.trim() !== '').map((line) => JSON.parse(line));
      if (records.length !== n) throw new Error(`the core counted ${n} labels, the page ${records.length}`);
    } catch (e) {
      status.textContent = '';
      refuse(e.message.replace(/^invalid input: /i, ''));
      return;
    }
    try {
      const count = await storage.addLabels(records); // one transaction: all or none
      const human = records.filter((r) => r.source === 'human').length;
      status.textContent = `Imported ${records.length} label${records.length === 1 ? '' : 's'} from ${file.name} (${human} human, ${records.length - human} simulated).`;
      added(records, count);
    } catch (e) {
      status.textContent = '';
      refuse(`the browser could not store them (${e.message})`);
    }
  }

  input.addEventListener('change', async () => {
    const file = input.files?.[0];
    input.value = '';
    if (!file || busy) return;
    busy = true;
    try { await importFile(file); } finally { busy = false; }
  });

  const node = el('div', { class: 'label-files' },
    el('h3', { text: 'Label files' }),
    el('p', { class: 'muted', text: 'JSON lines, one label per line, each with the vocabulary it was made for. An import is checked whole — every line, the vocabulary and every word — and kept only if all of it is valid.' }),
    el('div', { class: 'controls' }, download, el('label', { for: 'labels-import', class: 'file-label', text: 'Import labels (.jsonl)' }), input),
    error,
    status);
  node.setCount = (count) => { download.disabled = count === 0; };
  return node;
}
