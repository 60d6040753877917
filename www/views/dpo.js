// The DPO panel: the same labels as the reward model, one supervised loss, no reward model, no
// sampling. Settings, controls, progress, the loss, implicit rewards, log-probs and accuracy
// charts (with the reward model's held-out accuracy on the same pairs as a guide), and a token-by-
// token pair inspector. At the end π_dpo is saved and measured on the PPO-vs-DPO frontier below.
import './dpo.css';
import { resumeStage, el, settingsForm, progressBar, chartBox } from './common.js';
import { LineChart } from '../charts.js';
import { equationLink, inlineMath } from '../equations.js';
import { trackActivity, busyMessage } from './activity.js';
import { pairInspector } from './dpo-inspector.js';
import { mountComparison } from './frontier.js';

const fmt = (v, d = 2) => (Number.isFinite(v) ? `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(d)}` : '—');
const pct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : '—');
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function rmHeldOutAccuracy(storage) {
  const rows = await storage.metricsOf('reward').catch(() => []);
  return rows.filter((m) => Number.isFinite(m['rm/held_out_accuracy'])).at(-1)?.['rm/held_out_accuracy'] ?? null;
}

export async function mountDpo(root, store) {
  const { client, events, storage } = store;
  const activity = trackActivity(store);
  const start = el('button', { class: 'primary', text: 'Start DPO' });
  const pause = el('button', { text: 'Pause', disabled: true });
  const step = el('button', { text: 'Step' });
  const reset = el('button', { text: 'Reset' });
  const progress = progressBar('DPO');
  const form = settingsForm(store, 'dpo.');
  const waiting = el('p', { class: 'waiting', role: 'status' });
  const planText = el('p', { class: 'muted plan', 'aria-live': 'polite' });
  const lossBox = chartBox(store, { metric: 'dpo/loss' });
  const rewardsBox = chartBox(store, { text: 'Implicit rewards β·log(π_θ/π_ref) of the chosen and the rejected completions (batch means) and their margin. DPO only needs the margin to grow.', equation: 'dpo' });
  const logpsBox = chartBox(store, { metric: 'logps/chosen' });
  const surprise = el('p', { class: 'caption surprise', 'aria-live': 'polite' });
  logpsBox.append(surprise);
  const accBox = chartBox(store, { metric: 'dpo/held_out_accuracy', text: 'Share of pairs whose chosen completion gets the larger implicit reward: this batch (train) and the held-out pairs. Dashed: the reward model r_φ on the same held-out pairs.' });
  const rmNumber = el('p', { class: 'rm-number', 'aria-live': 'polite' });
  accBox.append(rmNumber);
  const inspector = pairInspector(store);

  root.append(el('section', { class: 'panel', id: 'dpo', 'aria-labelledby': 'dpo-title' },
    el('h2', { id: 'dpo-title', text: 'Stage 3c · DPO: the same objective in closed form → π_dpo' }),
    el('p', { class: 'objective' }, 'Direct preference optimization trains π_θ (starting from π_ref) on the labeled pairs alone. The reward is implicit, ', inlineMath(String.raw`r(x,y)=\beta\log\frac{\pi_\theta(y\mid x)}{\pi_{\text{ref}}(y\mid x)}`), ', and the loss is the Bradley–Terry loss on it: no reward model, no value model, no sampling. ', equationLink('dpo')),
    waiting,
    form,
    el('div', { class: 'controls' }, start, pause, step, reset),
    progress,
    planText,
    el('div', { class: 'charts' }, lossBox, rewardsBox, logpsBox, accBox),
    inspector));

  const lossChart = new LineChart(lossBox.host, { title: 'DPO loss', series: [{ key: 'dpo/loss', label: 'train' }, { key: 'dpo/held_out_loss', label: 'held out', points: true }] });
  const rewardsChart = new LineChart(rewardsBox.host, { title: 'Implicit rewards', series: [{ key: 'rewards/chosen', label: 'chosen' }, { key: 'rewards/rejected', label: 'rejected' }, { key: 'rewards/margins', label: 'margin' }] });
  const logpsChart = new LineChart(logpsBox.host, { title: 'Sequence log-probs under π_θ', series: [{ key: 'logps/chosen', label: 'log π_θ(y_w)' }, { key: 'logps/rejected', label: 'log π_θ(y_l)' }] });
  const accChart = new LineChart(accBox.host, { title: 'Preference accuracy', series: [{ key: 'rewards/accuracies', label: 'train batch' }, { key: 'dpo/held_out_accuracy', label: 'held out', points: true }] });

  // The comparison below is part of this panel's module family (main.js mounts only the panels).
  const comparison = await mountComparison(root, store, activity);

  let sftDone = store.stages.get('sft')?.state() === 'done';
  let labelCount = await storage.countLabels().catch(() => 0);
  let begun = false;
  let plan = null;
  let state = 'blocked';
  let finished = null;
  let rmAccuracy = null;
  let history = [];
  let lastHeldOut = null;

  async function showRm(refetch = true) {
    if (refetch) rmAccuracy = await rmHeldOutAccuracy(storage);
    // No text on the line: the chart draws guide labels right-aligned at the plot's left edge
    // (uPlot leaves textAlign 'right' from its y axis), so the number sits beside the chart.
    accChart.setGuides(Number.isFinite(rmAccuracy) ? [{ y: rmAccuracy, label: '', color: '#6b7280' }] : []);
    rmNumber.textContent = Number.isFinite(rmAccuracy)
      ? `Reward model r_φ on the same held-out pairs: ${pct(rmAccuracy)} · DPO's implicit reward: ${pct(lastHeldOut)}`
      : 'The reward model\'s held-out accuracy appears here once stage 2 has trained it.';
  }

  function showSurprise() {
    if (history.length < 2) { surprise.textContent = 'Watch both lines: DPO widens the gap between them, and often does it by lowering both.'; return; }
    const k = Math.max(1, Math.min(5, Math.floor(history.length / 3)));
    const first = history.slice(0, k);
    const now = history.slice(-k);
    const change = (key) => mean(now.map((m) => m[key])) - mean(first.map((m) => m[key]));
    const dw = change('logps/chosen');
    const dl = change('logps/rejected');
    const dm = change('rewards/margins');
    const verb = (d) => (d < 0 ? 'fell' : 'rose');
    surprise.textContent = `Since the first steps: log π_θ(y_w) ${verb(dw)} by ${Math.abs(dw).toFixed(2)}, log π_θ(y_l) ${verb(dl)} by ${Math.abs(dl).toFixed(2)}, and the margin ${dm >= 0 ? 'grew' : 'shrank'} by ${Math.abs(dm).toFixed(3)}.`
      + (dw < 0 && dl < 0 && dm > 0 ? ' Both log-probs fell while the margin grew: the loss only asks that y_l lose more than y_w, so probability leaves both for completions in neither.' : '');
  }

  const setState = (value) => {
    state = value;
    refresh();
    events.emit('stage-state', { stage: 'dpo', state: value, produced: value === 'done' ? 'π_dpo' : null });
  };

  function refresh() {
    const sweeping = activity.sweeping();
    const idle = state !== 'running';
    start.disabled = !idle || state === 'done' || state === 'blocked' || sweeping;
    step.disabled = !idle || state === 'done' || state === 'blocked' || sweeping;
    reset.disabled = !idle || sweeping;
    pause.disabled = state !== 'running';
    start.textContent = state === 'done' ? 'Done' : begun ? 'Resume' : 'Start DPO';
    form.setDisabled(begun || sweeping);
    const missing = [!sftDone && 'SFT to finish (π_ref)', labelCount === 0 && 'preference labels (stage 2a)'].filter(Boolean);
    waiting.textContent = state === 'blocked' ? `Waiting for ${missing.join(' and ')}.` : sweeping ? 'The β sweep is using the training worker.' : '';
    waiting.hidden = !waiting.textContent;
  }

  function unblock() {
    if (state === 'blocked' && sftDone && labelCount > 0) setState(begun ? 'paused' : 'ready');
    else if (state !== 'running' && state !== 'blocked' && !(sftDone && labelCount > 0)) setState('blocked');
    else refresh();
  }

  async function begin(snapshot = null) {
    if (begun) return;
    let at = null;
    if (snapshot) {
      planText.textContent = 'Resuming DPO where it was…';
      ({ plan, progress: at } = await client.call('resume', 'dpo', snapshot));
    } else {
      const labels = await storage.labelsJsonl();
      planText.textContent = `Computing π_ref's log-probs of every completion in ${labelCount} labeled pairs (once, then frozen)…`;
      plan = await client.call('dpoBegin', labels);
    }
    comparison.claim('dpo', `DPO panel (β=${store.config.dpo.beta})`);
    inspector.setNote('');
    if (!snapshot) {
      await storage.clearMetrics('dpo');
      await storage.discardSnapshotsFrom('dpo');
    }
    begun = true;
    history = [];
    lastHeldOut = null;
    [lossChart, rewardsChart, logpsChart, accChart].forEach((c) => c.clear());
    if (at) {
      history = await storage.metricsOf('dpo');
      for (const m of history) {
        [lossChart, rewardsChart, logpsChart, accChart].forEach((c) => c.push(m.step, m));
        if (Number.isFinite(m['dpo/held_out_accuracy'])) lastHeldOut = m['dpo/held_out_accuracy'];
      }
    }
    const { epochs, batch_size: batch } = store.config.dpo;
    planText.textContent = `Plan: ${plan.train} training pairs and ${plan.held_out} held-out pairs (the reward model's held-out pairs)`
      + `${plan.ties_skipped ? `, ${plan.ties_skipped} ties left out (they carry no preference)` : ''}: ${plan.steps} steps = ${epochs} epoch${epochs > 1 ? 's' : ''} × ⌈${plan.train} / ${batch}⌉. `
      + `π_ref's log-probs of all ${2 * (plan.train + plan.held_out)} completions were computed once and are frozen; β = ${store.config.dpo.beta}.`;
    progress.update(at?.step ?? 0, plan.steps);
    inspector.setPlan(plan);
    inspector.refresh();
    showSurprise();
    await showRm();
    return at;
  }

  async function finish() {
    const bytes = await client.call('save', 'dpo');
    await storage.putCheckpoint('dpo', bytes, { stage: 'dpo', beta: store.config.dpo.beta, steps: plan.steps });
    events.emit('checkpoint-saved', { role: 'dpo' });
    inspector.refresh();
    const last = history.at(-1) ?? {};
    await comparison.addEvaluated('dpo', {
      method: 'dpo', beta: store.config.dpo.beta, source: 'panel', steps: last.step ?? plan.steps, wall_s: activity.wallSeconds('dpo'),
      pairs: plan.train, held_out: plan.held_out, held_out_accuracy: lastHeldOut,
    });
  }

  /** After a reload: the stage where its last snapshot left it, with its metric history. */
  const resume = (snapshot) => resumeStage(snapshot, { begin, finish, setState, notify: store.notify, title: 'DPO' });

  let lastInspect = 0;
  client.on(async (event) => {
    if (event.stage !== 'dpo' || event.tag) return; // tagged runs (the β sweep) are not this panel's
    if (event.event === 'step') {
      const m = event.metrics;
      history.push(m);
      [lossChart, rewardsChart, logpsChart, accChart].forEach((c) => c.push(m.step, m));
      progress.update(event.status.dpo.step, event.status.dpo.total);
      if (Number.isFinite(m['dpo/held_out_accuracy'])) {
        lastHeldOut = m['dpo/held_out_accuracy'];
        showRm(false);
        if (performance.now() - lastInspect > 1000) { lastInspect = performance.now(); inspector.refresh(); }
      }
      if (history.length % 5 === 0) showSurprise();
    } else if (event.event === 'stopped') {
      progress.pause();
      showSurprise();
      if (event.reason === 'error') store.notify(`DPO stopped: ${event.error.message}`, 'error');
      if (event.reason === 'done') {
        try { await finish(); } catch (e) { store.notify(`DPO finished, but ${e.message}`, 'error'); }
        setState('done');
      } else {
        inspector.refresh();
        setState('paused');
      }
      finished?.();
    }
  });

  async function run(steps) {
    if (state === 'blocked' || state === 'done' || state === 'running') return;
    const busy = activity.busy();
    if (busy.length) { store.notify(busyMessage(busy, 'DPO')); return; }
    setState('running');
    try {
      await begin();
      const stopped = new Promise((resolve) => { finished = resolve; });
      progress.pause(); // the rate is measured from this run's first step
      await client.run('dpo', steps);
      await stopped;
    } catch (e) {
      setState(begun ? 'paused' : 'ready');
      if (!begun) planText.textContent = '';
      store.notify(`DPO could not start: ${e.message}`, 'error');
    }
  }

  start.addEventListener('click', () => run(null));
  step.addEventListener('click', () => run(1));
  pause.addEventListener('click', () => { if (state === 'running') client.pause(); });
  function clearRun() {
    begun = false;
    plan = null;
    history = [];
    lastHeldOut = null;
    [lossChart, rewardsChart, logpsChart, accChart].forEach((c) => c.clear());
    inspector.clear();
    planText.textContent = '';
    surprise.textContent = '';
    progress.update(0, 1);
    progress.querySelector('span').textContent = 'not started';
  }
  reset.addEventListener('click', () => {
    if (state === 'running') return;
    storage.discardSnapshotsFrom('dpo').catch(() => {});
    clearRun();
    setState(sftDone && labelCount > 0 ? 'ready' : 'blocked');
  });

  events.on('stage-state', async ({ stage, state: s }) => {
    if (stage === 'sft') {
      sftDone = s === 'done';
      // A new SFT run makes a new π_ref: this panel's run was against the old one.
      if (s === 'running' && begun && state !== 'running') clearRun();
      unblock();
    } else if (stage === 'labels') {
      labelCount = await storage.countLabels().catch(() => labelCount);
      unblock();
    } else if (stage === 'reward' && s === 'done') {
      showRm();
    }
  });
  activity.onChange(refresh);

  showRm();
  setState(sftDone && labelCount > 0 ? 'ready' : 'blocked');

  return {
    name: 'dpo',
    title: 'DPO',
    state: () => state,
    start: () => (state === 'done' || state === 'blocked' ? Promise.resolve() : run(null)),
    pause: () => { if (state === 'running') client.pause(); },
    step: () => run(1),
    reset: async () => reset.click(),
    resume,
  };
}
