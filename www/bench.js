// The benchmark page: one worker, one backend, the presets asked for; the result lands in
// `window.__bench` for `scripts/bench.mjs` to collect.
import { shardsForThisMachine } from './shards.js';

const params = new URLSearchParams(location.search);
const worker = new Worker(new URL('./bench-worker.js', import.meta.url), { type: 'module' });
const out = document.getElementById('out');
const copy = document.getElementById('copy');

/** What a learner shares: one JSON object, without the per-kernel lists (they stay in `window.__bench`). */
function shareable(data) {
  if (!data.ok) return { ok: false, error: data.error, browser: navigator.userAgent };
  const since = (epoch) => Math.round(epoch - performance.timeOrigin);
  return {
    browser: navigator.userAgentData?.brands?.map((b) => `${b.brand} ${b.version}`).join(', ') || navigator.userAgent,
    user_agent: navigator.userAgent,
    hardware_concurrency: navigator.hardwareConcurrency ?? null,
    backend: data.backend.backend,
    adapter: data.backend.adapter,
    reason: data.backend.reason,
    matmul_kernel: data.matmul_kernel,
    plan: data.plan,
    // From this page's navigation: the wasm core started in the worker, and its first training step.
    startup_ms: { core_ready: since(data.startup_epoch_ms.core_ready), first_trainable_step: data.startup_epoch_ms.first_step ? since(data.startup_epoch_ms.first_step) : null },
    wasm_download: data.wasm_download,
    rows: data.rows.map(({ step_kernels, token_kernels, ...row }) => row),
  };
}

worker.onmessage = ({ data }) => {
  window.__bench = data;
  window.__benchShared = shareable(data);
  out.textContent = JSON.stringify(window.__benchShared, null, 2);
  copy.disabled = false;
};
copy.addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(out.textContent);
    copy.textContent = 'Copied';
  } catch {
    // No clipboard permission: select the text for a manual copy.
    getSelection().selectAllChildren(out);
    copy.textContent = 'Selected: press Ctrl+C';
  }
});
worker.postMessage({
  backend: params.get('backend') ?? 'cpu',
  presets: params.get('presets') ?? 'tiny',
  plan: params.get('plan') ?? 'full',
  // CPU backend: which matrix product (`fastest`, `simd128`, `flex`: src/engine/cpu/matmul.rs).
  matmul: params.get('matmul') ?? 'fastest',
  // CPU backend: also the training step split across this many workers (default: one per
  // core; the lab page leaves one core to its UI; 1: none).
  shards: params.get('shards') ?? String(shardsForThisMachine({ keepFree: 0 })),
});
