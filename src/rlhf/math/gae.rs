//! Stage 3 of the math page: the KL-shaped per-token reward and Generalized Advantage Estimation.
//!
//! R_t = 1[t = T]·r_φ(x, y) − β·log(π_θ(a_t|s_t)/π_ref(a_t|s_t))
//! δ_t = R_t + γ·V(s_{t+1}) − V(s_t),   Â_t = δ_t + γλ·Â_{t+1},   R̂_t = Â_t + V(s_t)
//!
//! Every function here works on one completion's *real* tokens (length T, its `<eos>` included);
//! PAD positions are not part of the trajectory, so they get no reward, no advantage and no
//! return. `shape_batch` lays the results out on the padded [batch × max_len] grid with zeros
//! at PAD.

use super::kl::KlEstimator;

/// The per-token reward of one completion, with its parts kept for the rollout inspector.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapedRewards {
    /// Per-token KL estimate (k1: the log-ratio).
    pub kl: Vec<f32>,
    /// −β·kl_t: the dense KL penalty.
    pub non_score: Vec<f32>,
    /// non_score_t, plus the reward model's score at the last real token t = T − 1.
    pub rewards: Vec<f32>,
}

/// R_t for one completion. The score lands on the last real token (its `<eos>`, or its last
/// token if the length limit cut it), not one position later (TRL's off-by-one, trl#1893).
pub fn shaped_rewards(
    score: f32,
    logprobs: &[f32],
    ref_logprobs: &[f32],
    beta: f32,
    estimator: KlEstimator,
) -> ShapedRewards {
    assert_eq!(logprobs.len(), ref_logprobs.len());
    let kl: Vec<f32> =
        logprobs.iter().zip(ref_logprobs).map(|(&lp, &rlp)| estimator.per_token(lp, rlp)).collect();
    let non_score: Vec<f32> = kl.iter().map(|k| -beta * k).collect();
    let mut rewards = non_score.clone();
    if let Some(last) = rewards.last_mut() {
        *last += score;
    }
    ShapedRewards { kl, non_score, rewards }
}

/// The TD error δ_t = R_t + γ·V(s_{t+1}) − V(s_t), with V = 0 past the last real token.
pub fn td_errors(rewards: &[f32], values: &[f32], gamma: f32) -> Vec<f32> {
    assert_eq!(rewards.len(), values.len());
    (0..rewards.len())
        .map(|t| {
            let next_value = values.get(t + 1).copied().unwrap_or(0.0);
            rewards[t] + gamma * next_value - values[t]
        })
        .collect()
}

/// GAE by the page's backward recursion, Â_t = δ_t + γλ·Â_{t+1}, and the critic's targets
/// R̂_t = Â_t + V(s_t) (computed before any whitening of Â).
/// Names follow cleanrl/TRL (`lastgaelam`, `nextvalues`, `delta`).
pub fn gae(rewards: &[f32], values: &[f32], gamma: f32, lam: f32) -> (Vec<f32>, Vec<f32>) {
    assert_eq!(rewards.len(), values.len());
    let n = rewards.len();
    let mut advantages = vec![0.0; n];
    let mut lastgaelam = 0.0;
    for t in (0..n).rev() {
        let nextvalues = if t + 1 < n { values[t + 1] } else { 0.0 };
        let delta = rewards[t] + gamma * nextvalues - values[t];
        lastgaelam = delta + gamma * lam * lastgaelam;
        advantages[t] = lastgaelam;
    }
    let returns = advantages.iter().zip(values).map(|(a, v)| a + v).collect();
    (advantages, returns)
}

/// The n-step advantage Â_t^(n) = Σ_{l<n} γ^l r_{t+l} + γ^n V(s_{t+n}) − V(s_t), with the
/// bootstrap V = 0 once t + n passes the end (the episode is over).
pub fn n_step_advantage(rewards: &[f32], values: &[f32], gamma: f32, t: usize, n: usize) -> f32 {
    let end = (t + n).min(rewards.len());
    let mut sum = 0.0;
    let mut discount = 1.0;
    for reward in &rewards[t..end] {
        sum += discount * reward;
        discount *= gamma;
    }
    let bootstrap = values.get(t + n).copied().unwrap_or(0.0);
    sum + discount * bootstrap - values[t]
}

/// The page's definition of GAE, computed directly: the (1 − λ)λ^(n−1)-weighted average of every
/// n-step advantage. Past the end every Â^(n) equals the Monte-Carlo one, so the infinite tail
/// of weights, λ^(T−t−1), lands on it. The slow second formulation the recursion is tested
/// against.
pub fn gae_by_n_step_average(rewards: &[f32], values: &[f32], gamma: f32, lam: f32) -> Vec<f32> {
    let n_steps = rewards.len();
    (0..n_steps)
        .map(|t| {
            let horizon = n_steps - t;
            let mut total = 0.0;
            for n in 1..horizon {
                total += (1.0 - lam) * lam.powi(n as i32 - 1) * n_step_advantage(rewards, values, gamma, t, n);
            }
            total + lam.powi(horizon as i32 - 1) * n_step_advantage(rewards, values, gamma, t, horizon)
        })
        .collect()
}

/// One rollout batch on the padded grid: row b holds `lengths[b]` real tokens then PAD.
#[derive(Debug, Clone, PartialEq)]
pub struct ShapedBatch {
    pub kl: Vec<f32>,
    pub non_score: Vec<f32>,
    pub rewards: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
}

/// Shaped rewards, GAE and returns for every row; zeros at PAD. `width` is the grid's row length.
#[allow(clippy::too_many_arguments)]
pub fn shape_batch(
    scores: &[f32],
    logprobs: &[f32],
    ref_logprobs: &[f32],
    values: &[f32],
    lengths: &[usize],
    width: usize,
    beta: f32,
    estimator: KlEstimator,
    gamma: f32,
    lam: f32,
) -> ShapedBatch {
    let cells = lengths.len() * width;
    let mut out = ShapedBatch {
        kl: vec![0.0; cells],
        non_score: vec![0.0; cells],
        rewards: vec![0.0; cells],
        advantages: vec![0.0; cells],
        returns: vec![0.0; cells],
    };
    for (b, &len) in lengths.iter().enumerate() {
        let row = b * width..b * width + len;
        let shaped = shaped_rewards(scores[b], &logprobs[row.clone()], &ref_logprobs[row.clone()], beta, estimator);
        let (advantages, returns) = gae(&shaped.rewards, &values[row.clone()], gamma, lam);
        out.kl[row.clone()].copy_from_slice(&shaped.kl);
        out.non_score[row.clone()].copy_from_slice(&shaped.non_score);
        out.rewards[row.clone()].copy_from_slice(&shaped.rewards);
        out.advantages[row.clone()].copy_from_slice(&advantages);
        out.returns[row].copy_from_slice(&returns);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn score_lands_on_the_last_real_token_and_nothing_on_pad() {
        // Two rows of width 4: lengths 2 and 4. β = 0.1, k1.
        let logprobs = [-1.0, -2.0, 9.9, 9.9, -1.0, -1.0, -1.0, -1.0];
        let ref_logprobs = [-1.5, -2.0, 3.3, 3.3, -1.0, -1.0, -1.0, -0.5];
        let values = [0.0; 8];
        let b = shape_batch(&[2.0, -1.0], &logprobs, &ref_logprobs, &values, &[2, 4], 4, 0.1, KlEstimator::K1, 1.0, 0.95);
        // Row 0: kl [0.5, 0]; rewards [−0.05, 2.0]; PAD cells zero.
        assert!((b.rewards[0] + 0.05).abs() < 1e-6);
        assert!((b.rewards[1] - 2.0).abs() < 1e-6);
        assert_eq!(&b.rewards[2..4], &[0.0, 0.0]);
        assert_eq!(&b.kl[2..4], &[0.0, 0.0]);
        assert_eq!(&b.advantages[2..4], &[0.0, 0.0]);
        assert_eq!(&b.returns[2..4], &[0.0, 0.0]);
        // Row 1: score at index 3 (its last token), minus β·kl there (−0.5 → +0.05).
        assert!((b.rewards[7] - (-1.0 + 0.05)).abs() < 1e-6);
        assert_eq!(&b.rewards[4..7], &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn gae_by_hand_and_its_limits() {
        let rewards = [0.0, 0.0, 1.0];
        let values = [0.5, 0.6, 0.7];
        // λ = 0: one-step TD errors.
        let (adv, _) = gae(&rewards, &values, 0.9, 0.0);
        let td = td_errors(&rewards, &values, 0.9);
        for (a, d) in adv.iter().zip(&td) {
            assert!((a - d).abs() < 1e-6);
        }
        assert!((td[0] - (0.9 * 0.6 - 0.5)).abs() < 1e-6);
        // λ = 1: Monte-Carlo return minus the value.
        let (adv, ret) = gae(&rewards, &values, 0.9, 1.0);
        assert!((adv[0] - (0.81 - 0.5)).abs() < 1e-6);
        assert!((ret[0] - 0.81).abs() < 1e-6);
        assert!((ret[2] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn recursion_equals_the_weighted_average_of_n_step_advantages_on_random_data() {
        let mut rng = Rng::new(42);
        for _ in 0..200 {
            let n = 1 + rng.below(20);
            let rewards: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let values: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let gamma = 0.5 + 0.5 * rng.uniform();
            let lam = rng.uniform();
            let (fast, _) = gae(&rewards, &values, gamma, lam);
            let slow = gae_by_n_step_average(&rewards, &values, gamma, lam);
            for (f, s) in fast.iter().zip(&slow) {
                assert!((f - s).abs() < 1e-4 * (1.0 + s.abs()), "{f} vs {s} (γ={gamma}, λ={lam}, n={n})");
            }
        }
    }

    #[test]
    fn n_step_advantages_telescope_into_td_errors() {
        let rewards = [0.3, -0.2, 0.8, 0.1];
        let values = [0.1, 0.4, -0.3, 0.2];
        let gamma = 0.9f32;
        let td = td_errors(&rewards, &values, gamma);
        for n in 1..=4 {
            let direct = n_step_advantage(&rewards, &values, gamma, 0, n);
            let telescoped: f32 = (0..n).map(|l| gamma.powi(l as i32) * td[l]).sum();
            assert!((direct - telescoped).abs() < 1e-6, "n={n}");
        }
    }
}
