//! The β sweep behind the reward–KL frontier: PPO, GRPO, RLOO, REINFORCE, GSPO and DPO trained at several β from
//! the same π_ref (and r_φ, labels), each measured the same way when it ends (`evaluate_policy`).
//!
//! It is a stage of its own, with its own trainers, so it never replaces the policies the PPO and
//! DPO panels are training; its bounded step is one step of the run in progress (or the
//! evaluation that closes it).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::dpo::DpoTrainer;
use super::grpo::{GroupMethod, GrpoTrainer};
use super::on_policy::reward::Reward;
use super::ppo::{evaluate_policy, PolicyEvaluation, PpoTrainer};
use crate::engine::model::{Gpt, ScalarModel};
use crate::error::{LabError, Result};
use crate::rlhf::config::LabConfig;
use crate::rlhf::labels::LabeledPair;
use crate::rlhf::metrics::{metrics, Metrics};
use crate::rlhf::task::Tokenizer;

/// Completions each policy is measured on (fresh prompts, the same seed for every method).
pub const EVALUATION_COMPLETIONS: usize = 128;
pub const EVALUATION_SEED: u64 = 99;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Ppo,
    /// GRPO with the lab's GRPO settings (the estimator forced to the group mean).
    Grpo,
    /// RLOO: the GRPO stage with the leave-one-out baseline and no std scaling.
    Rloo,
    /// REINFORCE with the batch's mean as baseline (`GroupMethod::Reinforce`).
    Reinforce,
    /// GSPO: GRPO's baseline with the sequence-level ratio (`GroupMethod::Gspo`).
    Gspo,
    Dpo,
}

impl Method {
    /// The settings of a critic-free method, from the lab's GRPO settings.
    pub fn group_method(self) -> Option<GroupMethod> {
        match self {
            Self::Grpo => Some(GroupMethod::Grpo),
            Self::Rloo => Some(GroupMethod::Rloo),
            Self::Reinforce => Some(GroupMethod::Reinforce),
            Self::Gspo => Some(GroupMethod::Gspo),
            Self::Ppo | Self::Dpo => None,
        }
    }

    /// Whether the method scores its rollouts with r_φ (all but DPO).
    pub fn needs_reward_model(self) -> bool {
        self != Self::Dpo
    }
}

/// One run of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRun {
    pub method: Method,
    /// PPO's KL coefficient (adaptive control off), GRPO's and RLOO's k3 coefficient, or DPO's β.
    pub beta: f64,
}

/// A policy on the frontier, with what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct FrontierPoint {
    pub method: Method,
    pub beta: f64,
    pub evaluation: PolicyEvaluation,
    pub gradient_steps: usize,
    pub seconds: f64,
}

enum Trainer {
    Ppo(PpoTrainer),
    Grpo(GrpoTrainer),
    Dpo(DpoTrainer),
}

struct Running {
    run: SweepRun,
    trainer: Trainer,
    gradient_steps: usize,
    started_ms: f64,
}

pub struct Sweep {
    runs: Vec<SweepRun>,
    next: usize,
    current: Option<Running>,
    pub points: Vec<FrontierPoint>,
    labels: Vec<LabeledPair>,
    config: LabConfig,
}

impl Sweep {
    /// Checks that every run can happen: PPO, GRPO and RLOO need the reward model, DPO labels.
    pub fn new(runs: Vec<SweepRun>, labels: Vec<LabeledPair>, config: &LabConfig, has_reward_model: bool) -> Result<Self> {
        if runs.is_empty() || runs.len() > 16 {
            return Err(LabError::InvalidInput(format!("a sweep has 1 to 16 runs (got {})", runs.len())));
        }
        for run in &runs {
            match run.method {
                Method::Dpo if !(1e-4..=100.0).contains(&run.beta) => return Err(LabError::setting("sweep.beta", format!("DPO's β must be between 0.0001 and 100 (got {})", run.beta))),
                m if m != Method::Dpo && !(0.0..=10.0).contains(&run.beta) => return Err(LabError::setting("sweep.beta", format!("{m:?}'s β must be between 0 and 10 (got {})", run.beta))),
                m if m.needs_reward_model() && !has_reward_model => return Err(LabError::NotReady(format!("{m:?} runs need the reward model: train it in stage 2 first"))),
                Method::Dpo if labels.is_empty() => return Err(LabError::NotReady("DPO runs need labels".into())),
                _ => {}
            }
        }
        Ok(Self { runs, next: 0, current: None, points: Vec::new(), labels, config: config.clone() })
    }

    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.runs.len() && self.current.is_none()
    }

    /// One bounded step: begin the next run, one step of it, or measure it when it ends.
    pub async fn step(&mut self, reference: &Gpt, reward: Option<&ScalarModel>, tokenizer: &Tokenizer, device: &Device) -> Result<Metrics> {
        if self.is_done() {
            return Err(LabError::NotReady("the sweep is done".into()));
        }
        let index = self.next;
        let mut out = metrics([("sweep/run", (index + 1) as f64), ("sweep/runs", self.runs.len() as f64)]);
        let Some(running) = self.current.as_mut() else {
            let run = self.runs[index].clone();
            let mut config = self.config.clone();
            let trainer = match run.method {
                Method::Ppo => {
                    config.ppo.kl_coef = run.beta;
                    config.ppo.adaptive_kl = false;
                    let reward = reward.ok_or_else(|| LabError::NotReady("PPO runs need the reward model".into()))?;
                    Trainer::Ppo(PpoTrainer::new(reference, reward, &config.ppo, config.seed, tokenizer, device)?)
                }
                Method::Grpo | Method::Rloo | Method::Reinforce | Method::Gspo => {
                    config.grpo.beta = run.beta;
                    let settings = run.method.group_method().expect("a critic-free method").settings(&config.grpo);
                    let reward = reward.ok_or_else(|| LabError::NotReady(format!("{:?} runs need the reward model", run.method)))?;
                    Trainer::Grpo(GrpoTrainer::new(reference, reward, &settings, config.seed, tokenizer, device)?)
                }
                Method::Dpo => {
                    config.dpo.beta = run.beta;
                    Trainer::Dpo(DpoTrainer::new(reference, self.labels.clone(), &config.dpo, config.reward.held_out_fraction, config.seed, tokenizer, device).await?)
                }
            };
            self.current = Some(Running { run, trainer, gradient_steps: 0, started_ms: crate::clock::now_ms() });
            out.insert("sweep/phase".into(), 0.0);
            return Ok(out);
        };
        let finished = match &running.trainer {
            Trainer::Ppo(t) => t.is_done(),
            Trainer::Grpo(t) => t.is_done(),
            Trainer::Dpo(t) => t.is_done(),
        };
        if !finished {
            let m = match &mut running.trainer {
                Trainer::Ppo(t) => t.step().await?,
                Trainer::Grpo(t) => t.step().await?,
                Trainer::Dpo(t) => t.step().await?,
            };
            let update = m.get("phase").is_none_or(|&p| p == 1.0);
            running.gradient_steps += usize::from(update);
            out.insert("sweep/phase".into(), 1.0);
            out.insert("sweep/gradient_steps".into(), running.gradient_steps as f64);
            if let Some(&iteration) = m.get("iteration") {
                out.insert("sweep/iteration".into(), iteration);
            }
            return Ok(out);
        }
        let policy = match &running.trainer {
            Trainer::Ppo(t) => t.policy(),
            Trainer::Grpo(t) => t.policy(),
            Trainer::Dpo(t) => t.policy(),
        };
        let evaluation = evaluate_policy(&policy, reference, reward.cloned().map(Reward::Model).as_ref(), tokenizer, EVALUATION_COMPLETIONS, EVALUATION_SEED, device).await?;
        let point = FrontierPoint {
            method: running.run.method,
            beta: running.run.beta,
            gradient_steps: running.gradient_steps,
            seconds: (crate::clock::now_ms() - running.started_ms) / 1e3,
            evaluation,
        };
        out.insert("sweep/phase".into(), 2.0);
        out.insert("frontier/kl".into(), f64::from(point.evaluation.kl));
        out.insert("frontier/gold".into(), f64::from(point.evaluation.gold));
        if let Some(score) = point.evaluation.score {
            out.insert("frontier/score".into(), f64::from(score));
        }
        self.points.push(point);
        self.current = None;
        self.next += 1;
        Ok(out)
    }
}
