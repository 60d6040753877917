//! Sampling completions and evaluating a policy: steps 1–3 of an on-policy iteration on the
//! device (`sample_on_device`), and the measurement every method is compared by
//! (`evaluate_policy`: score, gold and KL to π_ref on fresh prompts).

use burn::prelude::*;
use burn::tensor::Transaction;
use serde::Serialize;

use super::super::reward::score_sequences;
use super::super::{completion_logprobs, float_tensor, int_tensor};
use crate::engine::model::{Gpt, ScalarModel};
use crate::engine::readback::count_readback;
use crate::engine::sample::{generate_on_device, SampleOptions};
use crate::error::{LabError, Result};
use crate::rlhf::math::stats::{mean, variance};
use super::reward::Reward;
use crate::rlhf::task::{prompt_tokens, Completion, Tokenizer, EOS, MAX_COMPLETION, PAD, PRODUCTS_COUNT, PROMPT_LEN, SEQ_LEN};
use crate::rng::Rng;

/// Summary statistics of a set of completions, as the frontier and the comparison table use them.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyEvaluation {
    /// Mean score of the reward evaluated with (r_φ, or the program trained against; None
    /// when there is none yet).
    pub score: Option<f32>,
    pub gold: f32,
    /// Mean over completions of the summed per-token log π/π_ref (k1): an estimate of KL(π‖π_ref).
    pub kl: f32,
    pub kl_std_error: f32,
    pub mean_length: f32,
    pub eos_fraction: f32,
    pub completions: usize,
}

/// Steps 1–3 of an iteration on the device, for `batch` prompts (`prompts`, PROMPT_LEN ids each):
/// completions sampled from `policy`, scored by `reward` at their last real token (zeros without
/// one), and every slot's log-prob under the policy and π_ref at `temperature`. Nothing is read.
pub(crate) struct DeviceRollout {
    /// [B, N] sampled ids, PAD after `<eos>`.
    pub generated: Tensor<2, Int>,
    /// [B, SEQ_LEN − 1]: prompt and completion, the models' inputs.
    pub inputs: Tensor<2, Int>,
    /// [B, N]: 1 at real tokens.
    pub real: Tensor<2>,
    pub logprobs: Tensor<2>,
    pub ref_logprobs: Tensor<2>,
    /// [B]
    pub scores: Tensor<1>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn sample_on_device(policy: &Gpt, reference: &Gpt, reward: Option<&ScalarModel>, prompts: &[u32], batch: usize, temperature: f32, rng: &mut Rng, device: &Device) -> Result<DeviceRollout> {
    let options = SampleOptions { temperature, top_k: 0, max_new_tokens: MAX_COMPLETION };
    let generated = generate_on_device(policy, prompts, batch, options, rng, device)?; // [B, N]
    let sequences = Tensor::cat(vec![int_tensor(prompts, batch, PROMPT_LEN, device), generated.clone()], 1); // [B, SEQ_LEN]
    let inputs = sequences.clone().slice([0..batch, 0..SEQ_LEN - 1]);
    let is_pad = generated.clone().equal_elem(PAD as i32);
    // Gather at EOS where PAD sits, so every log-prob is an ordinary number; PAD is masked later.
    let targets = generated.clone().mask_fill(is_pad.clone(), EOS as i32);
    let real = is_pad.bool_not().float(); // [B, N]
    // The last real token of row b sits at P + length_b − 1: a one-hot row made on the device.
    let scores = match reward {
        Some(reward) => {
            let last = real.clone().sum_dim(1).add_scalar((PROMPT_LEN - 1) as f32); // [B, 1]
            let positions = float_tensor((0..SEQ_LEN).map(|i| i as f32).collect(), [1, SEQ_LEN], device);
            score_sequences(reward, sequences, positions.equal(last).float())
        }
        None => Tensor::zeros([batch], device),
    };
    let (logprobs, _) = completion_logprobs(policy, inputs.clone(), targets.clone(), temperature);
    let (ref_logprobs, _) = completion_logprobs(reference, inputs.clone(), targets, temperature);
    Ok(DeviceRollout { generated, inputs, real, logprobs, ref_logprobs, scores })
}

/// Evaluates a policy on `count` fresh prompts: the reward's score (r_φ's or a program's), gold utility, and the sequence KL to
/// π_ref measured the same way for every method (k1 summed over the sampled tokens, sampled at
/// temperature 1). One readback per batch of 64.
pub async fn evaluate_policy(policy: &Gpt, reference: &Gpt, reward: Option<&Reward>, tokenizer: &Tokenizer, count: usize, seed: u64, device: &Device) -> Result<PolicyEvaluation> {
    let mut rng = Rng::derive(seed, "evaluate");
    let (mut scores, mut golds, mut kls, mut lengths, mut ends) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0usize);
    let n = MAX_COMPLETION;
    let mut left = count;
    while left > 0 {
        let batch = left.min(64);
        left -= batch;
        let products: Vec<usize> = (0..batch).map(|_| rng.below(PRODUCTS_COUNT)).collect();
        let prompts: Vec<u32> = products.iter().flat_map(|&p| prompt_tokens(tokenizer, p)).collect();
        let rollout = sample_on_device(policy, reference, reward.and_then(Reward::model), &prompts, batch, 1.0, &mut rng, device)?;
        let kl = ((rollout.logprobs - rollout.ref_logprobs) * rollout.real).sum_dim(1).reshape([batch]);
        count_readback();
        let data = Transaction::default()
            .register(rollout.generated)
            .register(rollout.scores)
            .register(kl)
            .execute_async()
            .await
            .map_err(|e| LabError::Device(format!("reading an evaluation: {e:?}")))?;
        let tokens: Vec<u32> = data[0].iter::<i64>().map(|t| t as u32).collect();
        kls.extend(data[2].iter::<f32>());
        for (b, (&p, on_device)) in products.iter().zip(data[1].iter::<f32>()).enumerate() {
            let c = Completion::from_generated(p, &tokens[b * n..(b + 1) * n]);
            // A program's reward is computed here; r_φ's came from the device.
            scores.push(reward.and_then(|r| r.on_host(&c, tokenizer)).unwrap_or(on_device));
            golds.push(c.gold(tokenizer).total);
            lengths.push(c.tokens.len() as f32);
            ends += usize::from(c.ends());
        }
    }
    Ok(PolicyEvaluation {
        score: reward.map(|_| mean(&scores)),
        gold: mean(&golds),
        kl: mean(&kls),
        kl_std_error: (variance(&kls) / kls.len().max(1) as f32).sqrt(),
        mean_length: mean(&lengths),
        eos_fraction: ends as f32 / count.max(1) as f32,
        completions: count,
    })
}


/// One completion per product prompt, scored by a program's reward beside gold: what the page
/// shows under the learner's expression before they train against it.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredSample {
    pub prompt: String,
    pub completion: String,
    pub ends: bool,
    pub gold: f32,
    pub reward: f32,
}

/// Samples one completion of each product prompt from `policy` and scores it with `expression`.
pub async fn scored_samples(policy: &Gpt, expression: &crate::rlhf::reward_expression::RewardExpression, tokenizer: &Tokenizer, temperature: f32, seed: u64, device: &Device) -> Result<Vec<ScoredSample>> {
    let prompts: Vec<u32> = (0..PRODUCTS_COUNT).flat_map(|p| prompt_tokens(tokenizer, p)).collect();
    let options = SampleOptions { temperature, top_k: 0, max_new_tokens: MAX_COMPLETION };
    let generated = crate::engine::sample::generate(policy, &prompts, PRODUCTS_COUNT, options, &mut Rng::derive(seed, "samples"), device).await?;
    Ok((0..PRODUCTS_COUNT)
        .map(|p| {
            let completion = Completion::from_generated(p, generated.row(p));
            ScoredSample {
                prompt: tokenizer.decode(&prompt_tokens(tokenizer, p)[1..]),
                completion: completion.text(tokenizer),
                ends: completion.ends(),
                gold: completion.gold(tokenizer).total,
                reward: expression.evaluate(&completion, tokenizer),
            }
        })
        .collect())
}
