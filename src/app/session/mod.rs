//! The pipeline's state: the models by role and the trainer of each stage, behind bounded calls.
//!
//! `app::web` wraps this for the page and `bin/rlhf.rs` drives it natively, so both run exactly the
//! same steps. Every call validates its input before it touches state, and returns metrics or a
//! `LabError`.
//!
//! ```text
//! base ──SFT──▶ π_ref ──pairs──▶ labels ──BT──▶ r_φ ──PPO──▶ π_θ, V_ψ
//!                 │                              └──GRPO/RLOO──▶ π_grpo
//!                 └──────────── labels ──DPO──▶ π_dpo
//! ```

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::app::shard::ShardObjective;
use crate::engine::data_parallel::{ShardResult, ShardWork};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::{Gpt, ScalarModel};
use crate::error::{LabError, Result};
use crate::rlhf::config::LabConfig;
use crate::rlhf::labels::LabelRecord;
use crate::rlhf::metrics::Metrics;
use crate::rlhf::stages::dpo::DpoTrainer;
use crate::rlhf::stages::grpo::GrpoTrainer;
use crate::rlhf::stages::ppo::PpoTrainer;
use crate::rlhf::stages::reward::RewardTrainer;
use crate::rlhf::stages::sft::SftTrainer;
use crate::rlhf::stages::sweep::Sweep;
use crate::rlhf::task::Tokenizer;
use crate::rng::Rng;

mod online;
mod storage;
mod supervised;

/// The models a session can hold, by the role each plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The pretrained (or freshly initialized) model SFT starts from.
    Base,
    /// π_ref: the SFT model, frozen.
    Sft,
    /// r_φ: the reward model, frozen, scores shifted to zero mean.
    Reward,
    /// π_θ: the policy PPO trains.
    Policy,
    /// V_ψ: the value model PPO trains beside it.
    Value,
    /// π_dpo: the policy DPO trains.
    Dpo,
    /// π_grpo: the policy GRPO (or RLOO) trains.
    Grpo,
}

impl Role {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "base" => Ok(Self::Base),
            "sft" => Ok(Self::Sft),
            "reward" => Ok(Self::Reward),
            "policy" => Ok(Self::Policy),
            "value" => Ok(Self::Value),
            "dpo" => Ok(Self::Dpo),
            "grpo" => Ok(Self::Grpo),
            other => Err(LabError::InvalidInput(format!("unknown model role {other:?} (expected base, sft, reward, policy, value, dpo or grpo)"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Sft => "sft",
            Self::Reward => "reward",
            Self::Policy => "policy",
            Self::Value => "value",
            Self::Dpo => "dpo",
            Self::Grpo => "grpo",
        }
    }

    /// `gpt` for language models, `scalar` for a trunk with a scalar head.
    pub fn architecture(self) -> &'static str {
        match self {
            Self::Base | Self::Sft | Self::Policy | Self::Dpo | Self::Grpo => "gpt",
            Self::Reward | Self::Value => "scalar",
        }
    }
}

/// The stages whose bounded steps a caller loops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Pretrain,
    Sft,
    Reward,
    Ppo,
    Grpo,
    Dpo,
    Sweep,
}

impl Stage {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "pretrain" => Ok(Self::Pretrain),
            "sft" => Ok(Self::Sft),
            "reward" => Ok(Self::Reward),
            "ppo" => Ok(Self::Ppo),
            "grpo" => Ok(Self::Grpo),
            "dpo" => Ok(Self::Dpo),
            "sweep" => Ok(Self::Sweep),
            other => Err(LabError::InvalidInput(format!("unknown stage {other:?}"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Pretrain => "pretrain",
            Self::Sft => "sft",
            Self::Reward => "reward",
            Self::Ppo => "ppo",
            Self::Grpo => "grpo",
            Self::Dpo => "dpo",
            Self::Sweep => "sweep",
        }
    }
}

/// Where each stage stands, for the page's pipeline view.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub preset: String,
    pub parameters: usize,
    pub has_base: bool,
    pub pretrain: Option<Progress>,
    pub sft: Option<Progress>,
    pub has_reference: bool,
    pub reward: Option<Progress>,
    pub has_reward_model: bool,
    pub ppo: Option<Progress>,
    pub grpo: Option<Progress>,
    pub dpo: Option<Progress>,
    pub sweep: Option<Progress>,
}

impl Status {
    /// The progress of one stage, if it has begun.
    pub fn of(&self, stage: Stage) -> Option<Progress> {
        match stage {
            Stage::Pretrain => self.pretrain.clone(),
            Stage::Sft => self.sft.clone(),
            Stage::Reward => self.reward.clone(),
            Stage::Ppo => self.ppo.clone(),
            Stage::Grpo => self.grpo.clone(),
            Stage::Dpo => self.dpo.clone(),
            Stage::Sweep => self.sweep.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub step: usize,
    pub total: usize,
    pub done: bool,
}

pub struct Session {
    device: Device,
    tokenizer: Tokenizer,
    config: LabConfig,
    base: Option<Gpt>,
    pretrain: Option<SftTrainer>,
    sft: Option<SftTrainer>,
    reference: Option<Gpt>,
    /// Draws the pairs to judge; advances with every call so each batch is new.
    pair_rng: Rng,
    reward: Option<RewardTrainer>,
    reward_model: Option<ScalarModel>,
    ppo: Option<PpoTrainer>,
    grpo: Option<GrpoTrainer>,
    dpo: Option<DpoTrainer>,
    sweep: Option<Sweep>,
    /// The label files the reward and DPO stages began from: a snapshot carries them, so a
    /// resumed stage trains on exactly the pairs it started with.
    reward_labels: Option<String>,
    dpo_labels: Option<String>,
}

/// Where a resumed stage stands, and (reward, DPO) the plan its begin would have returned.
#[derive(Debug, Clone, Serialize)]
pub struct Resumed {
    pub progress: Progress,
    pub plan: Option<serde_json::Value>,
}

/// What a session-level snapshot says beside the trainer's own bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StageSnapshot {
    labels: Option<String>,
}

/// What DPO trains on, once labels are loaded.
#[derive(Debug, Clone, Serialize)]
pub struct DpoPlan {
    pub train: usize,
    pub held_out: usize,
    pub steps: usize,
    pub ties_skipped: usize,
}

/// A simulated label with the labeler's probability of preferring the first completion.
#[derive(Debug, Clone, Serialize)]
pub struct SimulatedLabel {
    pub label: LabelRecord,
    pub p_first: f32,
    pub gold_first: f32,
    pub gold_second: f32,
}

/// What the reward stage trains on, once labels are loaded.
#[derive(Debug, Clone, Serialize)]
pub struct RewardPlan {
    pub train: usize,
    pub held_out: usize,
    pub steps: usize,
    pub ceiling: Option<f32>,
}

impl Session {
    pub fn new(device: Device, config: LabConfig) -> Result<Self> {
        config.validate()?;
        let pair_rng = Rng::derive(config.seed, "pairs");
        Ok(Self {
            device,
            tokenizer: Tokenizer::new(),
            config,
            base: None,
            pretrain: None,
            sft: None,
            reference: None,
            pair_rng,
            reward: None,
            reward_model: None,
            ppo: None,
            grpo: None,
            dpo: None,
            sweep: None,
            reward_labels: None,
            dpo_labels: None,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    pub fn model_config(&self) -> ModelConfig {
        self.config.preset.model(self.tokenizer.vocab_size())
    }

    /// Replaces the settings. A different preset or seed invalidates every model, so those are
    /// dropped; a stage already running keeps the settings it started with.
    pub fn set_config(&mut self, config: LabConfig) -> Result<()> {
        config.validate()?;
        if config.preset != self.config.preset || config.seed != self.config.seed {
            self.base = None;
            self.pretrain = None;
            self.sft = None;
            self.reference = None;
            self.reward = None;
            self.reward_model = None;
            self.ppo = None;
            self.grpo = None;
            self.dpo = None;
            self.sweep = None;
            self.pair_rng = Rng::derive(config.seed, "pairs");
        }
        self.config = config;
        Ok(())
    }

    pub fn status(&self) -> Status {
        let progress = |t: &SftTrainer| Progress { step: t.step_count(), total: t.total_steps(), done: t.is_done() };
        let model = self.model_config();
        Status {
            preset: self.config.preset.name().into(),
            parameters: model.num_params(),
            has_base: self.base.is_some(),
            pretrain: self.pretrain.as_ref().map(progress),
            sft: self.sft.as_ref().map(progress),
            has_reference: self.reference.is_some(),
            reward: self.reward.as_ref().map(|t| Progress { step: t.step_count(), total: t.total_steps(), done: t.is_done() }),
            has_reward_model: self.reward_model.is_some(),
            ppo: self.ppo.as_ref().map(|t| Progress { step: t.iteration(), total: self.config.ppo.iterations.max(t.iteration()), done: t.is_done() }),
            grpo: self.grpo.as_ref().map(|t| Progress { step: t.iteration(), total: self.config.grpo.iterations.max(t.iteration()), done: t.is_done() }),
            dpo: self.dpo.as_ref().map(|t| Progress { step: t.step_count(), total: t.total_steps(), done: t.is_done() }),
            sweep: self.sweep.as_ref().map(|s| Progress { step: s.points.len(), total: s.runs(), done: s.is_done() }),
        }
    }

    /// A freshly initialized base model (random weights from the seed).
    pub fn base_from_scratch(&mut self) {
        let mut rng = Rng::derive(self.config.seed, "init/base");
        self.base = Some(Gpt::new(&self.model_config(), &mut rng, &self.device));
        self.sft = None;
        self.reference = None;
    }

    /// One bounded step of `stage`.
    pub async fn step(&mut self, stage: Stage) -> Result<Metrics> {
        match stage {
            Stage::Pretrain => self.pretrain_step().await,
            Stage::Sft => self.sft_step().await,
            Stage::Reward => self.reward_step().await,
            Stage::Ppo => self.ppo_step().await,
            Stage::Grpo => self.grpo_trainer()?.step().await,
            Stage::Dpo => self.dpo_step().await,
            Stage::Sweep => self.sweep_step().await,
        }
    }

    /// θ and the helpers' work for a data-parallel step of `stage` in `shards` (`engine::data_parallel`), or
    /// `None` when the step is taken whole (PPO's rollouts, the β sweep's runs).
    pub async fn shard_plan(&self, stage: Stage, shards: usize) -> Result<Option<(Vec<f32>, Vec<ShardWork<ShardObjective>>)>> {
        let not_begun = |what: &str| LabError::NotReady(format!("{what} has not begun"));
        fn wrap<S>((theta, work): (Vec<f32>, Vec<ShardWork<S>>), into: impl Fn(S) -> ShardObjective) -> Option<(Vec<f32>, Vec<ShardWork<ShardObjective>>)> {
            Some((theta, work.into_iter().map(|w| w.map(&into)).collect()))
        }
        Ok(match stage {
            Stage::Pretrain => wrap(self.pretrain.as_ref().ok_or_else(|| not_begun("pretraining"))?.shard_plan(shards).await?, ShardObjective::MaskedLm),
            Stage::Sft => wrap(self.sft.as_ref().ok_or_else(|| not_begun("SFT"))?.shard_plan(shards).await?, ShardObjective::MaskedLm),
            Stage::Reward => wrap(self.reward.as_ref().ok_or_else(|| not_begun("the reward model's training"))?.shard_plan(shards).await?, ShardObjective::BradleyTerry),
            Stage::Dpo => wrap(self.dpo.as_ref().ok_or_else(|| not_begun("DPO"))?.shard_plan(shards).await?, ShardObjective::Dpo),
            // `None` in the rollout phase.
            Stage::Ppo => self.ppo.as_ref().ok_or_else(|| not_begun("PPO"))?.shard_plan(shards).await?.and_then(|plan| wrap(plan, ShardObjective::Ppo)),
            Stage::Grpo => self.grpo.as_ref().ok_or_else(|| not_begun("GRPO"))?.shard_plan(shards).await?.and_then(|plan| wrap(plan, ShardObjective::Grpo)),
            Stage::Sweep => None,
        })
    }

    /// One data-parallel step of `stage` in `shards`: shard 0 here, the others' results from
    /// `helpers` (see `SftTrainer::step_sharded`, `PpoTrainer::step_sharded`).
    pub async fn step_sharded<F: std::future::Future<Output = Result<Vec<ShardResult>>>>(&mut self, stage: Stage, shards: usize, helpers: F) -> Result<Metrics> {
        match stage {
            Stage::Pretrain => {
                let trainer = self.pretrain.as_mut().ok_or_else(|| LabError::NotReady("pretraining has not begun".into()))?;
                let metrics = trainer.step_sharded(shards, helpers).await?;
                self.base = Some(trainer.model());
                Ok(metrics)
            }
            Stage::Sft => self.sft.as_mut().ok_or_else(|| LabError::NotReady("SFT has not begun".into()))?.step_sharded(shards, helpers).await,
            Stage::Reward => self.reward_trainer()?.step_sharded(shards, helpers).await,
            Stage::Ppo => self.ppo_trainer()?.step_sharded(shards, helpers).await,
            Stage::Grpo => self.grpo_trainer()?.step_sharded(shards, helpers).await,
            Stage::Dpo => self.dpo_trainer()?.step_sharded(shards, helpers).await,
            other => Err(LabError::InvalidInput(format!("{} takes whole steps: it has no data-parallel step", other.name()))),
        }
    }
}
