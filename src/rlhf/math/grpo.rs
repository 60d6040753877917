//! Group-relative policy optimization (GRPO, Shao et al. 2024) and REINFORCE leave-one-out
//! (RLOO, Ahmadian et al. 2024) on host numbers: no value model, the baseline of completion i is
//! the other completions of the same prompt.
//!
//! For a prompt x and G completions y_1..y_G scored r_1..r_G:
//!
//! ```text
//! GRPO      Â_i = (r_i − mean(r)) / (std(r) + 1e-4)      std with Bessel's correction, as torch
//! Dr. GRPO  Â_i =  r_i − mean(r)                          (no division: `scale_rewards` off)
//! RLOO      Â_i =  r_i − (Σ_j r_j − r_i) / (G − 1)        = G/(G − 1)·(r_i − mean(r))
//! REINFORCE Â_i =  r_i − mean over the whole batch         (the batch is the group)
//! ```
//!
//! and every token of completion i carries the same Â_i. The update is the clipped ratio of the
//! math page (`ratio`, `clip`) with a separate range below and above 1 (DAPO's "clip higher"):
//!
//! ```text
//! ℓ_{i,t} = −min(ρ_{i,t}·Â_i, clip(ρ_{i,t}, 1 − ε_low, 1 + ε_high)·Â_i) + β·k3_{i,t}
//! k3_{i,t} = π_ref/π_θ − log(π_ref/π_θ) − 1                  (per token, at the sampled token)
//! ```
//!
//! The loss is a weighted sum of ℓ over real tokens; the aggregation sets the weights
//! (`LossType`), and with them which lengths the gradient favours. The tensor twin that autodiff
//! differentiates is `stages/grpo_loss.rs`; the tests there hold it to these functions.

use serde::{Deserialize, Serialize};

use crate::rlhf::math::kl::KlEstimator;

/// Added to the group's standard deviation before dividing (TRL's 1e-4): a group whose rewards
/// are all equal has zero spread, and its advantages are then 0/1e-4 = 0, not NaN.
pub const STD_EPSILON: f32 = 1e-4;

/// How completion i's baseline is taken from its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// The group's mean, r_i included (GRPO; with `scale_rewards` off, Dr. GRPO).
    #[default]
    Grpo,
    /// The mean of the other G − 1 (RLOO): a baseline independent of y_i, so Â stays unbiased.
    Rloo,
    /// The mean of the whole batch (REINFORCE with a baseline): the trainer passes the batch as
    /// one group, so a completion needs no siblings of its own prompt.
    Reinforce,
}

/// One group's rewards reduced to advantages, with what the group inspector shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupAdvantages {
    pub advantages: Vec<f32>,
    /// mean(r) over the group.
    pub mean: f32,
    /// std(r) with Bessel's correction (G − 1 in the divisor), as torch's `std` and TRL.
    pub std: f32,
    /// The baseline each completion was compared with: the mean (GRPO) or the leave-one-out mean.
    pub baselines: Vec<f32>,
    /// All rewards equal: no signal, every advantage is 0 (counted in `frac_reward_zero_std`).
    pub zero_std: bool,
}

/// Â for one group of G ≥ 2 rewards.
pub fn group_advantages(rewards: &[f32], estimator: Estimator, scale_rewards: bool) -> GroupAdvantages {
    let g = rewards.len();
    assert!(g >= 2, "a group has at least 2 completions");
    let sum: f32 = rewards.iter().sum();
    let mean = sum / g as f32;
    // Equal rewards are tested as such: their mean rounds (eight 0.7s average to 0.70000005), so
    // the std computed from it is ~6e-8, not the 0 that TRL's isclose(std, 0) would count.
    let zero_std = rewards.iter().all(|r| *r == rewards[0]);
    let std = if zero_std { 0.0 } else { (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f32>() / (g - 1) as f32).sqrt() };
    let baselines: Vec<f32> = match estimator {
        Estimator::Grpo | Estimator::Reinforce => vec![mean; g],
        Estimator::Rloo => rewards.iter().map(|r| (sum - r) / (g - 1) as f32).collect(),
    };
    let scale = if scale_rewards { std + STD_EPSILON } else { 1.0 };
    let advantages = rewards.iter().zip(&baselines).map(|(r, b)| if zero_std { 0.0 } else { (r - b) / scale }).collect();
    GroupAdvantages { advantages, mean, std, baselines, zero_std }
}

/// How per-token losses become the batch's loss: L = Σ_{i,t} w_i·ℓ_{i,t} over real tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// w_i = 1/(B·|y_i|): each sequence's mean, then the mean over sequences (the GRPO paper).
    /// A token of a short completion weighs more than one of a long one: a positive Â pushes
    /// short answers harder, and a negative Â is diluted over a long one — so long, wrong
    /// answers are penalized least per token (the length bias Dr. GRPO points out).
    #[default]
    Grpo,
    /// w_i = 1/(B·N_max), N_max the completion limit: a constant divisor (Dr. GRPO). Every token
    /// weighs the same whatever its completion's length or the batch's: no length bias.
    DrGrpo,
    /// w_i = 1/Σ_j |y_j|: the mean over every real token of the batch (DAPO). Every token weighs
    /// the same within a batch; a batch of long completions takes smaller steps per token.
    Dapo,
}

impl LossType {
    /// The weight of each token of a completion of `length` real tokens, in a batch of `lengths`
    /// with completions of at most `max_length` tokens.
    pub fn token_weight(self, length: usize, lengths: &[usize], max_length: usize) -> f32 {
        let rows = lengths.len().max(1) as f32;
        match self {
            Self::Grpo => 1.0 / (rows * length.max(1) as f32),
            Self::DrGrpo => 1.0 / (rows * max_length as f32),
            Self::Dapo => 1.0 / lengths.iter().sum::<usize>().max(1) as f32,
        }
    }
}

/// The aggregated loss of per-token losses `per_token` (row-major [rows × max_length], only the
/// first `lengths[i]` of row i real).
pub fn aggregate(per_token: &[f32], lengths: &[usize], max_length: usize, loss_type: LossType) -> f32 {
    lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let w = loss_type.token_weight(len, lengths, max_length);
            per_token[i * max_length..i * max_length + len].iter().map(|l| w * l).sum::<f32>()
        })
        .sum()
}

/// One token's loss ℓ and where its ratio sits, as TRL's GRPOTrainer computes and counts them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenLoss {
    pub loss: f32,
    /// ρ < 1 − ε_low with Â < 0: the objective is flat below (`clip_ratio/low_mean`).
    pub low_clipped: bool,
    /// ρ > 1 + ε_high with Â > 0: flat above (`clip_ratio/high_mean`).
    pub high_clipped: bool,
    /// The k3 estimate of KL(π_θ‖π_ref) at this token.
    pub kl: f32,
}

/// ℓ for one token: `log_ratio` = log π_θ − log π_θold, `logprob` and `ref_logprob` under π_θ
/// and π_ref (for the k3 penalty, added only when β ≠ 0).
pub fn token_loss(log_ratio: f32, advantage: f32, epsilon_low: f32, epsilon_high: f32, beta: f32, logprob: f32, ref_logprob: f32) -> TokenLoss {
    let ratio = log_ratio.exp();
    let clipped = ratio.clamp(1.0 - epsilon_low, 1.0 + epsilon_high);
    let kl = KlEstimator::K3.per_token(logprob, ref_logprob);
    let mut loss = -(ratio * advantage).min(clipped * advantage);
    if beta != 0.0 {
        loss += beta * kl;
    }
    TokenLoss { loss, low_clipped: ratio < 1.0 - epsilon_low && advantage < 0.0, high_clipped: ratio > 1.0 + epsilon_high && advantage > 0.0, kl }
}

/// GSPO's importance ratio of one completion: s_i = exp(mean_t log ρ_{i,t}) over its real tokens,
/// the geometric mean of the token ratios (Zheng et al. 2025). It is clipped, and multiplies Â_i,
/// at every token of the completion as one number.
pub fn sequence_log_ratio(log_ratios: &[f32]) -> f32 {
    log_ratios.iter().sum::<f32>() / log_ratios.len().max(1) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reinforce_is_the_batch_mean_baseline_and_gspo_the_geometric_mean() {
        // Rewards 1, 2, 6 as one batch: mean 3, Â = r − 3 unscaled.
        let g = group_advantages(&[1.0, 2.0, 6.0], Estimator::Reinforce, false);
        assert_eq!(g.advantages, vec![-2.0, -1.0, 3.0]);
        assert_eq!(g.baselines, vec![3.0; 3]);
        // Token ratios 2, 0.5, 1: the geometric mean is 1 (log ratios ln 2, −ln 2, 0 average 0).
        let s = sequence_log_ratio(&[2f32.ln(), 0.5f32.ln(), 0.0]).exp();
        assert!((s - 1.0).abs() < 1e-6);
        // Ratios 1.1 and 1.21: s = √(1.1·1.21) = 1.1·√1.1 = 1.153690.
        let s = sequence_log_ratio(&[1.1f32.ln(), 1.21f32.ln()]).exp();
        assert!((s - 1.153_690).abs() < 1e-5, "{s}");
    }

    fn close(a: f32, b: f32) -> bool {
        (a - b).abs() < 1e-5
    }

    #[test]
    fn grpo_advantages_by_hand() {
        // r = (1, 2, 3, 6): mean 3, Σ(r − 3)² = 4 + 1 + 0 + 9 = 14, std = √(14/3) = 2.160247.
        let g = group_advantages(&[1.0, 2.0, 3.0, 6.0], Estimator::Grpo, true);
        assert!(close(g.mean, 3.0) && close(g.std, 2.160_247));
        let s = 2.160_247 + 1e-4;
        for (a, e) in g.advantages.iter().zip([-2.0 / s, -1.0 / s, 0.0, 3.0 / s]) {
            assert!(close(*a, e), "{a} vs {e}");
        }
        assert!(!g.zero_std);
        // Dr. GRPO: r − mean, unscaled.
        let g = group_advantages(&[1.0, 2.0, 3.0, 6.0], Estimator::Grpo, false);
        assert_eq!(g.advantages, vec![-2.0, -1.0, 0.0, 3.0]);
        // The advantages of a group sum to zero, scaled or not.
        assert!(g.advantages.iter().sum::<f32>().abs() < 1e-6);
    }

    #[test]
    fn rloo_advantages_by_hand() {
        // Leave-one-out baselines: (2+3+6)/3 = 11/3, (1+3+6)/3 = 10/3, (1+2+6)/3 = 3, (1+2+3)/3 = 2.
        let g = group_advantages(&[1.0, 2.0, 3.0, 6.0], Estimator::Rloo, false);
        for (b, e) in g.baselines.iter().zip([11.0 / 3.0, 10.0 / 3.0, 3.0, 2.0]) {
            assert!(close(*b, e));
        }
        for (a, e) in g.advantages.iter().zip([1.0 - 11.0 / 3.0, 2.0 - 10.0 / 3.0, 0.0, 4.0]) {
            assert!(close(*a, e), "{a} vs {e}");
        }
        // = G/(G − 1)·(r − mean): the leave-one-out baseline rescales GRPO's unscaled advantage.
        let dr = group_advantages(&[1.0, 2.0, 3.0, 6.0], Estimator::Grpo, false);
        for (a, d) in g.advantages.iter().zip(&dr.advantages) {
            assert!(close(*a, d * 4.0 / 3.0));
        }
        // G = 2: each is compared with the other alone.
        let pair = group_advantages(&[0.5, -0.5], Estimator::Rloo, false);
        assert_eq!(pair.advantages, vec![1.0, -1.0]);
    }

    #[test]
    fn a_group_of_equal_rewards_has_zero_advantage_and_no_nan() {
        for estimator in [Estimator::Grpo, Estimator::Rloo] {
            for scale in [true, false] {
                let g = group_advantages(&[0.7; 8], estimator, scale);
                assert!(g.zero_std, "{estimator:?} {scale}");
                assert_eq!(g.std, 0.0);
                assert!(g.advantages.iter().all(|a| *a == 0.0), "{estimator:?} {scale}: {:?}", g.advantages);
            }
        }
    }

    #[test]
    fn the_three_aggregations_by_hand() {
        // Two completions of lengths 1 and 3 in slots of 4; ℓ = (2 | 1, 2, 3), PAD cells ignored.
        let per_token = [2.0, 99.0, 99.0, 99.0, 1.0, 2.0, 3.0, 99.0];
        let lengths = [1, 3];
        // grpo: mean of the sequences' means = (2/1 + 6/3)/2 = 2.
        assert!(close(aggregate(&per_token, &lengths, 4, LossType::Grpo), 2.0));
        // dr_grpo: Σℓ/(B·N_max) = 8/(2·4) = 1.
        assert!(close(aggregate(&per_token, &lengths, 4, LossType::DrGrpo), 1.0));
        // dapo: Σℓ/Σ|y| = 8/4 = 2 — the same here, but weighted per token, not per sequence:
        let per_token = [4.0, 99.0, 99.0, 99.0, 1.0, 1.0, 1.0, 99.0];
        assert!(close(aggregate(&per_token, &lengths, 4, LossType::Grpo), (4.0 + 1.0) / 2.0));
        assert!(close(aggregate(&per_token, &lengths, 4, LossType::Dapo), 7.0 / 4.0));
        // The length bias of grpo: a token of the 1-token completion weighs 3× one of the 3-token one.
        let w = |len| LossType::Grpo.token_weight(len, &lengths, 4);
        assert!(close(w(1) / w(3), 3.0));
        assert_eq!(LossType::DrGrpo.token_weight(1, &lengths, 4), LossType::DrGrpo.token_weight(3, &lengths, 4));
    }

    #[test]
    fn the_asymmetric_clip_by_hand() {
        let (lo, hi) = (0.2, 0.28);
        // ρ = 1.25, Â = 1: inside 1 + 0.28, unclipped: ℓ = −1.25.
        let t = token_loss(1.25f32.ln(), 1.0, lo, hi, 0.0, -1.0, -1.0);
        assert!(close(t.loss, -1.25) && !t.high_clipped && !t.low_clipped);
        // ρ = 1.5, Â = 1: clipped at 1.28 (a symmetric ε = 0.2 would clip at 1.2).
        let t = token_loss(1.5f32.ln(), 1.0, lo, hi, 0.0, -1.0, -1.0);
        assert!(close(t.loss, -1.28) && t.high_clipped);
        // ρ = 0.7, Â = −2: clipped at 0.8: ℓ = −min(−1.4, −1.6) = 1.6.
        let t = token_loss(0.7f32.ln(), -2.0, lo, hi, 0.0, -1.0, -1.0);
        assert!(close(t.loss, 1.6) && t.low_clipped && !t.high_clipped);
        // ρ = 0.7, Â = +2: below the range with a positive advantage: not flat, ℓ = −1.4.
        let t = token_loss(0.7f32.ln(), 2.0, lo, hi, 0.0, -1.0, -1.0);
        assert!(close(t.loss, -1.4) && !t.low_clipped);
        // ρ = 1.5, Â = −1: above with a negative advantage: unclipped, ℓ = 1.5.
        let t = token_loss(1.5f32.ln(), -1.0, lo, hi, 0.0, -1.0, -1.0);
        assert!(close(t.loss, 1.5) && !t.high_clipped);
    }

    #[test]
    fn the_k3_penalty_adds_only_with_beta() {
        // log π_θ = −1, log π_ref = −1.5: k3 = e^−0.5 + 0.5 − 1 = 0.106531.
        let free = token_loss(0.0, 1.0, 0.2, 0.2, 0.0, -1.0, -1.5);
        assert!(close(free.kl, 0.106_531) && close(free.loss, -1.0));
        let leashed = token_loss(0.0, 1.0, 0.2, 0.2, 0.04, -1.0, -1.5);
        assert!(close(leashed.loss, -1.0 + 0.04 * 0.106_531));
    }
}
