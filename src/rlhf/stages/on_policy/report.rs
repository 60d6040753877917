//! The names a run reports, as the trainer it follows names them: TRL's PPOTrainer (`objective/*`,
//! `loss/*`, `policy/*`, `val/*`) or GRPOTrainer (`reward`, `reward_std`, `kl`, `clip_ratio/*`,
//! `completions/*`), plus `gold`, the hidden utility, in both. The page's panels, the CLI's lines
//! and the comparison table read these names.

use super::recipe::Report;
use super::rollout::Rollout;
use crate::rlhf::math::kl::KlEstimator;
use crate::rlhf::math::stats::{explained_variance, mean};
use crate::rlhf::metrics::Metrics;
use crate::rlhf::task::MAX_COMPLETION;

/// A rollout's metrics.
pub(super) fn rollout_metrics(report: Report, r: &Rollout, iteration: usize, kl_coef: f64) -> Metrics {
    match report {
        Report::Ppo => ppo_rollout(r, iteration, kl_coef),
        Report::Grpo => grpo_rollout(r, iteration),
    }
}

fn ppo_rollout(r: &Rollout, iteration: usize, kl_coef: f64) -> Metrics {
    let n = MAX_COMPLETION;
    let mask = r.mask();
    let per_sequence = |v: &[f32]| -> Vec<f32> { (0..r.lengths.len()).map(|b| v[b * n..(b + 1) * n].iter().sum()).collect() };
    let kl = mean(&per_sequence(&r.kl));
    let non_score = mean(&per_sequence(&r.non_score));
    let neg_logprobs: Vec<f32> = r.logprobs.iter().map(|l| -l).collect();
    let (values, returns): (Vec<f32>, Vec<f32>) = r.values.iter().zip(&r.returns).zip(&mask).filter(|(_, m)| **m).map(|((v, ret), _)| (*v, *ret)).unzip();
    let scores = mean(&r.scores);
    let mut m = crate::rlhf::metrics::metrics([
        ("iteration", (iteration + 1) as f64),
        ("phase", 0.0),
        ("objective/scores", f64::from(scores)),
        ("objective/gold", f64::from(mean(&r.gold))),
        ("objective/kl", f64::from(kl)),
        ("objective/non_score_reward", f64::from(non_score)),
        ("objective/rlhf_reward", f64::from(scores + non_score)),
        ("objective/entropy", f64::from(mean(&per_sequence(&neg_logprobs)))),
        ("objective/kl_coef", kl_coef),
        ("val/mean_length", r.lengths.iter().sum::<usize>() as f64 / r.lengths.len() as f64),
        ("val/eos_fraction", r.completions.iter().filter(|c| c.ends()).count() as f64 / r.lengths.len() as f64),
    ]);
    let ev = explained_variance(&values, &returns);
    if ev.is_finite() {
        m.insert("val/explained_variance".into(), f64::from(ev));
    }
    m
}

/// TRL's rollout-side names: `reward` (the mean reward), `reward_std` (the mean of the groups'
/// stds), `frac_reward_zero_std` (groups with no spread), `kl` (mean per-token k3 to π_ref of the
/// sampling policy), `completions/*`; and `gold`, `kl/sequence` (k1 summed per completion, PPO's
/// `objective/kl`, for comparing the two).
fn grpo_rollout(r: &Rollout, iteration: usize) -> Metrics {
    let n = MAX_COMPLETION;
    let real_tokens: usize = r.lengths.iter().sum();
    let (mut k3, mut k1_per_sequence) = (0.0f64, Vec::with_capacity(r.lengths.len()));
    for (b, &len) in r.lengths.iter().enumerate() {
        let mut k1 = 0.0f32;
        for t in 0..len {
            let (lp, ref_lp) = (r.logprobs[b * n + t], r.ref_logprobs[b * n + t]);
            k3 += f64::from(KlEstimator::K3.per_token(lp, ref_lp));
            k1 += lp - ref_lp;
        }
        k1_per_sequence.push(k1);
    }
    let stds: Vec<f32> = r.groups.iter().map(|g| g.std).collect();
    let zero = r.groups.iter().filter(|g| g.zero_std).count();
    let count = r.lengths.len() as f64;
    crate::rlhf::metrics::metrics([
        ("iteration", (iteration + 1) as f64),
        ("phase", 0.0),
        ("reward", f64::from(mean(&r.scores))),
        ("reward_std", f64::from(mean(&stds))),
        ("frac_reward_zero_std", zero as f64 / r.groups.len() as f64),
        ("gold", f64::from(mean(&r.gold))),
        ("kl", k3 / real_tokens.max(1) as f64),
        ("kl/sequence", f64::from(mean(&k1_per_sequence))),
        ("completions/mean_length", real_tokens as f64 / count),
        ("completions/clipped_ratio", r.completions.iter().filter(|c| !c.ends()).count() as f64 / count),
    ])
}

/// What an update read back: the loss and the sums after it (all shards added), the gradient
/// norm, and (PPO's report) ρ per token of the minibatch's rows with their mask.
pub(super) struct UpdateReadback<'a> {
    pub sums: Vec<f32>,
    pub grad_norm: f32,
    pub ratios: &'a [f32],
    pub mask: &'a [f32],
}

/// An update's named values, which of them the iteration averages (`*_avg`), and approx KL
/// (for the early stop).
pub(super) struct Reported {
    pub values: Vec<(String, f64)>,
    pub averaged: Vec<String>,
    pub approx_kl: Option<f64>,
}

/// The update's values by name, or the name of the first that is not finite.
pub(super) fn update_values(report: Report, step: &UpdateReadback) -> Result<Reported, &'static str> {
    match report {
        Report::Ppo => {
            let real: Vec<bool> = step.mask.iter().map(|&m| m > 0.0).collect();
            let (ratio_mean, ratio_var) = crate::rlhf::math::ppo::ratio_moments(step.ratios, &real);
            let mut values = step.sums.clone();
            values.extend([ratio_mean, ratio_var, step.grad_norm]);
            let names = ["loss", "policy loss", "value loss", "entropy", "clip fraction", "value clip fraction", "approx KL", "ratio", "ratio variance", "gradient norm"];
            if let Some(quantity) = super::super::first_non_finite(&names, &values) {
                return Err(quantity);
            }
            const NAMES: [&str; 9] = ["loss/total", "loss/policy", "loss/value", "policy/entropy", "policy/clipfrac", "val/clipfrac", "policy/approxkl", "val/ratio", "val/ratio_var"];
            Ok(Reported {
                values: NAMES.iter().zip(&values).map(|(n, v)| (n.to_string(), f64::from(*v))).collect(),
                averaged: NAMES.iter().map(|n| n.to_string()).collect(),
                approx_kl: Some(f64::from(values[6])),
            })
        }
        Report::Grpo => {
            let mut values = step.sums.clone();
            values.push(step.grad_norm);
            let names = ["loss", "KL", "entropy", "low clip ratio", "high clip ratio", "clip ratio", "gradient norm"];
            if let Some(quantity) = super::super::first_non_finite(&names, &values) {
                return Err(quantity);
            }
            // The update's `kl` is π_θ's now, as it moves; the rollout's is the sampler's.
            const NAMES: [&str; 6] = ["loss", "kl/update", "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"];
            let mut averaged: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
            averaged.insert(1, "grad_norm".into());
            Ok(Reported { values: NAMES.iter().zip(&values).map(|(n, v)| (n.to_string(), f64::from(*v))).collect(), averaged, approx_kl: None })
        }
    }
}
