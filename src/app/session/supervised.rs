//! The session's supervised stages: pretraining, SFT (π_ref), preferences and the reward model
//! (r_φ), DPO.

use crate::engine::model::Gpt;
use crate::error::{LabError, Result};
use crate::rlhf::labels::{self, LabelRecord, LabeledPair, PairToJudge};
use crate::rlhf::metrics::Metrics;
use crate::rlhf::stages::dpo::{DpoInspection, DpoTrainer};
use crate::rlhf::stages::grpo::GrpoTrainer;
use crate::rlhf::stages::ppo::PpoTrainer;
use crate::rlhf::stages::reward::{sample_pairs, InspectedPair, RewardTrainer};
use crate::rlhf::stages::sft::{prompt_samples, PromptSample, SftTrainer};

use super::*;

impl Session {
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

    pub(super) fn language_model(&self, role: Role) -> Result<Gpt> {
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

    pub(super) fn reference(&self) -> Result<&Gpt> {
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

    pub(super) fn reward_trainer(&mut self) -> Result<&mut RewardTrainer> {
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

    pub(super) fn dpo_trainer(&mut self) -> Result<&mut DpoTrainer> {
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
}
