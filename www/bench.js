// The benchmark page: one worker, one backend, the presets asked for; the result lands in
// `window.__bench` for `scripts/bench.mjs` to collect.
import { shardsForThisMachine } from './shards.js';

const params = new URLSearchParams(location.search);
const worker = new Worker(new URL('./bench-worker.js', import.meta.url), { type: 'module' });
const out = document.getElementById('out');
worker.onmessage = ({ data }) => {
  window.__bench = data;
  out.textContent = JSON.stringify(data, null, 2);
};
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
