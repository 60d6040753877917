// The lesson's figures (www/lesson/figures.js) with numbers worked by hand: no browser needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { softplus, correlation, summarizePpo, summarizeGrpo, hackingVerdict, num } from '../../www/lesson/figures.js';

test('the Bradley–Terry loss −log σ(Δ) = softplus(−Δ)', () => {
  assert.ok(Math.abs(softplus(0) - Math.LN2) < 1e-12, 'equal scores: log 2');
  // −log σ(2) = log(1 + e^−2) = 0.126928…
  assert.ok(Math.abs(softplus(-2) - 0.1269280110429725) < 1e-12);
  // −log σ(−2) = 2 + log(1 + e^−2) = 2.126928…
  assert.ok(Math.abs(softplus(2) - 2.1269280110429727) < 1e-12);
  assert.ok(Number.isFinite(softplus(800)) && Number.isFinite(softplus(-800)), 'no overflow');
});

test('correlation: ±1 for exact lines, NaN for a constant, a hand-worked value', () => {
  assert.ok(Math.abs(correlation([1, 2, 3], [2, 4, 6]) - 1) < 1e-12);
  assert.ok(Math.abs(correlation([1, 2, 3], [3, 2, 1]) + 1) < 1e-12);
  assert.ok(Number.isNaN(correlation([1, 2, 3], [5, 5, 5])));
  // x = 1,2,3,4; y = 1,3,2,4: sxy = 4, sxx = syy = 5 → r = 0.8
  assert.ok(Math.abs(correlation([1, 2, 3, 4], [1, 3, 2, 4]) - 0.8) < 1e-12);
});

test('a PPO run summarized by its first and last rollout; updates are left out', () => {
  const rollout = (iteration, score, gold, kl) => ({ phase: 0, iteration, 'objective/scores': score, 'objective/gold': gold, 'objective/kl': kl });
  const update = (iteration) => ({ phase: 1, iteration, 'loss/total': 0.1 });
  const s = summarizePpo([rollout(1, -0.1, -0.4, 0), update(1), rollout(2, 1, 0.5, 1.5), update(2), update(2)], 0.05);
  assert.deepEqual(s, { beta: 0.05, iterations: 2, first: { score: -0.1, gold: -0.4, kl: 0, iteration: 1 }, last: { score: 1, gold: 0.5, kl: 1.5, iteration: 2 } });
  assert.equal(summarizePpo([update(1)], 0), null);
});

test('what the β = 0 run did is said from its numbers', () => {
  const run = (beta, score, gold, kl) => ({ beta, iterations: 60, first: { score: 0, gold: 0, kl: 0 }, last: { score, gold, kl } });
  const base = run(0.05, 2.5, 1.3, 2.6);
  assert.match(hackingVerdict(base, run(0, 3.2, 0.9, 6.0)), /reward hacking/, 'score up, gold down');
  assert.match(hackingVerdict(base, run(0, 2.5, 1.0, 3.0)), /gold utility ended lower/, 'gold down, score level');
  const level = hackingVerdict(base, run(0, 2.56, 1.36, 5.3));
  assert.match(level, /gained no more gold utility/, 'more drift, no more gold');
  assert.doesNotMatch(level, /reward hacking/);
  assert.match(level, /KL 5\.300 vs 2\.600 \(2\.0×\)/);
  assert.match(hackingVerdict(base, run(0, 2.6, 1.5, 2.7)), /did not hurt/);
  assert.match(hackingVerdict(null, run(0, 2.6, 1.5, 2.7)), /nothing to compare/);
  assert.equal(num(-1.3114), '−1.311');
});

test('a GRPO run is summed up from its rollouts only', () => {
  const rollout = (iteration, reward, gold, spread, flat) => ({ phase: 0, iteration, reward, gold, reward_std: spread, frac_reward_zero_std: flat, kl: 0.01 * iteration });
  const update = (iteration) => ({ phase: 1, iteration, loss: 0.1, reward: Number.NaN });
  const s = summarizeGrpo([rollout(1, 0.2, -0.5, 1.5, 0.25), update(1), update(1), rollout(2, 0.9, 0.4, 1.1, 0), update(2), rollout(3, 1.4, 0.8, 0.9, 0.5), update(3)]);
  assert.deepEqual(s, { iterations: 3, first: { reward: 0.2, gold: -0.5, spread: 1.5, flat: 0.25, kl: 0.01, iteration: 1 }, last: { reward: 1.4, gold: 0.8, spread: 0.9, flat: 0.5, kl: 0.03, iteration: 3 } });
  assert.equal(summarizeGrpo([update(1)]), null, 'no rollout yet');
});
