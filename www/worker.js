// The training worker: it owns the wasm module and the one `Lab` session, runs bounded steps,
// and posts their metrics. The page never waits on it: the UI thread only draws and listens.
//
// Protocol (page → worker):  {id, cmd: 'init', args: {backend, config, workers}}
//                            {id, cmd: 'call', args: {method, params}}   any Lab method
//                            {id, cmd: 'run',  args: {stage, steps, tag}} loop a stage's step
//                            {cmd: 'pause'}
//                            {cmd: 'speed', args: {delayMs}}              slow motion between steps
// Protocol (worker → page):  {id, ok: true, result} | {id, ok: false, error: {name, message}}
//                            {event: 'step', stage, tag, metrics, status, split}  split: across workers
//                            {event: 'stopped', stage, tag, reason, error?}
//                            {event: 'shards-failed', message}           steps go on unsplit
// A `tag` marks runs that are not the stage panel's own (e.g. the β sweep): panels ignore tagged
// events that are not theirs.
import { initCore, matmulKernel, preferMatmul } from './core.js';
import { recordSteps } from './storage.js';
import { ShardPool, shardsForThisMachine } from './shards.js';

let lab = null;
// The core's exports (core.js): the CPU-only build when the page asked for the CPU backend.
let core = null;
// On the CPU backend, the steps that can be split across helper workers are (shards.js).
let shards = new ShardPool(1);
// Every call into the session goes through this chain: a wasm-bindgen object can't be entered
// twice, and a step in flight must finish before anything else touches the models.
let chain = Promise.resolve();
const serial = (work) => {
  const next = chain.then(work, work);
  chain = next.catch(() => {});
  return next;
};

// The stages the worker can loop: each `lab.step(stage)` is one bounded step.
const STAGES = ['pretrain', 'sft', 'reward', 'ppo', 'grpo', 'dpo', 'sweep'];
// The stages a reload can resume: their steps' metrics and the trainer's snapshot after them are
// stored together, at most a second apart and whenever a run stops, so a crash or a reload
// loses at most the last second of steps (resuming takes them again, the same way). Storing a
// snapshot after every step cost about half of a CPU-backend SFT step of the tiny GPT in the lab
// page (62 ms with it, 40 ms without, 2026-11-30; 46–49 ms against 22–25 ms with this and the
// MessageChannel yield below, 2026-12-03, scripts/lab-step-time.mjs).
const RESUMABLE = ['sft', 'reward', 'ppo', 'grpo', 'dpo'];
const PERSIST_EVERY_MS = 1000;

let running = null; // {stage, paused}

// Device loss: the GPUDevice that burn's runtime requests is kept here, so that its loss is
// reported to the page (which offers the CPU backend) and, for tests, can be provoked with
// destroy(). wasm-bindgen looks methods up on the object, so wrapping the prototype sees wgpu's call.
let gpuDevice = null;
let deviceLost = null;
if (self.GPUAdapter?.prototype?.requestDevice) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    gpuDevice = device;
    device.lost.then((info) => {
      deviceLost = { reason: info.reason ?? 'unknown', message: info.message || 'no details given' };
      if (running) running.paused = true;
      postMessage({ event: 'device-lost', ...deviceLost });
    });
    return device;
  };
}
const refuseIfLost = () => {
  if (deviceLost) throw new Error(`the GPU device was lost (${deviceLost.reason}: ${deviceLost.message}); continue on the CPU backend`);
};
// Slow motion: a pause between steps, set by the page's speed control.
let delayMs = 0;

const errorOf = (e) => ({ name: e?.name || 'Error', message: e?.message || String(e) });

// Yields to the worker's message queue so a 'pause' sent during a step is seen before the next.
// Without a slow-motion delay through a MessageChannel: a chain of setTimeout(0) is clamped to
// 4 ms after five nested timers (the HTML spec), which every step then waited.
const yieldPort = new MessageChannel();
const yieldToQueue = () => new Promise((resolve) => {
  if (delayMs > 0) return setTimeout(resolve, delayMs);
  yieldPort.port1.onmessage = () => resolve();
  yieldPort.port2.postMessage(null);
});

async function runStage(stage, steps, tag) {
  if (!STAGES.includes(stage)) throw new Error(`unknown stage ${stage}`);
  if (running) throw new Error(`${running.stage} is already running`);
  refuseIfLost();
  const run = { stage, paused: false };
  running = run;
  let reason = 'paused';
  let error = null;
  let taken = 0;
  const persisted = RESUMABLE.includes(stage) && !tag;
  let progress = null; // the stage's progress after its last step
  try {
    while (!run.paused) {
      if (steps != null && taken >= steps) { reason = 'steps'; break; }
      const metrics = await serial(() => shards.step(lab, stage));
      const status = await serial(() => lab.status());
      taken += 1;
      postMessage({ event: 'step', stage, tag, metrics, status, split: shards.lastSplit });
      if (persisted) {
        unsaved.push({ metrics, time: Date.now() });
        progress = status[stage];
        if (progress?.done || performance.now() - lastPersisted >= PERSIST_EVERY_MS) await persist(stage, progress);
      }
      if (status[stage]?.done) { reason = 'done'; break; }
      await yieldToQueue();
    }
  } catch (e) {
    reason = 'error';
    error = errorOf(e);
  } finally {
    // The steps not yet stored, with the snapshot after the last of them (a failed step changed
    // nothing, so the snapshot is still that of the last step that counted).
    if (persisted && unsaved.length) await persist(stage, progress);
    running = null;
    postMessage({ event: 'stopped', stage, tag, reason, error });
  }
}

// The metrics of the steps since the last write, and when that was.
let unsaved = [];
let lastPersisted = 0;

// The unsaved steps' metrics and the snapshot after them, into IndexedDB together (the page's
// panels only draw). A failed write is reported once and does not stop training: the steps
// themselves succeeded.
let persistWarned = false;
async function persist(stage, progress) {
  const rows = unsaved;
  unsaved = [];
  lastPersisted = performance.now();
  try {
    let bytes = null;
    try {
      bytes = await serial(() => lab.snapshot(stage));
    } finally {
      await recordSteps(stage, rows, bytes, progress);
    }
  } catch (e) {
    if (!persistWarned) postMessage({ event: 'persist-failed', stage, error: errorOf(e) });
    persistWarned = true;
  }
}

self.onmessage = async ({ data }) => {
  const { id, cmd, args } = data;
  if (cmd === 'pause') {
    if (running) running.paused = true;
    return;
  }
  if (cmd === 'speed') {
    delayMs = Math.max(0, Math.min(5000, Number(args?.delayMs) || 0));
    return;
  }
  try {
    let result;
    if (cmd === 'init') {
      const kind = args.backend === 'cpu' ? 'cpu' : 'webgpu';
      if (core && core.kind !== kind) throw new Error(`this worker runs the ${core.kind} build of the core; start a new one for ${kind}`);
      core ??= Object.assign(await initCore(kind), { kind });
      // For the soak command: the wasm memory's size (it only grows; a leak shows here).
      self.__wasmMemoryBytes = () => core.memory.buffer.byteLength;
      // …and the bytes the core's allocator holds now (src/app/heap.rs): what a leak would raise.
      self.__wasmHeapLiveBytes = () => core.heapUsage().live_bytes;
      const started = performance.now();
      lab = await core.Lab.create(args.backend, JSON.stringify(args.config ?? {}));
      shards.terminate();
      const wanted = args.workers == null || args.workers === 'auto' ? shardsForThisMachine() : Number(args.workers);
      shards = new ShardPool(lab.backendInfo().backend === 'cpu' ? wanted : 1, (e) => postMessage({ event: 'shards-failed', message: e.message }));
      result = {
        shards: shards.shards,
        backend: lab.backendInfo(),
        matmulKernel: matmulKernel(),
        status: lab.status(),
        config: JSON.parse(lab.config()),
        defaults: JSON.parse(core.Lab.defaultConfig()),
        catalog: core.Lab.metricCatalog(),
        vocabulary: lab.vocabulary(),
        setupMs: performance.now() - started,
      };
    } else if (cmd === 'lose-device') {
      // Test hook: what a driver reset or an unplugged GPU does.
      if (!gpuDevice) throw new Error('there is no GPU device to lose (CPU backend)');
      gpuDevice.destroy();
      result = true;
    } else if (cmd === 'sabotage-shards') {
      // Test hook: the next split step's helpers fail, as a broken helper would.
      shards.sabotage();
      result = shards.shards;
    } else if (cmd === 'core-matmul') {
      // Test hook: products with the core's own kernel from now on; the kernel's name back.
      result = preferMatmul('simd128');
    } else if (cmd === 'call') {
      const { method, params = [] } = args;
      if (method !== 'validateConfig') refuseIfLost();
      if (method === 'validateConfig') {
        result = core.Lab.validateConfig(...params);
      } else {
        if (typeof lab?.[method] !== 'function') throw new Error(`no such method ${method}`);
        result = await serial(() => lab[method](...params));
      }
    } else if (cmd === 'run') {
      // Answer at once; progress arrives as events. A refused run still ends with 'stopped'.
      runStage(args.stage, args.steps, args.tag ?? null).catch((e) => {
        postMessage({ event: 'stopped', stage: args.stage, tag: args.tag ?? null, reason: 'error', error: errorOf(e) });
      });
      result = true;
    } else {
      throw new Error(`unknown command ${cmd}`);
    }
    postMessage({ id, ok: true, result }, result instanceof Uint8Array ? [result.buffer] : []);
  } catch (e) {
    postMessage({ id, ok: false, error: errorOf(e) });
  }
};
