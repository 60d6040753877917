// Take it with you: after "Run everything", every model in "Checkpoints and data" downloads as a
// Hugging Face folder (.zip with config.json, model.safetensors, tokenizer.json, … and a model
// card) and the labels as a TRL preference file (prompt, chosen, rejected); broken or foreign
// folders (truncated zip, wrong shape, missing tensor, non-finite weight, another vocabulary,
// another architecture, truncated weights, not a zip) are refused with a message that names the
// problem and change nothing stored; a good folder loads back as π_ref and as r_φ. The zips land in
// test-results/hf/ (scripts/check-hf.sh checks the same files with transformers).
// Screenshot: test-results/export.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { serve, launch, openPage, OUT, ROOT } from './harness.mjs';

const QUERY = '?backend=cpu&sft.steps=20&reward.simulated_labels=96&reward.epochs=1&ppo.iterations=2&ppo.batch_size=8&ppo.mini_batches=2&ppo.epochs=2&dpo.epochs=1';
const HF = path.join(OUT, 'hf');
mkdirSync(HF, { recursive: true });

/** The names in a zip's central directory (PKWARE APPNOTE 4.3.12), without a zip library. */
function zipNames(bytes) {
  const end = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  assert.ok(end >= 0, 'the zip has an end-of-central-directory record');
  const count = bytes.readUInt16LE(end + 10);
  let at = bytes.readUInt32LE(end + 16);
  const names = [];
  for (let i = 0; i < count; i++) {
    assert.equal(bytes.readUInt32LE(at), 0x02014b50, 'a central directory entry');
    const [nameLength, extra, comment] = [bytes.readUInt16LE(at + 28), bytes.readUInt16LE(at + 30), bytes.readUInt16LE(at + 32)];
    names.push(bytes.subarray(at + 46, at + 46 + nameLength).toString());
    at += 46 + nameLength + extra + comment;
  }
  return names;
}

test('every model downloads as a Hugging Face folder, labels as TRL preferences; broken folders are refused', { timeout: 900_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const { page, errors } = await openPage(browser, `${server.url}${QUERY}`);
    const started = Date.now();
    await page.locator('#pipeline').getByRole('button', { name: 'Run everything' }).click();
    await page.waitForFunction(() => document.querySelector('.stage-card[data-stage="dpo"]').dataset.state === 'done', null, { timeout: 600_000, polling: 500 });
    console.log(`# every stage trained in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const data = page.locator('#data');
    await data.scrollIntoViewIfNeeded();
    const roles = await data.locator('tr[data-role]').evaluateAll((rows) => rows.map((r) => r.dataset.role));
    console.log(`# checkpoints listed: ${roles.join(', ')}`);
    for (const role of ['sft', 'reward', 'policy', 'dpo']) assert.ok(roles.includes(role), `${role} is listed`);

    // Every model as a Hugging Face folder.
    const zips = {};
    for (const role of roles) {
      const [download] = await Promise.all([page.waitForEvent('download'), data.getByRole('button', { name: `Download ${role} as a Hugging Face folder` }).click()]);
      assert.equal(download.suggestedFilename(), `rlhf-lab-${role}-tiny-hf.zip`);
      zips[role] = path.join(HF, `${role}.zip`);
      await download.saveAs(zips[role]);
      const names = zipNames(readFileSync(zips[role])).map((n) => n.split('/').pop()).sort();
      const scoring = role === 'reward';
      const expected = ['README.md', 'config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json', ...(scoring ? [] : ['generation_config.json'])].sort();
      assert.deepEqual(names, expected, `${role}: the folder's files`);
      console.log(`# ${role}: ${names.length} files, ${(readFileSync(zips[role]).length / 1024).toFixed(0)} KiB`);
    }
    await page.getByRole('status').filter({ hasText: `Downloaded ${roles.at(-1)}` }).waitFor({ timeout: 10_000 });

    // The labels as a preference file.
    const labeling = page.locator('#labeling');
    const [prefs] = await Promise.all([page.waitForEvent('download'), labeling.getByRole('button', { name: 'Download for TRL (prompt, chosen, rejected)' }).click()]);
    const prefsPath = path.join(HF, 'prefs.jsonl');
    await prefs.saveAs(prefsPath);
    const rows = readFileSync(prefsPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const labels = await page.evaluate(async () => (await window.__lab.storage.labels()).map((l) => l.preference));
    const ties = labels.filter((p) => p === 'tie').length;
    assert.equal(rows.length, labels.length - ties, 'one row per strict preference');
    for (const row of rows) for (const key of ['prompt', 'chosen', 'rejected']) assert.equal(typeof row[key], 'string', key);
    const said = await labeling.getByRole('status').textContent();
    assert.match(said, new RegExp(`Downloaded ${rows.length} preference rows for TRL`));
    console.log(`# labels: ${rows.length} rows, ${ties} ties; the page says: ${said}`);

    // Broken or foreign folders: refused by name, nothing stored changes.
    const stored = () => page.evaluate(async () => (await window.__lab.storage.listCheckpoints()).map((c) => `${c.role}:${c.size}:${c.time}`).sort().join());
    const before = await stored();
    const upload = data.getByLabel('Load a Hugging Face folder (.zip)');
    const hfStatus = page.locator('#hf-status');
    const cases = {
      truncated: /damaged, truncated or not a zip/,
      'not-a-zip': /damaged, truncated or not a zip/,
      'wrong-shape': /transformer\.wpe\.weight has shape \[16, 64\]/,
      'missing-tensor': /missing tensor transformer\.ln_f\.bias/,
      'non-finite': /transformer\.h\.0\.mlp\.c_fc\.weight holds a non-finite weight/,
      'other-vocabulary': /tokenizer\.json: .*another vocabulary/,
      'foreign-config': /model_type is "llama"/,
      'truncated-weights': /model\.safetensors: not a readable safetensors file/,
    };
    for (const [mutation, reason] of Object.entries(cases)) {
      const file = path.join(HF, `broken-${mutation}.zip`);
      execFileSync('python3', [path.join(ROOT, 'tests/e2e/hf_mutate.py'), zips.sft, file, mutation]);
      await upload.setInputFiles(file);
      await page.waitForFunction((name) => document.querySelector('#hf-status').textContent.includes(`${name} was not loaded`), `broken-${mutation}.zip`, { timeout: 30_000 });
      const message = await hfStatus.textContent();
      console.log(`# ${mutation}: ${message}`);
      assert.match(message, reason, mutation);
      assert.match(message, /Nothing was changed\.$/);
      assert.equal(await stored(), before, `${mutation}: stored checkpoints unchanged`);
    }
    // A reward model's folder asked to load as π_ref: the wrong kind of model.
    await page.locator('#hf-role').selectOption('sft');
    await upload.setInputFiles(zips.reward);
    await page.waitForFunction(() => document.querySelector('#hf-status').textContent.includes('reward.zip was not loaded'), null, { timeout: 30_000 });
    assert.match(await hfStatus.textContent(), /scoring model .* but π_ref, the SFT model is a language model/);
    assert.equal(await stored(), before);

    // Good folders load back: π_ref as π_ref, r_φ as the role its folder names.
    await upload.setInputFiles(zips.sft);
    await page.waitForFunction(() => document.querySelector('#hf-status').textContent.startsWith('Loaded sft.zip as π_ref'), null, { timeout: 30_000 });
    await page.locator('#hf-role').selectOption('');
    await upload.setInputFiles(zips.reward);
    await page.waitForFunction(() => document.querySelector('#hf-status').textContent.startsWith('Loaded reward.zip as r_φ'), null, { timeout: 30_000 });
    const notes = await page.evaluate(async () => Object.fromEntries((await window.__lab.storage.listCheckpoints()).map((c) => [c.role, c.note])));
    assert.equal(notes.sft.format, 'Hugging Face');
    assert.equal(notes.reward.uploaded, 'reward.zip');

    // Round trip in the page: the loaded-back π_ref exports to the same weights.
    const [again] = await Promise.all([page.waitForEvent('download'), data.getByRole('button', { name: 'Download sft as a Hugging Face folder' }).click()]);
    await again.saveAs(path.join(HF, 'sft-again.zip'));
    const weights = (file) => execFileSync('python3', ['-c', 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); sys.stdout.buffer.write(z.read(next(n for n in z.namelist() if n.endswith("model.safetensors"))))', file]);
    assert.ok(weights(zips.sft).equals(weights(path.join(HF, 'sft-again.zip'))), 'the loaded-back π_ref has the same model.safetensors');

    await data.screenshot({ path: path.join(OUT, 'export.png') });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
