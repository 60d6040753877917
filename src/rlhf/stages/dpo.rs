//! DPO: the math page's closing contrast, on the same labels as the reward model.
//!
//! The same KL-regularized objective as PPO, solved in closed form: the reward is implicit,
//! r(x, y) = β·log(π_θ(y|x)/π_ref(y|x)) (up to a term in x alone), and training is one supervised
//! loss on the labeled pairs — no reward model, no value model, no sampling:
//!
//! ```text
//! L_DPO = −log σ(β·[(log π_θ(y_w|x) − log π_ref(y_w|x)) − (log π_θ(y_l|x) − log π_ref(y_l|x))])
//! ```
//!
//! Sequence log-probabilities are sums over completion tokens only (prompt and PAD add nothing);
//! π_ref's are computed once, when training begins, and frozen. Ties carry no preference and are
//! left out. The held-out pairs are the reward model's (`labels::split`), so the two are compared
//! on the same pairs.

use std::ops::Range;

use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use serde::Serialize;

use super::supervised::{Names, Objective, Schedule, Shuffled, SupervisedTrainer};
use super::{completion_logprobs, float_tensor, int_tensor, Batches};
use crate::engine::data_parallel::{Shard, ShardTerms};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::{with_fresh_ids, Gpt};
use crate::engine::readback::{read_floats, read_scalars};
use crate::error::{LabError, Result};
use crate::rlhf::config::DpoConfig;
use crate::rlhf::labels::{prompt_text, LabeledPair};
use crate::rlhf::metrics::{metrics, Metrics};
use crate::rlhf::task::{Completion, Tokenizer, EOS, MAX_COMPLETION, SEQ_LEN};
use crate::rng::Rng;

/// Token ids, targets (PAD → EOS) and the real-token mask of completions, for a forward pass.
fn batch_inputs(completions: &[&Completion], tokenizer: &Tokenizer, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2>) {
    let rows = completions.len();
    let n = MAX_COMPLETION;
    let sequences: Vec<u32> = completions.iter().flat_map(|c| c.sequence(tokenizer)).collect();
    let targets: Vec<u32> = completions.iter().flat_map(|c| (0..n).map(move |t| c.tokens.get(t).copied().unwrap_or(EOS))).collect();
    let mask: Vec<f32> = completions.iter().flat_map(|c| (0..n).map(move |t| if t < c.tokens.len() { 1.0 } else { 0.0 })).collect();
    let inputs = int_tensor(&sequences, rows, SEQ_LEN, device).slice([0..rows, 0..SEQ_LEN - 1]);
    (inputs, int_tensor(&targets, rows, n, device), float_tensor(mask, [rows, n], device))
}

/// Σ_t log π(y_t | x, y_<t) over each completion's real tokens.
///
/// # Shapes
/// returns [completions]
pub fn sequence_logprobs(model: &Gpt, completions: &[&Completion], tokenizer: &Tokenizer, device: &Device) -> Tensor<1> {
    let (inputs, targets, mask) = batch_inputs(completions, tokenizer, device);
    let (logprobs, _) = completion_logprobs(model, inputs, targets, 1.0);
    (logprobs * mask).sum_dim(1).reshape([completions.len()])
}

/// The DPO loss per pair and the implicit rewards, from sequence log-probs.
///
/// # Shapes
/// all [pairs] → (loss [pairs], reward_chosen [pairs], reward_rejected [pairs])
pub fn dpo_loss(policy_chosen: Tensor<1>, policy_rejected: Tensor<1>, ref_chosen: Tensor<1>, ref_rejected: Tensor<1>, beta: f32) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let chosen = (policy_chosen - ref_chosen).mul_scalar(beta);
    let rejected = (policy_rejected - ref_rejected).mul_scalar(beta);
    let loss = log_sigmoid(chosen.clone() - rejected.clone()).neg();
    (loss, chosen, rejected)
}

/// A held-out pair token by token: the implicit reward β·(log π_θ − log π_ref) of each token.
#[derive(Debug, Clone, Serialize)]
pub struct DpoInspection {
    pub prompt: String,
    pub chosen: Vec<String>,
    pub rejected: Vec<String>,
    pub chosen_rewards: Vec<f32>,
    pub rejected_rewards: Vec<f32>,
    pub reward_chosen: f32,
    pub reward_rejected: f32,
    pub beta: f32,
}

/// One strict preference as a DPO step's loss needs it: both completions and π_ref's sequence
/// log-probs of each (frozen). What a helper of a split step gets (`engine::data_parallel`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DpoPair {
    pub chosen: Completion,
    pub rejected: Completion,
    pub ref_chosen: f32,
    pub ref_rejected: f32,
}

/// Loss, accuracy and sums over `pairs` under `model`, as [1]-tensors: (Σ loss / `whole_pairs`,
/// correct, reward chosen sum, reward rejected sum, logp chosen sum, logp rejected sum). The
/// loss is divided by the pairs of the whole batch: for pairs split across workers the shards'
/// losses add up to the batch's mean.
pub(crate) fn dpo_terms(model: &Gpt, tokenizer: &Tokenizer, pairs: &[DpoPair], beta: f32, whole_pairs: f32, device: &Device) -> [Tensor<1>; 6] {
    let n = pairs.len();
    let completions: Vec<&Completion> = pairs.iter().map(|p| &p.chosen).chain(pairs.iter().map(|p| &p.rejected)).collect();
    let logps = sequence_logprobs(model, &completions, tokenizer, device);
    let chosen = logps.clone().slice([0..n]);
    let rejected = logps.slice([n..2 * n]);
    let ref_chosen = float_tensor(pairs.iter().map(|p| p.ref_chosen).collect(), [n], device);
    let ref_rejected = float_tensor(pairs.iter().map(|p| p.ref_rejected).collect(), [n], device);
    let (loss, reward_chosen, reward_rejected) = dpo_loss(chosen.clone(), rejected.clone(), ref_chosen, ref_rejected, beta);
    let correct = (reward_chosen.clone() - reward_rejected.clone()).greater_elem(0.0).float().sum();
    [loss.sum().div_scalar(whole_pairs), correct, reward_chosen.sum(), reward_rejected.sum(), chosen.sum(), rejected.sum()]
}

/// Refuses pairs a helper could not score on a model of `vocab_size` tokens.
pub(crate) fn validate_pairs(pairs: &[DpoPair], beta: f32, whole_pairs: f32, vocab_size: usize) -> Result<()> {
    if pairs.is_empty() || whole_pairs.is_nan() || whole_pairs < pairs.len() as f32 {
        return Err(LabError::InvalidInput(format!("a DPO shard needs pairs, and a batch at least as large (got {} of {whole_pairs})", pairs.len())));
    }
    if beta.is_nan() || beta <= 0.0 {
        return Err(LabError::InvalidInput(format!("a DPO shard's β must be above 0 (got {beta})")));
    }
    for p in pairs {
        super::check_completion(&p.chosen, vocab_size)?;
        super::check_completion(&p.rejected, vocab_size)?;
        if !p.ref_chosen.is_finite() || !p.ref_rejected.is_finite() {
            return Err(LabError::InvalidInput("a DPO shard's reference log-probs must be finite".into()));
        }
    }
    Ok(())
}

/// A shard of a DPO step for a helper worker: Σ over some of a batch's pairs of the DPO loss at
/// β, divided by `whole_pairs`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct DpoShard {
    pub pairs: Vec<DpoPair>,
    pub beta: f32,
    pub whole_pairs: f32,
}

impl Shard for DpoShard {
    type Model = Gpt;

    fn blank(config: &ModelConfig, device: &Device) -> Gpt {
        Gpt::new(config, &mut crate::rng::Rng::new(0), device)
    }

    fn validate(&self, config: &ModelConfig) -> Result<()> {
        validate_pairs(&self.pairs, self.beta, self.whole_pairs, config.vocab_size)
    }

    /// Sums: the loss, then `dpo_terms`' correct count, rewards and log-probs of chosen and rejected.
    fn terms(&self, model: &Gpt, device: &Device) -> ShardTerms {
        let [loss, rest @ ..] = dpo_terms(model, &Tokenizer::new(), &self.pairs, self.beta, self.whole_pairs, device);
        ShardTerms { loss, sums: rest.map(|t| t.detach().inner()).to_vec(), per_token: None }
    }
}

fn strict(pairs: Vec<LabeledPair>) -> (Vec<(Completion, Completion)>, usize) {
    let total = pairs.len();
    let strict: Vec<(Completion, Completion)> = pairs.iter().filter_map(|p| p.chosen_rejected().map(|(c, r)| (c.clone(), r.clone()))).collect();
    let ties = total - strict.len();
    (strict, ties)
}

/// DPO's choices: strict preferences with π_ref's log-probs frozen, in shuffled batches; the loss
/// at β; on the held-out pairs, the loss and the implicit reward's accuracy.
pub struct Dpo {
    reference: Gpt,
    /// Strict preferences only, each with π_ref's sequence log-probs (computed once).
    train: Vec<DpoPair>,
    held_out: Vec<DpoPair>,
    beta: f32,
    ties_skipped: usize,
    tokenizer: Tokenizer,
}

impl Objective for Dpo {
    type Shard = DpoShard;
    type Row = DpoPair;
    type Cursor = Shuffled;
    const NAMES: Names = Names {
        stage: "dpo",
        title: "DPO",
        fault: "dpo",
        steps: "DPO steps",
        sums: &["loss", "accuracy", "reward of chosen", "reward of rejected", "log-prob of chosen", "log-prob of rejected"],
    };

    fn shape(model: &Gpt) -> ModelConfig {
        model.config()
    }

    fn draw(&self, cursor: &mut Shuffled, size: usize) -> Vec<DpoPair> {
        cursor.next(&self.train, size)
    }

    fn shard(&self, batch: &[DpoPair], rows: Range<usize>) -> DpoShard {
        DpoShard { pairs: batch[rows].to_vec(), beta: self.beta, whole_pairs: batch.len() as f32 }
    }

    fn held_out_len(&self) -> usize {
        self.held_out.len()
    }

    /// The held-out loss and the pairs whose implicit reward ranks the chosen completion higher.
    fn held_out(&self, model: &Gpt, device: &Device) -> Vec<Tensor<1>> {
        let [held_loss, held_correct, ..] = dpo_terms(model, &self.tokenizer, &self.held_out, self.beta, self.held_out.len() as f32, device);
        vec![held_loss, held_correct]
    }

    /// TRL's DPOTrainer's names: the implicit rewards' accuracy, means and margin, the mean
    /// log-probs.
    fn report(&self, batch: &[DpoPair], _: &Shuffled, sums: &[f32], held_out: Option<&[f32]>, out: &mut Metrics) {
        let n = batch.len() as f32;
        out.extend(metrics([
            ("dpo/loss", f64::from(sums[0])),
            ("rewards/accuracies", f64::from(sums[1] / n)),
            ("rewards/chosen", f64::from(sums[2] / n)),
            ("rewards/rejected", f64::from(sums[3] / n)),
            ("rewards/margins", f64::from((sums[2] - sums[3]) / n)),
            ("logps/chosen", f64::from(sums[4] / n)),
            ("logps/rejected", f64::from(sums[5] / n)),
        ]));
        if let Some(held) = held_out {
            out.insert("dpo/held_out_loss".into(), f64::from(held[0]));
            out.insert("dpo/held_out_accuracy".into(), f64::from(held[1] / self.held_out.len() as f32));
        }
    }
}

/// Trains π_θ on preferences by the DPO loss, one bounded step at a time.
pub type DpoTrainer = SupervisedTrainer<Dpo>;

impl DpoTrainer {
    /// π_θ ← π_ref; π_ref's log-probs of every pair computed now (one readback) and frozen.
    pub async fn new(reference: &Gpt, labels: Vec<LabeledPair>, config: &DpoConfig, held_out_fraction: f64, seed: u64, tokenizer: &Tokenizer, device: &Device) -> Result<Self> {
        config.validate()?;
        let (train, held_out) = crate::rlhf::labels::split(labels, seed, held_out_fraction);
        let (train, ties_train) = strict(train);
        let (held_out, ties_held) = strict(held_out);
        if train.is_empty() {
            return Err(LabError::NotReady("DPO needs labels with a preference (ties carry none)".into()));
        }
        let reference = reference.clone();
        let all: Vec<&Completion> = train.iter().chain(&held_out).flat_map(|(c, r)| [c, r]).collect();
        let mut parts = Vec::new();
        for chunk in all.chunks(256) {
            parts.push(sequence_logprobs(&reference, chunk, tokenizer, device));
        }
        let logps = read_scalars(parts).await?;
        let mut frozen = logps.chunks(2).map(|p| (p[0], p[1]));
        let mut with_reference = |pairs: Vec<(Completion, Completion)>| -> Vec<DpoPair> {
            pairs
                .into_iter()
                .zip(frozen.by_ref())
                .map(|((chosen, rejected), (ref_chosen, ref_rejected))| DpoPair { chosen, rejected, ref_chosen, ref_rejected })
                .collect()
        };
        let (train, held_out) = (with_reference(train), with_reference(held_out));
        let schedule = Schedule::epochs(config.learning_rate, config.batch_size, config.epochs, train.len());
        let batches = Shuffled::new(Batches::new(train.len(), Rng::derive(seed, "dpo/order")));
        let model = with_fresh_ids(reference.clone());
        let objective = Dpo { reference, train, held_out, beta: config.beta as f32, ties_skipped: ties_train + ties_held, tokenizer: tokenizer.clone() };
        Ok(Self::start(model, objective, batches, schedule, device))
    }

    pub fn train_len(&self) -> usize {
        self.objective.train.len()
    }

    /// The labels left out for being ties (they carry no preference).
    pub fn ties_skipped(&self) -> usize {
        self.objective.ties_skipped
    }

    pub fn policy(&self) -> Gpt {
        self.model()
    }

    /// Held-out pair `index`, token by token (one readback).
    pub async fn inspect(&self, index: usize) -> Result<DpoInspection> {
        let Dpo { reference, train, held_out, beta, tokenizer, .. } = &self.objective;
        let DpoPair { chosen, rejected, .. } = held_out.get(index).or_else(|| train.get(index)).ok_or_else(|| LabError::InvalidInput(format!("no pair {index}")))?;
        let completions = [chosen, rejected];
        let (inputs, targets, mask) = batch_inputs(&completions, tokenizer, &self.device);
        let (policy, _) = completion_logprobs(&self.model.valid(), inputs.clone(), targets.clone(), 1.0);
        let (reference, _) = completion_logprobs(reference, inputs, targets, 1.0);
        let per_token = read_floats(((policy - reference) * mask).mul_scalar(*beta)).await?;
        let n = MAX_COMPLETION;
        let words = |c: &Completion| c.tokens.iter().map(|&t| tokenizer.word(t).to_string()).collect::<Vec<_>>();
        let chosen_rewards = per_token[..chosen.tokens.len()].to_vec();
        let rejected_rewards = per_token[n..n + rejected.tokens.len()].to_vec();
        Ok(DpoInspection {
            prompt: prompt_text(tokenizer, chosen.product),
            chosen: words(chosen),
            rejected: words(rejected),
            reward_chosen: chosen_rewards.iter().sum(),
            reward_rejected: rejected_rewards.iter().sum(),
            chosen_rewards,
            rejected_rewards,
            beta: *beta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::config::Preset;
    use crate::rlhf::labels::{grammar_pairs, simulate};
    use crate::rlhf::math::dpo::dpo_terms;
    use crate::rlhf::stages::supervised::testing::{self, read};

    #[test]
    fn loss_and_gradient_match_hand_computed_values() {
        let device = Device::flex().autodiff();
        let pc = Tensor::<1>::from_floats([-8.0, -5.0], &device).require_grad();
        let pr = Tensor::<1>::from_floats([-6.0, -4.0], &device).require_grad();
        let rc = Tensor::<1>::from_floats([-7.0, -5.0], &device);
        let rr = Tensor::<1>::from_floats([-3.0, -4.0], &device);
        let (loss, chosen, rejected) = dpo_loss(pc.clone(), pr.clone(), rc, rr, 0.5);
        let l = read(loss.clone().inner());
        let expected = [dpo_terms(-8.0, -7.0, -6.0, -3.0, 0.5), dpo_terms(-5.0, -5.0, -4.0, -4.0, 0.5)];
        for i in 0..2 {
            assert!((l[i] - expected[i].loss).abs() < 1e-6);
        }
        assert_eq!(read(chosen.inner()), vec![-0.5, 0.0]);
        assert_eq!(read(rejected.inner()), vec![-1.5, 0.0]);
        // ∂L/∂ log π_θ(y_w) = −β·σ(−β·margin); ∂L/∂ log π_θ(y_l) = +β·σ(−β·margin).
        let grads = loss.sum().backward();
        let gc = read(pc.grad(&grads).unwrap());
        let gr = read(pr.grad(&grads).unwrap());
        for (i, margin) in [1.0f32, 0.0].into_iter().enumerate() {
            let s = crate::rlhf::math::stats::sigmoid(-margin);
            assert!((gc[i] + 0.5 * s).abs() < 1e-6 && (gr[i] - 0.5 * s).abs() < 1e-6, "pair {i}");
        }
    }

    fn setup() -> (Gpt, Vec<LabeledPair>, Tokenizer, Device) {
        let device = Device::flex();
        let tok = Tokenizer::new();
        let reference = Gpt::new(&Preset::Micro.model(tok.vocab_size()), &mut Rng::new(1), &device);
        let mut rng = Rng::new(2);
        let pairs = grammar_pairs(&tok, 200, &mut rng);
        let labels = simulate(&pairs, &tok, 0.3, &mut rng).into_iter().map(|(l, _)| l).collect();
        (reference, labels, tok, device)
    }

    #[test]
    fn at_initialization_the_loss_is_log_two_and_every_implicit_reward_is_zero() {
        let (reference, labels, tok, device) = setup();
        let mut trainer = pollster::block_on(DpoTrainer::new(&reference, labels, &DpoConfig::default(), 0.1, 3, &tok, &device)).unwrap();
        let inspection = pollster::block_on(trainer.inspect(0)).unwrap();
        assert!(inspection.chosen_rewards.iter().chain(&inspection.rejected_rewards).all(|r| r.abs() < 1e-5));
        let first = pollster::block_on(trainer.step()).unwrap();
        // The first step's loss is computed before its update: π_θ = π_ref.
        assert!((first["dpo/loss"] - 2f64.ln()).abs() < 1e-5, "{first:?}");
        assert!(first["rewards/chosen"].abs() < 1e-5 && first["rewards/rejected"].abs() < 1e-5);
    }

    #[test]
    fn prompt_and_pad_tokens_change_nothing() {
        let (reference, _, tok, device) = setup();
        // The same completion in a sequence whose tail after <eos> differs: PAD never counts, and
        // the prompt's own tokens are never targets.
        let c = Completion { product: 0, tokens: tok.encode("is great . <eos>") };
        let a = read(sequence_logprobs(&reference, &[&c], &tok, &device))[0];
        let mut by_hand = 0.0;
        let seq = c.sequence(&tok);
        let input: Vec<u32> = seq[..SEQ_LEN - 1].to_vec();
        let logits = reference.forward(int_tensor(&input, 1, SEQ_LEN - 1, &device));
        let lp: Vec<f32> = burn::tensor::activation::log_softmax(logits, 2).into_data().iter::<f32>().collect();
        let v = tok.vocab_size();
        for t in 0..c.tokens.len() {
            let position = crate::rlhf::task::PROMPT_LEN - 1 + t;
            by_hand += lp[position * v + c.tokens[t] as usize];
        }
        assert!((a - by_hand).abs() < 1e-4, "{a} vs {by_hand}");
    }

    fn small_trainer() -> DpoTrainer {
        let (reference, mut labels, tok, device) = setup();
        labels.truncate(40);
        let config = DpoConfig { epochs: 1, batch_size: 7, learning_rate: 1e-3, beta: 0.5 };
        pollster::block_on(DpoTrainer::new(&reference, labels, &config, 0.2, 3, &tok, &device)).unwrap()
    }

    /// π_θ's log-prob of every completion of every pair. Split and whole runs are compared here
    /// and not parameter by parameter: the attention's key bias adds the same q·b_k to every
    /// score of a query, which the softmax cannot see, so its gradient is 0 up to rounding, and
    /// Adam scales that noise to steps of up to ±lr (over this test's 5 steps, 22–25 of the 32
    /// key biases differed by up to 1.4e-5, and no other parameter by 1e-6).
    fn logprobs(trainer: &DpoTrainer) -> Vec<f32> {
        let completions: Vec<&Completion> = trainer.objective.train.iter().chain(&trainer.objective.held_out).flat_map(|p| [&p.chosen, &p.rejected]).collect();
        read(sequence_logprobs(&trainer.model.valid(), &completions, &trainer.objective.tokenizer, &Device::flex()))
    }

    /// The supervised trainer's checks (`supervised::testing`): a split step is the whole one, a
    /// refused helper or a NaN loss leaves the trainer as it was.
    #[test]
    fn split_refused_and_poisoned_steps() {
        let steps = testing::split_steps_match(small_trainer(), small_trainer(), &[], logprobs);
        assert!(steps >= 4, "{steps} steps");
        testing::refused_helpers_change_nothing(small_trainer, |shard| shard.pairs[0].ref_chosen = f32::NAN, "finite");
        testing::a_poisoned_step_rolls_back(small_trainer);
    }

    #[test]
    fn a_short_run_raises_the_margin_and_held_out_accuracy() {
        let (reference, labels, tok, device) = setup();
        let config = DpoConfig { epochs: 4, batch_size: 16, learning_rate: 1e-3, beta: 0.5 };
        let mut trainer = pollster::block_on(DpoTrainer::new(&reference, labels, &config, 0.2, 3, &tok, &device)).unwrap();
        let mut first = None;
        let mut last = Metrics::new();
        while !trainer.is_done() {
            last = pollster::block_on(trainer.step()).unwrap();
            first.get_or_insert_with(|| last.clone());
        }
        assert!(last["rewards/margins"] > 0.5, "{last:?}");
        assert!(last["dpo/held_out_accuracy"] > first.unwrap()["dpo/held_out_accuracy"], "{last:?}");
    }
}
