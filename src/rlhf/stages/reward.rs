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

use std::ops::Range;

use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use serde::Serialize;

use super::supervised::{Names, Objective, Schedule, Shuffled, SupervisedTrainer};
use super::{float_tensor, int_tensor, Batches};
use crate::engine::data_parallel::{Shard, ShardTerms};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::{with_fresh_ids, Gpt, ScalarModel};
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

/// The reward model's choices: labeled pairs in shuffled batches, the Bradley–Terry loss, and on
/// the held-out pairs the accuracy and the scores' correlation with the gold utility.
pub struct BradleyTerry {
    train: Vec<LabeledPair>,
    held_out: Vec<LabeledPair>,
    /// The simulated labeler's agreement ceiling on the held-out pairs (None if any label is
    /// human: their noise is unknown).
    ceiling: Option<f32>,
    tokenizer: Tokenizer,
}

impl Objective for BradleyTerry {
    type Shard = BradleyTerryShard;
    type Row = LabeledPair;
    type Cursor = Shuffled;
    const NAMES: Names = Names { stage: "reward", title: "reward", fault: "reward model", steps: "reward-model steps", sums: &["loss", "accuracy", "reward of chosen", "reward of rejected"] };

    fn shape(model: &ScalarModel) -> ModelConfig {
        model.trunk.config()
    }

    fn draw(&self, cursor: &mut Shuffled, size: usize) -> Vec<LabeledPair> {
        cursor.next(&self.train, size)
    }

    fn shard(&self, batch: &[LabeledPair], rows: Range<usize>) -> BradleyTerryShard {
        BradleyTerryShard { pairs: batch[rows].iter().map(PreferencePair::of).collect(), whole_pairs: batch.len() as f32 }
    }

    fn held_out_len(&self) -> usize {
        self.held_out.len()
    }

    /// The held-out loss, correctly ranked pairs and every completion's score (firsts, then
    /// seconds).
    fn held_out(&self, model: &ScalarModel, device: &Device) -> Vec<Tensor<1>> {
        let pairs: Vec<PreferencePair> = self.held_out.iter().map(PreferencePair::of).collect();
        let terms = pair_terms(model, &self.tokenizer, &pairs, pairs.len() as f32, device);
        vec![terms.loss, terms.correct, terms.scores]
    }

    /// TRL's RewardTrainer's names: accuracy and mean rewards over the strict pairs (ties have
    /// no chosen completion).
    fn report(&self, batch: &[LabeledPair], cursor: &Shuffled, sums: &[f32], held_out: Option<&[f32]>, out: &mut Metrics) {
        let strict = (batch.iter().filter(|p| p.target() != 0.5).count() as f32).max(1.0);
        out.extend(metrics([
            ("epoch", (cursor.epochs_done() + 1) as f64),
            ("rm/loss", f64::from(sums[0])),
            ("rm/accuracy", f64::from(sums[1] / strict)),
            ("rewards/chosen", f64::from(sums[2] / strict)),
            ("rewards/rejected", f64::from(sums[3] / strict)),
            ("rewards/margins", f64::from((sums[2] - sums[3]) / strict)),
        ]));
        if let Some(held) = held_out {
            let held_strict = self.held_out.iter().filter(|p| p.chosen_rejected().is_some()).count().max(1) as f32;
            out.insert("rm/held_out_loss".into(), f64::from(held[0]));
            out.insert("rm/held_out_accuracy".into(), f64::from(held[1] / held_strict));
            let scores = &held[2..2 + 2 * self.held_out.len()];
            let golds: Vec<f32> = self.held_out.iter().map(|p| &p.first).chain(self.held_out.iter().map(|p| &p.second)).map(|c| c.gold(&self.tokenizer).total).collect();
            out.insert("rm/gold_correlation".into(), f64::from(pearson(scores, &golds)));
            if let Some(ceiling) = self.ceiling {
                out.insert("rm/agreement_ceiling".into(), f64::from(ceiling));
            }
        }
    }
}

/// Trains r_φ on labeled pairs, one bounded step at a time.
pub type RewardTrainer = SupervisedTrainer<BradleyTerry>;

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
        let schedule = Schedule::epochs(config.learning_rate, config.batch_size, config.epochs, train.len());
        let batches = Shuffled::new(Batches::new(train.len(), Rng::derive(seed, "reward/order")));
        let model = ScalarModel::from_trunk(with_fresh_ids(reference.clone()), device);
        Ok(Self::start(model, BradleyTerry { train, held_out, ceiling, tokenizer: tokenizer.clone() }, batches, schedule, device))
    }

    pub fn train_len(&self) -> usize {
        self.objective.train.len()
    }

    /// The simulated labeler's agreement ceiling on the held-out pairs (None if any label is
    /// human: their noise is unknown).
    pub fn ceiling(&self) -> Option<f32> {
        self.objective.ceiling
    }

    /// The held-out pairs with the current model's scores (one readback).
    pub async fn inspect(&self, limit: usize) -> Result<Vec<InspectedPair>> {
        let BradleyTerry { held_out, tokenizer, .. } = &self.objective;
        let pairs: Vec<&LabeledPair> = held_out.iter().take(limit).collect();
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let n = pairs.len();
        let completions: Vec<&Completion> = pairs.iter().map(|p| &p.first).chain(pairs.iter().map(|p| &p.second)).collect();
        let values = read_floats(scores(&self.model.valid(), tokenizer, &completions, &self.device)).await?;
        Ok(pairs
            .iter()
            .enumerate()
            .map(|(i, p)| InspectedPair {
                prompt: prompt_text(tokenizer, p.first.product),
                first: tokenizer.decode(&p.first.tokens),
                second: tokenizer.decode(&p.second.tokens),
                preference: p.preference,
                r_first: values[i],
                r_second: values[n + i],
                p_first: crate::rlhf::math::stats::sigmoid(values[i] - values[n + i]),
                gold_first: p.first.gold(tokenizer).total,
                gold_second: p.second.gold(tokenizer).total,
                gold_terms_first: p.first.gold(tokenizer),
                gold_terms_second: p.second.gold(tokenizer),
            })
            .collect())
    }

    /// The trained reward model, frozen, with its scores shifted to zero mean over the training
    /// completions; returns it with the shift applied.
    pub async fn finish(&self) -> Result<(ScalarModel, f32)> {
        let BradleyTerry { train, tokenizer, .. } = &self.objective;
        let model = self.model.valid();
        let completions: Vec<&Completion> = train.iter().flat_map(|p| [&p.first, &p.second]).collect();
        let mut sums = Vec::new();
        for chunk in completions.chunks(128) {
            sums.push(scores(&model, tokenizer, chunk, &self.device).sum());
        }
        let total: f32 = read_scalars(sums).await?.iter().sum();
        let mean = total / completions.len() as f32;
        Ok((model.shift_scores(-mean), mean))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::config::Preset;
    use crate::rlhf::labels::{grammar_pairs, simulate};
    use crate::rlhf::math::bradley_terry;
    use crate::rlhf::stages::supervised::testing::{self, read};

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

    /// r_first − r_second of every label, training and held-out. Split and whole runs are
    /// compared here and not parameter by parameter: the loss sees only differences of scores,
    /// so its gradient along a shift of every score (the head's bias; ln_f's β along the head's
    /// weights) is 0 up to rounding, and Adam scales that noise to steps of up to ±lr (the first
    /// step moved the bias by 1.8e-3 whole and by 0 split). `finish` shifts the scores to zero
    /// mean, which takes that shift out of what the later stages see.
    fn margins(trainer: &RewardTrainer) -> Vec<f32> {
        let pairs: Vec<&LabeledPair> = trainer.objective.train.iter().chain(&trainer.objective.held_out).collect();
        let completions: Vec<&Completion> = pairs.iter().map(|p| &p.first).chain(pairs.iter().map(|p| &p.second)).collect();
        let r = read(scores(&trainer.model.valid(), &trainer.objective.tokenizer, &completions, &Device::flex()));
        let n = pairs.len();
        (0..n).map(|i| r[i] - r[n + i]).collect()
    }

    /// The supervised trainer's checks (`supervised::testing`): a split step is the whole one (the
    /// mean scores of chosen and rejected completions carry the head's bias, see `margins`: they
    /// may move together, by one shift), a refused helper or a NaN loss leaves the trainer as it
    /// was.
    #[test]
    fn split_refused_and_poisoned_steps() {
        let steps = testing::split_steps_match(small_trainer(), small_trainer(), &["rewards/chosen", "rewards/rejected"], margins);
        assert!(steps >= 4, "{steps} steps");
        testing::refused_helpers_change_nothing(small_trainer, |shard| shard.pairs[0].target = 2.0, "probability");
        testing::a_poisoned_step_rolls_back(small_trainer);
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
        let completions: Vec<&Completion> = trainer.objective.train.iter().flat_map(|p| [&p.first, &p.second]).collect();
        let shifted = read(scores(&model, &tok, &completions, &device));
        let m = shifted.iter().sum::<f32>() / shifted.len() as f32;
        assert!(m.abs() < 1e-3, "mean after shift {m}");
    }
}
