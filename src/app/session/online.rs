//! The session's online RL: PPO and GRPO (and the methods that are GRPO's choices) against the
//! reward they are set to, their views and evaluations, and the β sweep.

use crate::engine::model::ScalarModel;
use crate::error::{LabError, Result};
use crate::rlhf::labels;
use crate::rlhf::metrics::Metrics;
use crate::rlhf::stages::grpo::{GroupRecord, GrpoTrainer};
use crate::rlhf::reward_expression::RewardExpression;
use crate::rlhf::stages::on_policy::recipe::RewardSource;
use crate::rlhf::stages::on_policy::reward::Reward;
use crate::rlhf::stages::on_policy::sampling::{scored_samples, ScoredSample};
use crate::rlhf::stages::ppo::{evaluate_policy, PolicyEvaluation, PpoTrainer, RolloutRecord};
use crate::rlhf::stages::sweep::{FrontierPoint, Sweep, SweepRun};

use super::*;

impl Session {
    // ---- stage 3: PPO ----

    /// What `source` computes rewards with, from what the session holds: r_φ (stage 2 must be
    /// done), the gold utility, or the learner's expression (`reward.expression`).
    pub(super) fn reward_of(&self, source: RewardSource, stage: &str) -> Result<Reward> {
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

    pub(super) fn new_ppo(&self) -> Result<PpoTrainer> {
        let reward = self.reward_of(self.config.ppo.reward, "PPO")?;
        let reference = self.reference()?;
        let value = reward.model().cloned().unwrap_or_else(|| ScalarModel::from_trunk(reference.clone(), &self.device));
        PpoTrainer::against(reference, reward, &value, &self.config.ppo, self.config.seed, &self.tokenizer, &self.device)
    }

    pub(super) fn new_grpo(&self) -> Result<GrpoTrainer> {
        let reward = self.reward_of(self.config.grpo.reward, "GRPO")?;
        GrpoTrainer::against(self.reference()?, reward, &self.config.grpo, self.config.seed, &self.tokenizer, &self.device)
    }

    pub(super) fn ppo_trainer(&mut self) -> Result<&mut PpoTrainer> {
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

    pub(super) fn grpo_trainer(&mut self) -> Result<&mut GrpoTrainer> {
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
    /// `expression` checked, and scored on one completion of each product prompt from the model
    /// in `role` (π_ref before training): what it would reward, beside gold.
    pub async fn reward_preview(&self, expression: &str, role: Role, temperature: f32, seed: u64) -> Result<Vec<ScoredSample>> {
        let expression = RewardExpression::parse(expression, &self.tokenizer)?;
        let model = self.language_model(role)?;
        scored_samples(&model, &expression, &self.tokenizer, temperature, seed, &self.device).await
    }

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
}
