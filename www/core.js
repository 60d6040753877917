// Starts the wasm core in this worker, with its faster matrix product where the browser can run
// it: `fma_kernel.wasm` (kernels/fma, why: src/engine/cpu/matmul_kernel.rs) uses relaxed SIMD's fused
// multiply-add, which a browser without relaxed SIMD cannot even compile. It shares the core's
// memory, and the core checks it against its own kernel before using it (`useFmaMatmul`).
// Without it the core's own kernel runs: nothing else changes.
import init, { useFmaMatmul, matmulKernel, preferMatmul } from './pkg/rlhf_lab.js';

const fmaKernelUrl = new URL('./pkg/fma_kernel.wasm', import.meta.url);

/** The core's exports, once it and (where it compiles) the FMA kernel are ready. */
export async function initCore() {
  const wasm = await init();
  await useFmaKernel(wasm.memory);
  return wasm;
}

async function useFmaKernel(memory) {
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
export { matmulKernel, preferMatmul };
