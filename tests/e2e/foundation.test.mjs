// Issue 2's end-to-end test: a new user opens the page, it says which backend it got, trains
// SFT through the UI, the loss chart fills, samples appear, and a screenshot is saved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, OUT } from './harness.mjs';

test('the page trains through its controls and draws the loss', { timeout: 600_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const { page, errors } = await openPage(browser, `${server.url}?backend=cpu&sft.steps=60&sft.eval_every=10`);
    await assert.doesNotReject(page.getByRole('status').filter({ hasText: 'CPU backend' }).waitFor());
    await page.getByRole('button', { name: 'Start SFT' }).click();
    await page.getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
    const points = Number(await page.locator('#sft .chart-host').first().getAttribute('data-points'));
    assert.ok(points >= 60, `the loss chart has ${points} points`);
    const rows = await page.locator('#sft table.samples tbody tr').count();
    assert.equal(rows, 10);
    const progress = await page.locator('#sft .progress span').textContent();
    assert.match(progress, /^60 \/ 60 steps/);
    await page.screenshot({ path: path.join(OUT, 'foundation.png'), fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
