// Wires the store, the worker and the views; nothing else.
import './style.css';
import { LabClient } from './lab-client.js';
import { Events } from './events.js';
import * as storage from './storage.js';
import { readUrl, writeUrl, validated } from './state.js';
import { mountPipeline } from './views/pipeline.js';
import { mountSft } from './views/sft.js';
import { mountLabeling } from './views/labeling.js';
import { mountReward } from './views/reward.js';
import { mountPpo } from './views/ppo.js';
import { mountDpo } from './views/dpo.js';
import { mountEquations } from './equations.js';

const client = new LabClient();
const backendBadge = document.getElementById('backend');
const notices = document.getElementById('notices');
const app = document.getElementById('app');

function notify(message, kind = 'info') {
  const div = document.createElement('div');
  div.className = `notice ${kind}`;
  div.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  div.textContent = message; // text, never HTML
  const close = document.createElement('button');
  close.textContent = '×';
  close.setAttribute('aria-label', 'dismiss');
  close.addEventListener('click', () => div.remove());
  div.append(' ', close);
  notices.append(div);
  return div;
}

async function start() {
  const { backend, overrides, problems } = readUrl(location.search);
  const ready = await client.init(backend, {});
  const { config, problems: refused } = await validated(ready.defaults, overrides, (json) => client.call('validateConfig', json));
  for (const p of [...problems, ...refused]) notify(`Link setting refused — ${p}`);
  await client.call('setConfig', JSON.stringify(config));

  const info = ready.backend;
  backendBadge.textContent = info.backend === 'webgpu' ? `WebGPU · ${info.adapter}` : `CPU backend · ${info.adapter}`;
  backendBadge.classList.toggle('cpu', info.backend !== 'webgpu');
  backendBadge.title = info.reason;
  if (info.fallback) notify(`Running on the CPU backend: ${info.reason}.`);

  const store = {
    client,
    config,
    defaults: ready.defaults,
    catalog: ready.catalog,
    vocabulary: ready.vocabulary,
    backend,
    backendInfo: info,
    events: new Events(),
    storage,
    stages: new Map(),
    notify,
    saveUrl() { writeUrl(store.config, store.defaults, store.backend); },
  };
  store.saveUrl();
  // The pipeline first: it listens for the states the panels announce as they mount.
  mountPipeline(app, store);
  for (const mount of [mountSft, mountLabeling, mountReward, mountPpo, mountDpo]) {
    const controller = await mount(app, store);
    store.stages.set(controller.name, controller);
  }
  mountEquations(app);
  // For the end-to-end tests and the curious: the page's store (same origin only).
  window.__lab = store;
  document.body.dataset.ready = 'true';
}

client.on((event) => {
  if (event.event === 'crashed') notify(`The training worker stopped: ${event.message}. Your labels and checkpoints are stored; reload the page to continue.`, 'error');
});

start().catch((e) => {
  backendBadge.textContent = 'The lab could not start';
  notify(`The lab could not start: ${e.message}`, 'error');
  console.error(e);
});
