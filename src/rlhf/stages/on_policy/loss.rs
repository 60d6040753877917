//! The on-policy loss on tensors — the twin of `math::ppo` and `math::grpo`, which the tests hold
//! it to. One function for every recipe; the choices (`recipe.rs`) switch its parts:
//!
//! ```text
//! ρ_{i,t} = π_θ/π_old per token, or s_i = exp(mean_t log ρ_{i,t}) per completion (GSPO)
//! ℓ_{i,t} = −min(ρ·Â, clip(ρ, 1 − ε_low, 1 + ε_high)·Â)  [+ β·k3_{i,t}: the KL in the loss]
//! L       = agg(ℓ)  [+ c1·½·max((V − R̂)², (V_clip − R̂)²): the critic]  [− c2·S: the bonus]
//! ```
//!
//! with agg the mean over real tokens (PPO) or Σ w_i·ℓ_{i,t} (`math::grpo::LossType`). −min(ρÂ, cÂ)
//! is exactly TRL's PPO max(−Âρ, −Âc): negation and products are exact in IEEE arithmetic.
//! A minibatch's rows on the host (`Minibatch`) are what the loss is taken over, whole in the
//! trainer or a share of them in a helper worker (`engine::data_parallel`).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::super::{completion_logprobs, float_tensor, int_tensor};
use super::recipe::RatioLevel;
use crate::engine::data_parallel::{Shard, ShardTerms};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::{Gpt, ScalarModel};
use crate::error::{LabError, Result};
use crate::rlhf::task::{MAX_COMPLETION, PROMPT_LEN, SEQ_LEN};
use crate::rng::Rng;

/// The two models PPO trains, updated together by one optimizer on one loss.
#[derive(Module, Debug)]
pub struct PolicyAndValue {
    pub policy: Gpt,
    pub value: ScalarModel,
}

impl PolicyAndValue {
    /// Two models of `config`'s shape, for a helper to load θ into: only the structure counts.
    pub fn with_shape(config: &ModelConfig, device: &Device) -> Self {
        let trunk = || Gpt::new(config, &mut Rng::new(0), device);
        Self { policy: trunk(), value: ScalarModel::from_trunk(trunk(), device) }
    }
}

/// What a trainer trains: π_θ alone, or π_θ with its critic V_ψ.
pub trait Trained: Module + Clone {
    /// A minibatch's share as a helper worker computes it, on a model like this one.
    type Shard: Shard<Model = Self>;
    fn shard(minibatch: Minibatch) -> Self::Shard;
    fn policy(&self) -> &Gpt;
    fn critic(&self) -> Option<&ScalarModel>;
    fn blank(config: &ModelConfig, device: &Device) -> Self;
}

impl Trained for Gpt {
    type Shard = GrpoShard;
    fn shard(minibatch: Minibatch) -> GrpoShard {
        GrpoShard(minibatch)
    }
    fn policy(&self) -> &Gpt {
        self
    }
    fn critic(&self) -> Option<&ScalarModel> {
        None
    }
    fn blank(config: &ModelConfig, device: &Device) -> Self {
        Gpt::new(config, &mut Rng::new(0), device)
    }
}

impl Trained for PolicyAndValue {
    type Shard = PpoShard;
    fn shard(minibatch: Minibatch) -> PpoShard {
        PpoShard(minibatch)
    }
    fn policy(&self) -> &Gpt {
        &self.policy
    }
    fn critic(&self) -> Option<&ScalarModel> {
        Some(&self.value)
    }
    fn blank(config: &ModelConfig, device: &Device) -> Self {
        Self::with_shape(config, device)
    }
}

/// Which sums a step reports besides the loss (the names are the trainer's: `Report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sums {
    /// policy loss, value loss, entropy, clip fraction, value clip fraction, approx KL; and ρ per token.
    Ppo,
    /// k3 KL, entropy, low/high/either clip shares.
    Grpo,
}

impl Sums {
    /// How many sums follow the loss.
    pub fn after_loss(self) -> usize {
        match self {
            Self::Ppo => 6,
            Self::Grpo => 5,
        }
    }
}

/// Rows of one minibatch update on the host: what the loss needs besides the models. Per-token
/// arrays are row-major [rows × MAX_COMPLETION], zero at PAD; an optional part is empty when the
/// recipe does not have it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Minibatch {
    /// Prompt and completion, SEQ_LEN token ids per row.
    pub sequences: Vec<Vec<u32>>,
    /// The sampled completion tokens, `<eos>` where PAD sits (masked).
    pub targets: Vec<Vec<u32>>,
    pub old_logprobs: Vec<f32>,
    pub advantages: Vec<f32>,
    /// 1 at real tokens, 0 at PAD.
    pub mask: Vec<f32>,
    /// Real tokens in the whole minibatch: the divisor of every mean (a helper's rows keep it).
    pub tokens: f32,
    pub temperature: f32,
    pub epsilon_low: f32,
    pub epsilon_high: f32,
    pub level: RatioLevel,
    /// w_i at real tokens (the whole minibatch's aggregation); empty: the mean over real tokens.
    pub weights: Vec<f32>,
    /// log π_ref per token and β of k3 in the loss; empty: no KL term (and no k3 to report).
    pub ref_logprobs: Vec<f32>,
    pub beta: f32,
    pub ent_coef: f32,
    /// The critic's targets R̂ and the rollout's V; empty without a critic.
    pub returns: Vec<f32>,
    pub old_values: Vec<f32>,
    pub cliprange_value: f32,
    pub vf_coef: f32,
    pub sums: Sums,
}

/// The loss, the reported sums (each a [1]-tensor: a sum over real tokens divided by the
/// minibatch's count, so that shards add up) and ρ per token.
pub struct Terms {
    pub loss: Tensor<1>,
    pub sums: Vec<Tensor<1>>,
    pub ratio: Tensor<2>,
}

impl Minibatch {
    pub fn rows_count(&self) -> usize {
        self.sequences.len()
    }

    /// These rows only (weights and the count of tokens stay the minibatch's).
    pub fn rows(&self, range: std::ops::Range<usize>) -> Minibatch {
        let n = MAX_COMPLETION;
        let slots = |v: &[f32]| if v.is_empty() { Vec::new() } else { v[range.start * n..range.end * n].to_vec() };
        Minibatch {
            sequences: self.sequences[range.clone()].to_vec(),
            targets: self.targets[range.clone()].to_vec(),
            old_logprobs: slots(&self.old_logprobs),
            advantages: slots(&self.advantages),
            mask: slots(&self.mask),
            weights: slots(&self.weights),
            ref_logprobs: slots(&self.ref_logprobs),
            returns: slots(&self.returns),
            old_values: slots(&self.old_values),
            ..self.clone()
        }
    }

    /// Refuses rows a helper could not compute on a model of `vocab_size` tokens, `critic`
    /// saying whether it trains a value model too.
    pub fn validate(&self, vocab_size: usize, critic: bool) -> Result<()> {
        let rows = self.rows_count();
        let slots = rows * MAX_COMPLETION;
        if rows == 0 || self.targets.len() != rows {
            return Err(LabError::InvalidInput(format!("a shard needs rows, and a target row for each (got {rows} and {})", self.targets.len())));
        }
        let required = [("old_logprobs", &self.old_logprobs, true), ("advantages", &self.advantages, true), ("mask", &self.mask, true), ("returns", &self.returns, critic), ("old_values", &self.old_values, critic)];
        let optional = [("weights", &self.weights), ("ref_logprobs", &self.ref_logprobs)];
        for (name, v, wanted) in required.into_iter().chain(optional.into_iter().map(|(n, v)| (n, v, !v.is_empty()))) {
            if wanted && v.len() != slots || !wanted && !v.is_empty() {
                return Err(LabError::InvalidInput(format!("a shard's {name} has {} values; its {rows} rows have {slots} slots", v.len())));
            }
        }
        let bad_ids = |rows: &[Vec<u32>], width: usize| rows.iter().any(|r| r.len() != width || r.iter().any(|&t| t as usize >= vocab_size));
        if bad_ids(&self.sequences, SEQ_LEN) || bad_ids(&self.targets, MAX_COMPLETION) {
            return Err(LabError::InvalidInput(format!("a shard's rows must be {SEQ_LEN} and {MAX_COMPLETION} token ids below {vocab_size}")));
        }
        let positive = |x: f32| x.is_finite() && x > 0.0;
        let non_negative = |x: f32| x.is_finite() && x >= 0.0;
        if !(self.tokens >= 1.0 && positive(self.temperature) && positive(self.epsilon_low) && positive(self.epsilon_high)) {
            return Err(LabError::InvalidInput("a shard needs a positive token count, temperature and clip ranges".into()));
        }
        if !(non_negative(self.beta) && non_negative(self.ent_coef) && non_negative(self.vf_coef) && non_negative(self.cliprange_value)) {
            return Err(LabError::InvalidInput("a shard's β and coefficients must be finite and ≥ 0".into()));
        }
        Ok(())
    }

    /// The loss's terms for these rows under the current models.
    pub fn terms(&self, policy: &Gpt, critic: Option<&ScalarModel>, device: &Device) -> Terms {
        let (b, n) = (self.rows_count(), MAX_COMPLETION);
        let inputs = int_tensor(&self.sequences.concat(), b, SEQ_LEN, device).slice([0..b, 0..SEQ_LEN - 1]);
        let (new_logprobs, logits) = completion_logprobs(policy, inputs.clone(), int_tensor(&self.targets.concat(), b, n, device), self.temperature);
        let values = critic.map(|critic| completion_values(critic, inputs));
        self.terms_of(new_logprobs, entropy(logits), values, device)
    }

    /// The terms from π_θ's log-probs and entropy per token and V_ψ's values ([rows, steps]).
    pub fn terms_of(&self, new_logprobs: Tensor<2>, entropy: Tensor<2>, values: Option<Tensor<2>>, device: &Device) -> Terms {
        let [b, n] = new_logprobs.dims();
        let t = |v: &[f32]| float_tensor(v.to_vec(), [b, n], device);
        let mask = t(&self.mask);
        let advantages = t(&self.advantages);
        let count = self.tokens.max(1.0);
        let masked_mean = |x: Tensor<2>| (x * mask.clone()).sum().div_scalar(count);

        // ρ from log-probs; PAD cells are 0 − 0 → ρ = 1 and masked anyway.
        let log_ratio = (new_logprobs.clone() - t(&self.old_logprobs)) * mask.clone();
        let ratio = match self.level {
            RatioLevel::Token => log_ratio.clone().exp(),
            // GSPO: the mean log-ratio of each completion's real tokens, one ratio per row.
            RatioLevel::Sequence => {
                let lengths = mask.clone().sum_dim(1).clamp_min(1.0);
                (log_ratio.clone().sum_dim(1) / lengths).exp().expand([b, n])
            }
        };
        let clipped = ratio.clone().clamp(1.0 - self.epsilon_low, 1.0 + self.epsilon_high);
        let (surrogate, clipped_surrogate) = (ratio.clone() * advantages.clone(), clipped * advantages.clone());
        let mut per_token = surrogate.clone().min_pair(clipped_surrogate.clone()).neg();
        // k3 = π_ref/π_θ − log(π_ref/π_θ) − 1, with log(π_ref/π_θ) = log π_ref − log π_θ.
        let k3 = (!self.ref_logprobs.is_empty()).then(|| {
            let log_r = (t(&self.ref_logprobs) - new_logprobs) * mask.clone();
            log_r.clone().exp() - log_r - 1.0
        });
        if let Some(k3) = k3.as_ref().filter(|_| self.beta != 0.0) {
            per_token = per_token + k3.clone().mul_scalar(self.beta);
        }
        let policy_loss = if self.weights.is_empty() { masked_mean(per_token) } else { (per_token * t(&self.weights)).sum() };
        let entropy = masked_mean(entropy);

        let mut loss = policy_loss.clone();
        let mut value_terms = None;
        if let Some(values) = values {
            // Clipped around the rollout's values: clip(V, V_old − ε_v, V_old + ε_v), V itself
            // inside the band (`math::ppo::value_loss` says why that matters).
            let (old_values, returns) = (t(&self.old_values), t(&self.returns));
            let v_clipped = values.clone().max_pair(old_values.clone().sub_scalar(self.cliprange_value)).min_pair(old_values.add_scalar(self.cliprange_value));
            let unclipped = (values - returns.clone()).square();
            let clipped = (v_clipped - returns).square();
            let vf_loss = masked_mean(unclipped.clone().max_pair(clipped.clone())).mul_scalar(0.5);
            loss = loss + vf_loss.clone().mul_scalar(self.vf_coef);
            value_terms = Some((vf_loss, masked_mean(clipped.greater(unclipped).float())));
        }
        if self.ent_coef != 0.0 {
            loss = loss - entropy.clone().mul_scalar(self.ent_coef);
        }

        let detach = |x: Tensor<1>| x.detach();
        let sums = match self.sums {
            Sums::Ppo => {
                let (vf_loss, vf_clipfrac) = value_terms.unwrap_or_else(|| (Tensor::zeros([1], device), Tensor::zeros([1], device)));
                let clipfrac = masked_mean(clipped_surrogate.lower(surrogate).float());
                let approx_kl = masked_mean(log_ratio.square()).mul_scalar(0.5);
                vec![policy_loss, vf_loss, entropy, clipfrac, vf_clipfrac, approx_kl]
            }
            Sums::Grpo => {
                let negative = advantages.clone().lower_elem(0.0).float();
                let positive = advantages.greater_elem(0.0).float();
                let low = ratio.clone().lower_elem(1.0 - self.epsilon_low).float() * negative;
                let high = ratio.clone().greater_elem(1.0 + self.epsilon_high).float() * positive;
                let kl = k3.map_or_else(|| Tensor::zeros([1], device), &masked_mean);
                vec![kl, entropy, masked_mean(low.clone()), masked_mean(high.clone()), masked_mean(low + high)]
            }
        };
        Terms { loss, sums: sums.into_iter().map(detach).collect(), ratio }
    }
}

/// A minibatch of a trainer with a critic (PPO): θ is π_θ's and V_ψ's parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PpoShard(pub Minibatch);

/// A minibatch of a trainer of π_θ alone (GRPO, RLOO, REINFORCE, GSPO).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GrpoShard(pub Minibatch);

/// The helper's side of a shard: the loss, the sums after it, ρ per token if the report has it.
fn shard_terms<M: Trained>(minibatch: &Minibatch, model: &M, device: &Device) -> ShardTerms {
    let terms = minibatch.terms(model.policy(), model.critic(), device);
    let slots = minibatch.rows_count() * MAX_COMPLETION;
    let per_token = (minibatch.sums == Sums::Ppo).then(|| terms.ratio.detach().inner().reshape([slots]));
    ShardTerms { loss: terms.loss, sums: terms.sums.into_iter().map(|s| s.inner()).collect(), per_token }
}

impl Shard for PpoShard {
    type Model = PolicyAndValue;
    fn blank(config: &ModelConfig, device: &Device) -> PolicyAndValue {
        PolicyAndValue::blank(config, device)
    }
    fn validate(&self, config: &ModelConfig) -> Result<()> {
        self.0.validate(config.vocab_size, true)
    }
    fn terms(&self, model: &PolicyAndValue, device: &Device) -> ShardTerms {
        shard_terms(&self.0, model, device)
    }
}

impl Shard for GrpoShard {
    type Model = Gpt;
    fn blank(config: &ModelConfig, device: &Device) -> Gpt {
        Gpt::blank(config, device)
    }
    fn validate(&self, config: &ModelConfig) -> Result<()> {
        self.0.validate(config.vocab_size, false)
    }
    fn terms(&self, model: &Gpt, device: &Device) -> ShardTerms {
        shard_terms(&self.0, model, device)
    }
}

/// V(s_t) for every completion slot: the value head at the position that predicts token t.
pub(crate) fn completion_values(model: &ScalarModel, inputs: Tensor<2, Int>) -> Tensor<2> {
    let [rows, _] = inputs.dims();
    model.forward(inputs).slice([0..rows, PROMPT_LEN - 1..SEQ_LEN - 1])
}

/// Per-token entropy of softmax(logits): −Σ p·log p, with p = exp(log softmax(z)), so that one
/// log-softmax (one autodiff node) serves both factors.
pub(crate) fn entropy(logits: Tensor<3>) -> Tensor<2> {
    let [rows, steps, _] = logits.dims();
    let logp = crate::engine::layers::log_softmax(logits);
    (logp.clone().exp() * logp).sum_dim(2).neg().reshape([rows, steps])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rlhf::math::grpo::{aggregate, sequence_log_ratio, token_loss, LossType, TokenLoss};
    use crate::rlhf::math::ppo::{policy_loss, surrogate_slope, value_loss};

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_data().iter::<f32>().next().unwrap()
    }

    /// A minibatch of host arrays only (the `terms_of` tests bring log-probs, entropy, values).
    fn minibatch(sums: Sums, tokens: f32) -> Minibatch {
        Minibatch {
            sequences: vec![],
            targets: vec![],
            old_logprobs: vec![],
            advantages: vec![],
            mask: vec![],
            tokens,
            temperature: 1.0,
            epsilon_low: 0.2,
            epsilon_high: 0.2,
            level: RatioLevel::Token,
            weights: vec![],
            ref_logprobs: vec![],
            beta: 0.0,
            ent_coef: 0.0,
            returns: vec![],
            old_values: vec![],
            cliprange_value: 0.2,
            vf_coef: 0.0,
            sums,
        }
    }

    fn t2(values: &[f32], rows: usize, device: &Device) -> Tensor<2> {
        Tensor::from_data(burn::tensor::TensorData::new(values.to_vec(), [rows, values.len() / rows]), device)
    }

    #[test]
    fn ppo_s_choices_equal_their_host_twin() {
        let device = Device::flex();
        let old = [-1.0, -2.0, -0.5, -3.0, -1.5, 0.0];
        let new = [-0.6, -2.5, -0.5, -2.0, -1.4, 0.0];
        let adv = [1.0, -1.0, 0.3, 2.0, -0.7, 0.0];
        let ret = [0.5, 0.2, -0.1, 1.0, 0.0, 0.0];
        let old_v = [0.1, 0.0, 0.2, 0.4, -0.3, 0.0];
        let v = [0.5, 0.1, 0.1, 0.9, -0.2, 0.0];
        let mask = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0];
        let m = Minibatch { old_logprobs: old.to_vec(), advantages: adv.to_vec(), mask: mask.to_vec(), returns: ret.to_vec(), old_values: old_v.to_vec(), vf_coef: 0.1, ..minibatch(Sums::Ppo, 5.0) };
        let terms = m.terms_of(t2(&new, 2, &device), t2(&[0.0; 6], 2, &device), Some(t2(&v, 2, &device)), &device);
        let (mut pg, mut clip, mut vf, mut vclip) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..5 {
            let (l, c) = policy_loss(new[i] - old[i], adv[i], 0.2);
            pg += l / 5.0;
            clip += f32::from(c) / 5.0;
            let (l, c) = value_loss(v[i], old_v[i], ret[i], 0.2);
            vf += l / 5.0;
            vclip += f32::from(c) / 5.0;
        }
        let sums: Vec<f32> = terms.sums.into_iter().map(scalar).collect();
        assert!((sums[0] - pg).abs() < 1e-5);
        assert!((sums[1] - vf).abs() < 1e-5);
        assert!((sums[3] - clip).abs() < 1e-6);
        assert!((sums[4] - vclip).abs() < 1e-6);
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
            let m = Minibatch { old_logprobs: vec![0.0; n], advantages: vec![adv; n], mask: vec![1.0; n], ..minibatch(Sums::Ppo, n as f32) };
            let terms = m.terms_of(new.clone(), Tensor::zeros([1, n], &device), None, &device);
            let grads = terms.loss.backward();
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

    /// Two rows of 3 slots, lengths 3 and 2 (the last slot of row 2 is PAD).
    const LENGTHS: [usize; 2] = [3, 2];
    const OLD: [f32; 6] = [-1.0, -2.0, -0.5, -3.0, -1.5, 0.0];
    const NEW: [f32; 6] = [-0.6, -2.5, -0.5, -2.0, -1.9, 0.0];
    const REFERENCE: [f32; 6] = [-1.2, -2.0, -0.7, -2.5, -1.5, 0.0];
    const ADV: [f32; 6] = [0.8, 0.8, 0.8, -1.3, -1.3, 0.0];
    const MASK: [f32; 6] = [1.0, 1.0, 1.0, 1.0, 1.0, 0.0];

    /// The loss and the GRPO sums at `level` against host per-token losses `host`.
    fn check_group_loss(level: RatioLevel, host: impl Fn(usize, f32) -> TokenLoss) {
        let device = Device::flex();
        let (lo, hi) = (0.2f32, 0.28f32);
        for loss_type in [LossType::Grpo, LossType::DrGrpo, LossType::Dapo] {
            for beta in [0.0f32, 0.1] {
                let weights: Vec<f32> = (0..6).map(|i| if MASK[i] > 0.0 { loss_type.token_weight(LENGTHS[i / 3], &LENGTHS, 3) } else { 0.0 }).collect();
                let m = Minibatch { old_logprobs: OLD.to_vec(), advantages: ADV.to_vec(), mask: MASK.to_vec(), weights, ref_logprobs: REFERENCE.to_vec(), beta, epsilon_low: lo, epsilon_high: hi, level, ..minibatch(Sums::Grpo, 5.0) };
                let terms = m.terms_of(t2(&NEW, 2, &device), t2(&[0.0; 6], 2, &device), None, &device);
                let host: Vec<TokenLoss> = (0..6).map(|i| host(i, beta)).collect();
                let expected = aggregate(&host.iter().map(|h| h.loss).collect::<Vec<_>>(), &LENGTHS, 3, loss_type);
                assert!((scalar(terms.loss) - expected).abs() < 1e-5, "{level:?} {loss_type:?} β={beta}");
                let sums: Vec<f32> = terms.sums.into_iter().map(scalar).collect();
                let real = |f: &dyn Fn(&TokenLoss) -> f32| (0..6).filter(|&i| MASK[i] > 0.0).map(|i| f(&host[i])).sum::<f32>() / 5.0;
                assert!((sums[0] - real(&|h| h.kl)).abs() < 1e-5);
                assert!((sums[2] - real(&|h| f32::from(u8::from(h.low_clipped)))).abs() < 1e-6);
                assert!((sums[3] - real(&|h| f32::from(u8::from(h.high_clipped)))).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn grpo_s_choices_equal_their_host_twin_for_every_aggregation() {
        check_group_loss(RatioLevel::Token, |i, beta| token_loss(NEW[i] - OLD[i], ADV[i], 0.2, 0.28, beta, NEW[i], REFERENCE[i]));
        // The fixture clips something on each side: ρ = e^0.4 = 1.49 (Â > 0) and e^−0.4 = 0.67 (Â < 0).
        assert!(token_loss(-0.4, -1.3, 0.2, 0.28, 0.0, 0.0, 0.0).low_clipped && token_loss(0.4, 0.8, 0.2, 0.28, 0.0, 0.0, 0.0).high_clipped);
    }

    #[test]
    fn gspo_s_sequence_ratio_equals_its_host_twin() {
        // Row 1: log ratios 0.4, −0.5, 0 → mean −0.0333 (s = 0.967, inside the clip); row 2:
        // 1.0, −0.4 → mean 0.3 (s = 1.35, Â < 0: the clip is not taken, −min keeps ρ·Â).
        let sequence = |row: usize| {
            let real = &(row * 3..row * 3 + LENGTHS[row]).map(|i| NEW[i] - OLD[i]).collect::<Vec<_>>();
            sequence_log_ratio(real)
        };
        assert!((sequence(0) - (-0.1 / 3.0)).abs() < 1e-6 && (sequence(1) - 0.3).abs() < 1e-6);
        check_group_loss(RatioLevel::Sequence, |i, beta| token_loss(sequence(i / 3), ADV[i], 0.2, 0.28, beta, NEW[i], REFERENCE[i]));
    }

    #[test]
    fn gspo_clips_a_whole_completion_at_once() {
        // A completion whose geometric-mean ratio passes 1 + ε with Â > 0 gets no gradient at any
        // token, even at a token whose own ratio is below 1.
        let device = Device::flex().autodiff();
        let log_ratios = [0.9f32, -0.1, 0.6]; // mean 0.4667: s = 1.59 > 1.28
        let new = Tensor::<2>::from_data(burn::tensor::TensorData::new(log_ratios.to_vec(), [1, 3]), &device).require_grad();
        let m = Minibatch { old_logprobs: vec![0.0; 3], advantages: vec![1.0; 3], mask: vec![1.0; 3], epsilon_high: 0.28, level: RatioLevel::Sequence, ..minibatch(Sums::Grpo, 3.0) };
        let grads = m.terms_of(new.clone(), Tensor::zeros([1, 3], &device), None, &device).loss.backward();
        let grad: Vec<f32> = new.grad(&grads).unwrap().into_data().iter::<f32>().collect();
        assert_eq!(grad, vec![0.0; 3]);
        // Inside the clip every token gets the same gradient: the loss is the mean of three equal
        // −Â·s, i.e. −Â·s, and d s/d log ρ_t = s/3, so −Â·s/3 at each token.
        let log_ratios = [0.1f32, -0.1, 0.03];
        let new = Tensor::<2>::from_data(burn::tensor::TensorData::new(log_ratios.to_vec(), [1, 3]), &device).require_grad();
        let grads = m.terms_of(new.clone(), Tensor::zeros([1, 3], &device), None, &device).loss.backward();
        let grad: Vec<f32> = new.grad(&grads).unwrap().into_data().iter::<f32>().collect();
        let s = 0.01f32.exp();
        for g in grad {
            assert!((g - (-s / 3.0)).abs() < 1e-6, "{g}");
        }
    }
}
