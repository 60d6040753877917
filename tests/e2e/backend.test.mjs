// "auto" picks the backend by measurement (www/backend-choice.js): in headless Chromium WebGPU is
// SwiftShader, a GPU emulated on these 2 CPU cores, and the probe must find the CPU backend faster
// and say so with both figures, then remember it for the next visit; with WebGPU hidden the page
// takes the CPU backend at once, without a probe; `?backend=` forces either, without a probe.
// The decision itself is tested on hand-made probe results first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { serve, launch, openPage, OUT } from './harness.mjs';
import { decide, formatMs, chooseWorkers } from '../../www/backend-choice.js';

test('the decision: the faster backend, both figures, and why', () => {
  const cpu = { steps: [12, 11, 30], token_ms: 0.5 };
  const gpu = (steps, extra = {}) => ({ steps, token_ms: 0.2, adapter: 'nvidia ampere', ...extra });
  const slow = decide({ cpu, webgpu: gpu([40, 38, 39]) });
  assert.equal(slow.backend, 'cpu');
  assert.equal(slow.figures.cpu.step_ms, 12, 'the CPU figure is the median (one slow step is noise)');
  assert.equal(slow.figures.webgpu.step_ms, 39);
  assert.match(slow.reason, /^WebGPU \(nvidia ampere\): 39 ms\/step, 0\.2 ms\/token; CPU backend: 12 ms\/step, 0\.5 ms\/token — training on the CPU backend/);
  const fast = decide({ cpu, webgpu: gpu([3, 3.2, 2.8]) });
  assert.equal(fast.backend, 'webgpu');
  assert.match(fast.reason, /WebGPU \(nvidia ampere\): 3\.0 ms\/step.* — training on WebGPU/);
  const stopped = decide({ cpu, webgpu: gpu([2058], { stopped: 'already slower than the CPU backend', token_ms: undefined }) });
  assert.equal(stopped.backend, 'cpu');
  assert.match(stopped.reason, /2,058 ms\/step \(stopped after 1 step: already slower than the CPU backend\)/);
  const warm = decide({ cpu, webgpu: { steps: [], over_ms: 6000, stopped: 'its device set-up and first step took over 6 s', adapter: 'google swiftshader' } });
  assert.equal(warm.backend, 'cpu');
  assert.match(warm.reason, /over 6,000 ms\/step \(its device set-up and first step took over 6 s\)/);
  const broken = decide({ cpu, webgpu: { steps: [], error: 'device lost' } });
  assert.equal(broken.backend, 'cpu');
  assert.match(broken.reason, /could not train here \(device lost\)/);
  assert.equal(decide({ cpu: { steps: [], error: 'no' }, webgpu: gpu([5]) }).backend, 'webgpu');
  assert.deepEqual(chooseWorkers([12, 12, 12], { 2: [9, 9, 9], 3: [8.5, 8.5, 8.5] }), { workers: 2, step_ms: { 1: 12, 2: 9, 3: 8.5 } }, 'a third worker that saves under 10% is not taken');
  assert.equal(chooseWorkers([12, 12, 12], { 2: [11.5, 11, 11.2] }).workers, 1, 'a split under 10% faster is not worth a worker');
  assert.equal(chooseWorkers([12], { 2: [8], 3: [6] }).workers, 3);
  assert.equal(chooseWorkers([12]).workers, 1);
  const split = decide({ cpu: { ...cpu, split: { 2: [8, 8, 8] } }, webgpu: gpu([40]) });
  assert.match(split.reason, /CPU backend: 12 ms\/step, 0\.5 ms\/token \(split across 2 workers: 8\.0 ms\/step\)/);
  assert.equal(formatMs(0.48), '0.5 ms');
  assert.equal(formatMs(12.3), '12 ms');
});

/** Counts the probe workers a page starts, from its first script on. */
const countProbes = () => {
  window.__probeWorkers = 0;
  const Original = window.Worker;
  window.Worker = class extends Original {
    constructor(url, options) {
      if (String(url).includes('probe-worker')) window.__probeWorkers += 1;
      super(url, options);
    }
  };
};

async function open(browser, url, { hideWebGpu = false, cores = null } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript(() => { try { localStorage.setItem('rlhf-lab-mode', 'lab'); } catch { /* about:blank */ } });
  await context.addInitScript(countProbes);
  if (cores) await context.addInitScript((n) => Object.defineProperty(Navigator.prototype, 'hardwareConcurrency', { get: () => n, configurable: true }), cores);
  if (hideWebGpu) await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'gpu', { get: () => undefined, configurable: true }));
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  // The core's downloads, workers' included: the bytes on the wire (gzipped where served so).
  const wasm = [];
  page.on('requestfinished', async (request) => {
    if (!/rlhf_lab_bg.*\.wasm$/.test(request.url())) return;
    const sizes = await request.sizes().catch(() => null);
    wasm.push({ name: request.url().split('/').pop(), wire: sizes?.responseBodySize ?? NaN });
  });
  const started = Date.now();
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
  return { page, context, errors, wasm, ms: Date.now() - started };
}

const badge = (page) => page.locator('#backend');

test('auto measures both backends, trains on the faster, remembers; hidden WebGPU and forced choices skip the probe', { timeout: 600_000 }, async () => {
  const server = await serve();
  const browser = await launch();
  try {
    // Forced CPU first: the time to a ready page without a probe, for comparison.
    const forcedCpu = await open(browser, `${server.url}?backend=cpu`);
    assert.match(await badge(forcedCpu.page).textContent(), /^CPU backend/);
    assert.equal(await forcedCpu.page.evaluate(() => window.__probeWorkers), 0);
    assert.equal(await badge(forcedCpu.page).getAttribute('data-choice'), 'forced');
    // A page that trains on the CPU downloads the CPU-only build of the core, and it is light.
    assert.equal(forcedCpu.wasm.length, 1, `one core downloaded: ${JSON.stringify(forcedCpu.wasm)}`);
    assert.ok(forcedCpu.wasm[0].wire <= 4_000_000, `the core on the wire: ${forcedCpu.wasm[0].wire} bytes`);
    console.log(`# ?backend=cpu: ready in ${forcedCpu.ms} ms, no probe; the core: ${forcedCpu.wasm[0].wire} bytes on the wire`);
    await forcedCpu.context.close();

    // Auto, first visit: the probe runs and the CPU backend wins against SwiftShader.
    const first = await open(browser, `${server.url}`);
    assert.equal(await first.page.evaluate(() => window.__probeWorkers), 1, 'one probe');
    assert.match(await badge(first.page).textContent(), /^CPU backend/);
    assert.equal(await badge(first.page).getAttribute('data-choice'), 'measured');
    const notice = first.page.getByRole('status').filter({ hasText: 'training on the CPU backend' });
    await notice.waitFor();
    const said = (await notice.textContent()).replace('×', '').trim();
    console.log(`# auto, first visit: ready in ${first.ms} ms; the page says: ${said}; downloads: ${first.wasm.map((w) => `${w.name} ${w.wire} bytes`).join(', ')}`);
    assert.match(said, /^WebGPU \(google swiftshader\): (over )?[\d,.]+ ms\/step.*; CPU backend: [\d.]+ ms\/step, [\d.]+ ms\/token — training on the CPU backend, the faster here/);
    const remembered = await first.page.evaluate(() => JSON.parse(localStorage.getItem('rlhf-lab-backend-measured')));
    const [entry] = Object.values(remembered);
    assert.equal(entry.backend, 'cpu');
    assert.ok(entry.figures.webgpu.step_ms > entry.figures.cpu.step_ms, `WebGPU ${entry.figures.webgpu.step_ms} ms > CPU ${entry.figures.cpu.step_ms} ms`);
    await first.page.screenshot({ path: path.join(OUT, 'backend-measured.png') });
    assert.deepEqual(first.errors, []);

    // The next visit in the same browser: remembered, no probe.
    const again = await first.context.newPage();
    await again.goto(server.url);
    await again.waitForSelector('body[data-ready="true"]', { timeout: 120_000 });
    assert.equal(await again.evaluate(() => window.__probeWorkers), 0, 'no probe on the next visit');
    assert.equal(await badge(again).getAttribute('data-choice'), 'remembered');
    assert.match(await again.getByRole('status').filter({ hasText: 'As measured on' }).textContent(), /training on the CPU backend/);
    await first.context.close();

    // A different preset is measured again (the choice is per adapter and preset).
    const micro = await open(browser, `${server.url}?preset=micro`);
    assert.equal(await micro.page.evaluate(() => window.__probeWorkers), 1, 'a new preset is measured');
    await micro.context.close();

    // Three cores (as the page sees them): the probe also times the step split across 2 workers and
    // the page uses as many as paid (10% or more), whatever that was on this machine.
    const three = await open(browser, `${server.url}?preset=micro`, { cores: 3 });
    const threeEntry = Object.values(await three.page.evaluate(() => JSON.parse(localStorage.getItem('rlhf-lab-backend-measured'))))[0];
    const { workers: chosen, step_ms: byWorkers } = threeEntry.figures.cpu.workers;
    assert.ok(byWorkers[1] > 0 && byWorkers[2] > 0, `both measured: ${JSON.stringify(byWorkers)}`);
    assert.equal(chosen, byWorkers[2] < 0.9 * byWorkers[1] ? 2 : 1);
    assert.equal(/· 2 workers/.test(await badge(three.page).textContent()), chosen === 2);
    console.log(`# 3 cores: one worker ${byWorkers[1]} ms/step, two ${byWorkers[2]} ms/step → ${chosen} worker${chosen === 1 ? '' : 's'}; badge: ${await badge(three.page).textContent()}`);
    assert.deepEqual(three.errors, []);
    await three.context.close();

    // WebGPU hidden: the CPU backend at once, without a probe.
    const hidden = await open(browser, `${server.url}`, { hideWebGpu: true });
    assert.equal(await hidden.page.evaluate(() => window.__probeWorkers), 0, 'no probe without WebGPU');
    assert.match(await badge(hidden.page).textContent(), /^CPU backend/);
    assert.equal(await badge(hidden.page).getAttribute('data-choice'), 'no-webgpu');
    await hidden.page.getByRole('status').filter({ hasText: 'navigator.gpu is missing' }).waitFor();
    assert.equal(hidden.wasm.length, 1, 'without WebGPU, only the CPU-only core');
    console.log(`# WebGPU hidden: ready in ${hidden.ms} ms, no probe (forced CPU: ${forcedCpu.ms} ms); the core: ${hidden.wasm[0].wire} bytes on the wire`);
    assert.deepEqual(hidden.errors, []);
    await hidden.context.close();

    // Forced WebGPU: honoured, no probe.
    const forcedGpu = await open(browser, `${server.url}?backend=webgpu&preset=micro`);
    assert.equal(await forcedGpu.page.evaluate(() => window.__probeWorkers), 0);
    assert.match(await badge(forcedGpu.page).textContent(), /^WebGPU/);
    assert.ok(forcedGpu.wasm.length === 1 && forcedGpu.wasm[0].wire > 4_000_000, `WebGPU loads the full build: ${JSON.stringify(forcedGpu.wasm)}`);
    console.log(`# ?backend=webgpu: ${await badge(forcedGpu.page).textContent()}, no probe`);
    assert.deepEqual(forcedGpu.errors, []);
    await forcedGpu.context.close();
  } finally {
    await browser.close();
    await server.close();
  }
});
