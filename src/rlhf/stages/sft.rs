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

use std::future::Future;

use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::Serialize;

use super::{first_non_finite, float_tensor, int_tensor, token_logprobs, Batches};
use crate::engine::data_parallel::{flat_parameters, shard_rows, Shard, ShardResult, ShardTerms, ShardWork};
use crate::engine::model::Gpt;
use crate::engine::model::config::ModelConfig;
use crate::engine::optim::FlatAdam;
use crate::engine::readback::{read_floats, read_scalars};
use crate::engine::sample::{generate, SampleOptions};
use crate::error::{LabError, Result};
use crate::rlhf::config::{PretrainConfig, SftConfig};
use crate::rlhf::metrics::{metrics, Metrics};
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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
enum Corpus {
    /// Fixed demonstrations (SFT).
    Fixed { train: Vec<Vec<u32>>, batches: Batches },
    /// Fresh free-text reviews every step (pretraining the base model).
    Stream { rng: Rng },
}

/// Where a corpus stands: what a failed step rewinds, so the retry draws the same batch.
enum Position {
    Batches(Batches),
    Stream(Rng),
}

impl Corpus {
    fn position(&self) -> Position {
        match self {
            Corpus::Fixed { batches, .. } => Position::Batches(batches.clone()),
            Corpus::Stream { rng } => Position::Stream(rng.clone()),
        }
    }

    fn rewind(&mut self, position: Position) {
        match (self, position) {
            (Corpus::Fixed { batches, .. }, Position::Batches(saved)) => *batches = saved,
            (Corpus::Stream { rng }, Position::Stream(saved)) => *rng = saved,
            _ => unreachable!("a position is rewound on the corpus it came from"),
        }
    }
}

/// A sample for a fixed prompt, shown as SFT trains.
#[derive(Debug, Clone, Serialize)]
pub struct PromptSample {
    pub prompt: String,
    pub completion: String,
    pub gold: f32,
}

/// Trains a language model by masked cross-entropy, one bounded step at a time.
pub struct SftTrainer {
    model: Gpt,
    optim: FlatAdam,
    corpus: Corpus,
    held_out: Vec<Vec<u32>>,
    mask: LossMask,
    learning_rate: f64,
    batch_size: usize,
    total_steps: usize,
    eval_every: usize,
    step: usize,
    device: Device,
    train_device: Device,
    /// Test hook: the step whose loss is replaced by NaN (see `poison_step`).
    poisoned_step: Option<usize>,
}

impl SftTrainer {
    /// Stage 1 from `base` on demonstrations generated from `seed`.
    pub fn sft(base: Gpt, config: &SftConfig, tokenizer: &Tokenizer, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        let demos = Demonstrations::generate(tokenizer, seed, config.train_examples, config.held_out_examples);
        let to_seq = |c: &Completion| c.sequence(tokenizer);
        let train: Vec<Vec<u32>> = demos.train.iter().map(to_seq).collect();
        let held_out = demos.held_out.iter().map(to_seq).collect();
        let batches = Batches::new(train.len(), Rng::derive(seed, "sft/order"));
        let mask = if config.completion_only { LossMask::CompletionOnly } else { LossMask::AllTokens };
        Ok(Self::new(base, Corpus::Fixed { train, batches }, held_out, mask, config.learning_rate, config.batch_size, config.steps, config.eval_every, device))
    }

    /// Pretraining of a base model on free text, every token counted.
    pub fn pretrain(model: Gpt, config: &PretrainConfig, tokenizer: &Tokenizer, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        let mut held_rng = Rng::derive(seed, "pretrain/held-out");
        let held_out = (0..256).map(|_| free_text(tokenizer, &mut held_rng)).collect();
        let corpus = Corpus::Stream { rng: Rng::derive(seed, "pretrain/train") };
        let eval_every = (config.steps / 10).max(1);
        Ok(Self::new(model, corpus, held_out, LossMask::AllTokens, config.learning_rate, config.batch_size, config.steps, eval_every, device))
    }

    #[allow(clippy::too_many_arguments)]
    fn new(model: Gpt, corpus: Corpus, held_out: Vec<Vec<u32>>, mask: LossMask, learning_rate: f64, batch_size: usize, total_steps: usize, eval_every: usize, device: &Device) -> Self {
        Self {
            model: model.train(),
            optim: FlatAdam::default(),
            corpus,
            held_out,
            mask,
            learning_rate,
            batch_size,
            total_steps,
            eval_every,
            step: 0,
            device: device.clone(),
            train_device: device.clone().autodiff(),
            poisoned_step: None,
        }
    }

    pub fn step_count(&self) -> usize {
        self.step
    }

    pub fn total_steps(&self) -> usize {
        self.total_steps
    }

    pub fn is_done(&self) -> bool {
        self.step >= self.total_steps
    }

    /// Fault injection for tests: step `step` (1-based) computes a NaN loss, as a diverging run
    /// would. The step must detect it in its one readback, roll back and report it.
    pub fn poison_step(&mut self, step: usize) {
        self.poisoned_step = Some(step);
    }

    /// The model as it is now, without its autodiff graph.
    pub fn model(&self) -> Gpt {
        self.model.valid()
    }

    /// One optimizer step (and, every `eval_every` steps and at the last, a held-out evaluation).
    /// Reads the device once. A non-finite loss or gradient leaves the model as it was.
    pub async fn step(&mut self) -> Result<Metrics> {
        self.step_sharded(1, std::future::ready(Ok(Vec::new()))).await
    }

    fn refuse_if_done(&self) -> Result<()> {
        if self.is_done() {
            return Err(LabError::NotReady(format!("all {} steps are done", self.total_steps)));
        }
        Ok(())
    }

    /// The next batch (advances the corpus).
    fn next_batch(corpus: &mut Corpus, batch_size: usize) -> Vec<Vec<u32>> {
        match corpus {
            Corpus::Fixed { train, batches } => batches.next(batch_size).into_iter().map(|i| train[i].clone()).collect(),
            Corpus::Stream { rng } => {
                let tokenizer = Tokenizer::new();
                (0..batch_size).map(|_| free_text(&tokenizer, rng)).collect()
            }
        }
    }

    /// The next step split into `shards` (fewer if the batch has fewer rows) for a data-parallel
    /// step (`engine::data_parallel`): θ, every parameter as one vector (one readback), and the work of
    /// shards 1.., for the helpers. Changes nothing: `step_sharded` with as many shards then
    /// draws the same batch.
    pub async fn shard_plan(&self, shards: usize) -> Result<(Vec<f32>, Vec<ShardWork<MaskedLmShard>>)> {
        self.refuse_if_done()?;
        let batch = Self::next_batch(&mut self.corpus.clone(), self.batch_size);
        let shards = shards.clamp(1, batch.len());
        let counted = counted_targets(&batch, self.mask);
        let model = self.model.config();
        let work = (1..shards)
            .map(|i| ShardWork {
                step: self.step,
                model: model.clone(),
                objective: MaskedLmShard { sequences: batch[shard_rows(batch.len(), shards, i)].to_vec(), all_tokens: self.mask == LossMask::AllTokens, counted },
            })
            .collect();
        let theta = read_floats(flat_parameters(&self.model.valid())).await?;
        Ok((theta, work))
    }

    /// One optimizer step whose batch is split into `shards`: this trainer computes shard 0's
    /// gradient, `helpers` resolves to the other shards' results (`shard_plan`'s work, computed
    /// elsewhere meanwhile), and their sum makes the step. With one shard and no helpers, this is
    /// `step`. Reads the device once; a helper's failure or a non-finite value leaves the model
    /// as it was.
    pub async fn step_sharded<F: Future<Output = Result<Vec<ShardResult>>>>(&mut self, shards: usize, helpers: F) -> Result<Metrics> {
        self.refuse_if_done()?;
        let position = self.corpus.position();
        let batch = Self::next_batch(&mut self.corpus, self.batch_size);
        let rows = batch.len();
        let shards = shards.clamp(1, rows);
        let counted = counted_targets(&batch, self.mask);
        let own = &batch[shard_rows(rows, shards, 0)];
        let (mut loss, correct) = masked_lm_loss_over(&self.model, own, self.mask, counted, &self.train_device);
        if self.poisoned_step == Some(self.step + 1) {
            self.poisoned_step = None; // one fault, as a spike would be: the retry is clean
            loss = loss.mul_scalar(f32::NAN);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        // The others' gradients, summed on the host in shard order: one upload.
        let gradient_len = crate::engine::optim::flat_gradient_len(&self.model, &grads);
        let helpers = match crate::engine::data_parallel::helpers_part(helpers, shards, self.step, gradient_len, 2, |_| 0, &self.device).await {
            Ok(part) => part,
            Err(e) => {
                self.corpus.rewind(position);
                return Err(e);
            }
        };
        let (extra, helper_sums) = (helpers.gradient, helpers.sums);
        let before = (self.model.clone(), self.optim.clone());
        let lr = super::linear_decay(self.learning_rate, self.step, self.total_steps);
        let (model, norm) = self.optim.step_with(lr, self.model.clone(), &grads, extra);
        self.model = model;
        self.step += 1;

        let evaluate = self.step == 1 || self.step % self.eval_every == 0 || self.is_done();
        let mut scalars = vec![loss.detach().inner(), correct.detach().inner(), norm.inner()];
        let mut held_counted = 0.0;
        if evaluate {
            let (held_loss_sum, held_correct, n) = self.held_out_sums();
            held_counted = n;
            scalars.push(held_loss_sum);
            scalars.push(held_correct);
        }
        let mut values = read_scalars(scalars).await?;
        values[0] += helper_sums[0];
        values[1] += helper_sums[1];
        if let Some(quantity) = first_non_finite(&["loss", "correct", "gradient norm"], &values) {
            (self.model, self.optim) = before;
            self.corpus.rewind(position);
            self.step -= 1;
            return Err(LabError::NumericalFault { stage: "sft".into(), step: self.step + 1, quantity: quantity.into() });
        }
        let mut out = metrics([
            ("step", self.step as f64),
            ("loss/train", f64::from(values[0])),
            ("accuracy/train", f64::from(values[1] / counted)),
            ("grad_norm", f64::from(values[2])),
            ("lr", lr),
            ("batch", rows as f64),
        ]);
        if evaluate {
            let held_loss = values[3] / held_counted;
            out.insert("loss/held_out".into(), f64::from(held_loss));
            out.insert("accuracy/held_out".into(), f64::from(values[4] / held_counted));
            out.insert("perplexity/held_out".into(), f64::from(held_loss.exp()));
        }
        Ok(out)
    }

    /// Held-out loss *sum*, correct count (device tensors) and counted targets, in chunks.
    fn held_out_sums(&self) -> (Tensor<1>, Tensor<1>, f32) {
        let model = self.model.valid();
        let mut loss_sum: Option<Tensor<1>> = None;
        let mut correct_sum: Option<Tensor<1>> = None;
        let mut counted_total = 0.0;
        for chunk in self.held_out.chunks(64) {
            let (loss, correct, counted) = masked_lm_loss(&model, chunk, self.mask, &self.device);
            let loss = loss.mul_scalar(counted);
            counted_total += counted;
            loss_sum = Some(match loss_sum { Some(s) => s + loss, None => loss });
            correct_sum = Some(match correct_sum { Some(s) => s + correct, None => correct });
        }
        (loss_sum.expect("held-out set is not empty"), correct_sum.expect("held-out set is not empty"), counted_total)
    }

    /// Held-out loss of the current model (one readback).
    pub async fn held_out_loss(&self) -> Result<f32> {
        let (sum, _, counted) = self.held_out_sums();
        Ok(read_scalars(vec![sum]).await?[0] / counted)
    }
}

/// What an SFT snapshot carries besides the weights and Adam's moments.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SftState {
    step: usize,
    corpus: Corpus,
    adam: crate::engine::optim::AdamCounters,
}

impl SftTrainer {
    /// The trainer as bytes (see `engine::snapshot`); `settings` identifies the run it belongs to.
    pub async fn snapshot(&self, settings: serde_json::Value) -> Result<Vec<u8>> {
        let model = crate::engine::checkpoint::record_bytes(&self.model.valid()).await?;
        let (adam, moments) = self.optim.export().await?;
        let state = SftState { step: self.step, corpus: self.corpus.clone(), adam };
        let mut blobs = vec![model];
        blobs.extend(moments);
        Ok(crate::engine::snapshot::pack(&crate::engine::snapshot::Meta { stage: "sft".into(), settings, state }, &blobs))
    }

    /// Continues from a snapshot taken under the same `settings`; changes nothing if it refuses.
    pub fn restore(&mut self, bytes: &[u8], settings: &serde_json::Value) -> Result<()> {
        let (state, blobs): (SftState, _) = crate::engine::snapshot::unpack(bytes, "sft", settings)?;
        let (model, moments) = blobs.split_first().ok_or_else(|| LabError::Checkpoint("the SFT snapshot has no weights".into()))?;
        let model = crate::engine::checkpoint::load_record(self.model.valid(), model)?.train();
        let mut optim = self.optim.clone();
        optim.import(&state.adam, moments, &self.device)?;
        (self.model, self.optim, self.step, self.corpus) = (model, optim, state.step, state.corpus);
        Ok(())
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
    }

    #[test]
    fn a_non_finite_loss_rolls_back_and_names_the_step() {
        let device = Device::flex();
        let tok = Tokenizer::new();
        let model = Gpt::new(&Preset::Micro.model(tok.vocab_size()), &mut Rng::new(1), &device);
        let config = SftConfig { steps: 10, batch_size: 8, eval_every: 1000, train_examples: 64, held_out_examples: 8, ..SftConfig::default() };
        let mut trainer = SftTrainer::sft(model, &config, &tok, 7, &device).unwrap();
        trainer.poison_step(3);
        for _ in 0..2 {
            pollster::block_on(trainer.step()).unwrap();
        }
        let good = pollster::block_on(trainer.held_out_loss()).unwrap();
        let fault = pollster::block_on(trainer.step()).unwrap_err();
        assert_eq!(fault, LabError::NumericalFault { stage: "sft".into(), step: 3, quantity: "loss".into() });
        assert!(fault.to_string().contains("step 3"), "{fault}");
        // Rolled back: same step count, same (finite) model as before the poisoned step.
        assert_eq!(trainer.step_count(), 2);
        assert_eq!(pollster::block_on(trainer.held_out_loss()).unwrap(), good);
        // And training goes on from there (the poison was for step 3 only).
        trainer.poisoned_step = None;
        assert!(pollster::block_on(trainer.step()).is_ok());
    }

    fn sft_trainer(batch_size: usize, steps: usize) -> SftTrainer {
        let device = Device::flex();
        let tok = Tokenizer::new();
        let model = Gpt::new(&Preset::Micro.model(tok.vocab_size()), &mut Rng::new(1), &device);
        let config = SftConfig { steps, batch_size, eval_every: 2, train_examples: 64, held_out_examples: 8, ..SftConfig::default() };
        SftTrainer::sft(model, &config, &tok, 7, &device).unwrap()
    }

    /// A data-parallel step's helpers, in-process: each shard's work computed by a
    /// `GradientWorker` of its own, as the page's helper workers do.
    fn helpers(trainer: &SftTrainer, shards: usize) -> Vec<ShardResult> {
        crate::engine::data_parallel::answers(pollster::block_on(trainer.shard_plan(shards)).unwrap())
    }

    fn parameters(trainer: &SftTrainer) -> Vec<f32> {
        crate::engine::data_parallel::parameter_values(&trainer.model())
    }

    #[test]
    fn a_step_split_across_workers_is_the_whole_batch_step() {
        // 7 rows in 3 shards: unequal shards, and a batch whose shards count different targets.
        let (mut whole, mut split) = (sft_trainer(7, 5), sft_trainer(7, 5));
        for step in 1..=4 {
            let shards = if step % 2 == 0 { 3 } else { 2 };
            let expected = pollster::block_on(whole.step()).unwrap();
            let results = helpers(&split, shards);
            assert_eq!(results.len(), shards - 1);
            let got = pollster::block_on(split.step_sharded(shards, std::future::ready(Ok(results)))).unwrap();
            crate::engine::data_parallel::assert_same_metrics(&got, &expected, &[], step);
            let worst = parameters(&whole).iter().zip(parameters(&split)).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "step {step}: parameters differ by {worst}");
        }
    }

    #[test]
    fn a_failed_or_stale_helper_changes_nothing() {
        let mut trainer = sft_trainer(8, 5);
        pollster::block_on(trainer.step()).unwrap();
        let before = parameters(&trainer);
        let failed = pollster::block_on(trainer.step_sharded(2, std::future::ready(Err(LabError::InvalidInput("a helper worker failed: gone".into()))))).unwrap_err();
        assert!(failed.to_string().contains("gone"), "{failed}");
        // Results planned for an earlier step are refused.
        let stale = helpers(&trainer, 2);
        pollster::block_on(trainer.step()).unwrap();
        let after_one = parameters(&trainer);
        let refused = pollster::block_on(trainer.step_sharded(2, std::future::ready(Ok(stale)))).unwrap_err();
        assert!(refused.to_string().contains("step 2, not step 3"), "{refused}");
        // Too few answers.
        let missing = pollster::block_on(trainer.step_sharded(3, std::future::ready(Ok(helpers(&trainer, 2))))).unwrap_err();
        assert!(missing.to_string().contains("2 shards answered; the step has 3"), "{missing}");
        assert_eq!(trainer.step_count(), 2);
        assert_ne!(before, after_one);
        assert_eq!(parameters(&trainer), after_one);
        // The corpus was rewound each time: the next step is the one a fresh run takes third.
        let mut fresh = sft_trainer(8, 5);
        for _ in 0..3 {
            pollster::block_on(fresh.step()).unwrap();
        }
        pollster::block_on(trainer.step()).unwrap();
        assert_eq!(parameters(&trainer), parameters(&fresh));
    }
}
