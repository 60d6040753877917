// Data-parallel training steps on the CPU backend (src/engine/data_parallel.rs, src/app/shard.rs). wasm in the page runs on one
// thread; a step's batch can instead be split between the training worker and helper workers
// (shard-worker.js), one per further core: the training worker computes shard 0 while the
// helpers compute the others from the same parameters, and it adds their gradients up for one
// Adam step. The result is the whole batch's step (to float rounding). Every stage's training
// steps are split (pretraining, SFT, reward model, PPO's minibatch updates, DPO); PPO's rollouts
// and the β sweep's runs are taken whole, as the Rust side says with a null plan.

/**
 * Shards for this machine: one per logical core but one, at most `max`, at least 1. The core left
 * over is the page's: with every core training, the UI thread of a 2-core machine waited 110 ms
 * for a frame during SFT (the lab's end-to-end test, 2026-11-30). `keepFree = 0` for the
 * benchmark, which has no UI to keep responsive.
 */
export function shardsForThisMachine({ max = 4, keepFree = 1 } = {}) {
  const cores = Math.floor(Number(self.navigator?.hardwareConcurrency) || 1);
  return Math.max(1, Math.min(max, cores - keepFree));
}

/** Milliseconds on a clock that every worker of the page shares (each has its own time origin). */
const clock = () => performance.timeOrigin + performance.now();

class Helper {
  constructor(onFailure, matmul) {
    this.worker = new Worker(new URL('./shard-worker.js', import.meta.url), { type: 'module' });
    // The benchmark's choice of matrix product (src/engine/cpu/matmul.rs), before any request.
    if (matmul) this.worker.postMessage({ preferMatmul: matmul });
    this.pending = new Map();
    this.nextId = 1;
    this.worker.onmessage = ({ data }) => {
      const request = this.pending.get(data.id);
      if (!request) return;
      this.pending.delete(data.id);
      if (data.ok) request.resolve({ ...data.result, timing: { ...data.timing, answered: clock() } });
      else request.reject(new Error(data.error));
    };
    this.worker.onerror = (e) => {
      e.preventDefault?.();
      const error = new Error(`a helper worker stopped: ${e.message || 'it could not start'}`);
      for (const request of this.pending.values()) request.reject(error);
      this.pending.clear();
      onFailure(error);
    };
  }

  /** `transfer`: hand θ's buffer over instead of copying it (the last helper of a step). */
  gradient(theta, work, transfer = false) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, theta, work }, transfer ? [theta.buffer] : []);
    });
  }

  terminate() {
    this.worker.terminate();
  }
}

export class ShardPool {
  /**
   * @param {number} shards  shards per step, this worker's included (1: whole steps only)
   * @param {(error: Error) => void} onFallback  told once if the helpers fail and steps go on whole
   */
  constructor(shards, onFallback = () => {}) {
    this.shards = Math.max(1, Math.floor(shards) || 1);
    this.onFallback = onFallback;
    this.helpers = [];
    this.failure = null;
    this.lastSplit = false;
    /**
     * `null`, or an array that gets each split step's times (`clock()`): start, planned (θ and
     * the work ready), resolved (every helper answered), end, and the first helper's received,
     * started, done and answered. The benchmark sets it; the lab page does not, so it never grows.
     */
    this.timeline = null;
    /** `null` (the helpers' fastest), or the matrix product they should run: the benchmark's. */
    this.matmul = null;
    /**
     * The array the last helper's gradient came back in: the next plan writes θ into it
     * (`Lab.shardPlan`). A new 440 KB array each way cost ~0.3 ms in Chromium, on the
     * step's critical path; this one goes back and forth.
     */
    this.spare = null;
  }

  helper(i) {
    while (this.helpers.length <= i) this.helpers.push(new Helper((e) => { this.failure ??= e; }, this.matmul));
    return this.helpers[i];
  }

  /**
   * One step of `stage` on `lab`: split across the helpers when the stage allows it.
   * `lastSplit` then says whether it was (the worker reports it with the step).
   */
  async step(lab, stage) {
    this.lastSplit = false;
    // A helper that stopped between steps (it could not start, say) ends the splitting too.
    if (this.failure) this.fallBack(this.failure);
    if (this.shards < 2) return lab.step(stage);
    const times = { stage, start: clock() };
    const spare = this.spare;
    this.spare = null;
    const plan = await lab.shardPlan(stage, this.shards, spare);
    times.planned = clock();
    if (!plan) return lab.step(stage);
    let helperError = null;
    const theta = this.sabotaged ? plan.theta.subarray(1) : plan.theta;
    this.sabotaged = false;
    // θ is this step's copy, read for the helpers alone: the last one gets its buffer (440 KB
    // for the tiny GPT) without a copy, the others a copy each, made before the transfer.
    const last = plan.work.length - 1;
    const results = Promise.all(plan.work.map((work, i) => this.helper(i).gradient(theta, work, i === last))).catch((e) => {
      helperError = e;
      throw e;
    });
    try {
      results.then((answers) => Object.assign(times, { resolved: clock(), helper: answers[0].timing }), () => {});
      const metrics = await lab.stepSharded(stage, plan.work.length + 1, results);
      // The step has copied the answers into the core: the last one's array is free again.
      this.spare = new Float32Array((await results).at(-1).gradient.buffer);
      times.end = clock();
      this.timeline?.push(times);
      this.lastSplit = true;
      return metrics;
    } catch (e) {
      // The step changed nothing. A helper's failure ends data-parallel steps for this
      // session; anything else (a numerical fault, say) is the step's own error.
      if (!helperError && !this.failure) throw e;
      this.fallBack(helperError ?? this.failure);
      return lab.step(stage);
    }
  }

  /** Test hook: the next split step sends its helpers a θ one value short, which they refuse. */
  sabotage() {
    this.sabotaged = true;
  }

  /** Whole steps from now on; the page is told once. */
  fallBack(error) {
    this.failure = null;
    this.shards = 1;
    this.terminate();
    this.onFallback(error);
  }

  terminate() {
    for (const helper of this.helpers) helper.terminate();
    this.helpers = [];
  }
}
