// The math page's PPO-vs-DPO table, each row with what this session measured beside the claim.
import { el } from './common.js';
import { SETTINGS } from '../state.js';

const num = (v, d = 3) => (Number.isFinite(v) ? v.toFixed(d) : '—');
const pct = (v) => (Number.isFinite(v) ? `${(v * 100).toFixed(1)}%` : '—');

/** The run that stands for `method`: the panel's latest, else the sweep's at the learner's β, else the sweep's latest. */
function pick(points, method, beta) {
  const mine = points.filter((p) => p.method === method).sort((a, b) => a.time - b.time);
  return mine.filter((p) => p.source === 'panel').at(-1) ?? mine.find((p) => p.beta === beta) ?? mine.at(-1) ?? null;
}

export function comparisonTable(store) {
  const head = el('tr', {}, el('th', { text: '' }), el('th', { text: 'Standard RLHF (PPO)' }), el('th', { text: 'DPO' }));
  const body = el('tbody');
  const note = el('p', { class: 'caption' });
  const node = el('div', { class: 'compare' }, el('table', { class: 'samples compare-table' }, el('thead', {}, head), body), note);
  let rmAccuracy = null;
  let last = [];

  const cell = (claim, measured) => el('td', {}, el('span', { class: 'claim', text: claim }), measured ? el('span', { class: 'measured', text: measured }) : null);

  function update(points) {
    last = points;
    const ppo = pick(points, 'ppo', store.config.ppo.kl_coef);
    const dpo = pick(points, 'dpo', store.config.dpo.beta);
    const ref = points.find((p) => p.method === 'ref');
    const which = (p, name) => (p ? `${name} · β = ${p.beta} · ${p.source === 'panel' ? 'panel run' : 'β sweep'}` : `${name} · not run yet`);
    head.replaceChildren(el('th', { text: '' }), el('th', { text: which(ppo, 'Standard RLHF (PPO)') }), el('th', { text: which(dpo, 'DPO') }));
    const knobs = (prefix) => SETTINGS.filter((s) => s.key.startsWith(prefix)).length;
    const kl = (p) => (p ? `measured KL(π‖π_ref) = ${num(p.kl)} ± ${num(p.kl_std_error)} nats` : null);
    const delta = (p, key) => (p && ref ? ` (π_ref ${num(ref[key])}, ${p[key] >= ref[key] ? '+' : '−'}${num(Math.abs(p[key] - ref[key]))})` : '');
    const rows = [
      ['Reward model', cell('Explicit network r_φ', Number.isFinite(rmAccuracy) ? `held-out accuracy ${pct(rmAccuracy)}` : 'held-out accuracy: train the reward model'),
        cell('Implicit: β·log(π_θ/π_ref)', dpo && Number.isFinite(dpo.held_out_accuracy) ? `held-out accuracy ${pct(dpo.held_out_accuracy)} on the same ${dpo.held_out ?? ''} held-out pairs` : null)],
      ['Optimization', cell('Online RL, sampling rollouts', ppo?.samples ? `${ppo.samples} completions sampled and scored while training` : null),
        cell('Offline supervised loss on pairs', dpo?.pairs ? `${dpo.pairs} labeled pairs, no sampling` : null)],
      ['Models in memory', cell('4: policy, value (critic), reference, reward model'), cell('2: policy, reference')],
      ['Objective solved', cell('Directly, via PPO (clipped surrogate, GAE)'), cell('In closed form (no RL loop)')],
      ['Gradient steps', cell('', ppo?.steps != null ? `${ppo.steps} minibatch updates` : null), cell('', dpo?.steps != null ? `${dpo.steps} steps` : null)],
      ['Wall time', cell('', ppo?.wall_s != null ? `${ppo.wall_s.toFixed(1)} s` : null), cell('', dpo?.wall_s != null ? `${dpo.wall_s.toFixed(1)} s` : null)],
      ['Moved from π_ref', cell('', kl(ppo)), cell('', kl(dpo))],
      ['Gold utility reached', cell('', ppo ? `${num(ppo.gold)}${delta(ppo, 'gold')}` : null), cell('', dpo ? `${num(dpo.gold)}${delta(dpo, 'gold')}` : null)],
      ['RM score reached', cell('', ppo ? `${num(ppo.score)}${delta(ppo, 'score')}` : null), cell('', dpo ? `${num(dpo.score)}${delta(dpo, 'score')} — DPO never saw r_φ` : null)],
      ['Stability', cell('Sensitive; many knobs', `${knobs('ppo.')} PPO settings on this page`), cell('Stable; a single loss', `${knobs('dpo.')} DPO settings on this page`)],
      ['Trade-off', cell('Can use online data & any reward'), cell('Tied to the preference dataset')],
    ];
    body.replaceChildren(...rows.map(([label, a, b]) => el('tr', {}, el('th', { scope: 'row', text: label }), a, b)));
    note.textContent = 'Both columns optimize the identical KL-regularized objective E[r_φ] − β·KL(π_θ‖π_ref). Measured numbers come from the runs named in the header; KL, gold and RM score are from the same evaluation (128 prompts, seed 99) for both.';
  }

  node.update = update;
  node.refreshRm = async () => {
    const rows = await store.storage.metricsOf('reward').catch(() => []);
    const lastEval = rows.filter((m) => Number.isFinite(m['rm/held_out_accuracy'])).at(-1);
    rmAccuracy = lastEval?.['rm/held_out_accuracy'] ?? null;
    update(last);
    return rmAccuracy;
  };
  node.rmAccuracy = () => rmAccuracy;
  update([]);
  return node;
}

/**
 * PPO beside GRPO and RLOO, the critic against a group baseline: the models each keeps in memory,
 * the wall time per iteration and what it reached, from the points of this session's runs
 * (panel runs first, else the β sweep's).
 */
const ADVANTAGE_FROM = {
  ppo: 'V_ψ and GAE, one per token',
  grpo: 'the group\'s mean (and std), one per completion',
  rloo: 'the other G − 1, one per completion',
  reinforce: 'the whole batch\'s mean, one per completion (one completion per prompt)',
  gspo: 'the group\'s mean (and std), one per completion',
};

export function onlineRlTable(store) {
  const body = el('tbody');
  const head = el('tr');
  const note = el('p', { class: 'caption' });
  const node = el('div', { class: 'compare' }, el('table', { class: 'samples online-rl-table' }, el('thead', {}, head), body), note);
  const models = (method, p) => {
    if (method === 'ppo') return '4: policy, value model (critic), reference, reward model';
    const beta = p?.beta ?? store.config.grpo.beta;
    return beta === 0 ? '2: policy, reward model (π_ref only to measure KL here)' : '3: policy, reference (for β·KL), reward model — no critic';
  };
  node.update = (points) => {
    const group = store.config.grpo.beta;
    const runs = [['ppo', 'PPO', store.config.ppo.kl_coef], ['grpo', 'GRPO', group], ['rloo', 'RLOO', group], ['reinforce', 'REINFORCE', group], ['gspo', 'GSPO', group]]
      .map(([method, name, beta]) => ({ method, name, p: pick(points, method, beta) }));
    const ref = points.find((p) => p.method === 'ref');
    head.replaceChildren(el('th', { text: '' }), ...runs.map(({ name, p }) => el('th', { text: p ? `${p.label ?? name} · β = ${p.beta} · ${p.source === 'panel' ? 'panel run' : 'β sweep'}` : `${name} · not run yet` })));
    const perIteration = (p) => (p?.wall_s != null && p?.iterations ? `${(p.wall_s / p.iterations).toFixed(2)} s (${p.iterations} iterations in ${p.wall_s.toFixed(1)} s)` : p?.wall_s != null ? `${p.wall_s.toFixed(1)} s in all` : '—');
    const reached = (p, key) => (p ? `${num(p[key])}${ref ? ` (π_ref ${num(ref[key])})` : ''}` : '—');
    const rows = [
      ['Models in memory', (m, p) => models(m, p)],
      ['Advantage from', (m) => ADVANTAGE_FROM[m]],
      ['Ratio', (m) => (m === 'gspo' ? 'one per completion: the geometric mean of its tokens\', clipped at 1 ± 3e-4' : 'one per token, clipped')],
      ['Wall time per iteration', (m, p) => perIteration(p)],
      ['Gradient steps', (m, p) => (p?.steps != null ? String(p.steps) : '—')],
      ['RM score reached', (m, p) => reached(p, 'score')],
      ['Gold utility reached', (m, p) => reached(p, 'gold')],
      ['KL(π‖π_ref) reached', (m, p) => (p ? `${num(p.kl)} ± ${num(p.kl_std_error)} nats` : '—')],
    ];
    body.replaceChildren(...rows.map(([label, f]) => el('tr', {}, el('th', { scope: 'row', text: label }), ...runs.map(({ method, p }) => el('td', { text: f(method, p) })))));
    note.textContent = 'Every policy starts from the same π_ref and is scored by the same frozen r_φ; score, gold and KL come from the same evaluation (128 prompts, seed 99). The wall time is this page\'s, on this backend.';
  };
  node.update([]);
  return node;
}
