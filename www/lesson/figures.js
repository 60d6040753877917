// The lesson's small figures: number formats, a table, a slider, and the few quantities it
// computes from the learner's run (a PPO run's first and last rollout, a correlation, what the
// β = 0 run did). No DOM but what `el` builds, no model.
import { el } from '../dom.js';

export const num = (v, d = 3) => (Number.isFinite(v) ? `${v < 0 ? '−' : ''}${Math.abs(v).toFixed(d)}` : '—');
export const signed = (v, d = 2) => (Number.isFinite(v) ? `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(d)}` : '—');
export const softplus = (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x)));

/** A PPO run's rollout figures: first and last mean RM score, gold utility and KL, and β. */
export function summarizePpo(metrics, beta) {
  const rollouts = metrics.filter((m) => m.phase === 0 && Number.isFinite(m['objective/scores']));
  if (!rollouts.length) return null;
  const pick = (m) => ({ score: m['objective/scores'], gold: m['objective/gold'], kl: m['objective/kl'], iteration: m.iteration });
  return { beta, iterations: rollouts.at(-1).iteration, first: pick(rollouts[0]), last: pick(rollouts.at(-1)) };
}

/**
 * A GRPO run's rollout figures: first and last mean reward (r_φ), gold utility, within-group
 * reward spread and share of groups with none, and the iterations.
 */
export function summarizeGrpo(metrics) {
  const rollouts = metrics.filter((m) => m.phase === 0 && Number.isFinite(m.reward));
  if (!rollouts.length) return null;
  const pick = (m) => ({ reward: m.reward, gold: m.gold, spread: m.reward_std, flat: m.frac_reward_zero_std, kl: m.kl, iteration: m.iteration });
  return { iterations: rollouts.at(-1).iteration, first: pick(rollouts[0]), last: pick(rollouts.at(-1)) };
}

/** Pearson correlation of two equal-length arrays (NaN when either is constant). */
export function correlation(xs, ys) {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0; let sxx = 0; let syy = 0;
  for (let i = 0; i < n; i++) { sxy += (xs[i] - mx) * (ys[i] - my); sxx += (xs[i] - mx) ** 2; syy += (ys[i] - my) ** 2; }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : Number.NaN;
}

export function table(head, rows, cls = '') {
  return el('table', { class: `lesson-table ${cls}` },
    el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, ...rows.map((r) => el('tr', {}, ...r.map((c, i) => el(i === 0 ? 'th' : 'td', i === 0 ? { scope: 'row', text: c } : { text: c }))))));
}

export function slider(id, label, { min, max, step, value }) {
  const input = el('input', { id, type: 'range', min: String(min), max: String(max), step: String(step), value: String(value) });
  const output = el('output', { for: id, text: String(value) });
  return { node: el('div', { class: 'lesson-slider' }, el('label', { for: id, text: label }), input, output), input, output };
}

/** A completion's text without its <eos> mark, said in words when it was cut off. */
export const words = (text) => (/\s*<eos>\s*$/.test(text) ? text.replace(/\s*<eos>\s*$/, '') : `${text} … (no <eos>)`);

/**
 * What the β = 0 run did beside the run with the KL term, said from the numbers (r_φ is on its
 * own scale, so the RM score is compared across runs, not with the gold utility's gain).
 */
export function hackingVerdict(base, zero) {
  // Differences this small are within a rollout's noise (the mean of one batch of completions).
  const NOISE = 0.1;
  const z = zero.last;
  if (!base) return `At β = 0: RM score ${num(zero.first.score)} → ${num(z.score)}, gold utility ${num(zero.first.gold)} → ${num(z.gold)}, KL ${num(z.kl)}. (The run with β > 0 was not recorded in this tab, so there is nothing to compare with.)`;
  const b = base.last;
  const dScore = z.score - b.score;
  const dGold = z.gold - b.gold;
  const ratio = b.kl > 0 ? z.kl / b.kl : Number.NaN;
  const facts = `Against β = ${base.beta}: RM score ${num(z.score)} vs ${num(b.score)}, gold ${num(z.gold)} vs ${num(b.gold)}, KL ${num(z.kl)} vs ${num(b.kl)}${Number.isFinite(ratio) ? ` (${ratio.toFixed(1)}×)` : ''}.`;
  if (dScore > NOISE && dGold < -NOISE) return `${facts} Without the leash the reward model's score ended higher and the gold utility lower: reward hacking — π_θ found completions r_φ overrates.`;
  if (dGold < -NOISE) return `${facts} Without the leash the gold utility ended lower for no higher score: the drift cost real quality.`;
  if (dGold <= NOISE && ratio > 1.3) return `${facts} Without the leash π_θ moved much further from π_ref and gained no more gold utility${dScore > NOISE ? ', only more RM score: the extra score is r_φ\'s, not real' : ' (nor RM score): in this run the KL term cost nothing and the extra drift bought nothing real'}. Within ${zero.iterations} iterations the score did not run away from the gold utility here.`;
  return `${facts} In this run β = 0 did not hurt the gold utility within ${zero.iterations} iterations.`;
}
