// The labeling panel's files: download every label as JSON lines — the lab's own format, or TRL's
// preference format (prompt, chosen, rejected) that the Hugging Face stack reads — and import a
// file of either format, checked whole by the core (every line, the vocabulary, every word) before
// one transaction stores all of it; a refused file changes nothing.
import { el } from './common.js';

const MAX_FILE_BYTES = 16 << 20; // as the core's labels::MAX_LABEL_FILE_BYTES

/** Whether a file's first non-blank line is a TRL preference row (prompt, chosen, rejected). */
export function isPreferenceFile(text) {
  const first = text.split(/\r?\n/).find((line) => line.trim() !== '');
  try {
    const row = JSON.parse(first ?? '');
    return row !== null && typeof row === 'object' && 'chosen' in row && !('first' in row);
  } catch {
    return false;
  }
}

/** `added(records, count)` is called after an import is stored, with the new total. */
export function mountLabelFiles(store, { added }) {
  const { client, storage } = store;
  const download = el('button', { text: 'Download labels', disabled: true });
  const downloadTrl = el('button', { text: 'Download for TRL (prompt, chosen, rejected)', disabled: true });
  const input = el('input', { type: 'file', id: 'labels-import', accept: '.jsonl,.ndjson,.txt,application/jsonl,application/x-ndjson,text/plain' });
  const error = el('p', { class: 'import-error', role: 'alert' });
  const status = el('p', { class: 'import-status', role: 'status' });
  let busy = false;

  const save = (text, name) => {
    const url = URL.createObjectURL(new Blob([text], { type: 'application/jsonl' }));
    const stamp = new Date().toISOString().slice(0, 19).replace(/[T:]/g, '-');
    const a = el('a', { href: url, download: `${name}-${stamp}.jsonl`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  };
  download.addEventListener('click', async () => save(await storage.labelsJsonl(), 'rlhf-lab-labels'));
  downloadTrl.addEventListener('click', async () => {
    error.textContent = '';
    try {
      const { text, rows, ties_left_out: ties } = await client.call('labelsToPreferences', await storage.labelsJsonl());
      save(text, 'rlhf-lab-preferences');
      status.textContent = `Downloaded ${rows} preference row${rows === 1 ? '' : 's'} for TRL.` +
        (ties ? ` ${ties} tie${ties === 1 ? ' was' : 's were'} left out: TRL's format has no tie (the lab's own format keeps them).` : ' No ties to leave out.');
    } catch (e) {
      error.textContent = `The labels were not exported: ${e.message}`;
    }
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
      if (isPreferenceFile(text)) {
        // TRL's format: the core reads and checks every row into the lab's records, chosen first.
        records = await client.call('labelsFromPreferences', text);
      } else {
        const n = await client.call('checkLabels', text);
        // The core accepted every line: now they are parsed here the same way (blank lines skipped).
        records = text.split(/\r?\n/).filter((line) => line.trim() !== '').map((line) => JSON.parse(line));
        if (records.length !== n) throw new Error(`the core counted ${n} labels, the page ${records.length}`);
      }
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
    el('p', { class: 'muted', text: 'JSON lines, one label per line, each with the vocabulary it was made for; or, for TRL and the datasets library, one preference per line with prompt, chosen and rejected (ties have no place there and are left out, and said). An import of either format is checked whole — every line, the vocabulary and every word — and kept only if all of it is valid.' }),
    el('div', { class: 'controls' }, download, downloadTrl, el('label', { for: 'labels-import', class: 'file-label', text: 'Import labels (.jsonl)' }), input),
    error,
    status);
  node.setCount = (count) => { download.disabled = downloadTrl.disabled = count === 0; };
  return node;
}
