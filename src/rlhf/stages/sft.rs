//! Stage 1: supervised fine-tuning, which yields π_ref.
//!
//! Objective (ordinary cross-entropy, the math page's Stage 1):
//!
//! ```text
//! min_θ  −E_{(x,y)∈D} [ (1/|y|) Σ_t log π_θ(y_t | x, y_<t) ]
//! ```
//!
//! By default only completion tokens count ("completion-only loss"): the prompt is given, not
//! demonstrated, and PAD never counts. The same loss over every token is how the base model is
//! pretrained on the task's free text.

use std::ops::Range;
use std::sync::Arc;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::supervised::{Names, Objective, Schedule, SupervisedTrainer};
use super::{float_tensor, int_tensor, token_logprobs, Batches};
use crate::engine::data_parallel::{Shard, ShardTerms};
use crate::engine::model::Gpt;
use crate::engine::model::config::ModelConfig;
use crate::engine::readback::read_scalars;
use crate::engine::sample::{generate, SampleOptions};
use crate::error::{LabError, Result};
use crate::rlhf::config::{PretrainConfig, SftConfig};
use crate::rlhf::metrics::Metrics;
use crate::rlhf::task::{self, grammar, prompt_tokens, Completion, Demonstrations, Tokenizer, EOS, MAX_COMPLETION, PAD, PROMPT_LEN, PRODUCTS_COUNT, SEQ_LEN};
use crate::rng::Rng;

/// Which target tokens the cross-entropy counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossMask {
    /// Completion tokens only (positions ≥ the prompt length), never PAD.
    CompletionOnly,
    /// Every token but PAD.
    AllTokens,
}

/// Per-target weights for a batch of sequences: 1 where target t + 1 counts, 0 elsewhere.
/// Row-major [batch × (SEQ_LEN − 1)]. A sequence ends at its first `<eos>` (which counts: the
/// model must learn to stop); nothing after it — PAD — ever counts.
pub fn loss_mask(sequences: &[Vec<u32>], mask: LossMask) -> Vec<f32> {
    let mut out = Vec::with_capacity(sequences.len() * (SEQ_LEN - 1));
    for seq in sequences {
        let end = seq.iter().skip(1).position(|&t| t == EOS || t == PAD).map_or(SEQ_LEN, |i| if seq[i + 1] == EOS { i + 2 } else { i + 1 });
        for t in 0..SEQ_LEN - 1 {
            let target = t + 1;
            let counts = target < end && (mask == LossMask::AllTokens || target >= PROMPT_LEN);
            out.push(if counts { 1.0 } else { 0.0 });
        }
    }
    out
}

/// Masked next-token cross-entropy and the number of correctly ranked targets.
/// Returns (mean loss over counted targets, correct count) as [1]-tensors, and the count.
pub fn masked_lm_loss(model: &Gpt, sequences: &[Vec<u32>], mask: LossMask, device: &Device) -> (Tensor<1>, Tensor<1>, f32) {
    let counted = counted_targets(sequences, mask);
    let (loss, correct) = masked_lm_loss_over(model, sequences, mask, counted, device);
    (loss, correct, counted)
}

/// The targets `mask` counts in `sequences` (at least 1: the loss's divisor).
pub fn counted_targets(sequences: &[Vec<u32>], mask: LossMask) -> f32 {
    loss_mask(sequences, mask).iter().sum::<f32>().max(1.0)
}

/// The masked cross-entropy *summed* over `sequences`' counted targets and divided by `counted`,
/// which may count a larger batch that these sequences are a shard of (`engine::data_parallel`): the shards'
/// losses, and their gradients, then add up to the batch's.
pub fn masked_lm_loss_over(model: &Gpt, sequences: &[Vec<u32>], mask: LossMask, counted: f32, device: &Device) -> (Tensor<1>, Tensor<1>) {
    let rows = sequences.len();
    // Inputs and targets are cut on the host: on the device each cut is a kernel.
    let inputs: Vec<u32> = sequences.iter().flat_map(|s| s[..SEQ_LEN - 1].iter().copied()).collect();
    let targets: Vec<u32> = sequences.iter().flat_map(|s| s[1..].iter().copied()).collect();
    let inputs = int_tensor(&inputs, rows, SEQ_LEN - 1, device);
    let targets = int_tensor(&targets, rows, SEQ_LEN - 1, device);
    let weights = loss_mask(sequences, mask);
    // −1/counted folded into the loss's weights on the host, where it costs no kernel forward
    // or backward: loss = Σ_t −w_t·log π(y_t)/counted.
    let loss_weights = float_tensor(weights.iter().map(|w| -w / counted).collect(), [rows, SEQ_LEN - 1], device);
    let weights = float_tensor(weights, [rows, SEQ_LEN - 1], device);
    let logits = model.forward(inputs); // [B, T−1, V]
    let predicted = logits.clone().argmax(2).reshape([rows, SEQ_LEN - 1]);
    let correct = (predicted.equal(targets.clone()).float() * weights).sum();
    let logprobs = token_logprobs(logits, targets); // [B, T−1]
    let loss = (logprobs * loss_weights).sum();
    (loss, correct)
}

/// A shard of a masked-LM step (SFT, pretraining) for a helper worker: Σ over its counted targets
/// of −log π(y_t | y_<t), divided by `counted`, the targets counted in the whole batch.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MaskedLmShard {
    pub sequences: Vec<Vec<u32>>,
    pub all_tokens: bool,
    pub counted: f32,
}

impl Shard for MaskedLmShard {
    type Model = Gpt;

    fn blank(config: &ModelConfig, device: &Device) -> Gpt {
        Gpt::new(config, &mut Rng::new(0), device)
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        if self.sequences.is_empty() || self.counted.is_nan() || self.counted < 1.0 {
            return Err(LabError::InvalidInput("a shard needs sequences and a positive count".into()));
        }
        if let Some(bad) = self.sequences.iter().find(|s| s.len() != SEQ_LEN || s.iter().any(|&t| t as usize >= config.vocab_size)) {
            return Err(LabError::InvalidInput(format!("a shard's sequence must be {SEQ_LEN} token ids below {} (got {bad:?})", config.vocab_size)));
        }
        Ok(())
    }

    /// Sums: the loss, then correctly ranked targets.
    fn terms(&self, model: &Gpt, device: &Device) -> ShardTerms {
        let mask = if self.all_tokens { LossMask::AllTokens } else { LossMask::CompletionOnly };
        let (loss, correct) = masked_lm_loss_over(model, &self.sequences, mask, self.counted, device);
        ShardTerms { loss, sums: vec![correct.detach().inner()], per_token: None }
    }
}

/// Where the training sequences come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Corpus {
    /// Fixed demonstrations (SFT).
    Fixed { train: Demonstrated, batches: Batches },
    /// Fresh free-text reviews every step (pretraining the base model).
    Stream { rng: Rng },
}

/// The demonstrations, one copy for every copy of the cursor (a step keeps one to rewind to).
#[derive(Debug, Clone)]
struct Demonstrated(Arc<Vec<Vec<u32>>>);

/// Written as the sequences themselves.
impl Serialize for Demonstrated {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Demonstrated {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        Vec::deserialize(deserializer).map(|train| Self(Arc::new(train)))
    }
}

/// Where SFT stands in its corpus: what a step advances, a failed step rewinds and a snapshot
/// carries (the demonstrations with it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reading {
    corpus: Corpus,
}

/// A sample for a fixed prompt, shown as SFT trains.
#[derive(Debug, Clone, Serialize)]
pub struct PromptSample {
    pub prompt: String,
    pub completion: String,
    pub gold: f32,
}

/// The choices of SFT and of pretraining: sequences, fixed or fresh, and the masked cross-entropy.
pub struct MaskedLm {
    held_out: Vec<Vec<u32>>,
    mask: LossMask,
}

impl Objective for MaskedLm {
    type Shard = MaskedLmShard;
    type Row = Vec<u32>;
    type Cursor = Reading;
    const NAMES: Names = Names { stage: "sft", title: "SFT", fault: "sft", steps: "steps", sums: &["loss", "correct"] };

    fn shape(model: &Gpt) -> ModelConfig {
        model.config()
    }

    fn draw(&self, reading: &mut Reading, size: usize) -> Vec<Vec<u32>> {
        match &mut reading.corpus {
            Corpus::Fixed { train, batches } => batches.next(size).into_iter().map(|i| train.0[i].clone()).collect(),
            Corpus::Stream { rng } => {
                let tokenizer = Tokenizer::new();
                (0..size).map(|_| free_text(&tokenizer, rng)).collect()
            }
        }
    }

    fn shard(&self, batch: &[Vec<u32>], rows: Range<usize>) -> MaskedLmShard {
        MaskedLmShard { sequences: batch[rows].to_vec(), all_tokens: self.mask == LossMask::AllTokens, counted: counted_targets(batch, self.mask) }
    }

    fn held_out_len(&self) -> usize {
        self.held_out.len()
    }

    fn held_out(&self, model: &Gpt, device: &Device) -> Vec<Tensor<1>> {
        let (loss_sum, correct, _) = self.held_out_sums(model, device);
        vec![loss_sum, correct]
    }

    fn report(&self, batch: &[Vec<u32>], _: &Reading, sums: &[f32], held_out: Option<&[f32]>, out: &mut Metrics) {
        let counted = counted_targets(batch, self.mask);
        out.insert("loss/train".into(), f64::from(sums[0]));
        out.insert("accuracy/train".into(), f64::from(sums[1] / counted));
        out.insert("batch".into(), batch.len() as f64);
        if let Some(&[loss_sum, correct]) = held_out {
            let held_counted = self.held_out.chunks(HELD_OUT_CHUNK).fold(0.0, |total, chunk| total + counted_targets(chunk, self.mask));
            let held_loss = loss_sum / held_counted;
            out.insert("loss/held_out".into(), f64::from(held_loss));
            out.insert("accuracy/held_out".into(), f64::from(correct / held_counted));
            out.insert("perplexity/held_out".into(), f64::from(held_loss.exp()));
        }
    }
}

/// The held-out set is evaluated in chunks of this many sequences.
const HELD_OUT_CHUNK: usize = 64;

impl MaskedLm {
    /// Held-out loss *sum*, correct count (device tensors) and counted targets, in chunks.
    fn held_out_sums(&self, model: &Gpt, device: &Device) -> (Tensor<1>, Tensor<1>, f32) {
        let mut loss_sum: Option<Tensor<1>> = None;
        let mut correct_sum: Option<Tensor<1>> = None;
        let mut counted_total = 0.0;
        for chunk in self.held_out.chunks(HELD_OUT_CHUNK) {
            let (loss, correct, counted) = masked_lm_loss(model, chunk, self.mask, device);
            let loss = loss.mul_scalar(counted);
            counted_total += counted;
            loss_sum = Some(match loss_sum { Some(s) => s + loss, None => loss });
            correct_sum = Some(match correct_sum { Some(s) => s + correct, None => correct });
        }
        (loss_sum.expect("held-out set is not empty"), correct_sum.expect("held-out set is not empty"), counted_total)
    }
}

/// Trains a language model by masked cross-entropy, one bounded step at a time.
pub type SftTrainer = SupervisedTrainer<MaskedLm>;

impl SftTrainer {
    /// Stage 1 from `base` on demonstrations generated from `seed`.
    pub fn sft(base: Gpt, config: &SftConfig, tokenizer: &Tokenizer, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        let demos = Demonstrations::generate(tokenizer, seed, config.train_examples, config.held_out_examples);
        let to_seq = |c: &Completion| c.sequence(tokenizer);
        let train: Vec<Vec<u32>> = demos.train.iter().map(to_seq).collect();
        let held_out = demos.held_out.iter().map(to_seq).collect();
        let batches = Batches::new(train.len(), Rng::derive(seed, "sft/order"));
        let reading = Reading { corpus: Corpus::Fixed { train: Demonstrated(Arc::new(train)), batches } };
        let mask = if config.completion_only { LossMask::CompletionOnly } else { LossMask::AllTokens };
        let schedule = Schedule { learning_rate: config.learning_rate, batch_size: config.batch_size, total_steps: config.steps, eval_every: config.eval_every };
        Ok(Self::start(base, MaskedLm { held_out, mask }, reading, schedule, device))
    }

    /// Pretraining of a base model on free text, every token counted.
    pub fn pretrain(model: Gpt, config: &PretrainConfig, tokenizer: &Tokenizer, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        let mut held_rng = Rng::derive(seed, "pretrain/held-out");
        let held_out = (0..256).map(|_| free_text(tokenizer, &mut held_rng)).collect();
        let reading = Reading { corpus: Corpus::Stream { rng: Rng::derive(seed, "pretrain/train") } };
        let schedule = Schedule::tenths(config.learning_rate, config.batch_size, config.steps);
        Ok(Self::start(model, MaskedLm { held_out, mask: LossMask::AllTokens }, reading, schedule, device))
    }

    /// Held-out loss of the current model (one readback).
    pub async fn held_out_loss(&self) -> Result<f32> {
        let (sum, _, counted) = self.objective.held_out_sums(&self.model.valid(), &self.device);
        Ok(read_scalars(vec![sum]).await?[0] / counted)
    }
}

/// One free-text review for pretraining: `<bos> the <product> … <eos>`.
fn free_text(tokenizer: &Tokenizer, rng: &mut Rng) -> Vec<u32> {
    let product = rng.below(PRODUCTS_COUNT);
    let quality = grammar::sample_quality(rng);
    task::pretraining_sequence(tokenizer, &grammar::sample_review(rng, product, quality))
}

/// A completion for every product's prompt, sampled from `model` with a fixed seed, so that the
/// samples panel shows the same prompts (and, at temperature 0, comparable text) as training
/// goes on.
pub async fn prompt_samples(model: &Gpt, tokenizer: &Tokenizer, temperature: f32, seed: u64, device: &Device) -> Result<Vec<PromptSample>> {
    let prompts: Vec<u32> = (0..PRODUCTS_COUNT).flat_map(|p| prompt_tokens(tokenizer, p)).collect();
    let options = SampleOptions { temperature, top_k: 0, max_new_tokens: MAX_COMPLETION };
    let generated = generate(model, &prompts, PRODUCTS_COUNT, options, &mut Rng::derive(seed, "samples"), device).await?;
    Ok((0..PRODUCTS_COUNT)
        .map(|p| {
            let completion = Completion::from_generated(p, generated.row(p));
            PromptSample {
                prompt: tokenizer.decode(&prompt_tokens(tokenizer, p)[1..]),
                completion: completion.text(tokenizer),
                gold: completion.gold(tokenizer).total,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::config::Preset;
    use crate::rlhf::stages::supervised::testing;

    #[test]
    fn the_mask_counts_completion_tokens_only_and_never_pad() {
        let tok = Tokenizer::new();
        let seq = Completion { product: 0, tokens: tok.encode("is great . <eos>") }.sequence(&tok);
        let mask = loss_mask(&[seq.clone()], LossMask::CompletionOnly);
        // Targets are seq[1..]; completion targets are seq[5..9] = is great . <eos>, at t = 4..8.
        let expected: Vec<f32> = (0..SEQ_LEN - 1).map(|t| if (4..8).contains(&t) { 1.0 } else { 0.0 }).collect();
        assert_eq!(mask, expected);
        let all = loss_mask(&[seq], LossMask::AllTokens);
        let expected: Vec<f32> = (0..SEQ_LEN - 1).map(|t| if t < 8 { 1.0 } else { 0.0 }).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn the_loss_is_the_mean_over_completion_targets_and_ignores_what_follows_eos() {
        let device = Device::flex();
        let tok = Tokenizer::new();
        let model = Gpt::new(&Preset::Micro.model(tok.vocab_size()), &mut Rng::new(1), &device);
        let a = Completion { product: 0, tokens: tok.encode("is great . <eos>") }.sequence(&tok);
        let b = Completion { product: 3, tokens: tok.encode("is not bad and i love it . <eos>") }.sequence(&tok);
        let (loss, _, counted) = masked_lm_loss(&model, &[a.clone(), b.clone()], LossMask::CompletionOnly, &device);
        assert_eq!(counted, 4.0 + 9.0);
        // By hand: log-softmax of a plain forward, summed at the completion targets only.
        let mut by_hand = 0.0;
        for seq in [&a, &b] {
            let input: Vec<i32> = seq[..SEQ_LEN - 1].iter().map(|&t| t as i32).collect();
            let logits = model.forward(Tensor::from_data(burn::tensor::TensorData::new(input, [1, SEQ_LEN - 1]), &device));
            let lp: Vec<f32> = burn::tensor::activation::log_softmax(logits, 2).into_data().iter::<f32>().collect();
            let v = tok.vocab_size();
            let end = seq.iter().position(|&t| t == EOS).unwrap();
            for target in PROMPT_LEN..=end {
                by_hand -= lp[(target - 1) * v + seq[target] as usize];
            }
        }
        let loss: f32 = loss.into_data().iter::<f32>().next().unwrap();
        assert!((loss - by_hand / counted).abs() < 1e-5, "{loss} vs {}", by_hand / counted);
        // Whatever follows <eos> (PAD, or garbage) changes nothing.
        let mut garbage = a.clone();
        for t in garbage.iter_mut().skip(9) {
            *t = tok.id("great").unwrap();
        }
        let (l1, _, n1) = masked_lm_loss(&model, &[a], LossMask::CompletionOnly, &device);
        let (l2, _, n2) = masked_lm_loss(&model, &[garbage], LossMask::CompletionOnly, &device);
        assert_eq!(n1, n2);
        assert_eq!(l1.into_data().iter::<f32>().next(), l2.into_data().iter::<f32>().next());
    }

    #[test]
    fn sft_lowers_held_out_loss_on_a_tiny_run() {
        let device = Device::flex();
        let tok = Tokenizer::new();
        let model = Gpt::new(&Preset::Micro.model(tok.vocab_size()), &mut Rng::new(1), &device);
        let config = SftConfig { steps: 60, batch_size: 16, learning_rate: 3e-3, eval_every: 60, train_examples: 400, held_out_examples: 64, ..SftConfig::default() };
        let mut trainer = SftTrainer::sft(model, &config, &tok, 7, &device).unwrap();
        let mut first = None;
        let mut last = None;
        while !trainer.is_done() {
            let m = pollster::block_on(trainer.step()).unwrap();
            if let Some(&held) = m.get("loss/held_out") {
                first.get_or_insert(held);
                last = Some(held);
            }
        }
        let (first, last) = (first.unwrap(), last.unwrap());
        assert!(last < first * 0.6, "held-out loss {first} → {last}");
        assert_eq!(f64::from(pollster::block_on(trainer.held_out_loss()).unwrap()), last);
    }

    /// SFT's cursor is written as SFT wrote its corpus before it shared the supervised trainer (the
    /// demonstrations in it), so its older snapshots still resume.
    #[test]
    fn the_cursor_is_written_as_the_corpus_was() {
        #[derive(Serialize)]
        enum Before {
            Fixed { train: Vec<Vec<u32>>, batches: Batches },
        }
        #[derive(Serialize)]
        struct State {
            corpus: Before,
        }
        let (train, batches) = (vec![vec![1, 2, 3], vec![4, 5, 6]], Batches::new(2, Rng::new(3)));
        let before = serde_json::to_string(&State { corpus: Before::Fixed { train: train.clone(), batches: batches.clone() } }).unwrap();
        let now = Reading { corpus: Corpus::Fixed { train: Demonstrated(Arc::new(train)), batches } };
        assert_eq!(serde_json::to_string(&now).unwrap(), before);
        let back: Reading = serde_json::from_str(&before).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), before);
    }

    /// A run of 5 steps on 64 demonstrations in batches of `batch_size` (7 makes unequal shards,
    /// and shards that count different targets), evaluated every other step.
    fn sft_trainer(batch_size: usize) -> SftTrainer {
        let device = Device::flex();
        let tok = Tokenizer::new();
        let model = Gpt::new(&Preset::Micro.model(tok.vocab_size()), &mut Rng::new(1), &device);
        let config = SftConfig { steps: 5, batch_size, eval_every: 2, train_examples: 64, held_out_examples: 8, ..SftConfig::default() };
        SftTrainer::sft(model, &config, &tok, 7, &device).unwrap()
    }

    /// The supervised trainer's checks (`supervised::testing`): a split step is the whole one, a
    /// refused helper or a NaN loss leaves the trainer as it was.
    #[test]
    fn split_refused_and_poisoned_steps() {
        testing::split_steps_match(sft_trainer(7), sft_trainer(7), &[], testing::parameters);
        testing::refused_helpers_change_nothing(|| sft_trainer(8), |shard| shard.counted = f32::NAN, "positive count");
        testing::a_poisoned_step_rolls_back(|| sft_trainer(8));
    }
}
