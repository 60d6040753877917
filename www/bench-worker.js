// Runs `benchmark` from the wasm core in a worker, counting WebGPU queue submissions by wrapping
// `GPUQueue.prototype.submit` (the wasm reaches WebGPU through these JS objects). On the CPU
// backend it also measures the training step split across `shards` workers (shards.js), which
// only the page can do: the helpers are Web Workers.
import { initCore, matmulKernel, preferMatmul } from './core.js';

let Lab = null; // the core's, once it started
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

// The page's own comparison of whole and split steps, with the plan `bench::measure` used. SFT,
// batch 16: warm-up steps, then the measured steps alternately whole (one worker) and split
// across `shards` workers, in blocks of `BLOCK`, so that both see the same moments of a noisy
// machine. Then PPO with the default settings (32 completions, 4 epochs × 2 minibatches) from
// that SFT model and a reward model trained on a few simulated labels: one warm-up iteration,
// then iterations alternately whole and split. Both figures of each pair come from this path.
const BLOCK = 5;

/**
 * Where a split SFT step's time goes: the median, over the measured split steps, of each span of
 * `ShardPool.timeline` (ms). The training worker's own shard runs from `plan` on and overlaps
 * the helper's spans; `all_answered` is when the last helper's answer reached it.
 */
function splitTimeline(timeline) {
  const steps = timeline.filter((t) => t.stage === 'sft' && t.helper);
  const median = (span) => {
    const values = steps.map(span).sort((a, b) => a - b);
    return values.length ? Number(values[Math.floor(values.length / 2)].toFixed(2)) : null;
  };
  return {
    steps: steps.length,
    total: median((t) => t.end - t.start),
    plan: median((t) => t.planned - t.start),
    to_helper: median((t) => t.helper.received - t.planned),
    helper_gradient: median((t) => t.helper.done - t.helper.started),
    from_helper: median((t) => t.helper.answered - t.helper.done),
    all_answered: median((t) => t.resolved - t.start),
    sum_adam_metrics: median((t) => t.end - t.resolved),
  };
}

async function shardedRow(preset, shards, plan, matmul) {
  const { warmup_steps: warmup, train_steps: measured, ppo_iterations: iterations } = plan;
  const config = JSON.parse(Lab.defaultConfig());
  config.preset = preset;
  Object.assign(config.sft, { batch_size: 16, steps: warmup + 2 * measured + 1, eval_every: 100000, train_examples: 512, held_out_examples: 16 });
  Object.assign(config.reward, { simulated_labels: 32, epochs: 1 });
  config.ppo.iterations = 1 + 2 * iterations;
  const lab = await Lab.create('cpu', JSON.stringify(config));
  lab.baseFromScratch();
  lab.sftBegin();
  let failure = null;
  const one = new ShardPool(1);
  const split = new ShardPool(shards, (e) => { failure = e; });
  split.timeline = [];
  split.matmul = matmul;
  // Milliseconds per step of `steps` steps of `stage` through `pool`.
  const timed = async (pool, stage, steps) => {
    const started = performance.now();
    for (let i = 0; i < steps; i++) await pool.step(lab, stage);
    return performance.now() - started;
  };
  try {
    for (let i = 0; i < warmup; i++) await (i % 2 ? one : split).step(lab, 'sft');
    split.timeline.length = 0;
    const sft = { one: 0, split: 0 };
    for (let done = 0; done < measured; done += BLOCK) {
      const steps = Math.min(BLOCK, measured - done);
      sft.one += await timed(one, 'sft', steps);
      sft.split += await timed(split, 'sft', steps);
    }
    lab.sftFinish();
    const labels = await lab.simulateLabels(config.reward.simulated_labels);
    lab.rewardBegin(labels.map((l) => JSON.stringify(l.label)).join('\n'));
    while (!lab.status().reward?.done) await lab.step('reward');
    await lab.rewardFinish();
    const perIteration = 1 + config.ppo.epochs * config.ppo.mini_batches;
    const ppo = { one: 0, split: 0 };
    if (iterations > 0) {
      lab.ppoBegin();
      await timed(split, 'ppo', perIteration);
      for (let i = 0; i < iterations; i++) {
        ppo.one += await timed(one, 'ppo', perIteration);
        ppo.split += await timed(split, 'ppo', perIteration);
      }
    }
    // A silent fallback to whole steps would make this row a lie.
    if (failure) throw new Error(`the helper workers failed: ${failure.message}`);
    return {
      preset,
      backend: `browser-cpu-${shards}-workers`,
      train_step_ms: sft.split / measured,
      train_step_ms_one_worker: sft.one / measured,
      train_steps: measured,
      token_ms: null,
      ppo_iteration_ms: iterations > 0 ? ppo.split / iterations : null,
      ppo_iteration_ms_one_worker: iterations > 0 ? ppo.one / iterations : null,
      ppo_iterations: iterations,
      split_step_timeline_ms: splitTimeline(split.timeline),
    };
  } finally {
    one.terminate();
    split.terminate();
    lab.free();
  }
}

// Milliseconds since the epoch, comparable with the page's clock (each worker has its own origin).
const epochMs = () => performance.timeOrigin + performance.now();

/** The cold path a learner waits for: the core started, then the first training step of `preset`. */
async function startup(backend, preset) {
  const config = JSON.parse(Lab.defaultConfig());
  config.preset = preset;
  Object.assign(config.sft, { batch_size: 16, steps: 2, eval_every: 100000, train_examples: 64, held_out_examples: 16 });
  const lab = await Lab.create(backend, JSON.stringify(config));
  try {
    lab.baseFromScratch();
    lab.sftBegin();
    await lab.step('sft');
    return epochMs();
  } finally {
    lab.free();
  }
}

self.onmessage = async ({ data }) => {
  try {
    const workerStarted = epochMs();
    const core = await initCore(data.backend === 'cpu' ? 'cpu' : 'webgpu');
    Lab = core.Lab;
    const coreReady = epochMs();
    // On the CPU backend only: WebGPU's device can be set up once per worker, and the benchmark's.
    const firstStep = data.backend === 'cpu' ? await startup('cpu', data.presets.split(',')[0]) : null;
    preferMatmul(data.matmul ?? 'fastest');
    const result = await core.benchmark(data.backend, data.presets, data.plan);
    const shards = Number(data.shards) || 1;
    if (result.backend.backend === 'cpu' && shards > 1) {
      for (const preset of data.presets.split(',')) result.rows.push(await shardedRow(preset, shards, result.plan, data.matmul));
    }
    // The core's download as this worker fetched it: compressed on the wire where the server gzips it.
    const wasm = performance.getEntriesByType('resource').find((e) => e.name.includes('rlhf_lab_bg'));
    const download = wasm ? { transfer_bytes: wasm.transferSize, encoded_bytes: wasm.encodedBodySize, decoded_bytes: wasm.decodedBodySize } : null;
    postMessage({ ok: true, ...result, matmul_kernel: matmulKernel(), wasm_download: download, startup_epoch_ms: { worker_started: workerStarted, core_ready: coreReady, first_step: firstStep } });
  } catch (e) {
    postMessage({ ok: false, error: e?.message ?? String(e) });
  }
};
