// The "Checkpoints and data" panel, the parts checkpoints.test.mjs leaves out: files whose bytes
// are intact but whose header names another role, model or vocabulary (refused by the core, with
// its reason shown, nothing stored); a file over the 64 MiB limit (refused before it is read);
// the Load button on a stored π_ref (loads) and on a stored π_θ (refused by the core, message
// shown); Delete asks first (dismissed: kept; accepted: gone); and the exports checked cell by
// cell against the stored history, with rows whose metric names differ (blanks, RFC 4180 quoting).
// Screenshot: test-results/data-panel.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile, writeFile, truncate, rm } from 'node:fs/promises';
import { serve, launch, openPage, OUT } from './harness.mjs';

const MAGIC = Buffer.from('RLHFLAB\x01', 'latin1');

/** A checkpoint's parts: its JSON header and the weights after it (src/engine/checkpoint.rs). */
function split(bytes) {
  assert.ok(bytes.subarray(0, 8).equals(MAGIC), 'a checkpoint starts with its signature');
  const len = bytes.readUInt32LE(8);
  return { header: JSON.parse(bytes.subarray(12, 12 + len).toString('utf8')), record: bytes.subarray(12 + len) };
}

/**
 * The same weights behind another header. The weights' checksum still holds; the header's own
 * checksum is left out (as in checkpoints made before headers had one, which the core still
 * reads), so that the core's checks of what the header says are reached. `keepChecksum` keeps it.
 */
function rewrap(header, record, { keepChecksum = false } = {}) {
  const { header_checksum: checksum, ...rest } = header;
  const json = Buffer.from(JSON.stringify(keepChecksum ? { ...rest, header_checksum: checksum } : rest), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  return Buffer.concat([MAGIC, len, json, record]);
}

/** RFC 4180: quoted fields may hold commas, quotes (doubled) and newlines. */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; } else if (c === '\n') { row.push(field); rows.push(row); row = []; field = ''; } else field += c;
  }
  assert.equal(quoted, false, 'no quote left open');
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

test('checkpoint headers refused by the core, load and delete buttons, exports match the history', { timeout: 600_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const { page, errors } = await openPage(browser, `${server.url}?backend=cpu&sft.steps=20`);
    const data = page.locator('#data');
    await page.evaluate(() => window.__lab.stages.get('sft').start());
    await data.locator('tr[data-role="sft"]').waitFor({ timeout: 60_000 });
    const listed = () => page.evaluate(async () => (await window.__lab.storage.listCheckpoints()).map((c) => `${c.role}:${c.size}:${c.time}`).sort().join());
    const before = await listed();
    assert.match(before, /^sft:\d+:\d+$/);

    const [download] = await Promise.all([page.waitForEvent('download'), data.getByRole('button', { name: 'Download sft checkpoint', exact: true }).click()]);
    const bytes = await readFile(await download.path());
    const { header, record } = split(bytes);
    assert.equal(header.role, 'sft');
    assert.equal(header.architecture, 'gpt');
    // The rewrap itself is faithful: the same header and weights come back out of it (not the same
    // bytes: JavaScript writes 1e-5 as 0.00001 where the core's JSON writes 1e-5).
    assert.match(header.header_checksum, /^[0-9a-f]{16}$/, 'the header carries its own checksum');
    const again = split(rewrap(header, record, { keepChecksum: true }));
    assert.deepEqual(again.header, header);
    assert.ok(again.record.equals(record));

    // Intact weights behind a header the lab cannot use: the core says why; nothing is stored.
    const upload = data.getByLabel('Upload a checkpoint');
    const refused = {
      'policy role': [rewrap({ ...header, role: 'policy' }, record), /a policy checkpoint is saved for inspection/],
      'dpo role': [rewrap({ ...header, role: 'dpo' }, record), /a dpo checkpoint is saved for inspection/],
      'unknown role': [rewrap({ ...header, role: 'critic' }, record), /unknown role "critic"/],
      'reward role on a language model': [rewrap({ ...header, role: 'reward' }, record), /holds a gpt model \(reward\), but a scalar model is needed/],
      'another model size': [rewrap({ ...header, model: { ...header.model, d_model: header.model.d_model * 2 } }, record), new RegExp(`made for a model with d_model=${header.model.d_model * 2}`)],
      'another vocabulary': [rewrap({ ...header, vocab: 'not-this-vocabulary' }, record), /made for vocabulary not-this-vocabulary, this lab uses/],
      'a header changed under its checksum': [rewrap({ ...header, role: 'policy' }, record, { keepChecksum: true }), /its header does not match its checksum/],
      'unreadable header': [Buffer.concat([bytes.subarray(0, 12), Buffer.from('x'.repeat(bytes.readUInt32LE(8))), record]), /its header is not valid/],
    };
    for (const [what, [content, reason]] of Object.entries(refused)) {
      const name = `header-${what.replace(/ /g, '-')}.rlhf`;
      const file = path.join(OUT, name);
      await writeFile(file, content);
      await upload.setInputFiles(file);
      const alert = page.getByRole('alert').filter({ hasText: `${name} was refused` });
      await alert.waitFor({ timeout: 30_000 });
      const text = await alert.textContent();
      console.log(`# ${what}: ${text.replace('×', '').trim()}`);
      assert.match(text, reason, what);
      assert.equal(await listed(), before, `${what}: stored checkpoints unchanged`);
      await rm(file);
    }

    // Over 64 MiB: refused by the panel before the file is read.
    const huge = path.join(OUT, 'too-big.rlhf');
    await writeFile(huge, bytes);
    await truncate(huge, 64 * 2 ** 20 + 1);
    await upload.setInputFiles(huge);
    const bigAlert = page.getByRole('alert').filter({ hasText: 'too-big.rlhf was refused' });
    await bigAlert.waitFor({ timeout: 30_000 });
    assert.match(await bigAlert.textContent(), /64\.0 MiB is over the 64 MiB limit/);
    assert.equal(await listed(), before, 'oversized: stored checkpoints unchanged');
    await rm(huge);

    // A stored π_θ (as PPO leaves one) is listed, and its Load button shows the core's refusal.
    await page.evaluate(async (b) => {
      await window.__lab.storage.putCheckpoint('policy', new Uint8Array(b), { stage: 'policy', iterations: 3 });
      await window.__lab.data.refresh();
    }, [...rewrap({ ...header, role: 'policy' }, record)]);
    const policyRow = data.locator('tr[data-role="policy"]');
    assert.match(await policyRow.textContent(), /policy — π_θ, the PPO policy/);
    assert.match(await policyRow.textContent(), /iterations 3/);
    await data.getByRole('button', { name: 'Load policy checkpoint', exact: true }).click();
    const policyAlert = page.getByRole('alert').filter({ hasText: 'The policy checkpoint was not loaded' });
    await policyAlert.waitFor({ timeout: 30_000 });
    assert.match(await policyAlert.textContent(), /saved for inspection; PPO, GRPO and DPO restart from π_ref and r_φ/);

    // The stored π_ref loads.
    await data.getByRole('button', { name: 'Load sft checkpoint', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Loaded the stored sft checkpoint' }).waitFor({ timeout: 30_000 });

    // The exports, cell by cell against the stored history, with a row whose metric names differ.
    await page.evaluate(async () => {
      await window.__lab.storage.appendMetrics('reward', { 'loss/train': 0.25, 'name, with "quotes"': -1.5e-7 });
      await window.__lab.data.refresh();
    });
    assert.match(await data.textContent(), /21 steps recorded in this browser: sft 20, reward 1\./);
    const stored = await page.evaluate(() => window.__lab.storage.allMetrics());
    assert.equal(stored.filter((r) => r.stage === 'sft').length, 20);
    const exported = {};
    for (const kind of ['CSV', 'JSON']) {
      const [file] = await Promise.all([page.waitForEvent('download'), data.getByRole('button', { name: `Export metrics as ${kind}`, exact: true }).click()]);
      assert.equal(file.suggestedFilename(), `rlhf-metrics.${kind.toLowerCase()}`);
      exported[kind] = await readFile(await file.path(), 'utf8');
    }
    const keys = [...new Set(stored.flatMap((r) => Object.keys(r.metrics)))].sort();
    assert.ok(keys.length > 2 && keys.includes('name, with "quotes"'));
    const [head, ...lines] = parseCsv(exported.CSV);
    assert.deepEqual(head, ['stage', 'time', ...keys]);
    assert.equal(lines.length, stored.length);
    assert.equal(lines.filter((l) => l[0] === 'sft').length, 20);
    lines.forEach((line, i) => {
      const { stage, time, metrics } = stored[i];
      assert.equal(line.length, keys.length + 2, `row ${i}: one cell per column`);
      assert.equal(line[0], stage);
      assert.equal(Date.parse(line[1]), time);
      keys.forEach((k, j) => {
        if (metrics[k] === undefined) assert.equal(line[j + 2], '', `row ${i} ${k}: blank where absent`);
        else assert.equal(Number(line[j + 2]), metrics[k], `row ${i} ${k}: the number as stored`);
      });
    });
    const json = JSON.parse(exported.JSON);
    assert.equal(json.length, stored.length);
    assert.equal(json.filter((r) => r.stage === 'sft').length, 20);
    json.forEach((r, i) => {
      const { stage, time, ...metrics } = r;
      assert.equal(stage, stored[i].stage);
      assert.equal(Date.parse(time), stored[i].time);
      assert.deepEqual(metrics, stored[i].metrics);
    });

    await data.screenshot({ path: path.join(OUT, 'data-panel.png') });

    // Delete asks first: dismissed, the checkpoint stays; accepted, it is gone (and only it).
    const answer = (accept) => page.once('dialog', (d) => {
      assert.equal(d.type(), 'confirm');
      assert.match(d.message(), /Delete the policy checkpoint/);
      return accept ? d.accept() : d.dismiss();
    });
    answer(false);
    await data.getByRole('button', { name: 'Delete policy checkpoint', exact: true }).click();
    await page.waitForTimeout(300);
    assert.equal(await policyRow.count(), 1);
    assert.match(await listed(), /policy:/);
    answer(true);
    await data.getByRole('button', { name: 'Delete policy checkpoint', exact: true }).click();
    await policyRow.waitFor({ state: 'detached', timeout: 10_000 });
    assert.equal(await listed(), before);
    assert.equal(await data.locator('tbody tr').count(), 1);

    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
