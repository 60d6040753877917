// The backend probe (backend-choice.js): real training steps and a generation of the chosen
// preset on each backend asked for, one after the other, each step reported as it ends so the page
// can stop a backend that has already lost (by terminating this worker: a WebGPU step cannot be
// cancelled from inside). The steps are the lab's own: `Lab.step('sft')`, batch 16, from a fresh
// model; the tokens are `Lab.samples` (10 prompts, 20 new tokens, KV cache, one readback).
//
// On the CPU backend, with `maxShards` ≥ 2, the same steps are then timed split across 2 …
// maxShards workers (shards.js), for the page to use as many helper workers as pay.
//
// page → worker: {backends: ['cpu', 'webgpu'], preset, warmup, steps, maxShards}
// worker → page: {backend, ready, adapter}            the session started (after device set-up)
//                {backend, unavailable: reason}        the backend could not be had here
//                {backend, step, ms, warmup}           one training step
//                {backend, shards, steps}              timed steps split across `shards` workers
//                {backend, token_ms}                   one generation, per new token
//                {backend, error}                      anything else went wrong
//                {done: true}
import { initCore } from './core.js';
import { ShardPool } from './shards.js';

const NEW_TOKENS = 20; // rlhf::task::MAX_COMPLETION: every generation runs this many positions

self.onmessage = async ({ data: { backends, preset, warmup, steps, maxShards = 1 } }) => {
  for (const backend of backends) {
    let lab = null;
    try {
      // The build the training worker would load for this backend (core.js).
      const { Lab } = await initCore(backend);
      const config = JSON.parse(Lab.defaultConfig());
      config.preset = preset;
      const splits = backend === 'cpu' ? Math.max(0, maxShards - 1) : 0;
      Object.assign(config.sft, { batch_size: 16, steps: (warmup + steps) * (1 + splits) + 1, eval_every: 100000, train_examples: 256, held_out_examples: 16 });
      lab = await Lab.create(backend, JSON.stringify(config));
      const info = lab.backendInfo();
      if (info.backend !== backend) {
        postMessage({ backend, unavailable: info.reason });
        continue;
      }
      postMessage({ backend, ready: true, adapter: info.adapter });
      lab.baseFromScratch();
      lab.sftBegin();
      for (let i = 0; i < warmup + steps; i++) {
        const t0 = performance.now();
        await lab.step('sft');
        postMessage({ backend, step: i, ms: performance.now() - t0, warmup: i < warmup });
      }
      for (let shards = 2; shards <= 1 + splits; shards++) {
        const pool = new ShardPool(shards, () => {});
        try {
          for (let i = 0; i < warmup; i++) await pool.step(lab, 'sft');
          const times = [];
          for (let i = 0; i < steps; i++) {
            const t0 = performance.now();
            await pool.step(lab, 'sft');
            times.push(performance.now() - t0);
          }
          // A pool whose helpers failed steps whole: not a measurement of a split.
          if (pool.lastSplit) postMessage({ backend, shards, steps: times });
        } finally {
          pool.terminate();
        }
      }
      await lab.samples('base', 1.0, 1); // the generation kernels' first use
      const t0 = performance.now();
      await lab.samples('base', 1.0, 2);
      postMessage({ backend, token_ms: (performance.now() - t0) / NEW_TOKENS });
    } catch (e) {
      postMessage({ backend, error: e?.message ?? String(e) });
    } finally {
      lab?.free();
    }
  }
  postMessage({ done: true });
};
