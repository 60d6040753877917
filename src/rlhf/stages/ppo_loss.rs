//! The PPO loss on tensors — the twin of `math::ppo`, which the tests hold it to.
//!
//! L_PPO = E_t[ −L^CLIP_t + c1·L^VF_t − c2·S[π_θ](s_t) ] over the real tokens of a minibatch,
//! with TRL's clipped value loss L^VF = ½·max((V − R̂)², (V_clip − R̂)²).
//!
//! A minibatch's rows on the host (`PpoShard`) are what the loss is taken over, whole in the
//! trainer (`ppo.rs`) or a share of them in a helper worker (`engine::data_parallel`).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::{completion_logprobs, float_tensor, int_tensor};
use crate::engine::data_parallel::{Shard, ShardTerms};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::{Gpt, ScalarModel};
use crate::error::{LabError, Result};
use crate::rlhf::task::{MAX_COMPLETION, PROMPT_LEN, SEQ_LEN};
use crate::rng::Rng;

/// The two trained models, updated together by one optimizer on one loss.
#[derive(Module, Debug)]
pub struct PolicyAndValue {
    pub policy: Gpt,
    pub value: ScalarModel,
}

impl PolicyAndValue {
    /// Two models of `config`'s shape, for a helper to load θ into: only the structure counts.
    pub fn with_shape(config: &crate::engine::model::config::ModelConfig, device: &Device) -> Self {
        let trunk = || Gpt::new(config, &mut Rng::new(0), device);
        Self { policy: trunk(), value: ScalarModel::from_trunk(trunk(), device) }
    }
}

/// Rollout quantities of a minibatch, frozen during the update. All [rows, steps], zeros at PAD.
pub struct MinibatchTargets {
    pub old_logprobs: Tensor<2>,
    pub advantages: Tensor<2>,
    pub returns: Tensor<2>,
    pub old_values: Tensor<2>,
    /// 1 at real tokens, 0 at PAD.
    pub mask: Tensor<2>,
    /// Number of real tokens (the mask's sum, known on the host).
    pub tokens: f32,
}

/// Each term of the loss (scalars as [1]-tensors) and the per-token ratio ρ for the views.
///
/// Every scalar is a sum over real tokens divided by `MinibatchTargets::tokens`: for rows split
/// across workers (`engine::data_parallel`) with the whole minibatch's count, the shards' terms add up to the
/// minibatch's. ρ's mean and variance are not such sums; they are taken on the host from ρ
/// (`math::ppo::ratio_moments`).
pub struct PpoTerms {
    pub loss: Tensor<1>,
    pub pg_loss: Tensor<1>,
    pub vf_loss: Tensor<1>,
    pub entropy: Tensor<1>,
    pub pg_clipfrac: Tensor<1>,
    pub vf_clipfrac: Tensor<1>,
    pub approx_kl: Tensor<1>,
    pub ratio: Tensor<2>,
}

impl PpoTerms {
    /// The terms that are sums over tokens, in `UPDATE_METRICS` order: loss, policy loss, value
    /// loss, entropy, clip fraction, value clip fraction, approx KL.
    pub fn sums(&self) -> Vec<Tensor<1>> {
        [&self.loss, &self.pg_loss, &self.vf_loss, &self.entropy, &self.pg_clipfrac, &self.vf_clipfrac, &self.approx_kl].map(|t| t.clone().detach().inner()).to_vec()
    }
}

fn masked_mean(x: Tensor<2>, mask: &Tensor<2>, n: f32) -> Tensor<1> {
    (x * mask.clone()).sum().div_scalar(n)
}

/// The loss of one minibatch.
///
/// # Shapes
/// - `new_logprobs`, `values`, `entropy`: [rows, steps] under the current π_θ and V_ψ
pub fn ppo_terms(
    new_logprobs: Tensor<2>,
    values: Tensor<2>,
    entropy: Tensor<2>,
    targets: &MinibatchTargets,
    cliprange: f32,
    cliprange_value: f32,
    vf_coef: f32,
    ent_coef: f32,
) -> PpoTerms {
    let mask = &targets.mask;
    let n = targets.tokens.max(1.0);
    // ρ_t = π_θ/π_θold, from log-probs; PAD cells are 0 − 0 → ρ = 1 and masked anyway.
    let log_ratio = (new_logprobs - targets.old_logprobs.clone()) * mask.clone();
    let ratio = log_ratio.clone().exp();
    // −L^CLIP, as TRL writes it: pg_losses = −Â·ρ, pg_losses2 = −Â·clip(ρ, 1 − ε, 1 + ε).
    let pg_losses = targets.advantages.clone().neg() * ratio.clone();
    let pg_losses2 = targets.advantages.clone().neg() * ratio.clone().clamp(1.0 - cliprange, 1.0 + cliprange);
    let pg_loss = masked_mean(pg_losses.clone().max_pair(pg_losses2.clone()), mask, n);
    let pg_clipfrac = masked_mean(pg_losses2.greater(pg_losses).float(), mask, n);
    // Value loss, clipped around the rollout's values: clip(V, V_old − ε_v, V_old + ε_v), which
    // is V itself inside the band (`math::ppo::value_loss` says why that matters).
    let v_clipped = values.clone().max_pair(targets.old_values.clone().sub_scalar(cliprange_value)).min_pair(targets.old_values.clone().add_scalar(cliprange_value));
    let vf_losses1 = (values - targets.returns.clone()).square();
    let vf_losses2 = (v_clipped - targets.returns.clone()).square();
    let vf_loss = masked_mean(vf_losses1.clone().max_pair(vf_losses2.clone()), mask, n).mul_scalar(0.5);
    let vf_clipfrac = masked_mean(vf_losses2.greater(vf_losses1).float(), mask, n);
    let entropy = masked_mean(entropy, mask, n);
    let loss = pg_loss.clone() + vf_loss.clone().mul_scalar(vf_coef) - entropy.clone().mul_scalar(ent_coef);
    let approx_kl = masked_mean(log_ratio.square(), mask, n).mul_scalar(0.5);
    PpoTerms { loss, pg_loss, vf_loss, entropy, pg_clipfrac, vf_clipfrac, approx_kl, ratio }
}

/// Rows of one minibatch update on the host: what `ppo_terms` needs besides the two models.
/// The trainer builds it for the whole minibatch; a split update (`engine::data_parallel`) hands a helper
/// its rows (`rows`), with `tokens` still the whole minibatch's count. Per-token arrays are
/// row-major [rows × MAX_COMPLETION], zero at PAD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PpoShard {
    /// Prompt and completion, SEQ_LEN token ids per row.
    pub sequences: Vec<Vec<u32>>,
    /// The sampled completion tokens, `<eos>` where PAD sits (masked).
    pub targets: Vec<Vec<u32>>,
    pub old_logprobs: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
    pub old_values: Vec<f32>,
    /// 1 at real tokens, 0 at PAD.
    pub mask: Vec<f32>,
    /// Real tokens in the whole minibatch: every term's divisor.
    pub tokens: f32,
    pub temperature: f32,
    pub cliprange: f32,
    pub cliprange_value: f32,
    pub vf_coef: f32,
    pub ent_coef: f32,
}

impl PpoShard {
    pub fn rows_count(&self) -> usize {
        self.sequences.len()
    }

    /// These rows only (the count of tokens stays the minibatch's).
    pub fn rows(&self, range: std::ops::Range<usize>) -> PpoShard {
        let n = MAX_COMPLETION;
        let slots = |v: &[f32]| v[range.start * n..range.end * n].to_vec();
        PpoShard {
            sequences: self.sequences[range.clone()].to_vec(),
            targets: self.targets[range.clone()].to_vec(),
            old_logprobs: slots(&self.old_logprobs),
            advantages: slots(&self.advantages),
            returns: slots(&self.returns),
            old_values: slots(&self.old_values),
            mask: slots(&self.mask),
            ..self.clone()
        }
    }

    /// Refuses rows a helper could not compute on a model of `vocab_size` tokens.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        let rows = self.rows_count();
        let slots = rows * MAX_COMPLETION;
        if rows == 0 || self.targets.len() != rows {
            return Err(LabError::InvalidInput(format!("a PPO shard needs rows, and a target row for each (got {rows} and {})", self.targets.len())));
        }
        for (name, v) in [("old_logprobs", &self.old_logprobs), ("advantages", &self.advantages), ("returns", &self.returns), ("old_values", &self.old_values), ("mask", &self.mask)] {
            if v.len() != slots {
                return Err(LabError::InvalidInput(format!("a PPO shard's {name} has {} values; its {rows} rows have {slots} slots", v.len())));
            }
        }
        let bad_ids = |rows: &[Vec<u32>], width: usize| rows.iter().any(|r| r.len() != width || r.iter().any(|&t| t as usize >= vocab_size));
        if bad_ids(&self.sequences, SEQ_LEN) || bad_ids(&self.targets, MAX_COMPLETION) {
            return Err(LabError::InvalidInput(format!("a PPO shard's rows must be {SEQ_LEN} and {MAX_COMPLETION} token ids below {vocab_size}")));
        }
        if self.tokens.is_nan() || self.tokens < 1.0 || self.temperature.is_nan() || self.temperature <= 0.0 {
            return Err(LabError::InvalidInput("a PPO shard needs a positive token count and temperature".into()));
        }
        Ok(())
    }

    /// L_PPO's terms for these rows under the current π_θ and V_ψ (`ppo_loss.rs`).
    pub fn terms(&self, model: &PolicyAndValue, device: &Device) -> PpoTerms {
        let (b, n) = (self.rows_count(), MAX_COMPLETION);
        let sequences: Vec<u32> = self.sequences.concat();
        let targets: Vec<u32> = self.targets.concat();
        let inputs = int_tensor(&sequences, b, SEQ_LEN, device).slice([0..b, 0..SEQ_LEN - 1]);
        let minibatch_targets = MinibatchTargets {
            old_logprobs: float_tensor(self.old_logprobs.clone(), [b, n], device),
            advantages: float_tensor(self.advantages.clone(), [b, n], device),
            returns: float_tensor(self.returns.clone(), [b, n], device),
            old_values: float_tensor(self.old_values.clone(), [b, n], device),
            mask: float_tensor(self.mask.clone(), [b, n], device),
            tokens: self.tokens,
        };
        let (new_logprobs, logits) = completion_logprobs(&model.policy, inputs.clone(), int_tensor(&targets, b, n, device), self.temperature);
        let values = completion_values(&model.value, inputs);
        ppo_terms(new_logprobs, values, entropy(logits), &minibatch_targets, self.cliprange, self.cliprange_value, self.vf_coef, self.ent_coef)
    }
}

impl Shard for PpoShard {
    type Model = PolicyAndValue;

    fn blank(config: &ModelConfig, device: &Device) -> PolicyAndValue {
        PolicyAndValue::with_shape(config, device)
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        PpoShard::validate(self, config.vocab_size)
    }

    /// Sums: `PpoTerms::sums` (the loss first); per token: each slot's ρ.
    fn terms(&self, model: &PolicyAndValue, device: &Device) -> ShardTerms {
        let terms = PpoShard::terms(self, model, device);
        let slots = self.rows_count() * MAX_COMPLETION;
        let sums = terms.sums()[1..].to_vec();
        ShardTerms { loss: terms.loss, sums, per_token: Some(terms.ratio.detach().inner().reshape([slots])) }
    }
}

/// V(s_t) for every completion slot: the value head at the position that predicts token t.
pub(super) fn completion_values(model: &ScalarModel, inputs: Tensor<2, Int>) -> Tensor<2> {
    let [rows, _] = inputs.dims();
    model.forward(inputs).slice([0..rows, PROMPT_LEN - 1..SEQ_LEN - 1])
}

/// Per-token entropy of softmax(logits): −Σ p·log p, with p = exp(log softmax(z)), so that one
/// log-softmax (one autodiff node) serves both factors.
pub(super) fn entropy(logits: Tensor<3>) -> Tensor<2> {
    let [rows, steps, _] = logits.dims();
    let logp = crate::engine::layers::log_softmax(logits);
    (logp.clone().exp() * logp).sum_dim(2).neg().reshape([rows, steps])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::math::ppo::{policy_loss, surrogate_slope, value_loss};

    fn t2(values: &[f32], rows: usize, device: &Device) -> Tensor<2> {
        Tensor::from_data(burn::tensor::TensorData::new(values.to_vec(), [rows, values.len() / rows]), device)
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_data().iter::<f32>().next().unwrap()
    }

    #[test]
    fn the_tensor_loss_equals_its_host_twin() {
        let device = Device::flex();
        let old = [-1.0, -2.0, -0.5, -3.0, -1.5, 0.0];
        let new = [-0.6, -2.5, -0.5, -2.0, -1.4, 0.0];
        let adv = [1.0, -1.0, 0.3, 2.0, -0.7, 0.0];
        let ret = [0.5, 0.2, -0.1, 1.0, 0.0, 0.0];
        let old_v = [0.1, 0.0, 0.2, 0.4, -0.3, 0.0];
        let v = [0.5, 0.1, 0.1, 0.9, -0.2, 0.0];
        let mask = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0];
        let targets = MinibatchTargets {
            old_logprobs: t2(&old, 2, &device),
            advantages: t2(&adv, 2, &device),
            returns: t2(&ret, 2, &device),
            old_values: t2(&old_v, 2, &device),
            mask: t2(&mask, 2, &device),
            tokens: 5.0,
        };
        let terms = ppo_terms(t2(&new, 2, &device), t2(&v, 2, &device), t2(&[0.0; 6], 2, &device), &targets, 0.2, 0.2, 0.1, 0.0);
        let (mut pg, mut clip, mut vf, mut vclip) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..5 {
            let (l, c) = policy_loss(new[i] - old[i], adv[i], 0.2);
            pg += l / 5.0;
            clip += f32::from(c) / 5.0;
            let (l, c) = value_loss(v[i], old_v[i], ret[i], 0.2);
            vf += l / 5.0;
            vclip += f32::from(c) / 5.0;
        }
        assert!((scalar(terms.pg_loss) - pg).abs() < 1e-5);
        assert!((scalar(terms.pg_clipfrac) - clip).abs() < 1e-6);
        assert!((scalar(terms.vf_loss) - vf).abs() < 1e-5);
        assert!((scalar(terms.vf_clipfrac) - vclip).abs() < 1e-6);
        assert!((scalar(terms.loss) - (pg + 0.1 * vf)).abs() < 1e-5);
    }

    #[test]
    fn the_surrogate_gradient_is_zero_exactly_where_the_page_says_it_flattens() {
        let device = Device::flex().autodiff();
        let epsilon = 0.2f32;
        // Ratios on both sides of the clip range, with positive and negative advantages.
        let ratios = [0.5f32, 0.79, 0.81, 1.0, 1.19, 1.21, 1.6];
        for &adv in &[1.5f32, -1.5] {
            let n = ratios.len();
            let log_ratio: Vec<f32> = ratios.iter().map(|r| r.ln()).collect();
            let new = Tensor::<2>::from_data(burn::tensor::TensorData::new(log_ratio, [1, n]), &device).require_grad();
            let targets = MinibatchTargets {
                old_logprobs: Tensor::zeros([1, n], &device),
                advantages: Tensor::full([1, n], adv, &device),
                returns: Tensor::zeros([1, n], &device),
                old_values: Tensor::zeros([1, n], &device),
                mask: Tensor::ones([1, n], &device),
                tokens: n as f32,
            };
            let terms = ppo_terms(new.clone(), Tensor::zeros([1, n], &device), Tensor::zeros([1, n], &device), &targets, epsilon, 0.2, 0.0, 0.0);
            let grads = terms.pg_loss.backward();
            let grad: Vec<f32> = new.grad(&grads).unwrap().into_data().iter::<f32>().collect();
            for (i, &r) in ratios.iter().enumerate() {
                // d(−L^CLIP/n)/d log ρ = −slope·ρ/n.
                let expected = -surrogate_slope(r, adv, epsilon) * r / n as f32;
                assert!((grad[i] - expected).abs() < 1e-6, "ρ={r} Â={adv}: {} vs {expected}", grad[i]);
                let flat = (adv > 0.0 && r > 1.0 + epsilon) || (adv < 0.0 && r < 1.0 - epsilon);
                assert_eq!(grad[i] == 0.0, flat, "ρ={r} Â={adv}");
            }
        }
    }
}
