// Runs `benchmark` from the wasm core in a worker, counting WebGPU queue submissions by wrapping
// `GPUQueue.prototype.submit` (the wasm reaches WebGPU through these JS objects).
import init, { benchmark } from './pkg/rlhf_lab.js';

// Read by the wasm benchmark around each measurement.
self.__submissions = 0;
if (self.GPUQueue) {
  const submit = GPUQueue.prototype.submit;
  GPUQueue.prototype.submit = function (...args) {
    self.__submissions += 1;
    return submit.apply(this, args);
  };
}

self.onmessage = async ({ data }) => {
  try {
    await init();
    const result = await benchmark(data.backend, data.presets, data.plan);
    postMessage({ ok: true, ...result });
  } catch (e) {
    postMessage({ ok: false, error: e?.message ?? String(e) });
  }
};
