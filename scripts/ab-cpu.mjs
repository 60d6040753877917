// Interleaved A/B of the CPU backend between builds of the page's core, in Node's V8 (the
// engine of Chromium): whole SFT steps of the tiny preset at batch 16 and batch 8, blocks of
// 10 steps taken in turn, so that every build sees the same moments of a noisy machine. Prints
// each build's median ms per step. Each directory holds a build as `scripts/build.sh` leaves
// it in www/pkg (rlhf_lab.js, rlhf_lab_bg.wasm, fma_kernel.wasm): copy www/pkg aside, change
// the code, build, and compare.
//
//   node --experimental-wasm-relaxed-simd scripts/ab-cpu.mjs <pkg dir> <pkg dir> ... [ROUNDS=8]
import { readFileSync } from 'node:fs';
import path from 'node:path';

const dirs = process.argv.slice(2).map((d) => path.resolve(d));
if (dirs.length === 0) {
  console.error('usage: node --experimental-wasm-relaxed-simd scripts/ab-cpu.mjs <pkg dir> <pkg dir> ...');
  process.exit(2);
}
const batches = [16, 8];

/** One build's core, with its FMA matrix product where this Node compiles relaxed SIMD. */
async function load(dir) {
  const core = await import(`${dir}/rlhf_lab.js`);
  const wasm = core.initSync({ module: readFileSync(`${dir}/rlhf_lab_bg.wasm`) });
  const fma = readFileSync(`${dir}/fma_kernel.wasm`);
  if (WebAssembly.validate(fma)) {
    const { instance } = await WebAssembly.instantiate(fma, { env: { memory: wasm.memory } });
    core.useFmaMatmul(instance.exports.matmul);
  }
  const labs = {};
  for (const batch of batches) {
    const config = JSON.parse(core.Lab.defaultConfig());
    Object.assign(config.sft, { batch_size: batch, steps: 100000, eval_every: 100000, train_examples: 512, held_out_examples: 16 });
    const lab = await core.Lab.create('cpu', JSON.stringify(config));
    lab.baseFromScratch();
    lab.sftBegin();
    // The first step evaluates on held-out data; the next ones warm V8's tiers up.
    for (let i = 0; i < 20; i++) await lab.step('sft');
    labs[batch] = lab;
  }
  return { labs, kernel: core.matmulKernel() };
}

const builds = [];
for (const dir of dirs) builds.push(await load(dir));
const times = builds.map(() => Object.fromEntries(batches.map((b) => [b, []])));
for (let round = 0; round < Number(process.env.ROUNDS ?? 8); round++) {
  for (let i = 0; i < builds.length; i++) {
    for (const batch of batches) {
      const lab = builds[i].labs[batch];
      for (let s = 0; s < 10; s++) {
        const started = performance.now();
        await lab.step('sft');
        times[i][batch].push(performance.now() - started);
      }
    }
  }
}
const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];
dirs.forEach((dir, i) => {
  const cells = batches.map((b) => `batch ${b}: ${median(times[i][b]).toFixed(2)} ms`).join('  ');
  console.log(`${dir}  ${cells}  (${builds[i].kernel})`);
});
