// Stage 2b panel: the Bradley–Terry reward model r_φ, trained on π_ref's trunk from the stored
// labels. Settings, controls, the plan, loss / accuracy (with the labeler's agreement ceiling) /
// rewards / gold-correlation charts, a scatter of the held-out pairs and a pair inspector. At the
// end r_φ is frozen (scores shifted to zero mean) and saved as a checkpoint.
import './reward.css';
import { resumeStage, el, progressBar, chartBox, settingsFor, whenPageReady } from './common.js';
import { LineChart } from '../charts.js';
import { equationLink, inlineMath } from '../equations.js';
import { trackActivity, busyMessage } from './activity.js';
import { heldOutView } from './reward-inspector.js';

const RM_KEYS = ['reward.learning_rate', 'reward.batch_size', 'reward.epochs', 'reward.held_out_fraction'];
const INSPECT_LIMIT = 200;
const pct = (v) => (Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '—');

/** Widens a line chart's y range so that `values()` (its guide lines) stay in view. */
function keepInView(chart, values) {
  const scale = chart.plot.scales.y;
  const auto = scale.range;
  scale.range = (u, min, max, key) => {
    const extra = values().filter(Number.isFinite);
    if (min == null || !extra.length) return auto(u, min, max, key);
    return auto(u, Math.min(min, ...extra), Math.max(max, ...extra), key);
  };
}

export async function mountReward(root, store) {
  const { client, events, storage } = store;
  const activity = trackActivity(store);
  const start = el('button', { class: 'primary', text: 'Train reward model' });
  const pause = el('button', { text: 'Pause', disabled: true });
  const step = el('button', { text: 'Step' });
  const reset = el('button', { text: 'Reset' });
  const progress = progressBar('Reward model');
  const form = settingsFor(store, RM_KEYS);
  const waiting = el('p', { class: 'waiting', role: 'status' });
  const planText = el('p', { class: 'muted plan', 'aria-live': 'polite' });
  const lossBox = chartBox(store, { text: 'Bradley–Terry loss −log σ(r_w − r_l): this step\'s batch (train) and the held-out labels. A tie counts as half of each order.', equation: 'bt-loss' });
  const accBox = chartBox(store, { text: 'Share of pairs where the preferred completion scores higher: this batch and the held-out labels. Dashed: chance (gray, 50%) and the agreement ceiling (green) — the accuracy a perfect reward model could reach against these noisy labels.', equation: 'bt-loss' });
  const ceilingNote = el('p', { class: 'caption ceiling-note', 'aria-live': 'polite' });
  accBox.append(ceilingNote);
  const rewardsBox = chartBox(store, { text: 'Mean r_φ of the preferred and the rejected completions of each batch, and their margin (chosen − rejected). Only the difference is learned: both may drift together.', equation: 'bt-model' });
  const goldBox = chartBox(store, { metric: 'rm/gold_correlation' });
  [[lossBox, 'rm-loss'], [accBox, 'rm-accuracy'], [rewardsBox, 'rm-rewards'], [goldBox, 'rm-gold']].forEach(([box, name]) => box.classList.add(name));
  const heldOut = heldOutView(store);

  root.append(el('section', { class: 'panel', id: 'reward', 'aria-labelledby': 'reward-title' },
    el('h2', { id: 'reward-title', text: 'Stage 2b · Reward model → r_φ' }),
    el('p', { class: 'objective' }, 'A copy of π_ref\'s trunk with a scalar head learns a score r_φ(x, y) from the labels by minimizing the Bradley–Terry loss ', inlineMath(String.raw`-\log\sigma\big(r_\phi(x,y_w) - r_\phi(x,y_l)\big)`), '. Some labels are held out to measure how well it generalizes. ', equationLink('bt-loss')),
    waiting,
    form,
    el('div', { class: 'controls' }, start, pause, step, reset),
    progress,
    planText,
    el('div', { class: 'charts' }, lossBox, accBox, rewardsBox, goldBox),
    el('div', { class: 'charts held-out' }, heldOut.scatterBox, heldOut.inspector)));

  const lossChart = new LineChart(lossBox.host, { title: 'Reward-model loss', series: [{ key: 'rm/loss', label: 'train batch' }, { key: 'rm/held_out_loss', label: 'held out', points: true }] });
  const accChart = new LineChart(accBox.host, { title: 'Preference accuracy', series: [{ key: 'rm/accuracy', label: 'train batch' }, { key: 'rm/held_out_accuracy', label: 'held out', points: true }] });
  const rewardsChart = new LineChart(rewardsBox.host, { title: 'Scores of chosen and rejected', series: [{ key: 'rewards/chosen', label: 'chosen' }, { key: 'rewards/rejected', label: 'rejected' }, { key: 'rewards/margins', label: 'margin' }] });
  const goldChart = new LineChart(goldBox.host, { title: 'Correlation with the gold utility (held out)', series: [{ key: 'rm/gold_correlation', label: 'Pearson r', points: true }] });
  const charts = [lossChart, accChart, rewardsChart, goldChart];
  heldOut.mount();

  let sftDone = store.stages.get('sft')?.state() === 'done';
  let labelCount = await storage.countLabels().catch(() => 0);
  let labelsBusy = false;
  let begun = false;
  let plan = null;
  let state = 'blocked';
  let finished = null;
  let lastHeldOut = null;

  let ceiling = null;
  keepInView(accChart, () => [0.5, ceiling]);
  function showCeiling() {
    accChart.setGuides([{ y: 0.5, label: '', color: '#9ca3af' }, ...(Number.isFinite(ceiling) ? [{ y: ceiling, label: `agreement ceiling ${pct(ceiling)}`, color: '#15803d' }] : [])]);
    if (!plan) { ceilingNote.textContent = ''; return; }
    ceilingNote.textContent = plan.held_out === 0 ? 'No held-out labels (held-out share 0): no held-out accuracy and no ceiling.'
      : Number.isFinite(ceiling) ? `Agreement ceiling on the held-out labels: ${pct(ceiling)} (simulated labeler, τ = ${store.config.reward.labeler_temperature}). Held out now: ${pct(lastHeldOut)}.`
        : `No ceiling: human labels (their noise is unknown). Held out now: ${pct(lastHeldOut)}.`;
  }

  const ready = () => sftDone && labelCount >= 2;
  const setState = (value) => {
    state = value;
    refresh();
    events.emit('stage-state', { stage: 'reward', state: value, produced: value === 'done' ? 'r_φ' : null });
  };

  function refresh() {
    const idle = state !== 'running';
    const held = labelsBusy && !begun; // the labels are still coming in
    start.disabled = !idle || state === 'done' || state === 'blocked' || held;
    step.disabled = !idle || state === 'done' || state === 'blocked' || held;
    reset.disabled = !idle;
    pause.disabled = state !== 'running';
    start.textContent = state === 'done' ? 'Done' : begun ? 'Resume' : 'Train reward model';
    form.setDisabled(begun);
    const missing = [!sftDone && 'SFT to finish (π_ref)', labelCount < 2 && `at least 2 preference labels (stage 2a; ${labelCount} now)`].filter(Boolean);
    waiting.textContent = state === 'blocked' ? `Waiting for ${missing.join(' and ')}.`
      : held ? 'The simulated labeler is adding labels: training can begin when it stops.' : '';
    waiting.hidden = !waiting.textContent;
  }

  function unblock() {
    if (state === 'blocked' && ready()) setState(begun ? 'paused' : 'ready');
    else if ((state === 'ready' || state === 'paused') && !ready() && !begun) setState('blocked');
    else refresh();
  }

  // Held-out scores for the scatter and the inspector; calls made while one is in flight share
  // the next one.
  let inspectChain = Promise.resolve();
  let inspectQueued = null;
  function inspect() {
    if (!inspectQueued) {
      inspectQueued = inspectChain = inspectChain.then(async () => {
        inspectQueued = null;
        if (!begun) return;
        try { heldOut.set(await client.call('rewardInspect', INSPECT_LIMIT)); } catch (e) { console.warn('rewardInspect', e); }
      });
    }
    return inspectQueued;
  }

  async function begin(snapshot = null) {
    if (begun) return;
    let at = null;
    if (snapshot) {
      planText.textContent = 'Resuming the reward model where it was…';
      ({ plan, progress: at } = await client.call('resume', 'reward', snapshot));
    } else {
      const jsonl = await storage.labelsJsonl();
      planText.textContent = `Reading ${labelCount} labels…`;
      plan = await client.call('rewardBegin', jsonl);
      await storage.clearMetrics('reward');
      await storage.discardSnapshotsFrom('reward');
    }
    begun = true;
    lastHeldOut = null;
    charts.forEach((c) => c.clear());
    heldOut.clear();
    if (at) {
      for (const m of await storage.metricsOf('reward')) {
        charts.forEach((c) => c.push(m.step, m));
        if (Number.isFinite(m['rm/held_out_accuracy'])) lastHeldOut = m['rm/held_out_accuracy'];
      }
    }
    ceiling = plan.ceiling ?? null;
    const { epochs, batch_size: batch } = store.config.reward;
    planText.textContent = `Plan: ${plan.train} training pairs and ${plan.held_out} held-out pairs (${pct(store.config.reward.held_out_fraction)} of the ${plan.train + plan.held_out} labels stored when training began): `
      + `${plan.steps} steps = ${epochs} epoch${epochs > 1 ? 's' : ''} × ⌈${plan.train} / ${batch}⌉. `
      + (plan.held_out === 0 ? 'No held-out labels.' : plan.ceiling == null ? 'No ceiling: human labels.' : `Agreement ceiling ${pct(plan.ceiling)}.`);
    progress.update(at?.step ?? 0, plan.steps);
    showCeiling();
    await inspect();
    return at;
  }

  /** After a reload: the stage where its last snapshot left it, with its metric history. */
  const resume = (snapshot) => resumeStage(snapshot, { begin, finish, setState, notify: store.notify, title: 'The reward model' });

  async function finish() {
    await inspect();
    const shift = await client.call('rewardFinish');
    const bytes = await client.call('save', 'reward');
    await storage.putCheckpoint('reward', bytes, { stage: 'reward', labels: plan.train + plan.held_out, steps: plan.steps, shift, held_out_accuracy: lastHeldOut });
    events.emit('checkpoint-saved', { role: 'reward' });
    planText.textContent += ` Done: r_φ is frozen, its scores shifted by ${(-shift >= 0 ? '+' : '−')}${Math.abs(shift).toFixed(3)} so the training completions average 0, and saved in this browser.`;
  }

  client.on(async (event) => {
    if (event.stage !== 'reward' || event.tag) return; // tagged runs are not this panel's
    if (event.event === 'step') {
      const m = event.metrics;
      charts.forEach((c) => c.push(m.step, m));
      progress.update(event.status.reward.step, event.status.reward.total);
      // The core evaluates the held-out pairs every tenth of the run: refresh the scatter then.
      if (Number.isFinite(m['rm/held_out_accuracy'])) {
        lastHeldOut = m['rm/held_out_accuracy'];
        showCeiling();
        inspect();
      }
    } else if (event.event === 'stopped') {
      progress.pause();
      if (event.reason === 'error') store.notify(`The reward model stopped: ${event.error.message}`, 'error');
      if (event.reason === 'done') {
        try {
          await finish();
          setState('done');
        } catch (e) {
          store.notify(`The reward model finished training, but ${e.message}`, 'error');
          setState('paused');
        }
      } else {
        inspect();
        setState('paused');
      }
      finished?.();
    }
  });

  async function run(steps) {
    if (state === 'blocked' || state === 'done' || state === 'running') return;
    const busy = activity.busy().filter((s) => s !== 'reward');
    if (busy.length) { store.notify(busyMessage(busy, 'The reward model')); return; }
    setState('running');
    try {
      await begin();
      const stopped = new Promise((resolve) => { finished = resolve; });
      progress.pause(); // the rate is measured from this run's first step
      await client.run('reward', steps);
      await stopped;
    } catch (e) {
      if (!begun) planText.textContent = '';
      setState(begun ? 'paused' : 'ready');
      store.notify(`The reward model could not start: ${e.message}`, 'error');
    }
  }

  function clearRun() {
    begun = false;
    plan = null;
    ceiling = null;
    lastHeldOut = null;
    charts.forEach((c) => c.clear());
    heldOut.clear();
    planText.textContent = '';
    showCeiling();
    progress.update(0, 1);
    progress.querySelector('span').textContent = 'not started';
  }

  start.addEventListener('click', () => run(null));
  step.addEventListener('click', () => run(1));
  pause.addEventListener('click', () => { if (state === 'running') client.pause(); });
  reset.addEventListener('click', () => {
    if (state === 'running') return;
    storage.discardSnapshotsFrom('reward').catch(() => {});
    clearRun();
    setState(ready() ? 'ready' : 'blocked');
  });

  // r_φ loaded from a checkpoint in the data panel: the stage is done without training here.
  events.on('checkpoint-loaded', ({ role, from }) => {
    if (role !== 'reward' || state === 'running') return;
    clearRun();
    storage.discardSnapshotsFrom('reward').catch(() => {});
    planText.textContent = `r_φ loaded from ${from}: the reward model is done without training here. Reset and train to make a new one.`;
    setState('done');
  });

  events.on('stage-state', async ({ stage, state: s }) => {
    if (stage === 'sft') {
      sftDone = s === 'done';
      // A new SFT run makes a new π_ref: a reward model begun on the old one starts over.
      if (s === 'running' && begun && state !== 'running') { clearRun(); setState('blocked'); }
      unblock();
    } else if (stage === 'labels') {
      labelsBusy = s === 'running';
      labelCount = await storage.countLabels().catch(() => labelCount);
      unblock();
    }
  });

  clearRun();
  setState(ready() ? 'ready' : 'blocked');
  whenPageReady(() => { if (state === 'ready' || state === 'blocked') setState(state); });

  return {
    name: 'reward',
    title: 'Reward model',
    state: () => state,
    start: () => (state === 'done' || state === 'blocked' ? Promise.resolve() : run(null)),
    pause: () => { if (state === 'running') client.pause(); },
    step: () => run(1),
    reset: async () => reset.click(),
    resume,
  };
}
