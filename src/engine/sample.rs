//! Generation: a KV cache, temperature, top-k, EOS then PAD, and one readback for the whole
//! batch.
//!
//! It returns tokens only. Every stage that needs log-probabilities (PPO's rollout, under the
//! policy and under π_ref) computes them in one batched forward over the finished sequences,
//! so a log-softmax per generated token would be work thrown away: ~6 kernel launches a token on
//! WebGPU (`rlhf bench` counts them).
//!
//! Sampling runs on the device with the Gumbel-max trick: argmax(z/T + g) with g ~ Gumbel(0, 1)
//! is an exact draw from softmax(z/T). The noise is drawn on the host and uploaded before the loop,
//! so the same seed samples the same tokens on WebGPU and on the CPU backend (their device
//! generators differ), and nothing inside the loop reads back: `argmax` and `topk` are device
//! kernels; only the final tokens come back, in one transfer.

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::engine::concat::concatenate;
use crate::engine::model::{Gpt, KvCache};
use crate::engine::tokens::{EOS, PAD};
use crate::error::{LabError, Result};
use crate::rng::Rng;

/// How to pick each next token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleOptions {
    /// Softmax temperature; 0 means greedy (always the most likely token).
    pub temperature: f32,
    /// Keep only the k most likely tokens before sampling; 0 keeps all.
    pub top_k: usize,
    /// Tokens to generate per row (the row is PAD after its `<eos>`).
    pub max_new_tokens: usize,
}

impl SampleOptions {
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        if !self.temperature.is_finite() || !(0.0..=5.0).contains(&self.temperature) {
            return Err(LabError::setting("temperature", format!("must be between 0 and 5 (got {})", self.temperature)));
        }
        if self.top_k > vocab_size {
            return Err(LabError::setting("top_k", format!("must be at most the vocabulary size {vocab_size} (got {})", self.top_k)));
        }
        if self.max_new_tokens == 0 {
            return Err(LabError::setting("max_new_tokens", "must be at least 1"));
        }
        Ok(())
    }
}

/// Generated tokens, row-major [batch × max_new_tokens].
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    pub batch: usize,
    pub width: usize,
    /// Sampled tokens; PAD after a row's `<eos>`.
    pub tokens: Vec<u32>,
}

impl Generated {
    pub fn row(&self, b: usize) -> &[u32] {
        &self.tokens[b * self.width..(b + 1) * self.width]
    }
}

/// Samples `max_new_tokens` after each prompt row (all rows the same length) and reads the
/// tokens back in one transfer.
///
/// `prompts` is row-major [batch × prompt_len]. The model should be a `valid()` copy: no autodiff
/// graph is built for generation.
pub async fn generate(model: &Gpt, prompts: &[u32], batch: usize, options: SampleOptions, rng: &mut Rng, device: &Device) -> Result<Generated> {
    let tokens = generate_on_device(model, prompts, batch, options, rng, device)?;
    // The one readback of the whole generation.
    crate::engine::readback::count_readback();
    let data = tokens.into_data_async().await.map_err(|e| LabError::Device(format!("reading generated tokens: {e:?}")))?;
    let tokens: Vec<u32> = data.iter::<i64>().map(|t| t as u32).collect();
    Ok(Generated { batch, width: options.max_new_tokens, tokens })
}

/// Like `generate`, but leaves the tokens [batch, new] on the device,
/// so a caller can keep computing on them (PPO scores and evaluates a rollout before its one
/// readback).
pub fn generate_on_device(model: &Gpt, prompts: &[u32], batch: usize, options: SampleOptions, rng: &mut Rng, device: &Device) -> Result<Tensor<2, Int>> {
    let vocab = model.vocab_size();
    options.validate(vocab)?;
    if batch == 0 || prompts.is_empty() || prompts.len() % batch != 0 {
        return Err(LabError::InvalidInput(format!("{} prompt tokens do not split into {batch} rows", prompts.len())));
    }
    let prompt_len = prompts.len() / batch;
    if prompt_len + options.max_new_tokens > model.context_length() {
        return Err(LabError::InvalidInput(format!(
            "prompt ({prompt_len}) + new tokens ({}) exceed the context length {}",
            options.max_new_tokens,
            model.context_length()
        )));
    }
    if let Some(&bad) = prompts.iter().find(|&&t| t as usize >= vocab) {
        return Err(LabError::InvalidInput(format!("token id {bad} is outside the vocabulary of {vocab}")));
    }
    let steps = options.max_new_tokens;
    let greedy = options.temperature == 0.0;
    let temperature = options.temperature;

    // Host-made Gumbel noise, one [batch, vocab] upload per step, scaled by the temperature:
    // argmax(z/T + g) = argmax(z + T·g) for T > 0, so neither the division nor a slice of one
    // big noise tensor costs a kernel per token.
    let noise: Option<Vec<Tensor<2>>> = (!greedy).then(|| {
        (0..steps)
            .map(|_| {
                let values: Vec<f32> = (0..batch * vocab).map(|_| temperature * rng.gumbel()).collect();
                Tensor::<2>::from_data(TensorData::new(values, [batch, vocab]), device)
            })
            .collect()
    });

    let prompt = Tensor::<2, Int>::from_data(TensorData::new(prompts.iter().map(|&t| t as i32).collect::<Vec<_>>(), [batch, prompt_len]), device);
    let mut cache = KvCache::new(model);
    let hidden = model.hidden_cached(prompt, &mut cache); // [B, P, D]
    let d_model = hidden.dims()[2];
    let last = hidden.slice([0..batch, prompt_len - 1..prompt_len, 0..d_model]); // [B, 1, D]
    let mut next_scores = Some(model.logits(last).reshape([batch, vocab])); // [B, V]
    let mut finished = Tensor::<2, Bool>::from_data(TensorData::new(vec![false; batch], [batch, 1]), device);
    let mut new_tokens = Vec::with_capacity(steps);
    for step in 0..steps {
        let mut scores = next_scores.take().expect("set before every step");
        if options.top_k > 0 && options.top_k < vocab {
            // Everything below the k-th largest logit is out.
            let kth = scores.clone().topk(options.top_k, 1).slice([0..batch, options.top_k - 1..options.top_k]); // [B, 1]
            let below = scores.clone().lower(kth);
            scores = scores.mask_fill(below, -1e9);
        }
        if let Some(noise) = &noise {
            scores = scores + noise[step].clone();
        }
        let next = scores.argmax(1); // [B, 1]
        let next = next.mask_fill(finished.clone(), PAD as i32);
        finished = finished.bool_or(next.clone().equal_elem(EOS as i32));
        new_tokens.push(next.clone());
        if step + 1 < steps {
            next_scores = Some(model.next_token_logits(next, &mut cache));
        }
    }
    // One column per step: in groups, so that WebGPU fuses each (src/engine/concat.rs).
    Ok(concatenate(new_tokens, 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::config::Preset;

    fn options(temperature: f32, top_k: usize) -> SampleOptions {
        SampleOptions { temperature, top_k, max_new_tokens: 6 }
    }

    #[test]
    fn rows_end_in_pad_after_eos() {
        let device = Device::flex();
        let model = Gpt::new(&Preset::Micro.model(12), &mut Rng::new(4), &device);
        let prompts = [1u32, 5, 1, 7, 1, 9];
        let out = pollster::block_on(generate(&model, &prompts, 3, options(1.0, 0), &mut Rng::new(1), &device)).unwrap();
        assert_eq!(out.tokens.len(), 18);
        let mut ended = 0;
        for b in 0..3 {
            let row = out.row(b);
            if let Some(end) = row.iter().position(|&t| t == EOS) {
                ended += 1;
                assert!(row[end + 1..].iter().all(|&t| t == PAD), "{row:?}");
            }
        }
        assert!(ended > 0, "no row ended: the check above never ran");
    }

    /// The KV-cached loop picks, at temperature 0, the arg-max of a plain forward over
    /// everything so far: the cache changes the cost, not the distribution.
    #[test]
    fn greedy_tokens_are_the_argmax_of_a_full_forward() {
        let device = Device::flex();
        let vocab = 12;
        let model = Gpt::new(&Preset::Micro.model(vocab), &mut Rng::new(4), &device);
        let prompts = [1u32, 5, 1, 7, 1, 9];
        let out = pollster::block_on(generate(&model, &prompts, 3, options(0.0, 0), &mut Rng::new(1), &device)).unwrap();
        for b in 0..3 {
            let mut seq: Vec<i32> = prompts[2 * b..2 * b + 2].iter().map(|&t| t as i32).collect();
            for &token in out.row(b) {
                if token == PAD {
                    break;
                }
                let len = seq.len();
                let logits: Vec<f32> = model.forward(Tensor::from_data(TensorData::new(seq.clone(), [1, len]), &device)).into_data().iter::<f32>().collect();
                let last = &logits[(len - 1) * vocab..len * vocab];
                let best = (0..vocab).max_by(|&i, &j| last[i].total_cmp(&last[j])).unwrap();
                assert_eq!(token as usize, best, "row {b}, position {len}: {:?}", out.row(b));
                seq.push(token as i32);
            }
        }
    }

    #[test]
    fn top_one_is_greedy_and_same_seed_same_samples() {
        let device = Device::flex();
        let model = Gpt::new(&Preset::Micro.model(12), &mut Rng::new(4), &device);
        let prompts = [1u32, 5, 1, 7];
        let greedy = pollster::block_on(generate(&model, &prompts, 2, options(0.0, 0), &mut Rng::new(1), &device)).unwrap();
        let top1 = pollster::block_on(generate(&model, &prompts, 2, options(1.0, 1), &mut Rng::new(2), &device)).unwrap();
        assert_eq!(greedy.tokens, top1.tokens);
        let a = pollster::block_on(generate(&model, &prompts, 2, options(1.0, 0), &mut Rng::new(3), &device)).unwrap();
        let b = pollster::block_on(generate(&model, &prompts, 2, options(1.0, 0), &mut Rng::new(3), &device)).unwrap();
        assert_eq!(a, b);
    }

    /// The first sampled token follows softmax(z/T) of a plain forward, at a low and a high
    /// temperature: the host-scaled Gumbel noise is the temperature, so it must be applied
    /// exactly once and the right way round.
    #[test]
    fn samples_follow_the_softmax_at_the_temperature() {
        struct Sharpen;
        impl burn::module::ModuleMapper for Sharpen {
            fn map_float<const D: usize>(&mut self, param: burn::module::Param<Tensor<D>>) -> burn::module::Param<Tensor<D>> {
                param.map(|t| t.mul_scalar(6.0))
            }
        }
        let device = Device::flex();
        let vocab = 12;
        // Weights scaled up, so that the next-token distribution is far from uniform.
        let model = Gpt::new(&Preset::Micro.model(vocab), &mut Rng::new(4), &device).map(&mut Sharpen);
        let prompt = [1u32, 5];
        let logits: Vec<f32> = model.forward(Tensor::from_data(TensorData::new(vec![1i32, 5], [1, 2]), &device)).into_data().iter::<f32>().collect();
        let last = &logits[vocab..2 * vocab];
        let rows = 4000;
        let prompts: Vec<u32> = prompt.iter().copied().cycle().take(2 * rows).collect();
        let mut top_probabilities = Vec::new();
        for temperature in [0.5f32, 2.0] {
            let max = last.iter().copied().fold(f32::MIN, f32::max);
            let weights: Vec<f64> = last.iter().map(|&z| f64::from((z - max) / temperature).exp()).collect();
            let total: f64 = weights.iter().sum();
            let out = pollster::block_on(generate(&model, &prompts, rows, SampleOptions { temperature, top_k: 0, max_new_tokens: 1 }, &mut Rng::new(9), &device)).unwrap();
            let mut counts = vec![0usize; vocab];
            for &t in &out.tokens {
                counts[t as usize] += 1;
            }
            // Binomial standard deviation at 4,000 draws is at most 0.008.
            for (token, (&w, &n)) in weights.iter().zip(&counts).enumerate() {
                let (expected, seen) = (w / total, n as f64 / rows as f64);
                assert!((expected - seen).abs() < 0.03, "T = {temperature}, token {token}: expected {expected:.3}, sampled {seen:.3}");
            }
            top_probabilities.push(weights.iter().copied().fold(0.0, f64::max) / total);
        }
        // The check above tells the temperatures apart only if their distributions differ.
        assert!(top_probabilities[0] - top_probabilities[1] > 0.15, "{top_probabilities:?}");
    }

    #[test]
    fn bad_requests_are_refused() {
        let device = Device::flex();
        let model = Gpt::new(&Preset::Micro.model(12), &mut Rng::new(4), &device);
        let run = |prompts: &[u32], batch, o| pollster::block_on(generate(&model, prompts, batch, o, &mut Rng::new(1), &device));
        assert!(run(&[1, 5, 1], 2, options(1.0, 0)).is_err());
        assert!(run(&[1, 50], 1, options(1.0, 0)).is_err());
        assert!(run(&[1, 5], 1, options(f32::NAN, 0)).is_err());
        assert!(run(&[1, 5], 1, SampleOptions { temperature: 1.0, top_k: 0, max_new_tokens: 40 }).is_err());
    }
}
