//! Steps 1–4 of an on-policy iteration: sample, score, evaluate (one readback), then turn rewards
//! into advantages on the host as the recipe says (`Advantage`).

use burn::prelude::*;
use burn::tensor::Transaction;
use serde::{Deserialize, Serialize};

use super::loss::completion_values;
use super::recipe::{Advantage, KlPlacement, Recipe};
use super::reward::Reward;
use super::sampling::sample_on_device;
use crate::engine::model::{Gpt, ScalarModel};
use crate::engine::readback::count_readback;
use crate::error::{LabError, Result};
use crate::rlhf::math::gae::shape_batch;
use crate::rlhf::math::grpo::{group_advantages, Estimator, GroupAdvantages};
use crate::rlhf::math::stats::mean;
use crate::rlhf::math::whiten::masked_whiten;
use crate::rlhf::task::{prompt_tokens, Completion, Tokenizer, MAX_COMPLETION, PRODUCTS_COUNT};
use crate::rng::Rng;

/// One rollout on the host: `prompts` groups of G consecutive completions (G = 1: one each).
/// Per-token arrays are row-major [batch × MAX_COMPLETION], zero at PAD; the GAE-only and
/// group-only parts are empty in the other recipes. These are exactly the numbers the rollout
/// inspector, the GAE stepper, the clipping view and the group inspector show.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rollout {
    pub completions: Vec<Completion>,
    pub lengths: Vec<usize>,
    pub logprobs: Vec<f32>,
    pub ref_logprobs: Vec<f32>,
    /// The reward trained against (after the missing-`<eos>` penalty) and the gold utility.
    pub scores: Vec<f32>,
    pub gold: Vec<f32>,
    /// Â per token: GAE's whitened, or Â_i at each real token of completion i.
    pub advantages: Vec<f32>,
    /// GAE: V(s_t), per-token KL, its penalty, R_t, raw Â and the returns R̂ = Â + V.
    pub values: Vec<f32>,
    pub kl: Vec<f32>,
    pub non_score: Vec<f32>,
    pub rewards: Vec<f32>,
    pub advantages_raw: Vec<f32>,
    pub returns: Vec<f32>,
    /// Group baselines: Â_i per completion and each group's statistics.
    pub sequence_advantages: Vec<f32>,
    pub groups: Vec<GroupStats>,
    /// ρ of each token at its latest update (1 before any), and whether the clip was active.
    pub ratio: Vec<f32>,
    pub clipped: Vec<bool>,
    pub kl_coef: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupStats {
    pub mean: f32,
    pub std: f32,
    pub zero_std: bool,
    pub baselines: Vec<f32>,
}

impl From<GroupAdvantages> for GroupStats {
    fn from(g: GroupAdvantages) -> Self {
        Self { mean: g.mean, std: g.std, zero_std: g.zero_std, baselines: g.baselines }
    }
}

impl Rollout {
    pub fn mask(&self) -> Vec<bool> {
        self.lengths.iter().flat_map(|&len| (0..MAX_COMPLETION).map(move |t| t < len)).collect()
    }

    /// The mean over completions of the summed per-token KL in the reward.
    pub fn mean_sequence_kl(&self) -> f32 {
        let n = MAX_COMPLETION;
        mean(&(0..self.lengths.len()).map(|b| self.kl[b * n..(b + 1) * n].iter().sum()).collect::<Vec<f32>>())
    }

    /// The completions each group holds: G, or the whole batch (REINFORCE's baseline).
    pub fn group_len(&self) -> usize {
        self.completions.len() / self.groups.len().max(1)
    }
}

/// What a rollout is taken with.
pub(crate) struct Context<'a> {
    pub recipe: &'a Recipe,
    pub reference: &'a Gpt,
    pub reward: &'a Reward,
    pub tokenizer: &'a Tokenizer,
    pub device: &'a Device,
    pub kl_coef: f64,
    /// The iteration (0-based) this rollout begins, for fault reports.
    pub iteration: usize,
}

/// Steps 1–4 with `policy` (and `critic`): sample G completions of each prompt, score, log-probs
/// (one readback), then the advantages on the host.
pub(crate) async fn collect(context: &Context<'_>, policy: &Gpt, critic: Option<&ScalarModel>, rng: &mut Rng) -> Result<Rollout> {
    let Context { recipe, tokenizer, device, .. } = *context;
    let schedule = recipe.schedule;
    let (g, batch, n) = (schedule.group_size, schedule.batch_size(), MAX_COMPLETION);
    let fault = |quantity: &str| LabError::NumericalFault { stage: recipe.stage.into(), step: context.iteration + 1, quantity: quantity.into() };
    let products: Vec<usize> = (0..schedule.prompts).map(|_| rng.below(PRODUCTS_COUNT)).flat_map(|p| std::iter::repeat_n(p, g)).collect();
    let prompts: Vec<u32> = products.iter().flat_map(|&p| prompt_tokens(tokenizer, p)).collect();

    // 1–3 on the device.
    let on_device = sample_on_device(policy, context.reference, context.reward.model(), &prompts, batch, schedule.temperature, rng, device)?;
    let values = critic.map(|critic| completion_values(critic, on_device.inputs.clone()));
    // The rollout's one readback.
    count_readback();
    let mut transaction = Transaction::default().register(on_device.generated).register(on_device.logprobs).register(on_device.ref_logprobs);
    if let Some(values) = values {
        transaction = transaction.register(values);
    }
    let data = transaction.register(on_device.scores).execute_async().await.map_err(|e| LabError::Device(format!("reading the rollout: {e:?}")))?;
    let tokens: Vec<u32> = data[0].iter::<i64>().map(|t| t as u32).collect();
    let floats = |i: usize| -> Vec<f32> { data[i].iter::<f32>().collect() };
    let (mut logprobs, mut ref_logprobs) = (floats(1), floats(2));
    let mut values = if critic.is_some() { floats(3) } else { Vec::new() };
    let device_scores = floats(data.len() - 1);

    // 4. On the host.
    let completions: Vec<Completion> = (0..batch).map(|b| Completion::from_generated(products[b], &tokens[b * n..(b + 1) * n])).collect();
    let lengths: Vec<usize> = completions.iter().map(|c| c.tokens.len()).collect();
    for (b, &len) in lengths.iter().enumerate() {
        for t in len..n {
            logprobs[b * n + t] = 0.0;
            ref_logprobs[b * n + t] = 0.0;
            if !values.is_empty() {
                values[b * n + t] = 0.0;
            }
        }
    }
    let penalty = schedule.missing_eos_penalty;
    let scores: Vec<f32> = completions
        .iter()
        .zip(&device_scores)
        .map(|(c, &on_device)| {
            let score = context.reward.on_host(c, tokenizer).unwrap_or(on_device);
            if c.ends() { score } else { score - penalty }
        })
        .collect();
    if scores.iter().any(|s| !s.is_finite()) {
        return Err(fault("reward score"));
    }
    let gold: Vec<f32> = completions.iter().map(|c| c.gold(tokenizer).total).collect();
    let mut rollout = Rollout {
        completions,
        lengths,
        logprobs,
        ref_logprobs,
        scores,
        gold,
        advantages: Vec::new(),
        values,
        kl: Vec::new(),
        non_score: Vec::new(),
        rewards: Vec::new(),
        advantages_raw: Vec::new(),
        returns: Vec::new(),
        sequence_advantages: Vec::new(),
        groups: Vec::new(),
        ratio: vec![1.0; batch * n],
        clipped: vec![false; batch * n],
        kl_coef: context.kl_coef,
    };
    match recipe.advantage {
        Advantage::Gae { gamma, lam } => {
            let KlPlacement::InReward { estimator, .. } = recipe.kl else { unreachable!("GAE recipes put the KL in the reward") };
            let r = &rollout;
            let shaped = shape_batch(&r.scores, &r.logprobs, &r.ref_logprobs, &r.values, &r.lengths, n, context.kl_coef as f32, estimator, gamma, lam);
            (rollout.kl, rollout.non_score, rollout.rewards, rollout.returns) = (shaped.kl, shaped.non_score, shaped.rewards, shaped.returns);
            rollout.advantages = masked_whiten(&shaped.advantages, &rollout.mask(), true);
            rollout.advantages_raw = shaped.advantages;
            for (name, values) in [("value", &rollout.values), ("advantage", &rollout.advantages)] {
                if values.iter().any(|v| !v.is_finite()) {
                    return Err(fault(name));
                }
            }
        }
        Advantage::Group { estimator, scale } => {
            // REINFORCE's baseline is the whole batch's mean: one group of every completion.
            let group_len = if estimator == Estimator::Reinforce { batch } else { g };
            for group in rollout.scores.chunks(group_len) {
                let computed = group_advantages(group, estimator, scale);
                rollout.sequence_advantages.extend_from_slice(&computed.advantages);
                rollout.groups.push(GroupStats::from(computed));
            }
            let r = &rollout;
            rollout.advantages = r.lengths.iter().zip(&r.sequence_advantages).flat_map(|(&len, &a)| (0..n).map(move |t| if t < len { a } else { 0.0 })).collect();
        }
    }
    Ok(rollout)
}
