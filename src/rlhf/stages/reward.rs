//! Stage 2: the reward model, learned from pairwise preferences.
//!
//! Bradley–Terry (the math page): p(y_w ≻ y_l | x) = σ(r_φ(x, y_w) − r_φ(x, y_l)), fitted by
//! maximum likelihood:
//!
//! ```text
//! L(φ) = −E_{(x, y_w, y_l)∈D} [ log σ(r_φ(x, y_w) − r_φ(x, y_l)) ]
//! ```
//!
//! A tie is the target ½. r_φ is a transformer trunk initialized from π_ref with a scalar head,
//! read at the last real token (`<eos>`) of prompt + completion. Only differences of r matter,
//! so after training the scores are shifted to zero mean over the training completions.
//!
//! Sections, in the page's order: the pairs to judge (sampled from π_ref), the loss, the trainer.

use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use serde::Serialize;

use super::{first_non_finite, float_tensor, int_tensor, Batches};
use crate::engine::data_parallel::{flat_parameters, helpers_part, shard_rows, Shard, ShardResult, ShardTerms, ShardWork};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::{with_fresh_ids, Gpt, ScalarModel};
use crate::engine::optim::FlatAdam;
use crate::engine::readback::{read_floats, read_scalars};
use crate::engine::sample::{generate, SampleOptions};
use crate::error::{LabError, Result};
use crate::rlhf::config::RewardConfig;
use crate::rlhf::labels::{prompt_text, LabeledPair};
use crate::rlhf::math::stats::pearson;
use crate::rlhf::metrics::{metrics, Metrics};
use crate::rlhf::task::{prompt_tokens, Completion, Tokenizer, MAX_COMPLETION, PRODUCTS_COUNT, SEQ_LEN};
use crate::rng::Rng;

// ---- pairs to judge ----

/// Two completions per prompt, sampled from π_ref at `temperature` (> 0, so they can differ),
/// for `count` random prompts. Identical pairs are dropped: there is nothing to judge.
pub async fn sample_pairs(reference: &Gpt, tokenizer: &Tokenizer, count: usize, temperature: f32, rng: &mut Rng, device: &Device) -> Result<Vec<(Completion, Completion)>> {
    if !(temperature > 0.0) {
        return Err(LabError::setting("reward.sample_temperature", "must be above 0: two greedy completions are the same"));
    }
    if count == 0 || count > 128 {
        return Err(LabError::InvalidInput(format!("pairs per call must be from 1 to 128 (got {count})")));
    }
    let products: Vec<usize> = (0..count).map(|_| rng.below(PRODUCTS_COUNT)).collect();
    let prompts: Vec<u32> = products.iter().flat_map(|&p| prompt_tokens(tokenizer, p).repeat(2)).collect();
    let options = SampleOptions { temperature, top_k: 0, max_new_tokens: MAX_COMPLETION };
    let generated = generate(reference, &prompts, 2 * count, options, rng, device).await?;
    Ok(products
        .iter()
        .enumerate()
        .map(|(i, &p)| (Completion::from_generated(p, generated.row(2 * i)), Completion::from_generated(p, generated.row(2 * i + 1))))
        .filter(|(a, b)| a != b)
        .collect())
}

// ---- the loss ----

/// Bradley–Terry loss per pair, −[t·log σ(r_a − r_b) + (1 − t)·log σ(r_b − r_a)], for target
/// probability t that the first is preferred (1, 0, or ½ for a tie).
///
/// # Shapes
/// - `r_a`, `r_b`, `targets`: [pairs] → [pairs]
pub fn bradley_terry_loss(r_a: Tensor<1>, r_b: Tensor<1>, targets: Tensor<1>) -> Tensor<1> {
    let margin = r_a - r_b;
    let prefer_first = log_sigmoid(margin.clone()) * targets.clone();
    let prefer_second = log_sigmoid(margin.neg()) * targets.neg().add_scalar(1.0);
    (prefer_first + prefer_second).neg()
}

/// The reward model's score of each completion, read at its last real token.
///
/// # Shapes
/// returns [completions]
pub fn scores(model: &ScalarModel, tokenizer: &Tokenizer, completions: &[&Completion], device: &Device) -> Tensor<1> {
    let rows = completions.len();
    let tokens: Vec<u32> = completions.iter().flat_map(|c| c.sequence(tokenizer)).collect();
    // A one-hot row per completion at its last real token, made on the host: no gather kernel.
    let mut pick = vec![0.0f32; rows * SEQ_LEN];
    for (row, c) in completions.iter().enumerate() {
        pick[row * SEQ_LEN + c.last_index()] = 1.0;
    }
    score_sequences(model, int_tensor(&tokens, rows, SEQ_LEN, device), float_tensor(pick, [rows, SEQ_LEN], device))
}

/// Scores of full sequences, read where `pick` (one-hot per row) is 1.
///
/// # Shapes
/// - `tokens`: [rows, SEQ_LEN], `pick`: [rows, SEQ_LEN] → [rows]
pub fn score_sequences(model: &ScalarModel, tokens: Tensor<2, Int>, pick: Tensor<2>) -> Tensor<1> {
    let [rows, _] = tokens.dims();
    (model.forward(tokens) * pick).sum_dim(1).reshape([rows])
}

/// One labeled pair as a step's loss needs it: both completions and the target probability that
/// the first is preferred (1, 0, or ½ for a tie). What a helper of a split step gets
/// (`engine::data_parallel`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct PreferencePair {
    pub first: Completion,
    pub second: Completion,
    pub target: f32,
}

impl PreferencePair {
    pub fn of(pair: &LabeledPair) -> Self {
        Self { first: pair.first.clone(), second: pair.second.clone(), target: pair.target() }
    }
}

/// A batch's Bradley–Terry terms as [1]-tensors, and each completion's score ([2·pairs]: firsts,
/// then seconds).
pub(crate) struct PairTerms {
    /// Σ over the pairs of the Bradley–Terry loss, divided by `whole_pairs`.
    pub loss: Tensor<1>,
    /// Strict pairs whose chosen completion scores higher.
    pub correct: Tensor<1>,
    /// Σ of the chosen and of the rejected completions' scores over strict pairs.
    pub chosen: Tensor<1>,
    pub rejected: Tensor<1>,
    pub scores: Tensor<1>,
}

/// The Bradley–Terry terms of `pairs` under `model`. The loss is divided by `whole_pairs`, the
/// pairs of the whole batch: for pairs split across workers the shards' losses add up to the
/// batch's mean.
pub(crate) fn pair_terms(model: &ScalarModel, tokenizer: &Tokenizer, pairs: &[PreferencePair], whole_pairs: f32, device: &Device) -> PairTerms {
    let n = pairs.len();
    let completions: Vec<&Completion> = pairs.iter().map(|p| &p.first).chain(pairs.iter().map(|p| &p.second)).collect();
    let r = scores(model, tokenizer, &completions, device); // [2n]
    let r_a = r.clone().slice([0..n]);
    let r_b = r.clone().slice([n..2 * n]);
    let targets: Vec<f32> = pairs.iter().map(|p| p.target).collect();
    // +1 where the first is preferred, −1 where the second is, 0 for ties: the sign that
    // turns (r_a − r_b) into (r_chosen − r_rejected).
    let sign: Vec<f32> = targets.iter().map(|&t| if t > 0.5 { 1.0 } else if t < 0.5 { -1.0 } else { 0.0 }).collect();
    let sign = float_tensor(sign, [n], device);
    let loss = bradley_terry_loss(r_a.clone(), r_b.clone(), float_tensor(targets, [n], device)).sum().div_scalar(whole_pairs);
    let signed_margin = (r_a.clone() - r_b.clone()) * sign.clone();
    let correct = signed_margin.clone().greater_elem(0.0).float().sum();
    // chosen = first where sign = +1, second where sign = −1.
    let first_weight = sign.clone().clamp_min(0.0);
    let second_weight = sign.neg().clamp_min(0.0);
    let chosen = (r_a.clone() * first_weight.clone() + r_b.clone() * second_weight.clone()).sum();
    let rejected = (r_b * first_weight + r_a * second_weight).sum();
    PairTerms { loss, correct, chosen, rejected, scores: r }
}

/// Refuses pairs a helper could not score on a model of `vocab_size` tokens.
pub(crate) fn validate_pairs(pairs: &[PreferencePair], whole_pairs: f32, vocab_size: usize) -> Result<()> {
    if pairs.is_empty() || whole_pairs.is_nan() || whole_pairs < pairs.len() as f32 {
        return Err(LabError::InvalidInput(format!("a reward shard needs pairs, and a batch at least as large (got {} of {whole_pairs})", pairs.len())));
    }
    for p in pairs {
        super::check_completion(&p.first, vocab_size)?;
        super::check_completion(&p.second, vocab_size)?;
        if !(0.0..=1.0).contains(&p.target) {
            return Err(LabError::InvalidInput(format!("a pair's target is a probability (got {})", p.target)));
        }
    }
    Ok(())
}

/// A shard of a reward-model step for a helper worker: Σ over some of a batch's pairs of the
/// Bradley–Terry loss, divided by `whole_pairs`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct BradleyTerryShard {
    pub pairs: Vec<PreferencePair>,
    pub whole_pairs: f32,
}

impl Shard for BradleyTerryShard {
    type Model = ScalarModel;

    fn blank(config: &ModelConfig, device: &Device) -> ScalarModel {
        ScalarModel::from_trunk(Gpt::new(config, &mut Rng::new(0), device), device)
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        validate_pairs(&self.pairs, self.whole_pairs, config.vocab_size)
    }

    /// Sums: the loss, then correctly ranked pairs, chosen and rejected scores.
    fn terms(&self, model: &ScalarModel, device: &Device) -> ShardTerms {
        let terms = pair_terms(model, &Tokenizer::new(), &self.pairs, self.whole_pairs, device);
        ShardTerms { loss: terms.loss, sums: vec![terms.correct.inner(), terms.chosen.inner(), terms.rejected.inner()], per_token: None }
    }
}

// ---- the trainer ----

/// One held-out pair with the reward model's view of it, for the pair inspector and scatter.
#[derive(Debug, Clone, Serialize)]
pub struct InspectedPair {
    pub prompt: String,
    pub first: String,
    pub second: String,
    pub preference: crate::rlhf::task::Preference,
    pub r_first: f32,
    pub r_second: f32,
    /// σ(r_first − r_second): the model's probability that the first is preferred.
    pub p_first: f32,
    pub gold_first: f32,
    pub gold_second: f32,
    /// Each term of the gold utility (sentiment, fluency, …), for the inspector.
    pub gold_terms_first: crate::rlhf::task::GoldUtility,
    pub gold_terms_second: crate::rlhf::task::GoldUtility,
}

pub struct RewardTrainer {
    model: ScalarModel,
    optim: FlatAdam,
    train: Vec<LabeledPair>,
    held_out: Vec<LabeledPair>,
    batches: Batches,
    config: RewardConfig,
    step: usize,
    total_steps: usize,
    /// The simulated labeler's agreement ceiling on the held-out pairs (None if any label is
    /// human: their noise is unknown).
    pub ceiling: Option<f32>,
    tokenizer: Tokenizer,
    device: Device,
    train_device: Device,
    poisoned_step: Option<usize>,
}

impl RewardTrainer {
    /// A reward model on π_ref's trunk, to be trained on `labels` (split into train and held-out
    /// by `seed`).
    pub fn new(reference: &Gpt, labels: Vec<LabeledPair>, config: &RewardConfig, seed: u64, tokenizer: &Tokenizer, device: &Device) -> Result<Self> {
        config.validate()?;
        if labels.len() < 2 {
            return Err(LabError::NotReady(format!("the reward model needs at least 2 labels (have {})", labels.len())));
        }
        let (train, held_out) = crate::rlhf::labels::split(labels, seed, config.held_out_fraction);
        let all_simulated = held_out.iter().all(|p| p.source == crate::rlhf::labels::LabelSource::Simulated);
        let ceiling = (all_simulated && !held_out.is_empty()).then(|| crate::rlhf::labels::ceiling(&held_out, tokenizer, config.labeler_temperature as f32));
        let total_steps = config.epochs * Batches::steps_per_epoch(train.len(), config.batch_size);
        let model = ScalarModel::from_trunk(with_fresh_ids(reference.clone()), device).train();
        Ok(Self {
            model,
            optim: FlatAdam::default(),
            batches: Batches::new(train.len(), Rng::derive(seed, "reward/order")),
            train,
            held_out,
            config: config.clone(),
            step: 0,
            total_steps,
            ceiling,
            tokenizer: tokenizer.clone(),
            device: device.clone(),
            train_device: device.clone().autodiff(),
            poisoned_step: None,
        })
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

    pub fn train_len(&self) -> usize {
        self.train.len()
    }

    pub fn held_out_len(&self) -> usize {
        self.held_out.len()
    }

    /// Fault injection for tests: step `step` (1-based) computes a NaN loss.
    pub fn poison_step(&mut self, step: usize) {
        self.poisoned_step = Some(step);
    }

    /// Loss, accuracy and mean rewards of a batch of pairs, as [1]-tensors:
    /// (loss, correct, chosen sum, rejected sum, strict pairs) — strict pairs are counted on the
    /// host.
    fn batch_terms(&self, model: &ScalarModel, pairs: &[&LabeledPair], device: &Device) -> (Tensor<1>, Tensor<1>, Tensor<1>, Tensor<1>, f32, Tensor<1>) {
        let pairs: Vec<PreferencePair> = pairs.iter().map(|p| PreferencePair::of(p)).collect();
        let strict = pairs.iter().filter(|p| p.target != 0.5).count() as f32;
        let terms = pair_terms(model, &self.tokenizer, &pairs, pairs.len() as f32, device);
        (terms.loss, terms.correct, terms.chosen, terms.rejected, strict, terms.scores)
    }

    /// One optimizer step on a batch of labels; every tenth of the run (and at its end) also the
    /// held-out accuracy, loss and correlation with the gold utility. One readback.
    pub async fn step(&mut self) -> Result<Metrics> {
        self.step_sharded(1, std::future::ready(Ok(Vec::new()))).await
    }

    fn refuse_if_done(&self) -> Result<()> {
        if self.is_done() {
            return Err(LabError::NotReady(format!("all {} reward-model steps are done", self.total_steps)));
        }
        Ok(())
    }

    /// The next step split into `shards` (fewer if the batch has fewer pairs) for a
    /// data-parallel step (`engine::data_parallel`): θ (one readback) and the helpers' pairs. Changes
    /// nothing: `step_sharded` with as many shards then draws the same batch.
    pub async fn shard_plan(&self, shards: usize) -> Result<(Vec<f32>, Vec<ShardWork<BradleyTerryShard>>)> {
        self.refuse_if_done()?;
        let indices = self.batches.clone().next(self.config.batch_size);
        let pairs: Vec<PreferencePair> = indices.iter().map(|&i| PreferencePair::of(&self.train[i])).collect();
        let shards = shards.clamp(1, pairs.len());
        let model = self.model.trunk.config();
        let whole_pairs = pairs.len() as f32;
        let work = (1..shards)
            .map(|i| ShardWork { step: self.step, model: model.clone(), objective: BradleyTerryShard { pairs: pairs[shard_rows(pairs.len(), shards, i)].to_vec(), whole_pairs } })
            .collect();
        let theta = read_floats(flat_parameters(&self.model.valid())).await?;
        Ok((theta, work))
    }

    /// One optimizer step whose batch is split into `shards`: this trainer computes shard 0's
    /// gradient, `helpers` resolves to the other shards' results (`shard_plan`'s work), and
    /// their sum makes the step. With one shard and no helpers, this is `step`. A helper's
    /// failure or a non-finite value leaves the model as it was.
    pub async fn step_sharded<F: std::future::Future<Output = Result<Vec<ShardResult>>>>(&mut self, shards: usize, helpers: F) -> Result<Metrics> {
        self.refuse_if_done()?;
        let position = self.batches.clone(); // a failed step rewinds to it: the retry draws the same batch
        let indices = self.batches.next(self.config.batch_size);
        let pairs: Vec<PreferencePair> = indices.iter().map(|&i| PreferencePair::of(&self.train[i])).collect();
        let shards = shards.clamp(1, pairs.len());
        let strict = pairs.iter().filter(|p| p.target != 0.5).count() as f32;
        let own = &pairs[shard_rows(pairs.len(), shards, 0)];
        let terms = pair_terms(&self.model, &self.tokenizer, own, pairs.len() as f32, &self.train_device);
        let mut loss = terms.loss;
        if self.poisoned_step == Some(self.step + 1) {
            self.poisoned_step = None; // one fault, as a spike would be: the retry is clean
            loss = loss.mul_scalar(f32::NAN);
        }
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let gradient_len = crate::engine::optim::flat_gradient_len(&self.model, &grads);
        let helpers = match helpers_part(helpers, shards, self.step, gradient_len, 4, |_| 0, &self.device).await {
            Ok(part) => part,
            Err(e) => {
                self.batches = position;
                return Err(e);
            }
        };
        let (correct, chosen, rejected) = (terms.correct, terms.chosen, terms.rejected);
        let before = (self.model.clone(), self.optim.clone());
        let lr = super::linear_decay(self.config.learning_rate, self.step, self.total_steps);
        let (model, norm) = self.optim.step_with(lr, self.model.clone(), &grads, helpers.gradient);
        self.model = model;
        self.step += 1;

        let evaluate = !self.held_out.is_empty() && (self.step == 1 || self.step % (self.total_steps / 10).max(1) == 0 || self.is_done());
        let mut scalars = vec![loss.detach().inner(), correct.inner(), chosen.inner(), rejected.inner(), norm.inner()];
        let held = self.held_out.len();
        if evaluate {
            let model = self.model.valid();
            let pairs: Vec<&LabeledPair> = self.held_out.iter().collect();
            let (held_loss, held_correct, _, _, _, held_scores) = self.batch_terms(&model, &pairs, &self.device);
            scalars.extend([held_loss, held_correct, held_scores]);
        }
        let mut values = read_scalars(scalars).await?;
        // The batch's sums: this shard's and the helpers' (loss, correct, chosen, rejected).
        for (value, others) in values.iter_mut().zip(&helpers.sums) {
            *value += others;
        }
        if let Some(quantity) = first_non_finite(&["loss", "accuracy", "reward of chosen", "reward of rejected", "gradient norm"], &values[..5]) {
            (self.model, self.optim, self.batches) = (before.0, before.1, position);
            self.step -= 1;
            return Err(LabError::NumericalFault { stage: "reward model".into(), step: self.step + 1, quantity: quantity.into() });
        }
        let strict = strict.max(1.0);
        let mut out = metrics([
            ("step", self.step as f64),
            ("epoch", (self.batches.epochs_done + 1) as f64),
            ("rm/loss", f64::from(values[0])),
            ("rm/accuracy", f64::from(values[1] / strict)),
            ("rewards/chosen", f64::from(values[2] / strict)),
            ("rewards/rejected", f64::from(values[3] / strict)),
            ("rewards/margins", f64::from((values[2] - values[3]) / strict)),
            ("grad_norm", f64::from(values[4])),
            ("lr", lr),
        ]);
        if evaluate {
            let held_strict = self.held_out.iter().filter(|p| p.chosen_rejected().is_some()).count().max(1) as f32;
            out.insert("rm/held_out_loss".into(), f64::from(values[5]));
            out.insert("rm/held_out_accuracy".into(), f64::from(values[6] / held_strict));
            let scores = &values[7..7 + 2 * held];
            let golds: Vec<f32> = self.held_out.iter().map(|p| &p.first).chain(self.held_out.iter().map(|p| &p.second)).map(|c| c.gold(&self.tokenizer).total).collect();
            out.insert("rm/gold_correlation".into(), f64::from(pearson(scores, &golds)));
            if let Some(ceiling) = self.ceiling {
                out.insert("rm/agreement_ceiling".into(), f64::from(ceiling));
            }
        }
        Ok(out)
    }

    /// The held-out pairs with the current model's scores (one readback).
    pub async fn inspect(&self, limit: usize) -> Result<Vec<InspectedPair>> {
        let pairs: Vec<&LabeledPair> = self.held_out.iter().take(limit).collect();
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let n = pairs.len();
        let completions: Vec<&Completion> = pairs.iter().map(|p| &p.first).chain(pairs.iter().map(|p| &p.second)).collect();
        let values = read_floats(scores(&self.model.valid(), &self.tokenizer, &completions, &self.device)).await?;
        Ok(pairs
            .iter()
            .enumerate()
            .map(|(i, p)| InspectedPair {
                prompt: prompt_text(&self.tokenizer, p.first.product),
                first: self.tokenizer.decode(&p.first.tokens),
                second: self.tokenizer.decode(&p.second.tokens),
                preference: p.preference,
                r_first: values[i],
                r_second: values[n + i],
                p_first: crate::rlhf::math::stats::sigmoid(values[i] - values[n + i]),
                gold_first: p.first.gold(&self.tokenizer).total,
                gold_second: p.second.gold(&self.tokenizer).total,
                gold_terms_first: p.first.gold(&self.tokenizer),
                gold_terms_second: p.second.gold(&self.tokenizer),
            })
            .collect())
    }

    /// The trained reward model, frozen, with its scores shifted to zero mean over the training
    /// completions; returns it with the shift applied.
    pub async fn finish(&self) -> Result<(ScalarModel, f32)> {
        let model = self.model.valid();
        let completions: Vec<&Completion> = self.train.iter().flat_map(|p| [&p.first, &p.second]).collect();
        let mut sums = Vec::new();
        for chunk in completions.chunks(128) {
            sums.push(scores(&model, &self.tokenizer, chunk, &self.device).sum());
        }
        let total: f32 = read_scalars(sums).await?.iter().sum();
        let mean = total / completions.len() as f32;
        Ok((model.shift_scores(-mean), mean))
    }
}

/// What a reward-model snapshot carries besides the weights and Adam's moments.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct RewardState {
    step: usize,
    batches: Batches,
    adam: crate::engine::optim::AdamCounters,
}

impl RewardTrainer {
    pub async fn snapshot(&self, settings: serde_json::Value) -> Result<Vec<u8>> {
        let model = crate::engine::checkpoint::record_bytes(&self.model.valid()).await?;
        let (adam, moments) = self.optim.export().await?;
        let state = RewardState { step: self.step, batches: self.batches.clone(), adam };
        let mut blobs = vec![model];
        blobs.extend(moments);
        Ok(crate::engine::snapshot::pack(&crate::engine::snapshot::Meta { stage: "reward".into(), settings, state }, &blobs))
    }

    pub fn restore(&mut self, bytes: &[u8], settings: &serde_json::Value) -> Result<()> {
        let (state, blobs): (RewardState, _) = crate::engine::snapshot::unpack(bytes, "reward", settings)?;
        let (model, moments) = blobs.split_first().ok_or_else(|| LabError::Checkpoint("the reward snapshot has no weights".into()))?;
        let model = crate::engine::checkpoint::load_record(self.model.valid(), model)?.train();
        let mut optim = self.optim.clone();
        optim.import(&state.adam, moments, &self.device)?;
        (self.model, self.optim, self.step, self.batches) = (model, optim, state.step, state.batches);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::config::Preset;
    use crate::rlhf::labels::{grammar_pairs, simulate};
    use crate::rlhf::math::bradley_terry;

    fn read(t: Tensor<1>) -> Vec<f32> {
        t.into_data().iter::<f32>().collect()
    }

    #[test]
    fn loss_and_gradient_match_hand_computed_values() {
        let device = Device::flex().autodiff();
        let r_a = Tensor::<1>::from_floats([1.5, 0.0, 0.2], &device).require_grad();
        let r_b = Tensor::<1>::from_floats([0.5, 0.0, 1.2], &device).require_grad();
        let targets = Tensor::<1>::from_floats([1.0, 1.0, 0.5], &device);
        let loss = bradley_terry_loss(r_a.clone(), r_b.clone(), targets);
        let per_pair = read(loss.clone().inner());
        // −log σ(1) = 0.313262, log 2, tie at margin −1: ½(1.313262 + 0.313262).
        let expected = [0.313_262, 2f32.ln(), 0.813_262];
        for (got, want) in per_pair.iter().zip(expected) {
            assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        }
        let grads = loss.sum().backward();
        let ga = read(r_a.grad(&grads).unwrap());
        let gb = read(r_b.grad(&grads).unwrap());
        for (i, (a, b, t)) in [(1.5, 0.5, 1.0), (0.0, 0.0, 1.0), (0.2, 1.2, 0.5)].into_iter().enumerate() {
            let want = bradley_terry::loss_gradient(a, b, t);
            assert!((ga[i] - want).abs() < 1e-5 && (gb[i] + want).abs() < 1e-5, "pair {i}: {} {} vs {want}", ga[i], gb[i]);
        }
    }

    #[test]
    fn scores_are_read_at_the_last_real_token_of_a_padded_batch() {
        let device = Device::flex();
        let tok = Tokenizer::new();
        let model = ScalarModel::from_trunk(Gpt::new(&Preset::Micro.model(tok.vocab_size()), &mut Rng::new(1), &device), &device);
        // A non-zero head so positions differ.
        let model = model.shift_scores(0.0);
        let model = {
            use burn::module::{ModuleMapper, Param};
            struct Ones;
            impl ModuleMapper for Ones {
                fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
                    let (id, v, m) = p.consume();
                    let shape = v.shape();
                    // A varied head (all-ones would sum a LayerNorm output to 0 everywhere).
                    let v = if shape.num_dims() == 2 && shape[1] == 1 {
                        let values: Vec<f32> = (0..shape[0]).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
                        Tensor::from_data(burn::tensor::TensorData::new(values, shape), &v.device())
                    } else {
                        v
                    };
                    Param::from_mapped_value(id, v, m)
                }
            }
            model.map(&mut Ones)
        };
        let short = Completion { product: 0, tokens: tok.encode("is great . <eos>") };
        let long = Completion { product: 1, tokens: tok.encode("is bad . the screen is dull and i hate it . <eos>") };
        let cut = Completion { product: 2, tokens: tok.encode(&"is great and the fan is quiet ".repeat(3)).into_iter().take(MAX_COMPLETION).collect() };
        let got = read(scores(&model, &tok, &[&short, &long, &cut], &device));
        let all: Vec<f32> = model.forward(int_tensor(&[short.sequence(&tok), long.sequence(&tok), cut.sequence(&tok)].concat(), 3, SEQ_LEN, &device)).into_data().iter::<f32>().collect();
        for (row, c) in [&short, &long, &cut].iter().enumerate() {
            let want = all[row * SEQ_LEN + c.last_index()];
            assert!((got[row] - want).abs() < 1e-6, "row {row}");
            // …and not one position later (TRL's off-by-one), where PAD or nothing sits.
            if c.last_index() + 1 < SEQ_LEN {
                assert!((got[row] - all[row * SEQ_LEN + c.last_index() + 1]).abs() > 1e-6);
            }
        }
        assert_eq!(short.last_index(), 8);
        assert_eq!(cut.last_index(), SEQ_LEN - 1);
    }

    /// A reward trainer on 40 simulated labels, a tie among them, batches of 7 pairs.
    fn small_trainer() -> RewardTrainer {
        let device = Device::flex();
        let tok = Tokenizer::new();
        let reference = Gpt::new(&Preset::Micro.model(tok.vocab_size()), &mut Rng::new(1), &device);
        let mut rng = Rng::new(2);
        let pairs = grammar_pairs(&tok, 40, &mut rng);
        let mut labels: Vec<LabeledPair> = simulate(&pairs, &tok, 0.3, &mut rng).into_iter().map(|(l, _)| l).collect();
        labels[0].preference = crate::rlhf::task::Preference::Tie;
        let config = RewardConfig { epochs: 1, batch_size: 7, learning_rate: 3e-3, held_out_fraction: 0.2, ..RewardConfig::default() };
        RewardTrainer::new(&reference, labels, &config, 5, &tok, &device).unwrap()
    }

    fn helpers(trainer: &RewardTrainer, shards: usize) -> Vec<ShardResult> {
        crate::engine::data_parallel::answers(pollster::block_on(trainer.shard_plan(shards)).unwrap())
    }

    fn parameters(trainer: &RewardTrainer) -> Vec<f32> {
        crate::engine::data_parallel::parameter_values(&trainer.model.valid())
    }

    /// r_first − r_second of every label, training and held-out. Split and whole runs are
    /// compared here and not parameter by parameter: the loss sees only differences of scores,
    /// so its gradient along a shift of every score (the head's bias; ln_f's β along the head's
    /// weights) is 0 up to rounding, and Adam scales that noise to steps of up to ±lr (the first
    /// step moved the bias by 1.8e-3 whole and by 0 split). `finish` shifts the scores to zero
    /// mean, which takes that shift out of what the later stages see.
    fn margins(trainer: &RewardTrainer) -> Vec<f32> {
        let pairs: Vec<&LabeledPair> = trainer.train.iter().chain(&trainer.held_out).collect();
        let completions: Vec<&Completion> = pairs.iter().map(|p| &p.first).chain(pairs.iter().map(|p| &p.second)).collect();
        let r = read(scores(&trainer.model.valid(), &trainer.tokenizer, &completions, &Device::flex()));
        let n = pairs.len();
        (0..n).map(|i| r[i] - r[n + i]).collect()
    }

    #[test]
    fn a_step_split_across_workers_is_the_whole_step() {
        let (mut whole, mut split) = (small_trainer(), small_trainer());
        let mut steps = 0;
        while !whole.is_done() {
            steps += 1;
            let shards = 2 + steps % 2; // 7 pairs in 2 and in 3 (unequal) shards
            let expected = pollster::block_on(whole.step()).unwrap();
            let results = helpers(&split, shards);
            let got = pollster::block_on(split.step_sharded(shards, std::future::ready(Ok(results)))).unwrap();
            // The mean scores of chosen and rejected completions carry the head's bias (below):
            // they may move together, by one shift.
            crate::engine::data_parallel::assert_same_metrics(&got, &expected, &["rewards/chosen", "rewards/rejected"], steps);
            // What the loss sees: each pair's margin r_first − r_second, on every label.
            let (a, b) = (margins(&whole), margins(&split));
            let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "step {steps}: margins differ by {worst}");
        }
        assert!(steps >= 4, "{steps} steps");
    }

    #[test]
    fn a_failed_or_malformed_helper_changes_nothing() {
        let mut t = small_trainer();
        let mut fresh = small_trainer();
        pollster::block_on(t.step()).unwrap();
        pollster::block_on(fresh.step()).unwrap();
        let before = parameters(&t);
        let failed = pollster::block_on(t.step_sharded(2, std::future::ready(Err(LabError::InvalidInput("a helper worker failed: gone".into()))))).unwrap_err();
        assert!(failed.to_string().contains("gone"), "{failed}");
        let (theta, mut work) = pollster::block_on(t.shard_plan(2)).unwrap();
        work[0].objective.pairs[0].target = 2.0;
        let err = pollster::block_on(crate::engine::data_parallel::compute(work[0].step, &work[0].model, &work[0].objective, &theta, None)).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("probability"), "{err}");
        assert_eq!(parameters(&t), before);
        // The batch was put back: the next step is the second step of a run that never split.
        let results = helpers(&t, 2);
        let got = pollster::block_on(t.step_sharded(2, std::future::ready(Ok(results)))).unwrap();
        let expected = pollster::block_on(fresh.step()).unwrap();
        assert!((got["rm/loss"] - expected["rm/loss"]).abs() < 1e-5, "{got:?} vs {expected:?}");
    }

    #[test]
    fn a_short_run_on_simulated_labels_learns_the_preferences() {
        let device = Device::flex();
        let tok = Tokenizer::new();
        let reference = Gpt::new(&Preset::Micro.model(tok.vocab_size()), &mut Rng::new(1), &device);
        let mut rng = Rng::new(2);
        let pairs = grammar_pairs(&tok, 600, &mut rng);
        let labels: Vec<LabeledPair> = simulate(&pairs, &tok, 0.3, &mut rng).into_iter().map(|(l, _)| l).collect();
        let config = RewardConfig { epochs: 8, batch_size: 32, learning_rate: 3e-3, held_out_fraction: 0.2, ..RewardConfig::default() };
        let mut trainer = RewardTrainer::new(&reference, labels, &config, 5, &tok, &device).unwrap();
        let mut last = Metrics::new();
        while !trainer.is_done() {
            last = pollster::block_on(trainer.step()).unwrap();
        }
        let accuracy = last["rm/held_out_accuracy"];
        let ceiling = last["rm/agreement_ceiling"];
        assert!(accuracy > 0.7, "held-out accuracy {accuracy} (ceiling {ceiling})");
        assert!(last["rm/gold_correlation"] > 0.5, "{last:?}");
        let (model, mean) = pollster::block_on(trainer.finish()).unwrap();
        assert!(mean.is_finite());
        // Zero mean after the shift, over the training completions.
        let completions: Vec<&Completion> = trainer.train.iter().flat_map(|p| [&p.first, &p.second]).collect();
        let shifted = read(scores(&model, &tok, &completions, &device));
        let m = shifted.iter().sum::<f32>() / shifted.len() as f32;
        assert!(m.abs() < 1e-3, "mean after shift {m}");
    }
}
