//! What an on-policy algorithm chooses — and nothing else. PPO, GRPO, RLOO, REINFORCE and GSPO
//! share one machine (`OnPolicyTrainer`); each is the short list of its choices below, in the
//! math page's order: where the reward comes from, where the KL penalty goes, how rewards become
//! advantages, the ratio and its clip, how per-token losses are summed, and whether a critic
//! trains beside the policy. (verl's `core_algos.py` keeps the same two registries, advantage
//! estimators and policy-loss modes; TRL's GRPOTrainer the same switches as `loss_type`,
//! `scale_rewards`, `importance_sampling_level`.)

use serde::{Deserialize, Serialize};

use crate::rlhf::math::grpo::{Estimator, LossType};
use crate::rlhf::math::kl::KlEstimator;

/// Where a completion's reward comes from (math page §3's r(x, y)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RewardSource {
    /// r_φ, the reward model learned from the labels (RLHF).
    #[default]
    RewardModel,
    /// The gold utility itself, computed by a program: a verifiable reward (RLVR). No labels, no
    /// reward model; what the lab otherwise hides is then what is optimized.
    Gold,
    /// The learner's own weighted sum of terms (`reward.expression`, `rlhf::reward_expression`).
    Custom,
}

/// How rewards become advantages (math page §4 and the group estimators of `math::grpo`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Advantage {
    /// GAE(γ, λ) over the learned V_ψ on the per-token rewards, then whitened (PPO).
    Gae { gamma: f32, lam: f32 },
    /// A group's baseline, the same Â_i at every token of completion i: the group's mean
    /// (GRPO), the others' mean (RLOO), or the whole batch's mean (REINFORCE with a baseline);
    /// divided by the std when `scale`.
    Group { estimator: Estimator, scale: bool },
}

/// Where KL(π_θ‖π_ref) enters (math page §3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KlPlacement {
    /// In the reward, per token: R_t = 1[t = T]·r − β·kl_t (PPO), β adapting toward a target
    /// KL when `adaptive` (Ziegler et al. 2019).
    InReward { estimator: KlEstimator, beta: f64, adaptive: Option<AdaptiveKl> },
    /// In the loss, β·k3 per token, differentiated through π_θ (GRPO); β = 0: nowhere.
    InLoss { beta: f32 },
}

/// Ziegler et al.'s controller: β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon) each iteration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdaptiveKl {
    pub target: f64,
    pub horizon: f64,
}

/// The level the importance ratio is taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RatioLevel {
    /// ρ_{i,t} = π_θ(a_t|s_t)/π_old(a_t|s_t), clipped per token (PPO, GRPO).
    #[default]
    Token,
    /// s_i = exp(mean_t log ρ_{i,t}), the geometric mean of the token ratios, one per completion
    /// and clipped per completion (GSPO; TRL `importance_sampling_level="sequence"`).
    Sequence,
}

/// How per-token losses become the minibatch's loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    /// The mean over the minibatch's real tokens (PPO's masked mean).
    TokenMean,
    /// Σ w_i·ℓ_{i,t} with the weights of `LossType` (GRPO, Dr. GRPO, DAPO).
    Weighted(LossType),
}

/// The clipped surrogate and what is added to it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyLoss {
    pub epsilon_low: f32,
    pub epsilon_high: f32,
    pub level: RatioLevel,
    pub aggregation: Aggregation,
    /// c2 of the entropy bonus (0: none).
    pub ent_coef: f32,
}

/// V_ψ, trained beside π_θ on the clipped value loss (PPO's critic).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Critic {
    pub cliprange_value: f32,
    pub vf_coef: f32,
}

/// Which trainer's metric names the run reports: TRL's PPOTrainer or GRPOTrainer (the page's
/// panels and the comparison table read them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Ppo,
    Grpo,
}

/// Rollout size, the update schedule and the sampler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub iterations: usize,
    pub prompts: usize,
    /// Completions per prompt (1: every completion its own prompt).
    pub group_size: usize,
    pub epochs: usize,
    pub mini_batches: usize,
    pub learning_rate: f64,
    pub temperature: f32,
    pub missing_eos_penalty: f32,
    /// Stop an iteration's epochs when the mean approx KL passes this (0: never).
    pub early_stop_kl: f64,
}

impl Schedule {
    /// `prompts` × `group_size` completions per rollout, `epochs` passes of `mini_batches` updates
    /// over each, sampled at `temperature` (the missing-`<eos>` penalty subtracted from a score).
    pub fn new(iterations: usize, (prompts, group_size): (usize, usize), (epochs, mini_batches): (usize, usize), learning_rate: f64, (temperature, missing_eos_penalty): (f64, f64), early_stop_kl: f64) -> Self {
        Self { iterations, prompts, group_size, epochs, mini_batches, learning_rate, temperature: temperature as f32, missing_eos_penalty: missing_eos_penalty as f32, early_stop_kl }
    }

    pub fn batch_size(&self) -> usize {
        self.prompts * self.group_size
    }

    pub fn minibatch_size(&self) -> usize {
        self.batch_size().div_ceil(self.mini_batches)
    }

    pub fn total_updates(&self) -> usize {
        self.iterations * self.epochs * self.mini_batches
    }
}

/// An algorithm: its choices.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// The stage it runs as ("ppo", "grpo"): error messages, snapshots, its random stream.
    pub stage: &'static str,
    pub reward: RewardSource,
    pub kl: KlPlacement,
    pub advantage: Advantage,
    pub loss: PolicyLoss,
    pub critic: Option<Critic>,
    pub schedule: Schedule,
    pub report: Report,
}
