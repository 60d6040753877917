// Data-parallel steps on the CPU backend (src/shard.rs, www/shards.js): with `workers=2` in the
// link the page says so, splits each SFT step between its training worker and a helper worker,
// and trains exactly as one worker does (the same losses, to float rounding). A helper that fails
// ends the splitting with a notice, and training goes on, still on the same numbers. A bad
// `workers=` value is refused like any bad link setting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, OUT } from './harness.mjs';

const STEPS = 8;

/** SFT through the page's controls; the training loss of each step, from the worker's events. */
async function sftLosses(browser, server, link, { sabotageAfter = null } = {}) {
  const { page, context, errors } = await openPage(browser, `${server.url}${link}&sft.steps=${STEPS}&sft.eval_every=4`);
  await page.getByRole('status').filter({ hasText: 'CPU backend' }).waitFor();
  const badge = await page.locator('#backend').textContent();
  await page.evaluate((sabotageAfter) => {
    window.__losses = [];
    window.__lab.client.on((e) => {
      if (e.event !== 'step' || e.stage !== 'sft') return;
      window.__losses.push(e.metrics['loss/train']);
      if (window.__losses.length === sabotageAfter) window.__lab.client.sabotageShards();
    });
  }, sabotageAfter);
  await page.getByRole('button', { name: 'Start SFT' }).click();
  await page.getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
  const losses = await page.evaluate(() => window.__losses);
  return { page, context, errors, badge, losses };
}

function assertClose(got, expected, what) {
  assert.equal(got.length, expected.length, `${what}: ${got.length} steps, not ${expected.length}`);
  got.forEach((loss, i) => assert.ok(Math.abs(loss - expected[i]) <= 1e-5 * Math.max(1, Math.abs(expected[i])), `${what}, step ${i + 1}: ${loss} against ${expected[i]}`));
}

test('two workers train as one does; a failing helper leaves one, with a notice', { timeout: 900_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const one = await sftLosses(browser, server, '?backend=cpu&workers=1');
    assert.doesNotMatch(one.badge, /workers/);
    assert.deepEqual(one.errors, []);
    await one.context.close();

    const two = await sftLosses(browser, server, '?backend=cpu&workers=2');
    assert.match(two.badge, /· 2 workers/);
    assertClose(two.losses, one.losses, 'two workers');
    assert.ok(two.losses.at(-1) < two.losses[0], `SFT lowered the loss: ${two.losses}`);
    assert.match(two.page.url(), /workers=2/, 'the link keeps the setting');
    await two.page.screenshot({ path: path.join(OUT, 'workers.png') });
    assert.deepEqual(two.errors, []);
    await two.context.close();

    const broken = await sftLosses(browser, server, '?backend=cpu&workers=2', { sabotageAfter: 3 });
    const notice = broken.page.locator('.notice').filter({ hasText: 'no longer split across workers' });
    assert.match(await notice.textContent(), /θ has \d+ values; the model has \d+ parameters/);
    assertClose(broken.losses, one.losses, 'after a helper failed');
    assert.deepEqual(broken.errors, []);
    await broken.context.close();

    const { page, context } = await openPage(browser, `${server.url}?backend=cpu&workers=lots`);
    const refused = page.locator('.notice').filter({ hasText: 'Link setting refused' });
    assert.match(await refused.first().textContent(), /workers: must be auto or a whole number from 1 to 8/);
    await context.close();
  } finally {
    await browser.close();
    await server.close();
  }
});
