// "auto" by measurement: which backend trains faster on this machine is not guessed from whether
// WebGPU exists. A training step of the tiny GPT is ~196 dispatches and one readback, so on a GPU it
// costs what the browser charges per dispatch; on an integrated GPU, a software adapter or a slow
// GPU process the CPU backend (~12 ms a step here) can be faster. So on the first visit — and
// whenever the adapter or the preset changes — the page times real training steps and a
// generation on both backends (probe-worker.js) and trains on the faster, remembering the result
// per adapter and preset in localStorage. `?backend=webgpu|cpu` skips all of this.
//
// Where WebGPU is missing or offers no usable adapter the CPU backend is chosen at once, with no
// probe. The probe stops a backend as soon as it has lost: WebGPU's device set-up and first step
// (which compiles every kernel) get `warmupLimitMs`, and its timed steps stop as soon as they add
// up to more than the CPU backend's whole timed run.

const STORE_KEY = 'rlhf-lab-backend-measured';

/** What the probe times: one warm-up step, then `steps` timed ones, then one generation. */
export const PROBE_PLAN = { warmup: 1, steps: 3, warmupLimitMs: 6_000 };

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const mean = (xs) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);

/** A time for the notice: "12 ms", "2,058 ms". */
export function formatMs(ms) {
  return `${ms >= 100 ? Math.round(ms).toLocaleString('en-US') : ms.toFixed(ms >= 10 ? 0 : 1)} ms`;
}

/**
 * How many workers a CPU-backend step is split across: the most whose measured step is at least
 * 10% faster than with one fewer (pure). `whole`: timed steps in one worker; `split`: {k: steps}.
 */
export function chooseWorkers(whole, split = {}) {
  const step_ms = { 1: round(median(whole)) };
  let workers = 1;
  let best = median(whole);
  for (const k of Object.keys(split).map(Number).sort((a, b) => a - b)) {
    const ms = median(split[k]);
    step_ms[k] = round(ms);
    if (k === workers + 1 && ms < best * 0.9) {
      workers = k;
      best = ms;
    }
  }
  return { workers, step_ms };
}

/** The adapter's identity for remembering: vendor, architecture, device, description, fallback. */
export function adapterKey(adapter, preset) {
  const info = adapter.info ?? {};
  const fallback = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter);
  return JSON.stringify([info.vendor ?? '', info.architecture ?? '', info.device ?? '', info.description ?? '', fallback, preset]);
}

/**
 * The choice from a probe's result (pure): `{backend, reason, figures}`. `result.cpu` and
 * `result.webgpu` each hold the timed `steps` (ms), `token_ms`, and where it did not run to the
 * end `stopped` (why), `over_ms` (a lower bound for a step), `unavailable` or `error`.
 */
export function decide(result, preset = 'tiny') {
  const { cpu, webgpu } = result;
  const cpuStep = median(cpu.steps);
  const gpuStep = webgpu.steps.length ? mean(webgpu.steps) : webgpu.over_ms ?? NaN;
  const workers = chooseWorkers(cpu.steps, cpu.split);
  const figures = {
    preset,
    cpu: { step_ms: round(cpuStep), token_ms: round(cpu.token_ms), steps: cpu.steps.length, workers },
    webgpu: { step_ms: round(gpuStep), token_ms: round(webgpu.token_ms), steps: webgpu.steps.length, adapter: webgpu.adapter ?? null, ...(webgpu.stopped ? { stopped: webgpu.stopped } : {}) },
  };
  const gpuName = `WebGPU (${webgpu.adapter ?? 'its adapter'})`;
  if (!Number.isFinite(cpuStep)) {
    if (Number.isFinite(gpuStep)) return { backend: 'webgpu', figures, reason: `the CPU backend could not be measured (${cpu.error ?? 'no steps'}); training on WebGPU at ${formatMs(gpuStep)}/step` };
    return { backend: 'cpu', figures, reason: `neither backend could be measured (${cpu.error ?? webgpu.error ?? 'no steps'}); training on the CPU backend` };
  }
  if (webgpu.unavailable || webgpu.error || !Number.isFinite(gpuStep)) {
    return { backend: 'cpu', figures, reason: `${gpuName} could not train here (${webgpu.unavailable ?? webgpu.error ?? 'no steps'}); CPU backend: ${formatMs(cpuStep)}/step — training on the CPU backend` };
  }
  const tokens = (r) => (Number.isFinite(r.token_ms) ? `, ${formatMs(r.token_ms)}/token` : '');
  const gpuFigure = webgpu.steps.length ? `${formatMs(gpuStep)}/step${tokens(webgpu)}` : `over ${formatMs(gpuStep)}/step (${webgpu.stopped})`;
  const faster = gpuStep < cpuStep ? 'webgpu' : 'cpu';
  const stopped = webgpu.steps.length && webgpu.stopped ? ` (stopped after ${webgpu.steps.length} step${webgpu.steps.length === 1 ? '' : 's'}: ${webgpu.stopped})` : '';
  const split = workers.workers > 1 ? ` (split across ${workers.workers} workers: ${formatMs(workers.step_ms[workers.workers])}/step)` : '';
  const reason = `${gpuName}: ${gpuFigure}${stopped}; CPU backend: ${formatMs(cpuStep)}/step${tokens(cpu)}${split} — training on ${faster === 'webgpu' ? 'WebGPU' : 'the CPU backend'}, the faster here (${preset} preset, measured in this browser)`;
  return { backend: faster, figures, reason };
}

function round(x) {
  return Number.isFinite(x) ? Number(x.toFixed(2)) : null;
}

/**
 * Runs the probe in a worker of its own: the CPU backend first, then WebGPU, stopped as soon as
 * it has lost. Resolves with the raw result (see `decide`).
 */
export function probe(preset, { warmup = PROBE_PLAN.warmup, steps = PROBE_PLAN.steps, warmupLimitMs = PROBE_PLAN.warmupLimitMs, maxShards = 1 } = {}) {
  return new Promise((resolve) => {
    const started = performance.now();
    const result = { cpu: { steps: [] }, webgpu: { steps: [] } };
    const worker = new Worker(new URL('./probe-worker.js', import.meta.url), { type: 'module' });
    let timer = null;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      worker.terminate();
      result.ms = performance.now() - started;
      resolve(result);
    };
    // WebGPU's turn begins when the CPU backend's ends: its device set-up and first step are bounded.
    const webgpuTurn = () => {
      timer = setTimeout(() => {
        result.webgpu.stopped = `its device set-up and first step took over ${warmupLimitMs / 1000} s`;
        result.webgpu.over_ms = warmupLimitMs;
        finish();
      }, warmupLimitMs);
    };
    worker.onmessage = ({ data }) => {
      if (data.done) return finish();
      const r = result[data.backend];
      if (!r) return;
      if (data.unavailable || data.error) {
        if (data.unavailable) r.unavailable = data.unavailable;
        else r.error = data.error;
        if (data.backend === 'cpu') webgpuTurn();
        return;
      }
      if (data.ready) {
        r.adapter = data.adapter;
      } else if (data.shards) {
        (r.split ??= {})[data.shards] = data.steps;
      } else if (data.step != null) {
        if (data.warmup) {
          r.warmup_ms = data.ms;
          if (data.backend === 'webgpu') clearTimeout(timer);
          return;
        }
        r.steps.push(data.ms);
        // WebGPU has lost once its timed steps add up to more than the CPU backend's whole run.
        const cpuRun = median(result.cpu.steps) * steps;
        if (data.backend === 'webgpu' && r.steps.reduce((a, b) => a + b, 0) > cpuRun) {
          if (r.steps.length < steps) r.stopped = 'already slower than the CPU backend';
          finish();
        }
      } else if (data.token_ms != null) {
        r.token_ms = data.token_ms;
        if (data.backend === 'cpu') webgpuTurn();
      }
    };
    worker.onerror = (e) => {
      e.preventDefault?.();
      result.error = e.message || 'the probe worker could not start';
      finish();
    };
    worker.postMessage({ backends: ['cpu', 'webgpu'], preset, warmup, steps, maxShards });
  });
}

function remembered(storage) {
  try {
    return JSON.parse(storage.getItem(STORE_KEY) ?? '{}') ?? {};
  } catch {
    return {};
  }
}

/**
 * The backend "auto" means here: `{backend, reason, figures, measured, remembered, probe_ms}`.
 * `measured` is false where no probe ran (no WebGPU): the CPU backend, at once.
 */
export async function chooseBackend(preset, { storage = globalThis.localStorage, run = probe, maxShards = 1 } = {}) {
  const gpu = globalThis.navigator?.gpu;
  if (!gpu) return { backend: 'cpu', measured: false, reason: 'this browser does not expose WebGPU (navigator.gpu is missing): training on the CPU backend' };
  let adapter = null;
  try {
    adapter = await gpu.requestAdapter();
  } catch {
    adapter = null;
  }
  if (!adapter) return { backend: 'cpu', measured: false, reason: 'the browser has WebGPU but offered no adapter: training on the CPU backend' };
  if (!adapter.features?.has('timestamp-query')) {
    return { backend: 'cpu', measured: false, reason: 'the WebGPU adapter lacks the timestamp-query feature that burn\'s runtime needs: training on the CPU backend' };
  }
  const key = adapterKey(adapter, preset) + `|${maxShards}`;
  const known = remembered(storage)[key];
  if (known?.backend) return { ...known, measured: true, remembered: true };
  const result = await run(preset, { maxShards });
  const choice = { ...decide(result, preset), measured: true, remembered: false, probe_ms: Math.round(result.ms ?? 0), at: new Date().toISOString() };
  if (!result.error && Number.isFinite(choice.figures.cpu.step_ms)) {
    try {
      storage.setItem(STORE_KEY, JSON.stringify({ ...remembered(storage), [key]: { backend: choice.backend, reason: choice.reason, figures: choice.figures, at: choice.at } }));
    } catch { /* private mode: measured again next time */ }
  }
  return choice;
}
