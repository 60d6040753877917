// The β sweep: PPO at a few KL coefficients, GRPO and RLOO at one (if the reward model exists),
// and DPO at a few β, each trained from π_ref with the learner's other settings and measured the
// same way when it ends.
// It runs in the core as a stage of its own (`sweepBegin`, then `step('sweep')`), with its own
// trainers: the PPO and DPO panels' models are never replaced.
import { el, formatSeconds } from './common.js';
import { busyMessage } from './activity.js';

export const PPO_BETAS = [0, 0.05, 0.2];
export const DPO_BETAS = [0.05, 0.1, 0.5];
/** GRPO and RLOO at the k3 coefficient of the DeepSeekMath paper (GRPO's default here). */
export const GROUP_BETAS = [0.04];

export function sweepControls(store, activity, frontier) {
  const { client, events, storage } = store;
  const start = el('button', { class: 'primary', text: 'Run the β sweep' });
  const stop = el('button', { text: 'Stop the sweep', disabled: true });
  const bar = el('progress', { max: 1, value: 0, 'aria-label': 'β sweep progress' });
  const text = el('span', { 'aria-live': 'polite', text: `PPO at β ∈ {${PPO_BETAS.join(', ')}}, GRPO and RLOO at β ∈ {${GROUP_BETAS.join(', ')}} and DPO at β ∈ {${DPO_BETAS.join(', ')}}, each evaluated on 128 prompts (PPO, GRPO and RLOO need the reward model, DPO the labels).` });
  const node = el('div', { class: 'sweep' },
    el('p', { class: 'caption', text: 'One run per β with your other settings (PPO\'s adaptive β off, so β stays what it says). The sweep trains its own copies: the PPO and DPO panels keep theirs.' }),
    el('div', { class: 'controls' }, start, stop),
    el('div', { class: 'progress' }, bar, text));

  let running = false;
  let began = 0;
  let last = 0;
  const setRunning = (value) => {
    running = value;
    start.disabled = value;
    stop.disabled = !value;
    events.emit('sweep-state', { running: value });
  };

  // Events are handled one after another: a step's point is stored before the end is announced.
  let handling = Promise.resolve();
  client.on((event) => {
    if (event.stage !== 'sweep') return;
    handling = handling.then(() => handle(event)).catch((e) => store.notify(`The β sweep: ${e.message}`, 'error'));
  });

  async function handle(event) {
    if (event.event === 'step') {
      const m = event.metrics;
      const progress = event.status.sweep;
      if (m['sweep/phase'] === 2) {
        const all = await client.call('sweepPoints');
        const p = all.at(-1);
        await frontier.addPoint({ method: p.method, beta: p.beta, source: 'sweep', steps: p.gradient_steps, wall_s: p.seconds, ...p.evaluation });
      }
      const now = performance.now();
      if (now - last < 250 && m['sweep/phase'] !== 2) return; // a few redraws a second at most
      last = now;
      bar.max = progress.total;
      bar.value = progress.step;
      const what = m['sweep/phase'] === 2 ? 'measured' : m['sweep/iteration'] ? `iteration ${m['sweep/iteration']}` : `${m['sweep/gradient_steps'] ?? 0} gradient steps`;
      text.textContent = `Run ${m['sweep/run']} of ${m['sweep/runs']}: ${what} · ${formatSeconds((now - began) / 1000)}`;
    } else if (event.event === 'stopped') {
      setRunning(false);
      if (event.reason === 'error') {
        text.textContent = `The sweep stopped: ${event.error.message}`;
        store.notify(`The β sweep stopped: ${event.error.message}`, 'error');
      } else if (event.reason === 'done') {
        text.textContent = `The sweep is done: ${frontier.points().filter((p) => p.source === 'sweep').length} policies on the frontier.`;
        frontier.showSamples();
      } else {
        text.textContent = 'The sweep is paused; "Run the β sweep" starts a new one.';
      }
    }
  }

  start.addEventListener('click', async () => {
    if (running) return;
    const busy = activity.busy();
    if (busy.length) { store.notify(busyMessage(busy, 'The β sweep')); return; }
    try {
      const status = await client.call('status');
      if (!status.has_reference) throw new Error('the sweep needs π_ref: finish SFT first');
      const labels = await storage.countLabels();
      const runs = [
        ...(status.has_reward_model ? PPO_BETAS.map((beta) => ({ method: 'ppo', beta })) : []),
        ...(status.has_reward_model ? ['grpo', 'rloo', 'reinforce', 'gspo'].flatMap((method) => GROUP_BETAS.map((beta) => ({ method, beta }))) : []),
        ...(labels > 0 ? DPO_BETAS.map((beta) => ({ method: 'dpo', beta })) : []),
      ];
      if (!runs.length) throw new Error('PPO runs need the reward model and DPO runs need labels: neither is there yet');
      const jsonl = labels > 0 ? await storage.labelsJsonl() : '';
      const count = await client.call('sweepBegin', jsonl, JSON.stringify(runs));
      setRunning(true);
      began = performance.now();
      bar.max = count;
      bar.value = 0;
      text.textContent = `Run 1 of ${count}: starting…`;
      await client.run('sweep');
    } catch (e) {
      setRunning(false);
      store.notify(`The β sweep could not start: ${e.message}`, 'error');
    }
  });
  stop.addEventListener('click', () => client.pause());
  return node;
}
