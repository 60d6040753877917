//! The GRPO/RLOO loss on tensors — the twin of `math::grpo`, which the tests hold it to.
//!
//! L = Σ_{i,t} w_i·ℓ_{i,t} over the real tokens of a minibatch, with
//! ℓ = −min(ρ·Â_i, clip(ρ, 1 − ε_low, 1 + ε_high)·Â_i) + β·k3 and w_i the aggregation's weight
//! (`math::grpo::LossType`). The weights are computed on the host for the whole minibatch, so the
//! loss of rows split across workers (`engine::data_parallel`) adds up to the minibatch's.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{completion_logprobs, float_tensor, int_tensor};
use crate::engine::data_parallel::{Shard, ShardTerms};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::Gpt;
use crate::error::{LabError, Result};
use crate::rlhf::task::{MAX_COMPLETION, SEQ_LEN};
use crate::rng::Rng;

/// The loss and the sums TRL's GRPOTrainer logs, each a [1]-tensor. Every term but the loss is a
/// sum over real tokens divided by the minibatch's count of them (`GrpoShard::tokens`).
pub struct GrpoTerms {
    pub loss: Tensor<1>,
    /// Mean k3 KL(π_θ‖π_ref) per token (`kl`).
    pub kl: Tensor<1>,
    /// Mean per-token entropy of π_θ (`entropy`).
    pub entropy: Tensor<1>,
    /// Shares of tokens clipped below (ρ < 1 − ε_low, Â < 0), above (ρ > 1 + ε_high, Â > 0) and
    /// either (`clip_ratio/low_mean`, `clip_ratio/high_mean`, `clip_ratio/region_mean`).
    pub clip_low: Tensor<1>,
    pub clip_high: Tensor<1>,
    pub clip_region: Tensor<1>,
}

impl GrpoTerms {
    /// The sums after the loss, in `UPDATE_METRICS` order (of `grpo.rs`).
    pub fn sums(&self) -> Vec<Tensor<1>> {
        [&self.kl, &self.entropy, &self.clip_low, &self.clip_high, &self.clip_region].map(|t| t.clone().detach().inner()).to_vec()
    }
}

/// Rows of one minibatch update on the host. Per-token arrays are row-major
/// [rows × MAX_COMPLETION], zero at PAD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrpoShard {
    /// Prompt and completion, SEQ_LEN token ids per row.
    pub sequences: Vec<Vec<u32>>,
    /// The sampled completion tokens, `<eos>` where PAD sits (masked).
    pub targets: Vec<Vec<u32>>,
    /// log π_θold at rollout time, and log π_ref (for k3).
    pub old_logprobs: Vec<f32>,
    pub ref_logprobs: Vec<f32>,
    /// Â_i of the row's completion at each of its real tokens.
    pub advantages: Vec<f32>,
    /// w_i at real tokens, 0 at PAD: the aggregation, over the whole minibatch.
    pub weights: Vec<f32>,
    /// 1 at real tokens, 0 at PAD.
    pub mask: Vec<f32>,
    /// Real tokens in the whole minibatch: the divisor of the logged means.
    pub tokens: f32,
    pub temperature: f32,
    pub epsilon_low: f32,
    pub epsilon_high: f32,
    pub beta: f32,
}

impl GrpoShard {
    pub fn rows_count(&self) -> usize {
        self.sequences.len()
    }

    /// These rows only (weights and the count of tokens stay the minibatch's).
    pub fn rows(&self, range: std::ops::Range<usize>) -> GrpoShard {
        let n = MAX_COMPLETION;
        let slots = |v: &[f32]| v[range.start * n..range.end * n].to_vec();
        GrpoShard {
            sequences: self.sequences[range.clone()].to_vec(),
            targets: self.targets[range.clone()].to_vec(),
            old_logprobs: slots(&self.old_logprobs),
            ref_logprobs: slots(&self.ref_logprobs),
            advantages: slots(&self.advantages),
            weights: slots(&self.weights),
            mask: slots(&self.mask),
            ..self.clone()
        }
    }

    /// Refuses rows a helper could not compute on a model of `vocab_size` tokens.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        let rows = self.rows_count();
        let slots = rows * MAX_COMPLETION;
        if rows == 0 || self.targets.len() != rows {
            return Err(LabError::InvalidInput(format!("a GRPO shard needs rows, and a target row for each (got {rows} and {})", self.targets.len())));
        }
        for (name, v) in [("old_logprobs", &self.old_logprobs), ("ref_logprobs", &self.ref_logprobs), ("advantages", &self.advantages), ("weights", &self.weights), ("mask", &self.mask)] {
            if v.len() != slots {
                return Err(LabError::InvalidInput(format!("a GRPO shard's {name} has {} values; its {rows} rows have {slots} slots", v.len())));
            }
        }
        let bad_ids = |rows: &[Vec<u32>], width: usize| rows.iter().any(|r| r.len() != width || r.iter().any(|&t| t as usize >= vocab_size));
        if bad_ids(&self.sequences, SEQ_LEN) || bad_ids(&self.targets, MAX_COMPLETION) {
            return Err(LabError::InvalidInput(format!("a GRPO shard's rows must be {SEQ_LEN} and {MAX_COMPLETION} token ids below {vocab_size}")));
        }
        let positive = |x: f32| x.is_finite() && x > 0.0;
        if !(self.tokens >= 1.0 && positive(self.temperature) && positive(self.epsilon_low) && positive(self.epsilon_high) && self.beta.is_finite() && self.beta >= 0.0) {
            return Err(LabError::InvalidInput("a GRPO shard needs a positive token count, temperature and clip ranges, and β ≥ 0".into()));
        }
        Ok(())
    }

    /// The loss's terms for these rows under the current π_θ.
    pub fn terms(&self, policy: &Gpt, device: &Device) -> GrpoTerms {
        let (b, n) = (self.rows_count(), MAX_COMPLETION);
        let t = |v: &[f32]| float_tensor(v.to_vec(), [b, n], device);
        let inputs = int_tensor(&self.sequences.concat(), b, SEQ_LEN, device).slice([0..b, 0..SEQ_LEN - 1]);
        let (new_logprobs, logits) = completion_logprobs(policy, inputs, int_tensor(&self.targets.concat(), b, n, device), self.temperature);
        grpo_terms(new_logprobs, super::ppo_loss::entropy(logits), &t(&self.old_logprobs), &t(&self.ref_logprobs), &t(&self.advantages), &t(&self.weights), &t(&self.mask), self)
    }
}

/// The terms from π_θ's log-probs and entropy ([rows, steps]) and the rollout's frozen arrays.
#[allow(clippy::too_many_arguments)]
pub fn grpo_terms(new_logprobs: Tensor<2>, entropy: Tensor<2>, old_logprobs: &Tensor<2>, ref_logprobs: &Tensor<2>, advantages: &Tensor<2>, weights: &Tensor<2>, mask: &Tensor<2>, shard: &GrpoShard) -> GrpoTerms {
    let n = shard.tokens.max(1.0);
    let masked_mean = |x: Tensor<2>| (x * mask.clone()).sum().div_scalar(n);
    // ρ = π_θ/π_θold from log-probs; PAD cells are 0 − 0 → ρ = 1 and weigh 0.
    let ratio = ((new_logprobs.clone() - old_logprobs.clone()) * mask.clone()).exp();
    let clipped = ratio.clone().clamp(1.0 - shard.epsilon_low, 1.0 + shard.epsilon_high);
    let mut per_token = (ratio.clone() * advantages.clone()).min_pair(clipped * advantages.clone()).neg();
    // k3 = π_ref/π_θ − log(π_ref/π_θ) − 1, with log(π_ref/π_θ) = log π_ref − log π_θ.
    let log_r = (ref_logprobs.clone() - new_logprobs) * mask.clone();
    let kl = log_r.clone().exp() - log_r - 1.0;
    if shard.beta != 0.0 {
        per_token = per_token + kl.clone().mul_scalar(shard.beta);
    }
    let loss = (per_token * weights.clone()).sum();
    let negative = advantages.clone().lower_elem(0.0).float();
    let positive = advantages.clone().greater_elem(0.0).float();
    let low = ratio.clone().lower_elem(1.0 - shard.epsilon_low).float() * negative;
    let high = ratio.greater_elem(1.0 + shard.epsilon_high).float() * positive;
    GrpoTerms {
        loss,
        kl: masked_mean(kl),
        entropy: masked_mean(entropy),
        clip_low: masked_mean(low.clone()),
        clip_high: masked_mean(high.clone()),
        clip_region: masked_mean(low + high),
    }
}

impl Shard for GrpoShard {
    type Model = Gpt;

    fn blank(config: &ModelConfig, device: &Device) -> Gpt {
        Gpt::new(config, &mut Rng::new(0), device)
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        GrpoShard::validate(self, config.vocab_size)
    }

    fn terms(&self, model: &Gpt, device: &Device) -> ShardTerms {
        let terms = GrpoShard::terms(self, model, device);
        ShardTerms { sums: terms.sums(), loss: terms.loss, per_token: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::math::grpo::{aggregate, token_loss, LossType};

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_data().iter::<f32>().next().unwrap()
    }

    #[test]
    fn the_tensor_loss_equals_its_host_twin_for_every_aggregation() {
        let device = Device::flex();
        // Two rows of 3 slots: lengths 3 and 2 (the last slot of row 2 is PAD).
        let n = 3;
        let lengths = [3usize, 2];
        let old = [-1.0, -2.0, -0.5, -3.0, -1.5, 0.0];
        let new = [-0.6, -2.5, -0.5, -2.0, -1.9, 0.0];
        let reference = [-1.2, -2.0, -0.7, -2.5, -1.5, 0.0];
        let adv = [0.8, 0.8, 0.8, -1.3, -1.3, 0.0];
        let mask = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0];
        let t = |v: &[f32]| Tensor::<2>::from_data(burn::tensor::TensorData::new(v.to_vec(), [2, n]), &device);
        let (lo, hi) = (0.2f32, 0.28f32);
        for loss_type in [LossType::Grpo, LossType::DrGrpo, LossType::Dapo] {
            for beta in [0.0f32, 0.1] {
                let weights: Vec<f32> = (0..6).map(|i| if mask[i] > 0.0 { loss_type.token_weight(lengths[i / n], &lengths, n) } else { 0.0 }).collect();
                let shard = GrpoShard {
                    sequences: vec![],
                    targets: vec![],
                    old_logprobs: vec![],
                    ref_logprobs: vec![],
                    advantages: vec![],
                    weights: vec![],
                    mask: vec![],
                    tokens: 5.0,
                    temperature: 1.0,
                    epsilon_low: lo,
                    epsilon_high: hi,
                    beta,
                };
                let terms = grpo_terms(t(&new), t(&[0.0; 6]), &t(&old), &t(&reference), &t(&adv), &t(&weights), &t(&mask), &shard);
                let host: Vec<_> = (0..6).map(|i| token_loss(new[i] - old[i], adv[i], lo, hi, beta, new[i], reference[i])).collect();
                let expected = aggregate(&host.iter().map(|h| h.loss).collect::<Vec<_>>(), &lengths, n, loss_type);
                assert!((scalar(terms.loss) - expected).abs() < 1e-5, "{loss_type:?} β={beta}");
                let real = |f: &dyn Fn(&crate::rlhf::math::grpo::TokenLoss) -> f32| (0..6).filter(|&i| mask[i] > 0.0).map(|i| f(&host[i])).sum::<f32>() / 5.0;
                assert!((scalar(terms.kl) - real(&|h| h.kl)).abs() < 1e-5);
                assert!((scalar(terms.clip_low) - real(&|h| f32::from(u8::from(h.low_clipped)))).abs() < 1e-6);
                assert!((scalar(terms.clip_high) - real(&|h| f32::from(u8::from(h.high_clipped)))).abs() < 1e-6);
            }
        }
        // The fixture clips something on each side: ρ = e^0.4 = 1.49 (Â > 0) and e^−0.4 = 0.67 (Â < 0).
        let host_low = token_loss(-0.4, -1.3, lo, hi, 0.0, 0.0, 0.0);
        let host_high = token_loss(0.4, 0.8, lo, hi, 0.0, 0.0, 0.0);
        assert!(host_low.low_clipped && host_high.high_clipped);
    }
}
