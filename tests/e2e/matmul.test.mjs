// The CPU backend's matrix products in the page (src/engine/cpu/matmul_kernel.rs): Chromium has relaxed
// SIMD, so the page loads the FMA kernel beside the core and says so; SFT steps with it give the
// losses of the core's own kernel to float rounding, and not bit for bit (the FMA rounds once
// where a multiply and an add round twice: the module is really what ran).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serve, launch, openPage } from './harness.mjs';

const STEPS = 6;

async function sftLosses(browser, server, { coreKernel }) {
  const { page, context, errors } = await openPage(browser, `${server.url}?backend=cpu&workers=1&sft.steps=${STEPS}&sft.eval_every=3`);
  await page.getByRole('status').filter({ hasText: 'CPU backend' }).waitFor();
  const title = await page.locator('#backend').getAttribute('title');
  const kernel = await page.evaluate(async (coreKernel) => {
    window.__losses = [];
    window.__lab.client.on((e) => {
      if (e.event === 'step' && e.stage === 'sft') window.__losses.push(e.metrics['loss/train']);
    });
    return coreKernel ? window.__lab.client.useCoreMatmul() : null;
  }, coreKernel);
  await page.getByRole('button', { name: 'Start SFT' }).click();
  await page.getByRole('button', { name: 'Done' }).waitFor({ timeout: 300_000 });
  const losses = await page.evaluate(() => window.__losses);
  await context.close();
  return { title, kernel, losses, errors };
}

test('the FMA matrix product runs in Chromium and trains as the core\'s own kernel does', { timeout: 600_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    const fma = await sftLosses(browser, server, { coreKernel: false });
    assert.match(fma.title, /matrix products: relaxed-simd fma/);
    const core = await sftLosses(browser, server, { coreKernel: true });
    assert.equal(core.kernel, 'simd128');
    assert.equal(fma.losses.length, STEPS);
    assert.equal(core.losses.length, STEPS);
    fma.losses.forEach((loss, i) => {
      assert.ok(Math.abs(loss - core.losses[i]) <= 1e-4 * Math.abs(core.losses[i]), `step ${i + 1}: ${loss} with FMA against ${core.losses[i]}`);
    });
    assert.notDeepEqual(fma.losses, core.losses, 'the FMA kernel rounds differently: identical losses mean it did not run');
    assert.deepEqual(fma.errors, []);
    assert.deepEqual(core.errors, []);
  } finally {
    await browser.close();
    await server.close();
  }
});
