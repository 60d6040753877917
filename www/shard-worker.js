// A helper of data-parallel training steps (src/engine/data_parallel.rs, src/app/shard.rs): a Web Worker with its own instance of
// the wasm core. For each request it loads the parameters θ it is sent into its model and
// returns the gradient of its shard of the step's batch.
//
// Protocol (shards.js → here):  {id, theta: Float32Array, work} | {preferMatmul} (the benchmark)
// Protocol (here → shards.js):  {id, ok: true, result: {step, gradient, sums, perToken},
//                                timing: {received, started, done}} | {id, ok: false, error}
import { initCore, preferMatmul } from './core.js';

// Helpers compute on the CPU backend only: the CPU-only build of the core.
const ready = initCore('cpu').then((core) => new core.GradientWorker());
// One request at a time: a wasm-bindgen object can't be entered twice.
let chain = Promise.resolve();
// Times on the clock the page's workers share, for the benchmark's timeline (shards.js).
const clock = () => performance.timeOrigin + performance.now();

self.onmessage = ({ data: { id, theta, work, preferMatmul: matmul } }) => {
  if (matmul) {
    chain = chain.then(() => ready).then(() => preferMatmul(matmul));
    return;
  }
  const received = clock();
  chain = chain.then(async () => {
    const started = clock();
    try {
      const helper = await ready;
      const result = await helper.gradient(theta, work);
      const timing = { received, started, done: clock() };
      postMessage({ id, ok: true, result, timing }, [result.gradient.buffer, result.perToken.buffer]);
    } catch (e) {
      postMessage({ id, ok: false, error: e?.message ?? String(e) });
    }
  });
};
