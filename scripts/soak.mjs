// The soak (a command, not a test): runs the whole pipeline in headless Chromium on the CPU
// backend, round after round, for --minutes, sampling the worker's wasm memory and the page's JS
// heap every --sample-every seconds. After warm-up (the first 10 minutes, or the first third of a
// shorter run) growth must stay under 10%.
//
//   node scripts/soak.mjs [--minutes 60] [--sample-every 60] [--out test-results/soak.json]
//
// Each round: SFT, the reward model, PPO and DPO reset and run again with short settings (the
// labels of the first round are kept, as a learner's would be).
import { writeFile } from 'node:fs/promises';
import { serve, launch, openPage } from '../tests/e2e/harness.mjs';

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
const minutes = Number(args.minutes ?? 60);
const every = Number(args['sample-every'] ?? 60);
const out = args.out ?? 'test-results/soak.json';
const QUERY = '?backend=cpu&sft.steps=150&reward.simulated_labels=600&ppo.iterations=15&dpo.epochs=1';
const MiB = (bytes) => bytes / 2 ** 20;

const server = await serve();
const browser = await launch(['--enable-precise-memory-info']);
const errors = [];
let failed = false;
try {
  const { page, errors: pageErrors } = await openPage(browser, `${server.url}${QUERY}`);
  page.on('dialog', (d) => d.accept());
  const started = Date.now();
  const elapsed = () => (Date.now() - started) / 1000;
  const worker = page.workers()[0];
  const samples = [];
  let round = 0;

  async function sample() {
    const wasm = await worker.evaluate(() => self.__wasmMemoryBytes?.() ?? NaN);
    const heap = await page.evaluate(() => performance.memory?.usedJSHeapSize ?? NaN);
    const s = { minute: elapsed() / 60, round, wasm_mib: MiB(wasm), page_heap_mib: MiB(heap) };
    samples.push(s);
    console.log(`min ${s.minute.toFixed(1).padStart(5)} · round ${String(round).padStart(3)} · wasm ${s.wasm_mib.toFixed(1)} MiB · page heap ${s.page_heap_mib.toFixed(1)} MiB`);
  }
  await sample();
  const sampler = setInterval(() => { sample().catch((e) => errors.push(`sample: ${e.message}`)); }, every * 1000);

  while (elapsed() < minutes * 60) {
    round += 1;
    const roundStart = elapsed();
    const result = await page.evaluate(async () => {
      const stages = window.__lab.stages;
      for (const name of ['dpo', 'ppo', 'reward', 'sft']) await stages.get(name).reset();
      const done = [];
      for (const name of ['sft', 'labels', 'reward', 'ppo', 'dpo']) {
        const stage = stages.get(name);
        if (stage.state() !== 'done') await stage.start();
        if (stage.state() !== 'done') return { done, stopped: `${name} ${stage.state()}` };
        done.push(name);
      }
      return { done };
    });
    console.log(`round ${round}: ${result.done.join(' → ')}${result.stopped ? ` · stopped at ${result.stopped}` : ''} in ${(elapsed() - roundStart).toFixed(0)} s`);
    if (result.stopped) { errors.push(`round ${round} stopped at ${result.stopped}`); break; }
  }
  clearInterval(sampler);
  await sample();
  errors.push(...pageErrors);

  const warm = minutes >= 30 ? 10 : minutes / 3;
  const after = samples.find((s) => s.minute >= warm) ?? samples.at(-1);
  const [first, last] = [samples[0], samples.at(-1)];
  console.log(`\nsummary over ${last.minute.toFixed(1)} min, ${round} rounds (warm-up: first ${warm.toFixed(1)} min)`);
  const summary = {};
  for (const key of ['wasm_mib', 'page_heap_mib']) {
    const growth = (100 * (last[key] - after[key])) / after[key];
    const pass = Number.isFinite(growth) && growth < 10;
    failed ||= !pass;
    summary[key] = { start: first[key], after_warm_up: after[key], end: last[key], growth_percent: growth, pass };
    console.log(`${key.padEnd(14)} start ${first[key].toFixed(1)} · after warm-up ${after[key].toFixed(1)} · end ${last[key].toFixed(1)} MiB · growth ${growth.toFixed(1)}% ${pass ? 'PASS' : 'FAIL'} (< 10%)`);
  }
  await writeFile(out, JSON.stringify({ minutes, every, rounds: round, samples, summary, errors }, null, 1));
  console.log(`samples written to ${out}`);
} catch (e) {
  errors.push(e.message);
} finally {
  await browser.close();
  await server.close();
}
if (errors.length) console.log(`errors:\n${errors.join('\n')}`);
process.exit(failed || errors.length ? 1 : 0);
