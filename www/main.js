// Wires the store, the worker and the views; nothing else.
import './style.css';
import { LabClient } from './lab-client.js';
import { readUrl, writeUrl, validated } from './state.js';
import { mountSft } from './views/sft.js';

const client = new LabClient();
const backendBadge = document.getElementById('backend');
const notices = document.getElementById('notices');
const app = document.getElementById('app');

export function notify(message, kind = 'info') {
  const div = document.createElement('div');
  div.className = `notice ${kind}`;
  div.textContent = message; // text, never HTML
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
    backend,
    notify,
    saveUrl() { writeUrl(store.config, store.defaults, store.backend); },
  };
  store.saveUrl();
  await mountSft(app, store);
  document.body.dataset.ready = 'true';
}

start().catch((e) => {
  backendBadge.textContent = 'The lab could not start';
  notify(`The lab could not start: ${e.message}`, 'error');
  console.error(e);
});
