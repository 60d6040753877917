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
use crate::engine::checkpoint::{self, CheckpointHeader};
use crate::engine::data_parallel::{ShardResult, ShardWork};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::{Gpt, ScalarModel};
use crate::error::{LabError, Result};
use crate::rlhf::config::LabConfig;
use crate::rlhf::labels::{self, LabelRecord, LabeledPair, PairToJudge};
use crate::rlhf::metrics::Metrics;
use crate::rlhf::stages::dpo::{DpoInspection, DpoTrainer};
use crate::rlhf::stages::grpo::{GroupRecord, GrpoTrainer};
use crate::rlhf::reward_expression::RewardExpression;
use crate::rlhf::stages::on_policy::recipe::RewardSource;
use crate::rlhf::stages::on_policy::rollout::Reward;
use crate::rlhf::stages::ppo::{evaluate_policy, PolicyEvaluation, PpoTrainer, RolloutRecord};
use crate::rlhf::stages::reward::{sample_pairs, InspectedPair, RewardTrainer};
use crate::rlhf::stages::sft::{prompt_samples, PromptSample, SftTrainer};
use crate::rlhf::stages::sweep::{FrontierPoint, Sweep, SweepRun};
use crate::rlhf::task::Tokenizer;
use crate::rng::Rng;

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

    // ---- pretraining (the base model, from scratch) ----

    pub fn pretrain_begin(&mut self) -> Result<()> {
        let base = self.base.clone().ok_or_else(|| LabError::NotReady("initialize a base model first".into()))?;
        self.pretrain = Some(SftTrainer::pretrain(base, &self.config.pretrain, &self.tokenizer, self.config.seed, &self.device)?);
        Ok(())
    }

    pub async fn pretrain_step(&mut self) -> Result<Metrics> {
        let trainer = self.pretrain.as_mut().ok_or_else(|| LabError::NotReady("pretraining has not begun".into()))?;
        let metrics = trainer.step().await?;
        self.base = Some(trainer.model());
        Ok(metrics)
    }

    // ---- stage 1: SFT ----

    pub fn sft_begin(&mut self) -> Result<()> {
        let base = self.base.clone().ok_or_else(|| LabError::NotReady("SFT needs a base model: load the shipped one or start from scratch".into()))?;
        let base = crate::engine::model::with_fresh_ids(base);
        self.sft = Some(SftTrainer::sft(base, &self.config.sft, &self.tokenizer, self.config.seed, &self.device)?);
        self.reference = None;
        Ok(())
    }

    pub async fn sft_step(&mut self) -> Result<Metrics> {
        let trainer = self.sft.as_mut().ok_or_else(|| LabError::NotReady("SFT has not begun".into()))?;
        trainer.step().await
    }

    /// Ends SFT: a frozen copy of the model becomes π_ref.
    pub fn sft_finish(&mut self) -> Result<()> {
        let trainer = self.sft.as_ref().ok_or_else(|| LabError::NotReady("SFT has not begun".into()))?;
        self.reference = Some(trainer.model());
        Ok(())
    }

    /// Test hook: the given SFT step computes a NaN loss (see `SftTrainer::poison_step`).
    pub fn sft_poison_step(&mut self, step: usize) -> Result<()> {
        self.sft.as_mut().ok_or_else(|| LabError::NotReady("SFT has not begun".into()))?.poison_step(step);
        Ok(())
    }

    fn language_model(&self, role: Role) -> Result<Gpt> {
        match role {
            Role::Base => self.base.clone().ok_or_else(|| LabError::NotReady("there is no base model yet".into())),
            Role::Sft => self
                .reference
                .clone()
                .or_else(|| self.sft.as_ref().map(SftTrainer::model))
                .ok_or_else(|| LabError::NotReady("SFT has not begun".into())),
            Role::Policy => self.ppo.as_ref().map(PpoTrainer::policy).ok_or_else(|| LabError::NotReady("PPO has not begun".into())),
            Role::Dpo => self.dpo.as_ref().map(DpoTrainer::policy).ok_or_else(|| LabError::NotReady("DPO has not begun".into())),
            Role::Grpo => self.grpo.as_ref().map(GrpoTrainer::policy).ok_or_else(|| LabError::NotReady("GRPO has not begun".into())),
            Role::Reward | Role::Value => Err(LabError::InvalidInput(format!("the {} model is not a language model: it scores, it does not write", role.name()))),
        }
    }

    /// One completion per product prompt from the model in `role`.
    pub async fn samples(&self, role: Role, temperature: f32, seed: u64) -> Result<Vec<PromptSample>> {
        let model = self.language_model(role)?;
        prompt_samples(&model, &self.tokenizer, temperature, seed, &self.device).await
    }

    // ---- stage 2: preferences and the reward model ----

    fn reference(&self) -> Result<&Gpt> {
        self.reference.as_ref().ok_or_else(|| LabError::NotReady("finish SFT first: pairs are sampled from π_ref".into()))
    }

    /// `count` new pairs of completions from π_ref to judge (1..=128 per call).
    pub async fn sample_pairs(&mut self, count: usize) -> Result<Vec<PairToJudge>> {
        let reference = self.reference()?.clone();
        let temperature = self.config.reward.sample_temperature as f32;
        let pairs = sample_pairs(&reference, &self.tokenizer, count, temperature, &mut self.pair_rng, &self.device).await?;
        Ok(pairs
            .iter()
            .map(|(a, b)| PairToJudge {
                prompt: labels::prompt_text(&self.tokenizer, a.product),
                first: self.tokenizer.decode(&a.tokens),
                second: self.tokenizer.decode(&b.tokens),
            })
            .collect())
    }

    /// `count` pairs from π_ref labeled by the simulated Bradley–Terry labeler.
    pub async fn simulate_labels(&mut self, count: usize) -> Result<Vec<SimulatedLabel>> {
        let reference = self.reference()?.clone();
        let temperature = self.config.reward.sample_temperature as f32;
        let pairs = sample_pairs(&reference, &self.tokenizer, count, temperature, &mut self.pair_rng, &self.device).await?;
        let tau = self.config.reward.labeler_temperature as f32;
        let now = crate::clock::now_ms();
        Ok(labels::simulate(&pairs, &self.tokenizer, tau, &mut self.pair_rng)
            .into_iter()
            .map(|(pair, p_first)| SimulatedLabel {
                label: LabelRecord { time: Some(now), ..pair.record(&self.tokenizer) },
                p_first,
                gold_first: pair.first.gold(&self.tokenizer).total,
                gold_second: pair.second.gold(&self.tokenizer).total,
            })
            .collect())
    }

    /// Validates a label file (JSON lines) without keeping it: the page checks an import with it
    /// before storing anything. Returns how many labels it holds.
    pub fn check_labels(&self, jsonl: &str) -> Result<usize> {
        labels::parse_jsonl(jsonl, &self.tokenizer).map(|l| l.len())
    }

    /// Begins training a reward model on π_ref's trunk from `jsonl` labels.
    pub fn reward_begin(&mut self, jsonl: &str) -> Result<RewardPlan> {
        let pairs: Vec<LabeledPair> = labels::parse_jsonl(jsonl, &self.tokenizer)?;
        let trainer = RewardTrainer::new(self.reference()?, pairs, &self.config.reward, self.config.seed, &self.tokenizer, &self.device)?;
        let plan = RewardPlan { train: trainer.train_len(), held_out: trainer.held_out_len(), steps: trainer.total_steps(), ceiling: trainer.ceiling() };
        self.reward = Some(trainer);
        self.reward_labels = Some(jsonl.to_string());
        self.reward_model = None;
        Ok(plan)
    }

    fn reward_trainer(&mut self) -> Result<&mut RewardTrainer> {
        self.reward.as_mut().ok_or_else(|| LabError::NotReady("the reward model's training has not begun".into()))
    }

    pub async fn reward_step(&mut self) -> Result<Metrics> {
        self.reward_trainer()?.step().await
    }

    pub fn reward_poison_step(&mut self, step: usize) -> Result<()> {
        self.reward_trainer()?.poison_step(step);
        Ok(())
    }

    /// Held-out pairs as the reward model sees them now.
    pub async fn reward_inspect(&mut self, limit: usize) -> Result<Vec<InspectedPair>> {
        self.reward_trainer()?.inspect(limit).await
    }

    /// Freezes the reward model, shifted to zero mean; returns the shift.
    pub async fn reward_finish(&mut self) -> Result<f32> {
        let (model, mean) = self.reward_trainer()?.finish().await?;
        self.reward_model = Some(model);
        Ok(mean)
    }

    // ---- stage 3: PPO ----

    /// What `source` computes rewards with, from what the session holds: r_φ (stage 2 must be
    /// done), the gold utility, or the learner's expression (`reward.expression`).
    fn reward_of(&self, source: RewardSource, stage: &str) -> Result<Reward> {
        match source {
            RewardSource::RewardModel => self.reward_model.clone().map(Reward::Model).ok_or_else(|| LabError::NotReady(format!("{stage} against r_φ needs a trained reward model: finish stage 2 first, or train against the gold utility or your own reward"))),
            RewardSource::Gold => Ok(Reward::Gold),
            RewardSource::Custom => Ok(Reward::Custom(RewardExpression::parse(&self.config.reward.expression, &self.tokenizer)?)),
        }
    }

    /// π_θ ← π_ref with the current PPO settings; V_ψ ← r_φ against r_φ, or π_ref's trunk with a
    /// zero head against a program's reward.
    pub fn ppo_begin(&mut self) -> Result<()> {
        self.ppo = Some(self.new_ppo()?);
        Ok(())
    }

    fn new_ppo(&self) -> Result<PpoTrainer> {
        let reward = self.reward_of(self.config.ppo.reward, "PPO")?;
        let reference = self.reference()?;
        let value = reward.model().cloned().unwrap_or_else(|| ScalarModel::from_trunk(reference.clone(), &self.device));
        PpoTrainer::against(reference, reward, &value, &self.config.ppo, self.config.seed, &self.tokenizer, &self.device)
    }

    fn new_grpo(&self) -> Result<GrpoTrainer> {
        let reward = self.reward_of(self.config.grpo.reward, "GRPO")?;
        GrpoTrainer::against(self.reference()?, reward, &self.config.grpo, self.config.seed, &self.tokenizer, &self.device)
    }

    fn ppo_trainer(&mut self) -> Result<&mut PpoTrainer> {
        self.ppo.as_mut().ok_or_else(|| LabError::NotReady("PPO has not begun".into()))
    }

    /// One rollout or one minibatch update.
    pub async fn ppo_step(&mut self) -> Result<Metrics> {
        self.ppo_trainer()?.step().await
    }

    pub fn ppo_poison_update(&mut self, update: usize) -> Result<()> {
        self.ppo_trainer()?.poison_update(update);
        Ok(())
    }

    /// Completion `index` of the current rollout, token by token.
    pub fn ppo_record(&mut self, index: usize) -> Result<RolloutRecord> {
        self.ppo_trainer()?.record(index)
    }

    // ---- stage 3b: GRPO / RLOO ----

    /// π_grpo ← π_ref with the current GRPO settings, against the same frozen r_φ as PPO.
    pub fn grpo_begin(&mut self) -> Result<()> {
        self.grpo = Some(self.new_grpo()?);
        Ok(())
    }

    fn grpo_trainer(&mut self) -> Result<&mut GrpoTrainer> {
        self.grpo.as_mut().ok_or_else(|| LabError::NotReady("GRPO has not begun".into()))
    }

    pub fn grpo_poison_update(&mut self, update: usize) -> Result<()> {
        self.grpo_trainer()?.poison_update(update);
        Ok(())
    }

    /// Group `index` of the current GRPO rollout: its completions, r_i, mean, std and Â_i.
    pub fn grpo_record(&mut self, index: usize) -> Result<GroupRecord> {
        self.grpo_trainer()?.group_record(index)
    }

    /// PPO's rollout record of a completion of `product`'s prompt (`None`: PPO's current rollout
    /// has none), for the group inspector's per-token GAE advantages.
    pub fn ppo_record_for(&mut self, product: usize) -> Result<Option<RolloutRecord>> {
        let trainer = self.ppo_trainer()?;
        trainer.completion_for(product).map(|i| trainer.record(i)).transpose()
    }

    /// Evaluates the model in `role` (sft = π_ref, policy = π_θ) on `count` fresh prompts.
    /// Evaluates the policy `stage` (PPO or GRPO) is training, its score being the reward it
    /// trains against (r_φ, the gold utility or the learner's expression) — with gold and the KL to
    /// π_ref, the three axes of the over-optimization picture (Gao et al. 2022).
    pub async fn evaluate_run(&self, stage: Stage, count: usize, seed: u64) -> Result<PolicyEvaluation> {
        if count == 0 || count > 4096 {
            return Err(LabError::InvalidInput(format!("evaluate between 1 and 4096 completions (got {count})")));
        }
        let (policy, source) = match stage {
            Stage::Ppo => (self.ppo.as_ref().map(PpoTrainer::policy).ok_or_else(|| LabError::NotReady("PPO has not begun".into()))?, self.config.ppo.reward),
            Stage::Grpo => (self.grpo.as_ref().map(GrpoTrainer::policy).ok_or_else(|| LabError::NotReady("GRPO has not begun".into()))?, self.config.grpo.reward),
            other => return Err(LabError::InvalidInput(format!("{} trains no policy against a reward", other.name()))),
        };
        let reward = self.reward_of(source, stage.name())?;
        evaluate_policy(&policy, self.reference()?, Some(&reward), &self.tokenizer, count, seed, &self.device).await
    }

    pub async fn evaluate(&self, role: Role, count: usize, seed: u64) -> Result<PolicyEvaluation> {
        if count == 0 || count > 4096 {
            return Err(LabError::InvalidInput(format!("evaluate between 1 and 4096 completions (got {count})")));
        }
        let policy = self.language_model(role)?;
        evaluate_policy(&policy, self.reference()?, self.reward_model.clone().map(Reward::Model).as_ref(), &self.tokenizer, count, seed, &self.device).await
    }

    // ---- DPO ----

    /// Begins DPO from π_ref on `jsonl` labels (π_ref's log-probs of every pair are computed
    /// now, in one readback).
    pub async fn dpo_begin(&mut self, jsonl: &str) -> Result<DpoPlan> {
        let pairs = labels::parse_jsonl(jsonl, &self.tokenizer)?;
        let reference = self.reference()?.clone();
        let trainer = DpoTrainer::new(&reference, pairs, &self.config.dpo, self.config.reward.held_out_fraction, self.config.seed, &self.tokenizer, &self.device).await?;
        let plan = DpoPlan { train: trainer.train_len(), held_out: trainer.held_out_len(), steps: trainer.total_steps(), ties_skipped: trainer.ties_skipped() };
        self.dpo = Some(trainer);
        self.dpo_labels = Some(jsonl.to_string());
        Ok(plan)
    }

    fn dpo_trainer(&mut self) -> Result<&mut DpoTrainer> {
        self.dpo.as_mut().ok_or_else(|| LabError::NotReady("DPO has not begun".into()))
    }

    pub async fn dpo_step(&mut self) -> Result<Metrics> {
        self.dpo_trainer()?.step().await
    }

    pub fn dpo_poison_step(&mut self, step: usize) -> Result<()> {
        self.dpo_trainer()?.poison_step(step);
        Ok(())
    }

    pub async fn dpo_inspect(&mut self, index: usize) -> Result<DpoInspection> {
        self.dpo_trainer()?.inspect(index).await
    }

    // ---- the β sweep ----

    /// Begins a sweep of PPO and DPO runs (`runs`) from π_ref; DPO runs train on `jsonl` labels.
    /// The sweep keeps its own trainers: the PPO and DPO stages are untouched.
    pub fn sweep_begin(&mut self, jsonl: &str, runs: Vec<SweepRun>) -> Result<usize> {
        self.reference()?;
        let needs_labels = runs.iter().any(|r| r.method == crate::rlhf::stages::sweep::Method::Dpo);
        let pairs = if needs_labels { labels::parse_jsonl(jsonl, &self.tokenizer)? } else { Vec::new() };
        let sweep = Sweep::new(runs, pairs, &self.config, self.reward_model.is_some())?;
        let count = sweep.runs();
        self.sweep = Some(sweep);
        Ok(count)
    }

    pub async fn sweep_step(&mut self) -> Result<Metrics> {
        let reference = self.reference()?.clone();
        let sweep = self.sweep.as_mut().ok_or_else(|| LabError::NotReady("the β sweep has not begun".into()))?;
        sweep.step(&reference, self.reward_model.as_ref(), &self.tokenizer, &self.device).await
    }

    /// The frontier points the sweep has measured so far.
    pub fn sweep_points(&self) -> Vec<FrontierPoint> {
        self.sweep.as_ref().map(|s| s.points.clone()).unwrap_or_default()
    }

    // ---- snapshots: resuming a stage after a reload ----

    /// What a snapshot of any stage must agree on with the session resuming it.
    fn session_settings(&self) -> serde_json::Value {
        serde_json::json!({ "preset": self.config.preset.name(), "seed": self.config.seed, "vocabulary": self.tokenizer.fingerprint() })
    }

    /// The stage's own settings, as its trainer checks them.
    fn stage_settings(&self, stage: Stage) -> Result<serde_json::Value> {
        let value = match stage {
            Stage::Sft => serde_json::to_value(&self.config.sft),
            Stage::Reward => serde_json::to_value(&self.config.reward),
            // A custom reward's expression is part of what the run optimizes.
            Stage::Ppo if self.config.ppo.reward == RewardSource::Custom => serde_json::to_value((&self.config.ppo, &self.config.reward.expression)),
            Stage::Grpo if self.config.grpo.reward == RewardSource::Custom => serde_json::to_value((&self.config.grpo, &self.config.reward.expression)),
            Stage::Ppo => serde_json::to_value(&self.config.ppo),
            Stage::Grpo => serde_json::to_value(&self.config.grpo),
            Stage::Dpo => serde_json::to_value((&self.config.dpo, self.config.reward.held_out_fraction)),
            Stage::Pretrain | Stage::Sweep => {
                return Err(LabError::InvalidInput(format!("the {} stage is not resumable: run it again", stage.name())));
            }
        };
        value.map_err(|e| LabError::InvalidInput(format!("settings do not serialize: {e}")))
    }

    /// The trainer of `stage` as bytes: weights, optimizer moments, counters, random streams and
    /// (for the reward and DPO stages) the labels it trains on.
    pub async fn snapshot(&self, stage: Stage) -> Result<Vec<u8>> {
        let settings = self.stage_settings(stage)?;
        let not_begun = || LabError::NotReady(format!("the {} stage has not begun", stage.name()));
        let (trainer, labels) = match stage {
            Stage::Sft => (self.sft.as_ref().ok_or_else(not_begun)?.snapshot(settings).await?, None),
            Stage::Reward => (self.reward.as_ref().ok_or_else(not_begun)?.snapshot(settings).await?, self.reward_labels.clone()),
            Stage::Ppo => (self.ppo.as_ref().ok_or_else(not_begun)?.snapshot(settings).await?, None),
            Stage::Grpo => (self.grpo.as_ref().ok_or_else(not_begun)?.snapshot(settings).await?, None),
            Stage::Dpo => (self.dpo.as_ref().ok_or_else(not_begun)?.snapshot(settings).await?, self.dpo_labels.clone()),
            Stage::Pretrain | Stage::Sweep => unreachable!("stage_settings refused it"),
        };
        let meta = crate::engine::snapshot::Meta { stage: format!("session/{}", stage.name()), settings: self.session_settings(), state: StageSnapshot { labels } };
        Ok(crate::engine::snapshot::pack(&meta, &[trainer]))
    }

    /// Begins `stage` again and puts its trainer back where the snapshot was. Needs what the
    /// stage's begin needs (the base model for SFT, π_ref after it, r_φ for PPO). Refuses a
    /// snapshot from another preset, seed, vocabulary or stage settings, and then changes nothing.
    pub async fn resume(&mut self, stage: Stage, bytes: &[u8]) -> Result<Resumed> {
        let (meta, blobs): (StageSnapshot, _) = crate::engine::snapshot::unpack(bytes, &format!("session/{}", stage.name()), &self.session_settings())?;
        let trainer_bytes = blobs.first().ok_or_else(|| LabError::Checkpoint("the snapshot holds no trainer".into()))?;
        let settings = self.stage_settings(stage)?;
        let labels = || meta.labels.clone().ok_or_else(|| LabError::Checkpoint("the snapshot lost its labels".into()));
        match stage {
            Stage::Sft => {
                let base = self.base.clone().ok_or_else(|| LabError::NotReady("resuming SFT needs the base model: load it first".into()))?;
                let mut trainer = SftTrainer::sft(crate::engine::model::with_fresh_ids(base), &self.config.sft, &self.tokenizer, self.config.seed, &self.device)?;
                trainer.restore(trainer_bytes, &settings)?;
                self.reference = trainer.is_done().then(|| trainer.model());
                self.sft = Some(trainer);
            }
            Stage::Reward => {
                let labels = labels()?;
                let pairs = labels::parse_jsonl(&labels, &self.tokenizer)?;
                let mut trainer = RewardTrainer::new(self.reference()?, pairs, &self.config.reward, self.config.seed, &self.tokenizer, &self.device)?;
                trainer.restore(trainer_bytes, &settings)?;
                (self.reward, self.reward_model, self.reward_labels) = (Some(trainer), None, Some(labels));
            }
            Stage::Ppo => {
                let mut trainer = self.new_ppo()?;
                trainer.restore(trainer_bytes, &settings)?;
                self.ppo = Some(trainer);
            }
            Stage::Grpo => {
                let mut trainer = self.new_grpo()?;
                trainer.restore(trainer_bytes, &settings)?;
                self.grpo = Some(trainer);
            }
            Stage::Dpo => {
                let labels = labels()?;
                let pairs = labels::parse_jsonl(&labels, &self.tokenizer)?;
                let reference = self.reference()?.clone();
                let mut trainer = DpoTrainer::new(&reference, pairs, &self.config.dpo, self.config.reward.held_out_fraction, self.config.seed, &self.tokenizer, &self.device).await?;
                trainer.restore(trainer_bytes, &settings)?;
                (self.dpo, self.dpo_labels) = (Some(trainer), Some(labels));
            }
            Stage::Pretrain | Stage::Sweep => unreachable!("stage_settings refused it"),
        }
        let plan = match stage {
            Stage::Reward => self.reward.as_ref().map(|t| serde_json::json!(RewardPlan { train: t.train_len(), held_out: t.held_out_len(), steps: t.total_steps(), ceiling: t.ceiling() })),
            Stage::Dpo => self.dpo.as_ref().map(|t| serde_json::json!(DpoPlan { train: t.train_len(), held_out: t.held_out_len(), steps: t.total_steps(), ties_skipped: t.ties_skipped() })),
            _ => None,
        };
        Ok(Resumed { progress: self.status().of(stage).expect("the stage was just restored"), plan })
    }

    // ---- checkpoints ----

    pub async fn save(&self, role: Role) -> Result<Vec<u8>> {
        let header = CheckpointHeader {
            role: role.name().into(),
            architecture: role.architecture().into(),
            model: self.model_config(),
            vocab: self.tokenizer.fingerprint(),
            // The settings (seed included) the model was made with: a Hugging Face export's card
            // reads them from here.
            note: serde_json::json!({"config": self.config}),
            record_len: 0,
            record_checksum: String::new(),
            header_checksum: String::new(),
        };
        let record = match role {
            Role::Reward => {
                let model = self.reward_model.as_ref().ok_or_else(|| LabError::NotReady("there is no trained reward model yet".into()))?;
                checkpoint::record_bytes(model).await?
            }
            Role::Value => {
                let model = self.ppo.as_ref().map(PpoTrainer::value_model).ok_or_else(|| LabError::NotReady("PPO has not begun".into()))?;
                checkpoint::record_bytes(&model).await?
            }
            _ => checkpoint::record_bytes(&self.language_model(role)?).await?,
        };
        Ok(checkpoint::encode(&header, &record))
    }

    /// Loads a checkpoint into the role its header names; refuses one made for another model or
    /// vocabulary, and changes nothing when it refuses.
    pub fn load(&mut self, bytes: &[u8]) -> Result<CheckpointHeader> {
        let (header, record) = checkpoint::decode(bytes)?;
        let role = Role::parse(&header.role).map_err(|_| LabError::Checkpoint(format!("unknown role {:?}", header.role)))?;
        checkpoint::check_header(&header, role.architecture(), &self.model_config(), &self.tokenizer.fingerprint())?;
        let blank = Gpt::new(&self.model_config(), &mut Rng::new(0), &self.device);
        match role {
            Role::Reward => {
                let model = checkpoint::load_record(ScalarModel::from_trunk(blank, &self.device), record)?;
                self.reward_model = Some(model);
            }
            Role::Policy | Role::Value | Role::Dpo | Role::Grpo => {
                return Err(LabError::Checkpoint(format!(
                    "a {} checkpoint is saved for inspection; PPO, GRPO and DPO restart from π_ref and r_φ (load those instead)",
                    role.name()
                )));
            }
            Role::Base | Role::Sft => {
                let model = checkpoint::load_record(blank, record)?;
                if role == Role::Base {
                    self.base = Some(model);
                    self.sft = None;
                    self.reference = None;
                } else {
                    self.reference = Some(model);
                }
            }
        }
        Ok(header)
    }
}
