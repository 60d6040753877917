// Stage 3b panel: GRPO and RLOO from π_ref on the same frozen r_φ as PPO. No value model: each
// prompt gets G completions and each completion's advantage is its reward against the group's.
// Settings (estimator, std scaling, loss aggregation with its length bias, ε_low/ε_high, β),
// controls, curves over iterations in TRL's GRPO names, and the group inspector with PPO's
// per-token GAE advantages for the same prompt beside it.
import './grpo.css';
import { resumeStage, el, settingsForm, progressBar } from './common.js';
import { onlineGate, followGate } from './online-gate.js';
import { equationLink, inlineMath } from '../equations.js';
import { trackActivity, busyMessage } from './activity.js';
import { iterationCurves } from './ppo-curves.js';

const AVERAGED = ' Averaged over the iteration\'s minibatch updates.';
const CURVES = [
  {
    id: 'reward', title: 'RM score and gold utility', when: 'rollout', equation: 'grpo-advantage',
    text: 'Mean r_φ of each rollout (reward) beside the hidden gold utility of the same completions. If reward climbs while gold stalls, the policy is hacking r_φ — with or without a critic.',
    series: [{ key: 'reward', label: 'reward (r_φ)' }, { key: 'gold', label: 'gold utility' }],
  },
  { id: 'kl', title: 'KL(π_θ ‖ π_ref), k3 per token', when: 'rollout', metric: 'kl', series: [{ key: 'kl', label: 'kl' }] },
  { id: 'reward_std', title: 'Reward spread within groups', when: 'rollout', metric: 'reward_std', series: [{ key: 'reward_std', label: 'reward_std' }] },
  { id: 'zero_std', title: 'Groups with no spread', when: 'rollout', metric: 'frac_reward_zero_std', share: true, series: [{ key: 'frac_reward_zero_std', label: 'frac_reward_zero_std' }] },
  {
    id: 'clip', title: 'Clipped tokens, below and above', when: 'iteration', metric: 'clip_ratio/region_mean', suffix: AVERAGED, share: true,
    series: [{ key: 'clip_ratio/low_mean_avg', label: 'low' }, { key: 'clip_ratio/high_mean_avg', label: 'high' }, { key: 'clip_ratio/region_mean_avg', label: 'region' }],
  },
  { id: 'entropy', title: 'Entropy of π_θ', when: 'iteration', metric: 'entropy', suffix: AVERAGED, series: [{ key: 'entropy_avg', label: 'entropy' }] },
  { id: 'length', title: 'Completion length', when: 'rollout', metric: 'completions/mean_length', series: [{ key: 'completions/mean_length', label: 'tokens' }] },
];

/** What each aggregation does to long and short completions, said where it is chosen. */
const LENGTH_BIAS = {
  grpo: 'grpo — each completion\'s mean over its tokens, then the mean over completions (the GRPO paper). A token of a 4-token answer weighs 3× one of a 12-token answer: a positive Â pushes short answers hardest, and a negative Â is diluted over a long one, so long wrong answers are penalized least per token — the length bias Dr. GRPO points out.',
  dr_grpo: 'dr_grpo — every token divided by the same constant, completions × the length limit (Dr. GRPO). A token weighs the same whatever its completion\'s length and whatever the batch: no length bias, but the step shrinks when completions are short.',
  dapo: 'dapo — the mean over every real token of the minibatch (DAPO; TRL\'s default). Every token weighs the same within a batch, so long completions count in proportion to their length; the divisor changes from batch to batch.',
};

const num = (v, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : '—');
const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

export async function mountGrpo(root, store) {
  const { client, events, storage } = store;
  const activity = trackActivity(store);
  const start = el('button', { class: 'primary', text: 'Start GRPO' });
  const pause = el('button', { text: 'Pause', disabled: true });
  const stepOne = el('button', { text: 'Step one phase', title: 'One rollout (G completions per prompt), or one minibatch update' });
  const reset = el('button', { text: 'Reset' });
  const progress = progressBar('GRPO', 'iterations');
  const phaseText = el('p', { class: 'muted phase', 'aria-live': 'polite' });
  const waiting = el('p', { class: 'waiting', role: 'status' });
  const lengthBias = el('p', { class: 'length-bias', 'aria-live': 'polite' });
  const form = settingsForm(store, 'grpo.', (key) => { if (key === 'grpo.loss_type') showLengthBias(); });
  const showLengthBias = () => { lengthBias.textContent = LENGTH_BIAS[store.config.grpo.loss_type] ?? ''; };
  form.querySelector('#setting-grpo-loss_type')?.closest('.setting')?.after(lengthBias);
  showLengthBias();
  const curves = iterationCurves(store, CURVES, 'grpo-curves');

  // The group inspector.
  const prev = el('button', { text: 'Previous group', disabled: true });
  const next = el('button', { text: 'Next group', disabled: true });
  const groupTitle = el('p', { class: 'group-title', 'aria-live': 'polite', text: 'The groups appear with the first rollout.' });
  const groupStats = el('p', { class: 'record-summary' });
  const groupBody = el('tbody');
  const ppoSide = el('div', { class: 'ppo-side' }, el('p', { class: 'muted', text: 'PPO\'s per-token advantages for the same prompt appear here once PPO (stage 3) has a rollout that contains it.' }));
  let groupIndex = 0;
  let groupCount = 0;

  root.append(el('section', { class: 'panel', id: 'grpo', 'aria-labelledby': 'grpo-title' },
    el('h2', { id: 'grpo-title', text: 'Stage 3b · GRPO and RLOO: the critic replaced by a group → π_grpo' }),
    el('p', { class: 'objective' }, 'The same objective as PPO, from the same π_ref against the same frozen r_φ, without V_ψ. Each prompt gets G completions; completion i\'s advantage is its reward against the group\'s: ',
      inlineMath(String.raw`\hat A_i = (r_i - \bar r)/\sigma_r`), ' (GRPO), ', inlineMath(String.raw`r_i - \bar r`), ' (Dr. GRPO) or ',
      inlineMath(String.raw`r_i - \tfrac{1}{G-1}\sum_{j\ne i} r_j`), ' (RLOO), the same for every token of y_i. ', equationLink('grpo-advantage'),
      ' The update is PPO\'s clipped ratio with separate ε_low and ε_high, and an optional k3 penalty β·KL(π_θ‖π_ref). ', equationLink('grpo-loss')),
    waiting,
    el('details', { class: 'grpo-settings' }, el('summary', { text: 'GRPO settings: group size G, estimator, std scaling, loss aggregation, ε_low / ε_high, β…' }), form),
    el('div', { class: 'controls' }, start, pause, stepOne, reset),
    progress,
    phaseText,
    curves.node,
    el('div', { class: 'group-inspector', role: 'group', 'aria-labelledby': 'group-inspector-title' },
      el('h3', { id: 'group-inspector-title', text: 'Group inspector: one prompt, its G completions, and the baseline' }),
      el('div', { class: 'controls' }, prev, next),
      groupTitle,
      groupStats,
      el('div', { class: 'group-pair' },
        el('div', { class: 'table-scroll' }, el('table', { class: 'samples group-table' },
          el('thead', {}, el('tr', {}, ...['#', 'completion y_i', 'r_i', 'baseline', 'Â_i', 'gold'].map((t) => el('th', { text: t })))),
          groupBody)),
        ppoSide))));
  await nextTask();
  await curves.mount(nextTask);

  const gate = onlineGate(store, 'grpo');
  let begun = false;
  let state = 'blocked';
  let plan = null;
  let waiters = [];
  const stopped = () => new Promise((resolve) => waiters.push(resolve));

  const setState = (value) => {
    state = value;
    refresh();
    events.emit('stage-state', { stage: 'grpo', state: value, produced: value === 'done' ? 'π_grpo' : null });
  };

  function refresh() {
    const sweeping = activity.sweeping();
    const can = state !== 'running' && state !== 'done' && state !== 'blocked' && !sweeping;
    start.disabled = !can;
    stepOne.disabled = !can;
    reset.disabled = state === 'running' || sweeping;
    pause.disabled = state !== 'running';
    start.textContent = state === 'done' ? 'Done' : begun ? 'Resume' : 'Start GRPO';
    form.setDisabled(begun || sweeping);
    waiting.textContent = state === 'blocked' ? gate.waiting('GRPO')
      : sweeping ? 'The β sweep is using the training worker.' : '';
    waiting.hidden = !waiting.textContent;
  }

  // The method a run's settings make: a baseline choice and a ratio-level choice (`GroupMethod`).
  const methodKey = () => (plan?.importance_sampling_level === 'sequence' ? 'gspo' : plan?.estimator === 'rloo' ? 'rloo' : plan?.estimator === 'reinforce' ? 'reinforce' : 'grpo');
  const method = () => ({ gspo: 'GSPO', rloo: 'RLOO', reinforce: 'REINFORCE' }[methodKey()] ?? (plan?.scale_rewards === false ? 'Dr. GRPO' : 'GRPO'));

  function showPhase(m) {
    const total = plan.iterations;
    if (m.phase === 0) {
      phaseText.textContent = `Iteration ${m.iteration} of ${total}: ${plan.prompts} prompts × G = ${plan.group_size} completions sampled and scored (reward ${num(m.reward)}, ${Math.round(100 * m.frac_reward_zero_std)}% of groups without spread) · next: minibatch 1 of ${plan.mini_batches}.`;
    } else {
      phaseText.textContent = `Iteration ${m.iteration} of ${total}: epoch ${m.epoch} of ${plan.epochs}, minibatch ${m.minibatch} of ${plan.mini_batches} updated (loss ${num(m.loss, 4)}, ${(100 * m['clip_ratio/region_mean']).toFixed(1)}% of tokens clipped)${m.iteration_done && m.iteration < total ? ' · next: a new rollout.' : '.'}`;
    }
  }

  async function showGroup() {
    let record;
    try {
      record = await client.call('grpoRecord', groupIndex);
    } catch (e) {
      if (e.name !== 'NotReady') store.notify(`The group inspector: ${e.message}`, 'error');
      return;
    }
    groupCount = record.groups;
    prev.disabled = groupIndex === 0;
    next.disabled = groupIndex >= groupCount - 1;
    groupTitle.textContent = `Group ${groupIndex + 1} of ${groupCount} (iteration ${record.iteration}) · prompt: “${record.prompt}”`;
    const baseline = record.estimator === 'rloo' ? 'each r_i against the mean of the other G − 1' : record.scale_rewards ? 'each r_i minus the mean, divided by the std' : 'each r_i minus the mean (no std division)';
    groupStats.textContent = `mean r = ${num(record.mean)} · std r = ${num(record.std)} · ${baseline}${record.zero_std ? ' · every r_i is equal: all Â_i = 0, this group teaches nothing (counted in frac_reward_zero_std)' : ''}.`;
    const scale = Math.max(1e-6, ...record.members.map((m) => Math.abs(m.advantage)));
    groupBody.replaceChildren(...record.members.map((m, i) => el('tr', {},
      el('td', { class: 'num', text: String(i + 1) }),
      el('td', { class: 'completion', text: m.tokens.join(' ') + (m.ends ? '' : ' …') }),
      el('td', { class: 'num', text: num(m.score) }),
      el('td', { class: 'num', text: num(m.baseline) }),
      el('td', { class: 'num adv' }, el('span', { class: `bar ${m.advantage >= 0 ? 'up' : 'down'}`, style: `width: ${(2.5 * Math.abs(m.advantage) / scale).toFixed(2)}rem` }), el('span', { text: num(m.advantage) })),
      el('td', { class: 'num', text: num(m.gold) }))));
    await showPpoSide(record);
  }

  async function showPpoSide(group) {
    const ppo = await client.call('ppoRecordFor', group.product).catch(() => null);
    if (!ppo) {
      ppoSide.replaceChildren(el('p', { class: 'muted', text: `PPO's current rollout has no completion for “${group.prompt}” (or PPO has not run): run PPO in stage 3 to see its critic's per-token advantages here.` }));
      return;
    }
    const mine = group.members.map((m) => m.advantage);
    ppoSide.replaceChildren(
      el('h4', { text: 'PPO on the same prompt: one advantage per token (GAE)' }),
      el('p', { class: 'caption', text: `A completion from PPO's latest rollout, r_φ = ${num(ppo.score)}. V_ψ gives every token its own Â_t (γ = ${Number(ppo.gamma.toPrecision(3))}, λ = ${Number(ppo.lam.toPrecision(3))}); GRPO gives every token of y_i one number, Â_i ∈ [${num(Math.min(...mine), 2)}, ${num(Math.max(...mine), 2)}] in this group.` }),
      el('div', { class: 'table-scroll' }, el('table', { class: 'samples ppo-tokens' },
        el('thead', {}, el('tr', {}, el('th', { text: 'token' }), ...ppo.tokens.map((t) => el('th', { class: 'tok', text: t })))),
        el('tbody', {},
          el('tr', {}, el('th', { scope: 'row', text: 'Â_t (GAE, raw)' }), ...ppo.advantages_raw.map((a) => el('td', { class: `num ${a >= 0 ? 'pos' : 'neg'}`, text: num(a, 2) }))),
          el('tr', {}, el('th', { scope: 'row', text: 'V(s_t)' }), ...ppo.values.map((v) => el('td', { class: 'num', text: num(v, 2) })))))));
  }

  prev.addEventListener('click', () => { if (groupIndex > 0) { groupIndex -= 1; showGroup(); } });
  next.addEventListener('click', () => { if (groupIndex < groupCount - 1) { groupIndex += 1; showGroup(); } });

  function adopt(config) {
    plan = structuredClone(config);
  }

  async function begin(snapshot = null) {
    if (begun) return null;
    let at = null;
    if (snapshot) {
      ({ progress: at } = await client.call('resume', 'grpo', snapshot));
    } else {
      await client.call('grpoBegin');
      await storage.clearMetrics('grpo').catch(() => {});
      await storage.discardSnapshotsFrom('grpo').catch(() => {});
    }
    begun = true;
    adopt(store.config.grpo);
    curves.clear();
    groupIndex = 0;
    if (at) {
      let last = null;
      for (const m of await storage.metricsOf('grpo')) { curves.push(m); last = m; }
      if (last) showPhase(last);
      showGroup();
    }
    progress.update(at?.step ?? 0, plan.iterations);
    return at;
  }

  const resume = (snapshot) => resumeStage(snapshot, { begin, finish, setState, notify: store.notify, title: 'GRPO' });

  async function finish() {
    const bytes = await client.call('save', 'grpo');
    await storage.putCheckpoint('grpo', bytes, { stage: 'grpo', method: method(), beta: plan.beta, iterations: plan.iterations });
    events.emit('checkpoint-saved', { role: 'grpo' });
  }

  client.on(async (event) => {
    if (event.stage !== 'grpo' || event.tag) return;
    if (event.event === 'step') {
      const m = event.metrics;
      if (!begun) { begun = true; adopt(store.config.grpo); }
      if (state !== 'running') setState('running');
      curves.push(m);
      progress.update(event.status.grpo.step, event.status.grpo.total);
      showPhase(m);
      if (m.phase === 0) setTimeout(showGroup, 0);
    } else if (event.event === 'stopped') {
      progress.pause();
      if (event.reason === 'error') store.notify(`GRPO stopped: ${event.error.message}`, 'error');
      if (event.reason === 'done') {
        try { await finish(); } catch (e) { store.notify(`GRPO finished, but ${e.message}`, 'error'); }
        setState('done');
      } else if (begun) {
        setState('paused');
      }
      const resolve = waiters;
      waiters = [];
      resolve.forEach((f) => f());
    }
  });

  async function run(steps) {
    if (state === 'blocked' || state === 'done' || state === 'running') return;
    const busy = activity.busy().filter((s) => s !== 'grpo');
    if (busy.length) { store.notify(busyMessage(busy, 'GRPO')); return; }
    setState('running');
    try {
      await begin();
      const done = stopped();
      progress.pause();
      await client.run('grpo', steps);
      await done;
    } catch (e) {
      setState(begun ? 'paused' : 'ready');
      store.notify(`GRPO could not start: ${e.message}`, 'error');
    }
  }

  function clearRun() {
    begun = false;
    plan = null;
    curves.clear();
    groupBody.replaceChildren();
    groupTitle.textContent = 'The groups appear with the first rollout.';
    groupStats.textContent = '';
    prev.disabled = true;
    next.disabled = true;
    phaseText.textContent = '';
    progress.update(0, store.config.grpo.iterations);
    progress.querySelector('span').textContent = 'not started';
  }

  start.addEventListener('click', () => run(null));
  stepOne.addEventListener('click', () => run(1));
  pause.addEventListener('click', () => { if (state === 'running') client.pause(); });

  followGate(store, gate, 'grpo', { state: () => state, setState, begun: () => begun, refresh, clearRun }, reset);
  activity.onChange(refresh);

  progress.update(0, store.config.grpo.iterations);
  progress.querySelector('span').textContent = 'not started';
  setState(gate.open() ? 'ready' : 'blocked');

  return {
    name: 'grpo',
    title: 'GRPO',
    state: () => state,
    start: () => (state === 'done' || state === 'blocked' ? Promise.resolve() : run(null)),
    pause: () => { if (state === 'running') client.pause(); },
    step: () => run(1),
    reset: async () => reset.click(),
    resume,
    /** The settings the run began with, and its method's name (GRPO, Dr. GRPO or RLOO). */
    plan: () => plan,
    method,
    /** The frontier's key for the run's method: grpo, rloo, reinforce or gspo. */
    methodKey,
  };
}
