// Stage 3 panel: PPO on the KL-regularized objective. Settings with β up front, controls that
// step one phase (a rollout or one minibatch update) or one iteration, curves over iterations,
// the rollout inspector, the GAE stepper, the clipping view, and π_θ's samples beside π_ref's.
// At the end π_θ is saved and the stage announces itself done.
import './ppo.css';
import { resumeStage, el, settingsForm, progressBar } from './common.js';
import { onlineGate, followGate } from './online-gate.js';
import { equationLink, inlineMath } from '../equations.js';
import { trackActivity, busyMessage } from './activity.js';
import { ppoCurves } from './ppo-curves.js';
import { rolloutInspector } from './rollout-inspector.js';
import { gaeStepper } from './gae-stepper.js';
import { clippingView } from './clipping-view.js';

const SAMPLE_TEMPERATURE = 0.7;
const SAMPLE_SEED = 2;
const SAMPLE_EVERY = 5; // iterations between refreshes of π_θ's samples

const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

export async function mountPpo(root, store) {
  const { client, events, storage } = store;
  const activity = trackActivity(store);
  const start = el('button', { class: 'primary', text: 'Start PPO' });
  const pause = el('button', { text: 'Pause', disabled: true });
  const stepOne = el('button', { text: 'Step one phase', title: 'One rollout, or one minibatch update' });
  const iteration = el('button', { text: 'One iteration', title: 'A rollout and all its minibatch updates' });
  const reset = el('button', { text: 'Reset' });
  const zeroBeta = el('button', { class: 'danger', text: 'Restart PPO with β = 0' });
  const progress = progressBar('PPO', 'iterations');
  const phaseText = el('p', { class: 'muted phase', 'aria-live': 'polite' });
  const waiting = el('p', { class: 'waiting', role: 'status' });
  const form = settingsForm(store, 'ppo.');
  const betaInput = form.querySelector('#setting-ppo-kl_coef');
  const betaNow = el('p', { class: 'beta-now', 'aria-live': 'polite' });
  const betaBox = el('div', { class: 'beta-box', role: 'group', 'aria-labelledby': 'ppo-beta-title' },
    el('h3', { id: 'ppo-beta-title', text: 'β, the KL leash' }),
    el('p', {}, 'Every token pays ', inlineMath(String.raw`-\beta\log\frac{\pi_\theta(a_t\mid s_t)}{\pi_{\text{ref}}(a_t\mid s_t)}`),
      ' and the reward model\'s score comes on top at the last token. β sets how far π_θ may drift from π_ref for a higher score. Near 0, watch the RM score climb while the gold utility stalls or falls and KL runs away: the policy is exploiting the reward model\'s mistakes, not getting better. ',
      equationLink('effective-reward')),
    betaInput.closest('.setting'),
    el('div', { class: 'controls' }, zeroBeta),
    betaNow);
  const curves = ppoCurves(store);
  await nextTask(); // typesetting and building the views below is split over two tasks
  const clipping = clippingView(store);
  const stepper = gaeStepper();
  // The stepper and the clipping view redraw in tasks of their own after the inspector's table.
  const inspector = rolloutInspector(store, (record) => {
    setTimeout(() => stepper.setRecord(record), 0);
    setTimeout(() => clipping.setRecord(record), 0);
  });
  const samplesBody = el('tbody');
  const samplesNote = el('p', { class: 'muted', text: 'Samples appear when PPO begins.' });

  root.append(el('section', { class: 'panel', id: 'ppo', 'aria-labelledby': 'ppo-title' },
    el('h2', { id: 'ppo-title', text: 'Stage 3a · PPO on the KL-regularized objective → π_θ' }),
    el('p', { class: 'objective' }, 'Maximize ', inlineMath(String.raw`\mathbb{E}[r_\phi(x,y)] - \beta\,\mathrm{KL}(\pi_\theta\,\|\,\pi_{\text{ref}})`),
      ' with PPO. π_θ starts as π_ref and the value model V_ψ as r_φ. Each iteration samples a rollout from π_θ, scores it with the frozen r_φ, turns the per-token rewards into advantages by GAE, then runs K epochs of clipped minibatch updates on it. ',
      equationLink('ppo-loss')),
    waiting,
    betaBox,
    el('details', { class: 'ppo-settings' }, el('summary', { text: 'All PPO settings: iterations, batch, epochs, learning rate, γ, λ, ε, value loss, entropy…' }), form),
    el('div', { class: 'controls' }, start, pause, stepOne, iteration, reset),
    progress,
    phaseText,
    curves.node,
    inspector.node,
    el('div', { class: 'ppo-pair' }, stepper.node, clipping.node),
    el('h3', { text: 'Samples for fixed prompts: π_θ beside π_ref' }),
    samplesNote,
    el('table', { class: 'samples ppo-samples' },
      el('thead', {}, el('tr', {}, el('th', { text: 'prompt' }), el('th', { text: 'π_ref (SFT)' }), el('th', { class: 'num', text: 'gold' }), el('th', { text: 'π_θ now' }), el('th', { class: 'num', text: 'gold' }))),
      samplesBody)));
  // The charts are built one task at a time (each measures its host), so mounting never holds
  // the main thread for long.
  await nextTask();
  await curves.mount(nextTask);
  clipping.mount();

  const gate = onlineGate(store, 'ppo');
  let begun = false;
  let state = 'blocked';
  let plan = null; // the PPO settings the run began with (the core copies them at ppoBegin)
  let nextRollout = true;
  let updatesDone = 0; // minibatch updates done in the current iteration
  let iterationsDone = 0;
  let stopAtIterationEnd = false;
  let refSamples = [];
  let waiters = [];
  const stopped = () => new Promise((resolve) => waiters.push(resolve));

  const setState = (value) => {
    state = value;
    refresh();
    events.emit('stage-state', { stage: 'ppo', state: value, produced: value === 'done' ? 'π_θ' : null });
  };

  function refresh() {
    const sweeping = activity.sweeping();
    const idle = state !== 'running';
    const can = idle && state !== 'done' && state !== 'blocked' && !sweeping;
    start.disabled = !can;
    stepOne.disabled = !can;
    iteration.disabled = !can;
    reset.disabled = !idle || sweeping;
    pause.disabled = state !== 'running';
    zeroBeta.disabled = state === 'blocked' || sweeping;
    start.textContent = state === 'done' ? 'Done' : begun ? 'Resume' : 'Start PPO';
    form.setDisabled(begun || sweeping);
    waiting.textContent = state === 'blocked' ? gate.waiting('PPO')
      : sweeping ? 'The β sweep is using the training worker.' : '';
    waiting.hidden = !waiting.textContent;
  }

  const updatesPerIteration = () => plan.epochs * plan.mini_batches;

  function showPhase(m) {
    const total = plan.iterations;
    if (m.phase === 0) {
      phaseText.textContent = `Iteration ${m.iteration} of ${total}: rollout sampled and scored (${plan.batch_size} completions, mean length ${m['val/mean_length'].toFixed(1)}) · next: epoch 1, minibatch 1 of ${plan.mini_batches}.`;
    } else if (m.iteration_done) {
      phaseText.textContent = `Iteration ${m.iteration} of ${total} done after ${m.update} minibatch updates in all${m.early_stop ? ' (epochs stopped early: approx KL passed the limit)' : ''}`
        + (m.iteration < total ? ' · next: a new rollout.' : '.');
    } else {
      phaseText.textContent = `Iteration ${m.iteration} of ${total}: epoch ${m.epoch} of ${plan.epochs}, minibatch ${m.minibatch} of ${plan.mini_batches} updated (loss ${m['loss/total'].toFixed(4)}, ${(100 * m['policy/clipfrac']).toFixed(1)}% of tokens clipped).`;
    }
  }

  async function showSamples() {
    const now = await client.call('samples', 'policy', SAMPLE_TEMPERATURE, SAMPLE_SEED);
    samplesBody.replaceChildren(...now.map((s, i) => el('tr', {},
      el('td', { text: s.prompt }),
      el('td', { class: 'muted', text: refSamples[i]?.completion ?? '' }),
      el('td', { class: 'num', text: refSamples[i] ? refSamples[i].gold.toFixed(2) : '' }),
      el('td', { text: s.completion }),
      el('td', { class: 'num', text: s.gold.toFixed(2) }))));
    const meanGold = (xs) => xs.reduce((a, s) => a + s.gold, 0) / Math.max(1, xs.length);
    samplesNote.textContent = `The same prompts, temperature ${SAMPLE_TEMPERATURE}, the same seed, after ${iterationsDone} iteration${iterationsDone === 1 ? '' : 's'} (refreshed every ${SAMPLE_EVERY} iterations and at the end). Mean gold: π_ref ${meanGold(refSamples).toFixed(2)} · π_θ ${meanGold(now).toFixed(2)}.`;
  }

  function adopt(config) {
    plan = structuredClone(config);
    curves.setPlan(plan);
    betaNow.textContent = `This run: β = ${plan.kl_coef}${plan.adaptive_kl ? ` (adaptive, toward KL ${plan.target_kl})` : ' (fixed)'}. Settings are locked while a run exists: Reset to change them.`;
  }

  async function begin(snapshot = null) {
    if (begun) return;
    let at = null;
    if (snapshot) {
      ({ progress: at } = await client.call('resume', 'ppo', snapshot));
    } else {
      await client.call('ppoBegin');
      await storage.clearMetrics('ppo').catch(() => {});
      await storage.discardSnapshotsFrom('ppo').catch(() => {});
    }
    begun = true;
    adopt(store.config.ppo);
    nextRollout = true;
    updatesDone = 0;
    iterationsDone = 0;
    curves.clear();
    inspector.clear();
    stepper.clear();
    clipping.clear();
    if (at) {
      // The history replays through the same bookkeeping as live steps, minus the side effects.
      let last = null;
      for (const m of await storage.metricsOf('ppo')) {
        curves.push(m);
        if (m.phase === 0) { nextRollout = false; updatesDone = 0; } else {
          updatesDone += 1;
          if (m.iteration_done) { nextRollout = true; updatesDone = 0; iterationsDone = m.iteration; }
        }
        last = m;
      }
      if (last) showPhase(last);
      inspector.refresh();
    }
    progress.update(at?.step ?? 0, plan.iterations);
    refSamples = await client.call('samples', 'sft', SAMPLE_TEMPERATURE, SAMPLE_SEED);
    await showSamples();
    return at;
  }

  /** After a reload: the stage where its last snapshot left it, with its metric history. */
  const resume = (snapshot) => resumeStage(snapshot, { begin, finish, setState, notify: store.notify, title: 'PPO' });


  /** A run begun outside the panel (ppoBegin and an untagged run from the console or a test). */
  function adoptOutsideRun() {
    begun = true;
    adopt(store.config.ppo);
    storage.clearMetrics('ppo').catch(() => {});
    client.call('samples', 'sft', SAMPLE_TEMPERATURE, SAMPLE_SEED).then((r) => { refSamples = r; }, () => {});
  }

  async function finish() {
    const bytes = await client.call('save', 'policy');
    await storage.putCheckpoint('policy', bytes, { stage: 'ppo', beta: plan.kl_coef, iterations: iterationsDone });
    events.emit('checkpoint-saved', { role: 'policy' });
    await showSamples();
  }

  client.on(async (event) => {
    if (event.stage !== 'ppo' || event.tag) return; // tagged runs (the β sweep) are not this panel's
    if (event.event === 'step') {
      const m = event.metrics;
      if (!begun) adoptOutsideRun();
      if (state !== 'running') setState('running');
      curves.push(m);
      progress.update(event.status.ppo.step, event.status.ppo.total);
        showPhase(m);
      if (m.phase === 0) {
        nextRollout = false;
        updatesDone = 0;
        if (Number.isFinite(m['objective/kl_coef'])) betaNow.textContent = `This iteration: β = ${Number(m['objective/kl_coef'].toPrecision(3))}${plan.adaptive_kl ? ` (adaptive, toward KL ${plan.target_kl})` : ' (fixed)'}.`;
        inspector.refresh();
      } else {
        updatesDone += 1;
        if (m.iteration_done) {
          nextRollout = true;
          updatesDone = 0;
          iterationsDone = m.iteration;
          inspector.refresh();
          if (stopAtIterationEnd) client.pause();
          if (m.iteration % SAMPLE_EVERY === 0 && m.iteration < plan.iterations) showSamples().catch(() => {});
        }
      }
    } else if (event.event === 'stopped') {
      progress.pause();
      stopAtIterationEnd = false;
      if (event.reason === 'error') store.notify(`PPO stopped: ${event.error.message}`, 'error');
      if (event.reason === 'done') {
        try { await finish(); } catch (e) { store.notify(`PPO finished, but ${e.message}`, 'error'); }
        setState('done');
      } else if (begun) {
        inspector.refresh();
        setState('paused');
      }
      const resolve = waiters;
      waiters = [];
      resolve.forEach((f) => f());
    }
  });

  /** `steps`: null = to the end, a number, or 'iteration' = to the end of the current iteration. */
  async function run(steps) {
    if (state === 'blocked' || state === 'done' || state === 'running') return;
    const busy = activity.busy().filter((s) => s !== 'ppo');
    if (busy.length) { store.notify(busyMessage(busy, 'PPO')); return; }
    setState('running');
    try {
      await begin();
      let count = steps;
      if (steps === 'iteration') {
        count = nextRollout ? 1 + updatesPerIteration() : updatesPerIteration() - updatesDone;
        stopAtIterationEnd = true;
      }
      const done = stopped();
      progress.pause(); // the rate is measured from this run's first step
      await client.run('ppo', count);
      await done;
    } catch (e) {
      stopAtIterationEnd = false;
      setState(begun ? 'paused' : 'ready');
      store.notify(`PPO could not start: ${e.message}`, 'error');
    }
  }

  function clearRun() {
    begun = false;
    plan = null;
    nextRollout = true;
    updatesDone = 0;
    iterationsDone = 0;
    curves.clear();
    inspector.clear();
    stepper.clear();
    clipping.clear();
    samplesBody.replaceChildren();
    samplesNote.textContent = 'Samples appear when PPO begins.';
    phaseText.textContent = '';
    betaNow.textContent = '';
    progress.update(0, store.config.ppo.iterations);
    progress.querySelector('span').textContent = 'not started';
  }

  const restartWithZeroBeta = () => restartWith((c) => { c.ppo.kl_coef = 0; }, 'β = 0');

  /** Applies `change` to the settings, clears the run and runs PPO again from π_ref to the end. */
  async function restartWith(change, what = 'these settings') {
    if (activity.sweeping()) return;
    if (state === 'running') {
      const done = stopped();
      client.pause();
      await done;
    }
    const candidate = structuredClone(store.config);
    change(candidate);
    try {
      await client.call('setConfig', JSON.stringify(candidate));
    } catch (e) {
      store.notify(`${what} was refused: ${e.message}`, 'error');
      return;
    }
    store.config = candidate;
    store.saveUrl();
    form.refresh();
    store.events.emit('config-changed', { key: 'ppo.reward', value: candidate.ppo.reward });
    clearRun();
    if (!gate.open()) { setState('blocked'); return; }
    setState('ready');
    await run(null);
  }

  start.addEventListener('click', () => run(null));
  stepOne.addEventListener('click', () => run(1));
  iteration.addEventListener('click', () => run('iteration'));
  pause.addEventListener('click', () => { if (state === 'running') client.pause(); });
  zeroBeta.addEventListener('click', () => restartWithZeroBeta());

  followGate(store, gate, 'ppo', { state: () => state, setState, begun: () => begun, refresh, clearRun }, reset);
  activity.onChange(refresh);

  progress.update(0, store.config.ppo.iterations);
  progress.querySelector('span').textContent = 'not started';
  setState(gate.open() ? 'ready' : 'blocked');

  return {
    name: 'ppo',
    title: 'PPO',
    state: () => state,
    start: () => (state === 'done' || state === 'blocked' ? Promise.resolve() : run(null)),
    pause: () => { if (state === 'running') client.pause(); },
    step: () => run(1),
    /** A rollout and all its minibatch updates (or the rest of the current iteration). */
    iteration: () => run('iteration'),
    /** Sets β = 0 and runs PPO again from π_ref to the end (the reward-hacking experiment). */
    restartWithZeroBeta,
    /** Applies `change(config)` and runs PPO again from π_ref to the end. */
    restartWith,
    /** Reloads the inspected completion (and so the GAE stepper and the clipping view) now. */
    inspect: () => inspector.reload(),
    reset: async () => reset.click(),
    resume,
  };
}
