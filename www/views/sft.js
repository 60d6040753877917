// Stage 1 panel: supervised fine-tuning, with its settings, controls, progress, loss curves and
// samples for fixed prompts that show how completions change.
import { el, settingsForm, progressBar } from './common.js';
import { LineChart } from '../charts.js';

const SAMPLE_TEMPERATURE = 0.7;
const SAMPLE_EVERY = 50;

export async function mountSft(root, store) {
  const { client } = store;
  const start = el('button', { class: 'primary', text: 'Start SFT' });
  const pause = el('button', { text: 'Pause', disabled: true });
  const step = el('button', { text: 'Step' });
  const reset = el('button', { text: 'Reset' });
  const progress = progressBar('SFT');
  const form = settingsForm(store, 'sft.');
  const lossHost = el('div', { class: 'chart' });
  const accHost = el('div', { class: 'chart' });
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
    el('div', { class: 'charts' }, lossHost, accHost),
    el('h3', { text: 'Samples for fixed prompts' }),
    samplesNote,
    el('table', { class: 'samples' }, el('thead', {}, el('tr', {}, el('th', { text: 'prompt' }), el('th', { text: 'before SFT' }), el('th', { text: 'now' }), el('th', { text: 'gold' }))), samplesBody),
  ));

  const lossChart = new LineChart(lossHost, { title: 'SFT loss', series: [{ key: 'loss/train', label: 'train' }, { key: 'loss/held_out', label: 'held out', points: true }] });
  const accChart = new LineChart(accHost, { title: 'Token accuracy', series: [{ key: 'accuracy/train', label: 'train' }, { key: 'accuracy/held_out', label: 'held out', points: true }] });
  lossHost.append(el('p', { class: 'caption', text: 'Next-token cross-entropy (nats). Held-out: demonstrations never trained on.' }));

  let before = [];
  let begun = false;
  let running = false;

  async function loadBase() {
    if (store.config.preset === 'tiny') {
      try {
        const response = await fetch(new URL('models/base-tiny.rlhf', document.baseURI));
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const bytes = new Uint8Array(await response.arrayBuffer());
        await client.call('load', bytes);
        source.textContent = 'Starting from the shipped base model: the tiny preset pretrained on the task\'s free text (see README for the command that made it).';
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

  async function begin() {
    if (begun) return;
    await loadBase();
    before = await client.call('samples', 'base', SAMPLE_TEMPERATURE, 1);
    await client.call('sftBegin');
    begun = true;
    form.setDisabled(true);
    lossChart.clear();
    accChart.clear();
    await showSamples();
  }

  function setRunning(value) {
    running = value;
    start.disabled = value;
    step.disabled = value;
    reset.disabled = value;
    pause.disabled = !value;
  }

  client.on(async (event) => {
    if (event.stage !== 'sft') return;
    if (event.event === 'step') {
      const m = event.metrics;
      lossChart.push(m.step, m);
      accChart.push(m.step, m);
      progress.update(event.status.sft.step, event.status.sft.total);
      if (m.step % SAMPLE_EVERY === 0) showSamples().catch(() => {});
    } else if (event.event === 'stopped') {
      setRunning(false);
      progress.pause();
      if (event.reason === 'error') store.notify(`SFT stopped: ${event.error.message}`, 'error');
      if (event.reason === 'done') {
        await client.call('sftFinish');
        start.textContent = 'Done';
        start.disabled = true;
        step.disabled = true;
        await showSamples();
        root.dispatchEvent(new CustomEvent('stage-done', { detail: 'sft' }));
      }
    }
  });

  start.addEventListener('click', async () => {
    setRunning(true);
    try {
      await begin();
      start.textContent = 'Resume';
      await client.run('sft');
    } catch (e) {
      setRunning(false);
      store.notify(`SFT could not start: ${e.message}`, 'error');
    }
  });
  pause.addEventListener('click', () => client.pause());
  step.addEventListener('click', async () => {
    setRunning(true);
    try {
      await begin();
      await client.run('sft', 1);
    } catch (e) {
      setRunning(false);
      store.notify(e.message, 'error');
    }
  });
  reset.addEventListener('click', async () => {
    begun = false;
    form.setDisabled(false);
    start.textContent = 'Start SFT';
    start.disabled = false;
    step.disabled = false;
    lossChart.clear();
    accChart.clear();
    samplesBody.replaceChildren();
    progress.update(0, store.config.sft.steps);
  });
  progress.update(0, store.config.sft.steps);
}
