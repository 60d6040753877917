// Stage 1 panel: supervised fine-tuning, with its settings, controls, progress, loss curves and
// samples for fixed prompts that show how completions change.
import { resumeStage, el, settingsForm, progressBar, chartBox } from './common.js';
import { LineChart } from '../charts.js';

const SAMPLE_TEMPERATURE = 0.7;
const SAMPLE_EVERY = 50;

export async function mountSft(root, store) {
  const { client, events } = store;
  const start = el('button', { class: 'primary', text: 'Start SFT' });
  const pause = el('button', { text: 'Pause', disabled: true });
  const step = el('button', { text: 'Step' });
  const reset = el('button', { text: 'Reset' });
  const progress = progressBar('SFT');
  const form = settingsForm(store, 'sft.');
  const lossBox = chartBox(store, { metric: 'loss/held_out', text: 'Next-token cross-entropy (nats) on the completion tokens. Held out: demonstrations never trained on.', equation: 'sft' });
  const accBox = chartBox(store, { metric: 'accuracy/held_out' });
  const samplesBody = el('tbody');
  const samplesNote = el('p', { class: 'muted', text: 'Samples appear when SFT begins.' });
  const source = el('p', { class: 'muted' });

  root.append(el('section', { class: 'panel', id: 'sft', 'aria-labelledby': 'sft-title' },
    el('h2', { id: 'sft-title', text: 'Stage 1 · Supervised fine-tuning → π_ref' }),
    el('p', { class: 'objective', text: 'Cross-entropy on demonstrations: minimize −E[Σ_t log π_θ(y_t | x, y_<t)] over the completion tokens. When it ends, a frozen copy of the model becomes the reference policy π_ref.' }),
    source,
    form,
    el('div', { class: 'controls' }, start, pause, step, reset),
    progress,
    el('div', { class: 'charts' }, lossBox, accBox),
    el('h3', { text: 'Samples for fixed prompts' }),
    samplesNote,
    el('table', { class: 'samples' }, el('thead', {}, el('tr', {}, el('th', { text: 'prompt' }), el('th', { text: 'before SFT' }), el('th', { text: 'now' }), el('th', { text: 'gold' }))), samplesBody),
  ));

  const lossChart = new LineChart(lossBox.host, { title: 'SFT loss', series: [{ key: 'loss/train', label: 'train' }, { key: 'loss/held_out', label: 'held out', points: true }] });
  const accChart = new LineChart(accBox.host, { title: 'Token accuracy', series: [{ key: 'accuracy/train', label: 'train' }, { key: 'accuracy/held_out', label: 'held out', points: true }] });

  let before = [];
  let begun = false;
  let state = 'ready';
  let finished = null; // resolves when a run stops
  const setState = (value) => {
    state = value;
    start.disabled = value === 'running' || value === 'done';
    step.disabled = value === 'running' || value === 'done';
    reset.disabled = value === 'running';
    pause.disabled = value !== 'running';
    start.textContent = value === 'done' ? 'Done' : begun ? 'Resume' : 'Start SFT';
    form.setDisabled(begun);
    events.emit('stage-state', { stage: 'sft', state: value, produced: value === 'done' ? 'π_ref' : null });
  };

  let uploadedBase = null; // a base model loaded from a checkpoint file replaces the shipped one

  async function loadBase() {
    if (uploadedBase) {
      source.textContent = `Starting from the base model loaded from ${uploadedBase}.`;
      return;
    }
    if (store.config.preset === 'tiny') {
      try {
        const response = await fetch(new URL('models/base-tiny.rlhf', document.baseURI));
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const bytes = new Uint8Array(await response.arrayBuffer());
        await client.call('load', bytes);
        source.textContent = 'Starting from the shipped base model: the tiny preset pretrained on the task\'s free text (the README gives the command and seed that made it).';
        return;
      } catch (e) {
        store.notify(`The shipped base model could not be loaded (${e.message}); starting from random weights.`);
      }
    }
    await client.call('baseFromScratch');
    source.textContent = `Starting from random weights (preset ${store.config.preset}: no shipped base model for it).`;
  }

  async function showSamples() {
    const now = await client.call('samples', 'sft', SAMPLE_TEMPERATURE, 1);
    samplesBody.replaceChildren(...now.map((s, i) => el('tr', {},
      el('td', { text: s.prompt }),
      el('td', { class: 'muted', text: before[i]?.completion ?? '' }),
      el('td', { text: s.completion }),
      el('td', { class: 'num', text: s.gold.toFixed(2) }))));
    samplesNote.textContent = `Sampled at temperature ${SAMPLE_TEMPERATURE} with a fixed seed. Gold: the hidden utility the simulated labeler judges by.`;
  }

  async function begin(snapshot = null) {
    if (begun) return;
    await loadBase();
    before = await client.call('samples', 'base', SAMPLE_TEMPERATURE, 1);
    lossChart.clear();
    accChart.clear();
    let at = null;
    if (snapshot) {
      ({ progress: at } = await client.call('resume', 'sft', snapshot));
      for (const m of await store.storage.metricsOf('sft')) { lossChart.push(m.step, m); accChart.push(m.step, m); }
      progress.update(at.step, at.total);
    } else {
      await client.call('sftBegin');
      await store.storage.clearMetrics('sft');
      await store.storage.discardSnapshotsFrom('sft');
    }
    begun = true;
    await showSamples();
    return at;
  }

  async function finish() {
    await client.call('sftFinish');
    const bytes = await client.call('save', 'sft');
    await store.storage.putCheckpoint('sft', bytes, { stage: 'sft' });
    store.events.emit('checkpoint-saved', { role: 'sft' });
    await showSamples();
  }

  /** After a reload: the stage where its last snapshot left it, with its metric history. */
  const resume = (snapshot) => resumeStage(snapshot, { begin, finish, setState, notify: store.notify, title: 'SFT' });

  client.on(async (event) => {
    if (event.stage !== 'sft' || event.tag) return;
    if (event.event === 'step') {
      const m = event.metrics;
      lossChart.push(m.step, m);
      accChart.push(m.step, m);
      progress.update(event.status.sft.step, event.status.sft.total);
      if (m.step % SAMPLE_EVERY === 0) showSamples().catch(() => {});
    } else if (event.event === 'stopped') {
      progress.pause();
      if (event.reason === 'error') store.notify(`SFT stopped: ${event.error.message}`, 'error');
      if (event.reason === 'done') {
        await finish();
        setState('done');
      } else {
        setState('paused');
      }
      finished?.();
    }
  });

  async function run(steps) {
    setState('running');
    try {
      await begin();
      const stopped = new Promise((resolve) => { finished = resolve; });
      progress.pause(); // the rate is measured from this run's first step
      await client.run('sft', steps);
      await stopped;
    } catch (e) {
      setState(begun ? 'paused' : 'ready');
      store.notify(`SFT could not start: ${e.message}`, 'error');
    }
  }

  start.addEventListener('click', () => run(null));
  step.addEventListener('click', () => run(1));
  pause.addEventListener('click', () => client.pause());
  reset.addEventListener('click', async () => {
    begun = false;
    store.storage.discardSnapshotsFrom('sft').catch(() => {});
    lossChart.clear();
    accChart.clear();
    samplesBody.replaceChildren();
    progress.update(0, store.config.sft.steps);
    setState('ready');
  });
  // A checkpoint loaded from the data panel: π_ref (SFT done without training) or a base model.
  events.on('checkpoint-loaded', ({ role, from }) => {
    if (state === 'running') return;
    if (role === 'sft') {
      begun = false;
      source.textContent = `π_ref loaded from ${from}: SFT is done without training here. Reset and start to train it again.`;
      lossChart.clear();
      accChart.clear();
      samplesBody.replaceChildren();
      progress.pause(); // no run: no rate
      progress.update(store.config.sft.steps, store.config.sft.steps);
      store.storage.discardSnapshotsFrom('sft').catch(() => {});
      setState('done');
      showSamples().catch(() => {});
    } else if (role === 'base') {
      uploadedBase = from;
      source.textContent = `The next SFT run starts from the base model loaded from ${from}.`;
    }
  });

  progress.update(0, store.config.sft.steps);
  setState('ready');

  return {
    name: 'sft',
    title: 'Supervised fine-tuning',
    state: () => state,
    start: () => (state === 'done' ? Promise.resolve() : run(null)),
    pause: () => client.pause(),
    step: () => run(1),
    reset: () => reset.click(),
    resume,
  };
}
