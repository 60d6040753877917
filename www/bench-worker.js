// Runs `benchmark` from the wasm core in a worker, counting WebGPU queue submissions by wrapping
// `GPUQueue.prototype.submit` (the wasm reaches WebGPU through these JS objects). On the CPU
// backend it also measures the training step split across `shards` workers (shards.js), which
// only the page can do: the helpers are Web Workers.
import init, { benchmark, Lab } from './pkg/rlhf_lab.js';
import { ShardPool } from './shards.js';

// Read by the wasm benchmark around each measurement.
self.__submissions = 0;
if (self.GPUQueue) {
  const submit = GPUQueue.prototype.submit;
  GPUQueue.prototype.submit = function (...args) {
    self.__submissions += 1;
    return submit.apply(this, args);
  };
}

// As `bench::measure` measures a training step, with the plan it used: SFT, batch 16, warm-up
// steps first (the trainer's first step also evaluates held-out data), then the measured ones.
async function shardedRow(preset, shards, plan) {
  const { warmup_steps: warmup, train_steps: measured } = plan;
  const config = JSON.parse(Lab.defaultConfig());
  config.preset = preset;
  Object.assign(config.sft, { batch_size: 16, steps: warmup + measured + 1, eval_every: 100000, train_examples: 512, held_out_examples: 16 });
  const lab = await Lab.create('cpu', JSON.stringify(config));
  lab.baseFromScratch();
  lab.sftBegin();
  let failure = null;
  const pool = new ShardPool(shards, (e) => { failure = e; });
  try {
    for (let i = 0; i < warmup; i++) await pool.step(lab, 'sft');
    const started = performance.now();
    for (let i = 0; i < measured; i++) await pool.step(lab, 'sft');
    const elapsed = performance.now() - started;
    // A silent fallback to whole steps would make this row a lie.
    if (failure) throw new Error(`the helper workers failed: ${failure.message}`);
    return { preset, backend: `browser-cpu-${shards}-workers`, train_step_ms: elapsed / measured, train_steps: measured, token_ms: null, ppo_iteration_ms: null };
  } finally {
    pool.terminate();
    lab.free();
  }
}

self.onmessage = async ({ data }) => {
  try {
    await init();
    const result = await benchmark(data.backend, data.presets, data.plan);
    const shards = Number(data.shards) || 1;
    if (result.backend.backend === 'cpu' && shards > 1) {
      for (const preset of data.presets.split(',')) result.rows.push(await shardedRow(preset, shards, result.plan));
    }
    postMessage({ ok: true, ...result });
  } catch (e) {
    postMessage({ ok: false, error: e?.message ?? String(e) });
  }
};
