//! What the page's views read from a rollout: one completion token by token (the rollout
//! inspector, the GAE stepper), the batch's (ρ, Â) points (the clipping view), one group (the
//! group inspector).

use serde::Serialize;

use super::loss::Trained;
use super::recipe::Advantage;
use super::OnPolicyTrainer;
use crate::error::{LabError, Result};
use crate::rlhf::labels::prompt_text;
use crate::rlhf::math::gae::td_errors;
use crate::rlhf::math::grpo::Estimator;
use crate::rlhf::task::MAX_COMPLETION;

/// A (ρ, Â) point of the clipping view.
#[derive(Debug, Clone, Serialize)]
pub struct ClipPoint {
    pub ratio: f32,
    pub advantage: f32,
    pub clipped: bool,
}

/// One completion of a rollout, every per-token quantity of the page's §3–§6 in a row.
#[derive(Debug, Clone, Serialize)]
pub struct RolloutRecord {
    pub index: usize,
    pub prompt: String,
    pub tokens: Vec<String>,
    pub score: f32,
    pub gold: f32,
    pub logprobs: Vec<f32>,
    pub ref_logprobs: Vec<f32>,
    pub kl: Vec<f32>,
    pub non_score: Vec<f32>,
    pub rewards: Vec<f32>,
    pub values: Vec<f32>,
    pub deltas: Vec<f32>,
    pub advantages_raw: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
    pub ratio: Vec<f32>,
    pub clipped: Vec<bool>,
    pub gamma: f32,
    pub lam: f32,
    pub kl_coef: f32,
    pub cliprange: f32,
    pub batch: usize,
    pub points: Vec<ClipPoint>,
}

/// One completion of a group, as the group inspector shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupMember {
    pub tokens: Vec<String>,
    pub score: f32,
    pub gold: f32,
    /// What r_i was compared with: the group's mean, or the mean of the others (RLOO).
    pub baseline: f32,
    pub advantage: f32,
    pub ends: bool,
}

/// One prompt's group: its completions with r_i, the group's mean and std, and Â_i.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRecord {
    pub index: usize,
    pub groups: usize,
    /// The iteration (1-based) this rollout belongs to.
    pub iteration: usize,
    pub product: usize,
    pub prompt: String,
    pub estimator: Estimator,
    pub scale_rewards: bool,
    pub mean: f32,
    pub std: f32,
    pub zero_std: bool,
    pub members: Vec<GroupMember>,
}

impl<M: Trained> OnPolicyTrainer<M> {
    /// The first completion of the current rollout that answers `product`'s prompt, if any (the
    /// group inspector shows its per-token advantages beside a group's).
    pub fn completion_for(&self, product: usize) -> Option<usize> {
        self.rollout.as_ref()?.completions.iter().position(|c| c.product == product)
    }

    /// One completion of the current rollout, token by token, for the inspector and the GAE
    /// stepper; and the batch's (ρ, Â) points for the clipping view.
    pub fn record(&self, index: usize) -> Result<RolloutRecord> {
        let stage = self.recipe.stage.to_uppercase();
        let r = self.rollout.as_ref().ok_or_else(|| LabError::NotReady(format!("no rollout yet: run a {stage} step first")))?;
        if index >= r.completions.len() {
            return Err(LabError::InvalidInput(format!("rollout has {} completions (asked for {index})", r.completions.len())));
        }
        let (gamma, lam) = match self.recipe.advantage {
            Advantage::Gae { gamma, lam } => (gamma, lam),
            Advantage::Group { .. } => return Err(LabError::InvalidInput(format!("{stage} has no per-token GAE to show: its advantages are per completion (see its groups)"))),
        };
        let n = MAX_COMPLETION;
        let len = r.lengths[index];
        let row = |v: &[f32]| v[index * n..index * n + len].to_vec();
        let c = &r.completions[index];
        let values = row(&r.values);
        let rewards = row(&r.rewards);
        let mask = r.mask();
        let points: Vec<ClipPoint> = (0..r.ratio.len())
            .filter(|&i| mask[i])
            .map(|i| ClipPoint { ratio: r.ratio[i], advantage: r.advantages[i], clipped: r.clipped[i] })
            .collect();
        Ok(RolloutRecord {
            index,
            prompt: prompt_text(&self.tokenizer, c.product),
            tokens: c.tokens.iter().map(|&t| self.tokenizer.word(t).to_string()).collect(),
            score: r.scores[index],
            gold: r.gold[index],
            logprobs: row(&r.logprobs),
            ref_logprobs: row(&r.ref_logprobs),
            kl: row(&r.kl),
            non_score: row(&r.non_score),
            deltas: td_errors(&rewards, &values, gamma),
            rewards,
            values,
            advantages_raw: row(&r.advantages_raw),
            advantages: row(&r.advantages),
            returns: row(&r.returns),
            ratio: row(&r.ratio),
            clipped: r.clipped[index * n..index * n + len].to_vec(),
            gamma,
            lam,
            kl_coef: r.kl_coef as f32,
            cliprange: self.recipe.loss.epsilon_high,
            batch: r.completions.len(),
            points,
        })
    }

    /// Group `index` of the current rollout, for the group inspector.
    pub fn group_record(&self, index: usize) -> Result<GroupRecord> {
        let stage = self.recipe.stage.to_uppercase();
        let r = self.rollout.as_ref().ok_or_else(|| LabError::NotReady(format!("no rollout yet: run a {stage} step first")))?;
        let Advantage::Group { estimator, scale } = self.recipe.advantage else {
            return Err(LabError::InvalidInput(format!("{stage} has no groups: its baseline is a learned V_ψ")));
        };
        if index >= r.groups.len() {
            return Err(LabError::InvalidInput(format!("the rollout has {} groups (asked for {index})", r.groups.len())));
        }
        let g = r.group_len();
        let stats = &r.groups[index];
        let members = (index * g..(index + 1) * g)
            .zip(&stats.baselines)
            .map(|(i, &baseline)| {
                let c = &r.completions[i];
                GroupMember {
                    tokens: c.tokens.iter().map(|&t| self.tokenizer.word(t).to_string()).collect(),
                    score: r.scores[i],
                    gold: r.gold[i],
                    baseline,
                    advantage: r.sequence_advantages[i],
                    ends: c.ends(),
                }
            })
            .collect();
        Ok(GroupRecord {
            index,
            groups: r.groups.len(),
            iteration: self.iteration + usize::from(matches!(self.phase, super::Phase::Update { .. })),
            product: r.completions[index * g].product,
            prompt: prompt_text(&self.tokenizer, r.completions[index * g].product),
            estimator,
            scale_rewards: scale,
            mean: stats.mean,
            std: stats.std,
            zero_std: stats.zero_std,
            members,
        })
    }
}
