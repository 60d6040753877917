// Wires the store, the worker and the views; nothing else.
import './style.css';
import { LabClient } from './lab-client.js';
import { Events } from './events.js';
import * as storage from './storage.js';
import { writeUrl, SETTINGS } from './state.js';
import { readUrl, validated } from './link.js';
import { mountPipeline } from './views/pipeline.js';
import { mountSft } from './views/sft.js';
import { mountLabeling } from './views/labeling.js';
import { mountReward } from './views/reward.js';
import { mountPpo } from './views/ppo.js';
import { mountGrpo } from './views/grpo.js';
import { mountDpo } from './views/dpo.js';
import { mountYourReward } from './views/your-reward.js';
import { mountCheckpoints } from './views/checkpoints.js';
import { mountEquations } from './equations.js';
import { openView, mountLesson, LESSON_STEPS } from './lesson/lesson.js';
import { chooseBackend } from './backend-choice.js';
import { shardsForThisMachine } from './shards.js';

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

/** One notice for the parts of the link the page did not take, each named once, as a list. */
function notifyLink(problems) {
  if (!problems.length) return;
  const n = problems.length;
  const div = notify(`This link has ${n === 1 ? 'a part' : `${n} parts`} the page did not take:`);
  div.classList.add('link-problems');
  div.setAttribute('aria-label', 'Link parts not taken');
  const list = document.createElement('ul');
  for (const p of problems) {
    const item = document.createElement('li');
    item.textContent = p; // text, never HTML
    list.append(item);
  }
  div.insertBefore(list, div.lastChild);
}

async function start() {
  const { backend, workers, overrides, problems, view } = readUrl(location.search, { lessonSteps: LESSON_STEPS });
  // Lesson or full lab, decided before anything mounts (the lab mounts either way, hidden in the lesson).
  const shell = openView(view);
  // "auto": the faster backend by measurement on this machine (backend-choice.js), remembered per
  // adapter and preset; a forced choice in the link skips it.
  let measured = null;
  if (backend === 'auto') {
    backendBadge.textContent = 'Measuring WebGPU against the CPU backend…';
    // Helper workers are measured too where the machine has cores to spare (one stays the page's).
    const maxShards = workers === 'auto' ? shardsForThisMachine() : 1;
    const preset = SETTINGS.find((s) => s.key === 'preset').options.includes(overrides.get('preset')) ? overrides.get('preset') : 'tiny';
    measured = await chooseBackend(preset, { maxShards }).catch((e) => {
      console.warn(`the backends could not be measured (${e.message}); the core chooses`);
      return null;
    });
  }
  const measuredWorkers = measured?.backend === 'cpu' ? measured.figures?.cpu?.workers?.workers : null;
  const ready = await client.init(measured?.backend ?? backend, {}, workers === 'auto' && measuredWorkers ? measuredWorkers : workers);
  const { config, problems: refused } = await validated(ready.defaults, overrides, (json) => client.call('validateConfig', json));
  notifyLink([...problems, ...refused]);
  await client.call('setConfig', JSON.stringify(config));

  const info = ready.backend;
  const split = ready.shards > 1 ? ` · ${ready.shards} workers` : '';
  backendBadge.textContent = info.backend === 'webgpu' ? `WebGPU · ${info.adapter}` : `CPU backend · ${info.adapter}${split}`;
  backendBadge.classList.toggle('cpu', info.backend !== 'webgpu');
  // On the CPU backend, which matrix product runs: relaxed SIMD's FMA where the browser has it.
  const why = measured?.measured && info.backend === measured.backend ? measured.reason : info.reason;
  backendBadge.title = info.backend === 'webgpu' ? why : `${why} · matrix products: ${ready.matmulKernel}`;
  backendBadge.dataset.choice = measured ? (measured.remembered ? 'remembered' : measured.measured ? 'measured' : 'no-webgpu') : 'forced';
  if (measured?.measured && info.backend === measured.backend) {
    notify(`${measured.remembered ? `As measured on ${new Date(measured.at).toLocaleDateString()}: ` : ''}${measured.reason}. (?backend=webgpu or ?backend=cpu in the link forces one.)`);
  } else if (info.fallback || (measured && !measured.measured)) {
    notify(`Running on the CPU backend: ${info.backend === 'cpu' && measured && !measured.measured ? measured.reason : info.reason}.`);
  }
  client.on((e) => {
    if (e.event === 'shards-failed') notify(`Training steps are no longer split across workers (${e.message}); they go on in one worker.`);
  });

  const store = {
    client,
    config,
    defaults: ready.defaults,
    catalog: ready.catalog,
    vocabulary: ready.vocabulary,
    backend,
    workers,
    backendInfo: info,
    view: shell.view,
    events: new Events(),
    storage,
    stages: new Map(),
    notify,
    saveUrl() {
      writeUrl(store.config, store.defaults, store.backend, store.workers, store.view);
      // The settings the stored snapshots were taken under, for resuming after a reload.
      storage.putState('config', store.config).catch(() => {});
    },
  };
  // The settings the stored snapshots were taken under, read before this visit's replace them.
  const held = await storedRun();
  store.saveUrl();
  // The pipeline first: it listens for the states the panels announce as they mount.
  mountPipeline(app, store);
  for (const mount of [mountSft, mountLabeling, mountReward, mountPpo, mountGrpo, mountDpo]) {
    const controller = await mount(app, store);
    store.stages.set(controller.name, controller);
  }
  // Not stages: "run everything" iterates store.stages only.
  store.yourReward = await mountYourReward(app, store);
  store.data = await mountCheckpoints(app, store);
  store.equations = mountEquations(app, store.client);
  // The lesson comes back to its step with what this browser holds, put back before it shows,
  // without asking; the full lab (or a link with other settings) offers to resume.
  const resumed = shell.view.mode === 'lesson' && await resumeForLesson(store, held, shell.root);
  store.lesson = await mountLesson(shell, store);
  if (!resumed) await offerResume(store, held);
  // For the end-to-end tests and the curious: the page's store (same origin only).
  window.__lab = store;
  document.body.dataset.ready = 'true';
}

// ---- resuming after a reload ----

const RESUMABLE = [
  { stage: 'sft', title: 'SFT', unit: 'step' },
  { stage: 'reward', title: 'the reward model', unit: 'step' },
  { stage: 'ppo', title: 'PPO', unit: 'iteration' },
  { stage: 'grpo', title: 'GRPO', unit: 'iteration' },
  { stage: 'dpo', title: 'DPO', unit: 'step' },
];
const RESUME_FLAG = 'rlhf-lab-resume';

const sameConfig = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** The stages this browser holds snapshots of, oldest stage first. */
async function storedRun() {
  const snapshots = [];
  for (const spec of RESUMABLE) {
    const snapshot = await storage.getSnapshot(spec.stage).catch(() => null);
    if (snapshot) snapshots.push({ ...spec, ...snapshot });
  }
  const config = await storage.getState('config').catch(() => null);
  return { snapshots, config };
}

function describe({ title, unit, progress }) {
  if (progress.done) return `${title} done`;
  return progress.step ? `${title} at ${unit} ${progress.step} of ${progress.total}` : `${title} begun (no ${unit} of ${progress.total} finished yet)`;
}

/** Puts every stage with a snapshot back where it was, in pipeline order. */
async function resumeAll(store, snapshots) {
  const note = notify('Resuming where you were…');
  try {
    for (const snapshot of snapshots) {
      const controller = store.stages.get(snapshot.stage);
      await controller.resume(snapshot.bytes);
    }
    note.remove();
    notify(`Resumed: ${snapshots.map(describe).join(', ')}. Press play to go on.`);
  } catch (e) {
    note.remove();
    notify(`The lab could not resume (${e.message}). Your labels and checkpoints are kept; start the stage again.`, 'error');
  }
}

/**
 * The lesson after a reload: every stage this browser holds a snapshot of is put back (stored
 * models are loaded, nothing is trained again) before the lesson shows its step. Not when the link
 * asks for other settings than the snapshots were taken under: false then, and the lab's offer
 * (which reloads under the stored settings) is shown instead.
 */
async function resumeForLesson(store, { snapshots, config }, root) {
  if (!snapshots.length) return true;
  if (!config || !sameConfig(config, store.config)) return false;
  sessionStorage.removeItem(RESUME_FLAG);
  const status = root.querySelector('.lesson-loading');
  if (status) status.textContent = `Loading what this browser holds: ${snapshots.map(describe).join(', ')}…`;
  try {
    for (const snapshot of snapshots) await store.stages.get(snapshot.stage).resume(snapshot.bytes);
  } catch (e) {
    notify(`The lesson could not load what this browser holds (${e.message}). Your labels and checkpoints are kept; run the step again.`, 'error');
  }
  return true;
}

/**
 * After a reload: if this browser holds snapshots of stages in progress (or done), offer to put
 * them back. Snapshots only resume under the settings they were taken with: if the link's
 * settings differ, the page reloads with the stored ones first.
 */
async function offerResume(store, { snapshots, config }) {
  if (!snapshots.length) return;
  if (sessionStorage.getItem(RESUME_FLAG)) {
    sessionStorage.removeItem(RESUME_FLAG);
    if (config && sameConfig(config, store.config)) return resumeAll(store, snapshots);
  }
  const resume = document.createElement('button');
  resume.textContent = 'Resume where I was';
  resume.className = 'primary';
  const over = document.createElement('button');
  over.textContent = 'Start over';
  const banner = notify(`This browser holds a lab in progress (${snapshots.map(describe).join(', ')}; last saved ${new Date(Math.max(...snapshots.map((s) => s.time))).toLocaleString()}). `);
  banner.classList.add('resume');
  banner.setAttribute('role', 'region');
  banner.setAttribute('aria-label', 'resume');
  banner.insertBefore(document.createTextNode(' '), banner.lastChild);
  banner.insertBefore(resume, banner.lastChild);
  banner.insertBefore(over, banner.lastChild);
  const finished = new Promise((resolve) => {
    resume.addEventListener('click', async () => {
      banner.remove();
      if (config && !sameConfig(config, store.config)) {
        // Other settings in the link: reload under the stored ones, then resume.
        store.config = config;
        store.saveUrl();
        sessionStorage.setItem(RESUME_FLAG, '1');
        location.reload();
        return;
      }
      await resumeAll(store, snapshots);
      resolve();
    });
    over.addEventListener('click', async () => {
      banner.remove();
      await Promise.all(RESUMABLE.map(({ stage }) => storage.deleteSnapshot(stage)));
      notify('Starting over: the stages begin afresh. Your labels and saved checkpoints are kept.');
      resolve();
    });
  });
  store.resumeOffer = finished; // for tests: resolves when the learner has chosen
}

/** The GPU is gone: say so, and offer to go on on the CPU backend from the last snapshots. */
function offerCpu(event) {
  const note = notify(`The GPU device was lost (${event.reason}: ${event.message}). Training stopped; your labels, checkpoints and progress up to the last finished step are saved in this browser. `, 'error');
  const go = document.createElement('button');
  go.textContent = 'Continue on the CPU backend';
  go.className = 'primary';
  go.addEventListener('click', () => {
    const store = window.__lab;
    if (store) {
      store.backend = 'cpu';
      store.saveUrl();
    } else {
      const params = new URLSearchParams(location.search);
      params.set('backend', 'cpu');
      history.replaceState(null, '', `?${params}`);
    }
    sessionStorage.setItem(RESUME_FLAG, '1');
    location.reload();
  });
  note.insertBefore(go, note.lastChild);
}

client.on((event) => {
  if (event.event === 'device-lost') offerCpu(event);
  if (event.event === 'persist-failed') notify(`Progress of ${event.stage} could not be saved in this browser (${event.error.message}): a reload would lose it.`, 'error');
  if (event.event === 'crashed') notify(`The training worker stopped: ${event.message}. Your labels and checkpoints are stored; reload the page to continue.`, 'error');
});

start().catch((e) => {
  backendBadge.textContent = 'The lab could not start';
  notify(`The lab could not start: ${e.message}`, 'error');
  console.error(e);
});
