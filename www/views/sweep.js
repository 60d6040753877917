// The β sweep: PPO at a few KL coefficients (if the reward model exists) and DPO at a few β, each
// run to the end with the learner's other settings, then measured and put on the frontier. Its
// runs carry the tag 'sweep', so the PPO and DPO panels ignore them; the learner's own settings
// are restored afterwards.
import { el, formatSeconds } from './common.js';
import { busyMessage } from './activity.js';

export const PPO_BETAS = [0, 0.05, 0.2];
export const DPO_BETAS = [0.05, 0.1, 0.5];
const TAG = 'sweep';

export function sweepControls(store, activity, frontier) {
  const { client, events, storage } = store;
  const start = el('button', { class: 'primary', text: 'Run the β sweep' });
  const stop = el('button', { text: 'Stop the sweep', disabled: true });
  const bar = el('progress', { max: 1, value: 0, 'aria-label': 'β sweep progress' });
  const text = el('span', { 'aria-live': 'polite', text: `PPO at β ∈ {${PPO_BETAS.join(', ')}} (needs the reward model) and DPO at β ∈ {${DPO_BETAS.join(', ')}}, each evaluated on 128 prompts.` });
  const node = el('div', { class: 'sweep' },
    el('p', { class: 'caption', text: 'One run per β with your other settings (PPO\'s adaptive β off, so β stays what it says). The sweep reuses the session\'s PPO and DPO models: afterwards π_θ and π_dpo are its last runs.' }),
    el('div', { class: 'controls' }, start, stop),
    el('div', { class: 'progress' }, bar, text));

  let stopping = false;
  let running = false;

  function setRunning(value) {
    running = value;
    start.disabled = value;
    stop.disabled = !value;
    events.emit('sweep-state', { running: value });
  }

  /** Runs `stage` to its end under the tag; resolves with the stopped event and what the steps said. */
  function runToEnd(stage, onStep) {
    return new Promise((resolve, reject) => {
      const off = client.on((event) => {
        if (event.stage !== stage || event.tag !== TAG) return;
        if (event.event === 'step') onStep(event.metrics, event.status[stage]);
        else if (event.event === 'stopped') { off(); resolve(event); }
      });
      client.run(stage, null, TAG).catch((e) => { off(); reject(e); });
    });
  }

  async function plan() {
    const status = await client.call('status');
    if (!status.has_reference) throw new Error('the sweep needs π_ref: finish SFT first');
    const runs = [];
    const skipped = [];
    if (!status.has_reward_model) skipped.push('PPO needs the reward model (stage 2)');
    else if (['paused', 'running'].includes(activity.state('ppo'))) skipped.push('PPO: the PPO panel has a run in progress, which the sweep would replace');
    else runs.push(...PPO_BETAS.map((beta) => ({ method: 'ppo', stage: 'ppo', role: 'policy', beta })));
    const labels = await storage.countLabels();
    if (labels === 0) skipped.push('DPO needs labels');
    else if (['paused', 'running'].includes(activity.state('dpo'))) skipped.push('DPO: the DPO panel has a run in progress, which the sweep would replace');
    else runs.push(...DPO_BETAS.map((beta) => ({ method: 'dpo', stage: 'dpo', role: 'dpo', beta })));
    return { runs, skipped };
  }

  async function one(run, index, total) {
    const config = structuredClone(store.config);
    if (run.method === 'ppo') { config.ppo.kl_coef = run.beta; config.ppo.adaptive_kl = false; } else config.dpo.beta = run.beta;
    await client.call('setConfig', JSON.stringify(config));
    const began = performance.now();
    const label = `${run.method.toUpperCase()} β = ${run.beta}`;
    text.textContent = `Run ${index + 1} of ${total}: ${label} — ${run.method === 'dpo' ? 'computing π_ref\'s log-probs of the pairs' : 'starting'}…`;
    const meta = { method: run.method, beta: run.beta, source: 'sweep' };
    if (run.method === 'ppo') {
      await client.call('ppoBegin');
      meta.samples = 0;
    } else {
      const p = await client.call('dpoBegin', await storage.labelsJsonl());
      meta.pairs = p.train;
      meta.held_out = p.held_out;
    }
    frontier.claim(run.role, `sweep ${label}`);
    // The trainer copied its settings when it began: the learner's own come back at once.
    await client.call('setConfig', JSON.stringify(store.config));
    let last = 0;
    const stopped = await runToEnd(run.stage, (m, progress) => {
      if (stopping) client.pause(); // a stop asked for before the run had begun
      if (run.method === 'ppo') {
        if (m.phase === 0) meta.samples += config.ppo.batch_size;
        if (Number.isFinite(m.update)) meta.steps = m.update;
      } else {
        meta.steps = m.step;
        if (Number.isFinite(m['dpo/held_out_accuracy'])) meta.held_out_accuracy = m['dpo/held_out_accuracy'];
      }
      const now = performance.now();
      if (now - last < 250 && !progress?.done) return; // a few redraws a second at most
      last = now;
      const frac = progress ? progress.step / Math.max(1, progress.total) : 0;
      bar.max = total;
      bar.value = index + frac;
      text.textContent = `Run ${index + 1} of ${total}: ${label} — ${run.method === 'ppo' ? 'iteration' : 'step'} ${progress?.step ?? '?'} / ${progress?.total ?? '?'} · ${formatSeconds((now - began) / 1000)}`;
    });
    meta.wall_s = (performance.now() - began) / 1000;
    if (stopped.reason === 'error') throw new Error(`${label} stopped: ${stopped.error?.message}`);
    if (stopped.reason !== 'done') return false;
    text.textContent = `Run ${index + 1} of ${total}: ${label} — evaluating on 128 prompts…`;
    await frontier.addEvaluated(run.role, meta, { quiet: true });
    bar.value = index + 1;
    return true;
  }

  async function sweep() {
    if (running) return;
    const busy = activity.busy();
    if (busy.length) { store.notify(busyMessage(busy, 'The β sweep')); return; }
    stopping = false;
    setRunning(true);
    let done = 0;
    let total = 0;
    try {
      const { runs, skipped } = await plan();
      total = runs.length;
      if (skipped.length) store.notify(`The β sweep leaves out: ${skipped.join('; ')}.`);
      bar.max = Math.max(1, total);
      bar.value = 0;
      for (const [i, run] of runs.entries()) {
        if (stopping) break;
        if (!(await one(run, i, total))) break;
        done += 1;
      }
      text.textContent = done === total && total > 0 ? `The sweep is done: ${total} policies on the frontier.` : `The sweep stopped after ${done} of ${total} runs.`;
    } catch (e) {
      text.textContent = `The sweep stopped after ${done} of ${total} runs: ${e.message}`;
      store.notify(`The β sweep stopped: ${e.message}`, 'error');
    } finally {
      await client.call('setConfig', JSON.stringify(store.config)).catch(() => {});
      setRunning(false);
    }
  }

  start.addEventListener('click', sweep);
  stop.addEventListener('click', () => {
    stopping = true;
    stop.disabled = true;
    text.textContent = `${text.textContent} — stopping…`;
    client.pause();
  });
  return node;
}
