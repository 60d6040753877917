// The "Checkpoints and data" panel: a stage's checkpoint is listed and downloads as a checkpoint
// file; uploads are checked by the core first (the good file loads; truncated, corrupted, random
// and empty files are refused with a message and change nothing stored); the metric history
// exports as CSV and JSON with one row per step. Screenshot: test-results/checkpoints.png.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { serve, launch, openPage, OUT } from './harness.mjs';

test('checkpoints download, bad uploads are refused, metrics export', { timeout: 600_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const { page, errors } = await openPage(browser, `${server.url}?backend=cpu&sft.steps=20`);
    const data = page.locator('#data');
    assert.match(await data.textContent(), /No checkpoints yet/);
    await page.evaluate(() => window.__lab.stages.get('sft').start());
    await data.locator('tr[data-role="sft"]').waitFor({ timeout: 60_000 });
    const listed = () => page.evaluate(async () => (await window.__lab.storage.listCheckpoints()).map((c) => `${c.role}:${c.size}:${c.time}`).sort().join());
    const before = await listed();

    const [download] = await Promise.all([page.waitForEvent('download'), data.getByRole('button', { name: 'Download sft checkpoint' }).click()]);
    assert.equal(download.suggestedFilename(), 'rlhf-sft-tiny.rlhf');
    const good = path.join(OUT, 'checkpoint-sft.rlhf');
    await download.saveAs(good);
    const bytes = await readFile(good);
    assert.equal(bytes.subarray(0, 7).toString(), 'RLHFLAB');

    const upload = data.getByLabel('Upload a checkpoint');
    const bad = {
      truncated: bytes.subarray(0, Math.floor(bytes.length * 0.7)),
      'one byte flipped': Buffer.from(bytes).fill(bytes[bytes.length >> 1] ^ 0x10, bytes.length >> 1, (bytes.length >> 1) + 1),
      'random bytes': Buffer.from(Array.from({ length: 1024 }, (_, i) => (i * 2654435761) >>> 24)),
      empty: Buffer.alloc(0),
    };
    for (const [what, content] of Object.entries(bad)) {
      const file = path.join(OUT, `bad-${what.replace(/ /g, '-')}.rlhf`);
      await writeFile(file, content);
      await upload.setInputFiles(file);
      const alert = page.getByRole('alert').filter({ hasText: `bad-${what.replace(/ /g, '-')}.rlhf was refused` });
      await alert.waitFor({ timeout: 30_000 });
      console.log(`# ${what}: ${(await alert.textContent()).replace('×', '').trim()}`);
      assert.equal(await listed(), before, `${what}: stored checkpoints unchanged`);
    }
    await upload.setInputFiles(good);
    await page.getByRole('status').filter({ hasText: 'Loaded checkpoint-sft.rlhf' }).waitFor({ timeout: 30_000 });
    assert.equal(await page.locator('.stage-card[data-stage="sft"]').getAttribute('data-state'), 'done');

    const exported = {};
    for (const kind of ['CSV', 'JSON']) {
      const [file] = await Promise.all([page.waitForEvent('download'), data.getByRole('button', { name: `Export metrics as ${kind}` }).click()]);
      exported[kind] = await readFile(await file.path(), 'utf8');
    }
    const csvLines = exported.CSV.trim().split('\n');
    assert.match(csvLines[0], /^stage,time,.*loss\/train/);
    assert.equal(csvLines.filter((l) => l.startsWith('sft,')).length, 20);
    const json = JSON.parse(exported.JSON);
    assert.equal(json.filter((r) => r.stage === 'sft').length, 20);
    assert.ok(json.every((r) => Number.isFinite(r['loss/train'])));
    await data.screenshot({ path: path.join(OUT, 'checkpoints.png') });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
