//! The settings of the online-RL stages: PPO (stage 3) and the critic-free methods (stage 3b).

use serde::{Deserialize, Serialize};

use super::limits::MAX_BATCH;
use crate::error::{count_in, finite_in, LabError, Result};
use crate::rlhf::math::grpo::{Estimator, LossType};
use crate::rlhf::math::kl::KlEstimator;
use crate::rlhf::stages::on_policy::recipe::{RatioLevel, RewardSource};

/// Stage 3: PPO on the KL-regularized objective. Names and defaults follow TRL's PPOConfig unless
/// a reason is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PpoConfig {
    /// What the policy is trained against: `reward_model` (r_φ), `gold` (the gold utility as a
    /// verifiable reward: RLVR) or `custom` (`reward.expression`).
    pub reward: RewardSource,
    /// PPO iterations (rollout + update) to run.
    pub iterations: usize,
    /// Completions sampled per iteration.
    pub batch_size: usize,
    /// Minibatches each epoch splits the rollout into (TRL `num_mini_batches`).
    pub mini_batches: usize,
    /// Passes over each rollout (TRL `num_ppo_epochs`, 4).
    pub epochs: usize,
    /// Adam step size for policy and value model. Larger than TRL's 3e-6 (for billion-parameter
    /// models): this model has 10⁵ parameters.
    pub learning_rate: f64,
    /// β, the KL coefficient (TRL `kl_coef`, 0.05).
    pub kl_coef: f64,
    /// Adapt β toward `target_kl` (Ziegler et al. 2019) instead of keeping it fixed.
    pub adaptive_kl: bool,
    /// Target sequence KL for the adaptive controller.
    pub target_kl: f64,
    /// Horizon of the adaptive controller, in completions (Ziegler et al.: 10 000).
    pub kl_horizon: f64,
    /// k1 (the page's log-ratio) or k3 (non-negative, lower variance).
    pub kl_estimator: KlEstimator,
    /// Stop an iteration's epochs early when the mean approx KL passes this (0 = never).
    pub early_stop_kl: f64,
    /// γ, the discount (TRL 1.0: a completion is a short episode).
    pub gamma: f64,
    /// λ of GAE (TRL 0.95).
    pub lam: f64,
    /// ε of the clipped surrogate (TRL `cliprange`, 0.2).
    pub cliprange: f64,
    /// Clip of the value update around the rollout's values (TRL `cliprange_value`, 0.2).
    pub cliprange_value: f64,
    /// c1, the value loss coefficient (TRL `vf_coef`, 0.1).
    pub vf_coef: f64,
    /// c2, the entropy bonus. TRL's PPOTrainer has none (0); raise it to keep exploring.
    pub ent_coef: f64,
    /// Sampling temperature of rollouts; log-probs are taken at the same temperature (TRL 0.7).
    pub temperature: f64,
    /// Subtracted from the score of a completion that never emits `<eos>` (0 = no penalty).
    pub missing_eos_penalty: f64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            reward: RewardSource::RewardModel,
            iterations: 60,
            batch_size: 32,
            mini_batches: 2,
            epochs: 4,
            learning_rate: 1e-4,
            kl_coef: 0.05,
            adaptive_kl: false,
            target_kl: 1.0,
            kl_horizon: 10_000.0,
            kl_estimator: KlEstimator::K1,
            early_stop_kl: 0.0,
            gamma: 1.0,
            lam: 0.95,
            cliprange: 0.2,
            cliprange_value: 0.2,
            vf_coef: 0.1,
            ent_coef: 0.0,
            temperature: 0.7,
            missing_eos_penalty: 0.0,
        }
    }
}

impl PpoConfig {
    pub fn validate(&self) -> Result<()> {
        count_in("ppo.iterations", self.iterations, 1, 100_000)?;
        count_in("ppo.batch_size", self.batch_size, 1, MAX_BATCH)?;
        count_in("ppo.mini_batches", self.mini_batches, 1, self.batch_size.max(1))?;
        count_in("ppo.epochs", self.epochs, 1, 64)?;
        finite_in("ppo.learning_rate", self.learning_rate, 1e-8, 1.0)?;
        finite_in("ppo.kl_coef", self.kl_coef, 0.0, 10.0)?;
        finite_in("ppo.target_kl", self.target_kl, 1e-4, 100.0)?;
        finite_in("ppo.kl_horizon", self.kl_horizon, 1.0, 1e7)?;
        finite_in("ppo.early_stop_kl", self.early_stop_kl, 0.0, 100.0)?;
        finite_in("ppo.gamma", self.gamma, 0.0, 1.0)?;
        finite_in("ppo.lam", self.lam, 0.0, 1.0)?;
        finite_in("ppo.cliprange", self.cliprange, 1e-3, 10.0)?;
        finite_in("ppo.cliprange_value", self.cliprange_value, 1e-3, 100.0)?;
        finite_in("ppo.vf_coef", self.vf_coef, 0.0, 100.0)?;
        finite_in("ppo.ent_coef", self.ent_coef, 0.0, 10.0)?;
        finite_in("ppo.temperature", self.temperature, 0.05, 5.0)?;
        finite_in("ppo.missing_eos_penalty", self.missing_eos_penalty, 0.0, 100.0)
    }

    pub fn minibatch_size(&self) -> usize {
        self.batch_size.div_ceil(self.mini_batches)
    }
}

/// Stage 3b: GRPO or RLOO from π_ref on the same frozen r_φ: no value model, the baseline of a
/// completion is its group (the other completions of the same prompt). Names and defaults follow
/// TRL's GRPOConfig unless a reason is given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpoConfig {
    /// What the policy is trained against (as `ppo.reward`).
    pub reward: RewardSource,
    /// Iterations (rollout + update) to run: PPO's 60, for a comparison at equal rollouts.
    pub iterations: usize,
    /// Prompts per rollout; each gets `group_size` completions. 4 × 8 = PPO's 32 completions.
    pub prompts: usize,
    /// G, completions per prompt (TRL `num_generations`, 8).
    pub group_size: usize,
    /// `grpo`: baseline = the group's mean; `rloo`: the mean of the other G − 1; `reinforce`:
    /// the mean of the whole batch (a group of 1 is then allowed).
    pub estimator: Estimator,
    /// Divide by the group's std (GRPO). Off: Dr. GRPO's unscaled r − mean (and plain RLOO).
    pub scale_rewards: bool,
    /// How per-token losses are summed: `grpo` (per-sequence mean), `dr_grpo` (constant
    /// divisor) or `dapo` (per-token mean over the batch). TRL's default is `dapo`; `grpo` is the
    /// paper's, and shows the length bias.
    pub loss_type: LossType,
    /// Minibatches each epoch splits the rollout into (whole groups need not stay together: Â is
    /// fixed at rollout time).
    pub mini_batches: usize,
    /// Passes over each rollout (TRL `num_iterations`, μ; 1 there makes ρ = 1 and the clip
    /// idle; 2 here, so that the clip has something to do).
    pub epochs: usize,
    /// Adam step size (PPO's, for the comparison).
    pub learning_rate: f64,
    /// β of the k3 KL penalty to π_ref (TRL 0.0: no π_ref needed; 0.04 in the DeepSeekMath
    /// paper). The lab keeps π_ref anyway, to measure KL for the charts.
    pub beta: f64,
    /// ε_low: the ratio's clip below 1 (TRL `epsilon`, 0.2).
    pub epsilon_low: f64,
    /// ε_high: the clip above 1 (TRL `epsilon_high`, = ε_low; DAPO raises it to 0.28 so that
    /// unlikely tokens with a positive advantage can grow: "clip higher").
    pub epsilon_high: f64,
    /// `token`: ρ per token (GRPO); `sequence`: one ratio per completion, the geometric mean of its
    /// tokens' (GSPO; TRL `importance_sampling_level`).
    pub importance_sampling_level: RatioLevel,
    /// Sampling temperature of rollouts; log-probs are taken at the same temperature (PPO's).
    pub temperature: f64,
    /// Subtracted from the score of a completion that never emits `<eos>` (PPO's).
    pub missing_eos_penalty: f64,
}

impl Default for GrpoConfig {
    fn default() -> Self {
        Self {
            reward: RewardSource::RewardModel,
            iterations: 60,
            prompts: 4,
            group_size: 8,
            estimator: Estimator::Grpo,
            scale_rewards: true,
            loss_type: LossType::Grpo,
            mini_batches: 2,
            epochs: 2,
            learning_rate: 1e-4,
            beta: 0.04,
            epsilon_low: 0.2,
            epsilon_high: 0.28,
            importance_sampling_level: RatioLevel::Token,
            temperature: 0.7,
            missing_eos_penalty: 0.0,
        }
    }
}

impl GrpoConfig {
    pub fn validate(&self) -> Result<()> {
        count_in("grpo.iterations", self.iterations, 1, 100_000)?;
        count_in("grpo.prompts", self.prompts, 1, MAX_BATCH / 2)?;
        // REINFORCE's baseline is the batch: a completion needs no siblings, but a batch needs two.
        let fewest = if self.estimator == Estimator::Reinforce { 1 } else { 2 };
        count_in("grpo.group_size", self.group_size, fewest, 64)?;
        if self.batch_size() < 2 {
            return Err(LabError::setting("grpo.prompts", "REINFORCE's baseline is the batch's mean: it needs at least 2 completions (prompts × group size)"));
        }
        if self.batch_size() > MAX_BATCH {
            return Err(LabError::setting("grpo.group_size", format!("prompts × group size is {} completions; at most {MAX_BATCH}", self.batch_size())));
        }
        count_in("grpo.mini_batches", self.mini_batches, 1, self.batch_size())?;
        count_in("grpo.epochs", self.epochs, 1, 64)?;
        finite_in("grpo.learning_rate", self.learning_rate, 1e-8, 1.0)?;
        finite_in("grpo.beta", self.beta, 0.0, 10.0)?;
        finite_in("grpo.epsilon_low", self.epsilon_low, 1e-5, 0.999)?;
        finite_in("grpo.epsilon_high", self.epsilon_high, 1e-5, 10.0)?;
        finite_in("grpo.temperature", self.temperature, 0.05, 5.0)?;
        finite_in("grpo.missing_eos_penalty", self.missing_eos_penalty, 0.0, 100.0)
    }

    /// Completions per rollout: prompts × G.
    pub fn batch_size(&self) -> usize {
        self.prompts * self.group_size
    }

    pub fn minibatch_size(&self) -> usize {
        self.batch_size().div_ceil(self.mini_batches)
    }
}
