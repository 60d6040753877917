// Benchmark aid (not a test): the FMA matrix product (kernels/fma) on each product of a training
// step of the tiny GPT as `bench` runs it (batch 16 of 25-token sequences: 24 positions, 384 rows;
// d = 64, 4 heads, vocabulary 123), in Node's V8, the engine of Chromium. For each build given,
// GFLOP/s per product (median of the rounds; the builds take turns, so that each sees the same
// moments of a noisy machine) and the products' ms per step. Compare with
// `cargo run --release --example fma_peak`, the ceiling of 4-lane FMAs here.
//
//   node --experimental-wasm-relaxed-simd scripts/matmul-shapes.mjs [fma_kernel.wasm ...] [ROUNDS=5]
import { readFileSync } from 'node:fs';

const paths = process.argv.slice(2).length ? process.argv.slice(2) : [new URL('../www/pkg/fma_kernel.wasm', import.meta.url).pathname];
const rounds = Number(process.env.ROUNDS ?? 5);
// src/rlhf/task/grammar.rs: PROMPT_LEN 5 + MAX_COMPLETION 20 = SEQ_LEN 25; inputs are 24 tokens.
const [BATCH, T, D, HEADS, VOCAB] = [16, 24, 64, 4, 123];
const [N, HD, BH] = [BATCH * T, D / HEADS, BATCH * HEADS];
// [name, batch, m, n, k, A read transposed, times per step]. Forward per block: qkv, proj, fc1,
// fc2; attention per head; the tied LM head, x·Wteᵀ. Backward: ∂X = ∂Y·Wᵀ and ∂W = Xᵀ·∂Y for
// each, and attention's four products per head.
const shapes = [
  ['qkv', 1, N, 3 * D, D, false, 2], ['proj', 1, N, D, D, false, 2], ['fc1', 1, N, 4 * D, D, false, 2], ['fc2', 1, N, D, 4 * D, false, 2], ['head', 1, N, VOCAB, D, false, 1],
  ['q·kᵀ', BH, T, T, HD, false, 2], ['p·v', BH, T, HD, T, false, 2],
  ['qkv ∂X', 1, N, D, 3 * D, false, 2], ['proj ∂X', 1, N, D, D, false, 2], ['fc1 ∂X', 1, N, D, 4 * D, false, 2], ['fc2 ∂X', 1, N, 4 * D, D, false, 2], ['head ∂X', 1, N, D, VOCAB, false, 1],
  ['qkv ∂W', 1, D, 3 * D, N, true, 2], ['proj ∂W', 1, D, D, N, true, 2], ['fc1 ∂W', 1, D, 4 * D, N, true, 2], ['fc2 ∂W', 1, 4 * D, D, N, true, 2], ['head ∂W', 1, D, VOCAB, N, true, 1],
  ['∂p = ∂y·vᵀ', BH, T, T, HD, false, 2], ['∂v, ∂q, ∂k', BH, T, HD, T, false, 6],
];
const A = 0, B = 4 << 20, C = 8 << 20; // byte offsets of the operands in the module's memory
const kernels = [];
for (const path of paths) {
  const memory = new WebAssembly.Memory({ initial: 256 }); // 16 MiB
  const { instance } = await WebAssembly.instantiate(readFileSync(path), { env: { memory } });
  const floats = new Float32Array(memory.buffer);
  for (let i = 0; i < floats.length; i++) floats[i] = ((i * 37) % 101) / 50 - 1;
  const matmul = instance.exports.matmul;
  // Warm V8's optimizing tier up before anything is timed.
  for (let i = 0; i < 300; i++) matmul(1, 64, 64, 64, A, 0, 64, 1, B, 0, 64, C, 0, 64);
  kernels.push(matmul);
}
const gflops = shapes.map(() => kernels.map(() => []));
for (let round = 0; round < rounds; round++) {
  shapes.forEach(([, batch, m, n, k, transposed], s) => kernels.forEach((matmul, x) => {
    const run = () => matmul(batch, m, n, k, A, m * k, transposed ? 1 : k, transposed ? m : 1, B, k * n, n, C, m * n, n);
    for (let i = 0; i < 5; i++) run();
    const reps = Math.max(5, Math.round(1e8 / (batch * m * n * k)));
    const started = performance.now();
    for (let i = 0; i < reps; i++) run();
    gflops[s][x].push((2 * batch * m * n * k) / ((performance.now() - started) / reps) / 1e6);
  }));
}
const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];
const column = (text) => String(text).padStart(12);
console.log(''.padEnd(30) + paths.map((p) => column(p.split('/').at(-2).slice(-12))).join(''));
const msPerStep = kernels.map(() => 0);
let flopPerStep = 0;
shapes.forEach(([name, batch, m, n, k, transposed, times], s) => {
  const flop = 2 * batch * m * n * k * times;
  flopPerStep += flop;
  gflops[s].forEach((values, x) => { msPerStep[x] += flop / median(values) / 1e6; });
  const label = `${name} ${batch > 1 ? `${batch}×` : ''}${m}×${k}·${k}×${n}`;
  console.log(label.padEnd(30) + gflops[s].map((values) => column(median(values).toFixed(1))).join(''));
});
console.log('products per step, ms'.padEnd(30) + msPerStep.map((ms) => column(ms.toFixed(2))).join(''));
console.log('all, GFLOP/s'.padEnd(30) + msPerStep.map((ms) => column((flopPerStep / ms / 1e6).toFixed(1))).join(''));
console.log(`(${(flopPerStep / 1e6).toFixed(0)} MFLOP of products per step; GFLOP/s are medians of ${rounds} rounds)`);
