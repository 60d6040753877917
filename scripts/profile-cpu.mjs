// Where the CPU backend's time goes in the page's wasm: runs SFT training steps of the tiny
// preset (batch 16, as `bench`) in Node's V8, the engine of Chromium, and prints each function's
// share of the samples taken during the measured steps (self time). Start-up and warm-up steps
// are outside the profile. The wasm must keep its function names: `scripts/profile-cpu.sh`
// builds one and calls this. With CALLERS=name,name it first prints, for the functions whose
// names contain one of those, the chains of their nearest callers (DEPTH=n frames, 5 unless
// told) and their samples; with INCLUSIVE=name,name, the share of samples whose stack holds a
// function so named (the forward, the backward, Adam…).
//
//   [CALLERS=gelu,argmax] [INCLUSIVE=Gpt::hidden] node scripts/profile-cpu.mjs <dir with rlhf_lab.js and rlhf_lab_bg.wasm> [steps] [top]
import { readFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

const [dir, steps = '100', top = '30'] = process.argv.slice(2);
if (!dir) {
  console.error('usage: node scripts/profile-cpu.mjs <pkg dir> [steps] [top]');
  process.exit(2);
}
const core = await import(`${dir}/rlhf_lab.js`);
const wasm = core.initSync({ module: readFileSync(`${dir}/rlhf_lab_bg.wasm`) });
// The FMA matrix product beside the core, as the page's workers start it (www/core.js), where
// this Node compiles relaxed SIMD (Node 20: with --experimental-wasm-relaxed-simd).
const fma = readFileSync(new URL('../www/pkg/fma_kernel.wasm', import.meta.url));
if (WebAssembly.validate(fma)) {
  const { instance } = await WebAssembly.instantiate(fma, { env: { memory: wasm.memory } });
  core.useFmaMatmul(instance.exports.matmul);
}
console.log(`matrix products: ${core.matmulKernel()}`);

const config = JSON.parse(core.Lab.defaultConfig());
Object.assign(config.sft, { batch_size: 16, steps: Number(steps) + 11, eval_every: 100000, train_examples: 512, held_out_examples: 16 });
const lab = await core.Lab.create('cpu', JSON.stringify(config));
lab.baseFromScratch();
lab.sftBegin();
// The first step evaluates on held-out data; the next ones warm V8's tiers up.
for (let i = 0; i < 10; i++) await lab.step('sft');

const session = new Session();
session.connect();
await session.post('Profiler.enable');
await session.post('Profiler.setSamplingInterval', { interval: 200 });
await session.post('Profiler.start');
const started = performance.now();
for (let i = 0; i < Number(steps); i++) await lab.step('sft');
const elapsed = performance.now() - started;
const { profile } = await session.post('Profiler.stop');

const byId = new Map(profile.nodes.map((node) => [node.id, node]));
// Rust's mangled hashes and generic arguments make names long: keep the path.
const nameOf = (id) => (byId.get(id)?.callFrame.functionName || '(anonymous)').replace(/::h[0-9a-f]{16}$/, '');
const samples = new Map();
for (const id of profile.samples) {
  const name = nameOf(id);
  samples.set(name, (samples.get(name) ?? 0) + 1);
}
const callers = (process.env.CALLERS ?? '').split(',').filter(Boolean);
if (callers.length > 0) {
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const chains = new Map();
  for (const id of profile.samples) {
    if (!callers.some((c) => nameOf(id).includes(c))) continue;
    const chain = [nameOf(id)];
    for (let p = parent.get(id); p !== undefined && chain.length < Number(process.env.DEPTH ?? 5); p = parent.get(p)) chain.push(nameOf(p));
    const key = chain.map((n) => (n.length > 90 ? n.slice(0, 87) + '...' : n)).join('  <-  ');
    chains.set(key, (chains.get(key) ?? 0) + 1);
  }
  for (const [chain, count] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${String(count).padStart(6)}  ${chain}`);
}
const total = profile.samples.length;
// With INCLUSIVE=name,name: the share of samples whose stack holds a function so named.
const inclusive = (process.env.INCLUSIVE ?? '').split(',').filter(Boolean);
if (inclusive.length > 0) {
  const parentOf = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const counts = new Map(inclusive.map((name) => [name, 0]));
  for (const id of profile.samples) {
    const stack = [];
    for (let p = id; p !== undefined; p = parentOf.get(p)) stack.push(nameOf(p));
    for (const name of inclusive) if (stack.some((frame) => frame.includes(name))) counts.set(name, counts.get(name) + 1);
  }
  for (const [name, count] of counts) console.log(`${((100 * count) / total).toFixed(1).padStart(5)}%  (inclusive) ${name}`);
}
console.log(`${steps} SFT steps, tiny preset, CPU backend: ${(elapsed / Number(steps)).toFixed(1)} ms per step (with the profiler on), ${total} samples`);
for (const [name, count] of [...samples].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
  console.log(`${((100 * count) / total).toFixed(1).padStart(5)}%  ${name.length > 140 ? name.slice(0, 137) + '...' : name}`);
}
