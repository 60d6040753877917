// Generalized Advantage Estimation in the page: a port of `src/rlhf/math/gae.rs` (`td_errors`, `gae`)
// with the same loop and the same names (delta, lastgaelam, nextvalues), so the GAE stepper can
// recompute Â live when the learner moves γ and λ.
//
//   δ_t = R_t + γ·V(s_{t+1}) − V(s_t)     (V = 0 past the last real token)
//   Â_t = δ_t + γλ·Â_{t+1}                 (backward, from t = T − 1 down to 0)
//   R̂_t = Â_t + V(s_t)
//
// The core computes in f32; every operation here is rounded to f32 (Math.fround) in the same
// order as the Rust expression, so at the run's own γ and λ the page's Â is the core's Â.

const f = Math.fround;

/** The TD errors δ_t = R_t + γ·V(s_{t+1}) − V(s_t), with V = 0 past the last real token. */
export function tdErrors(rewards, values, gamma) {
  if (rewards.length !== values.length) throw new Error(`tdErrors: ${rewards.length} rewards but ${values.length} values`);
  const g = f(gamma);
  return Array.from(rewards, (_, t) => {
    const nextValue = t + 1 < values.length ? values[t + 1] : 0;
    return f(f(f(rewards[t]) + f(g * f(nextValue))) - f(values[t]));
  });
}

/**
 * The backward recursion, one record per token in the order it runs (t = T − 1 first):
 * `{t, nextvalues, delta, lastgaelam}` where `lastgaelam` is Â_t. The stepper animates it.
 */
export function gaeTrace(rewards, values, gamma, lam) {
  if (rewards.length !== values.length) throw new Error(`gae: ${rewards.length} rewards but ${values.length} values`);
  const n = rewards.length;
  const g = f(gamma);
  const l = f(lam);
  const trace = [];
  let lastgaelam = 0;
  for (let t = n - 1; t >= 0; t--) {
    const nextvalues = t + 1 < n ? f(values[t + 1]) : 0;
    const delta = f(f(f(rewards[t]) + f(g * nextvalues)) - f(values[t]));
    lastgaelam = f(delta + f(f(g * l) * lastgaelam));
    trace.push({ t, nextvalues, delta, lastgaelam });
  }
  return trace;
}

/** GAE by the backward recursion: `{advantages, returns}` (returns before any whitening). */
export function gae(rewards, values, gamma, lam) {
  const advantages = new Array(rewards.length).fill(0);
  for (const { t, lastgaelam } of gaeTrace(rewards, values, gamma, lam)) advantages[t] = lastgaelam;
  const returns = advantages.map((a, t) => f(a + f(values[t])));
  return { advantages, returns };
}

/** Largest |a_i − b_i| (Infinity when the lengths differ). */
export function maxAbsDiff(a, b) {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}
