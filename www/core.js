// Starts the wasm core in this worker, with its faster matrix product where the browser can run
// it: `fma_kernel.wasm` (kernels/fma, why: src/engine/cpu/matmul_kernel.rs) uses relaxed SIMD's fused
// multiply-add, which a browser without relaxed SIMD cannot even compile. It shares the core's
// memory, and the core checks it against its own kernel before using it (`useFmaMatmul`).
// Without it the core's own kernel runs: nothing else changes.
//
// The core comes in two builds of the same source (scripts/build.sh): `pkg/`, with burn's WebGPU
// backend (37.98 MB, 6.4 MB gzipped), and `pkg-cpu/`, the CPU backend alone (8.5 MB, 1.9 MB
// gzipped: no cubecl, wgpu or naga). A worker that trains on the CPU backend loads the small one.

const fmaKernelUrl = new URL('./pkg/fma_kernel.wasm', import.meta.url);

let loaded = null;

/**
 * Starts the core in this worker: `kind` `cpu` is the CPU-only build, anything else the build with
 * WebGPU. Returns the module's exports (`Lab`, `GradientWorker`, `benchmark`, …) once it and
 * (where it compiles) the FMA kernel are ready; `core.memory` is its wasm memory.
 */
export async function initCore(kind = 'webgpu') {
  // Two literal imports, so that the bundler keeps both builds.
  const core = await (kind === 'cpu' ? import('./pkg-cpu/rlhf_lab.js') : import('./pkg/rlhf_lab.js'));
  const wasm = await core.default();
  await useFmaKernel(core, wasm.memory);
  loaded = core;
  return { ...core, memory: wasm.memory };
}

async function useFmaKernel({ useFmaMatmul }, memory) {
  let bytes;
  try {
    const response = await fetch(fmaKernelUrl);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    bytes = await response.arrayBuffer();
  } catch (e) {
    console.warn(`the FMA matrix product could not be fetched (${e?.message ?? e}); the core's own kernel runs`);
    return;
  }
  // No relaxed SIMD in this browser: the module does not validate, and that is the expected case.
  if (!WebAssembly.validate(bytes)) return;
  try {
    const { instance } = await WebAssembly.instantiate(bytes, { env: { memory } });
    if (!useFmaMatmul(instance.exports.matmul)) console.warn('the FMA matrix product disagreed with the core\'s own; the core\'s own kernel runs');
  } catch (e) {
    console.warn(`the FMA matrix product could not start (${e?.message ?? e}); the core's own kernel runs`);
  }
}

/**
 * `matmulKernel()`: `relaxed-simd fma`, `simd128` or `flex gemm`, the CPU backend's matrix product;
 * `preferMatmul('fastest' | 'simd128' | 'flex')` chooses it (the benchmark's before and after).
 */
export const matmulKernel = () => loaded.matmulKernel();
export const preferMatmul = (name) => loaded.preferMatmul(name);
