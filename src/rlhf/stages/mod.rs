//! One file per stage of the pipeline, each opening with the objective it optimizes:
//!
//! ```text
//! sft.rs     Stage 1   cross-entropy on demonstrations            → π_ref
//! reward.rs  Stage 2   Bradley–Terry on labeled pairs             → r_φ
//! ppo.rs     Stage 3   KL-regularized RL with the clipped update  → π_θ (and V_ψ)
//! grpo.rs    Stage 3b  the same, a group of completions as baseline → π_grpo (no critic);
//!                      RLOO, REINFORCE and GSPO are its choices too
//! on_policy/ the one trainer stages 3 and 3b are recipes of: rollout, loss, reports, views
//! dpo.rs     contrast  the same objective in closed form          → π_dpo
//! supervised/ the one trainer stages 1, 2 and DPO are objectives of: shards, rollback, snapshots
//! ```
//!
//! Every trainer exposes bounded steps that return metrics; whoever calls them (the page's worker,
//! the native CLI) owns the loop. Each step reads the device once.

pub mod dpo;
pub mod grpo;
pub mod on_policy;
pub mod ppo;
pub mod reward;
pub mod sft;
pub mod supervised;
pub mod sweep;

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::engine::model::Gpt;
use crate::error::{LabError, Result};
use crate::rlhf::task::{Completion, MAX_COMPLETION, PRODUCTS_COUNT, PROMPT_LEN, SEQ_LEN};

/// The learning rate at `step` (0-based) of `total`, decayed linearly to zero: the default
/// schedule of Hugging Face's Trainer, which TRL's SFT, reward and DPO trainers inherit. A
/// constant rate leaves the last steps as noisy as the first.
pub(crate) fn linear_decay(base: f64, step: usize, total: usize) -> f64 {
    base * (1.0 - step as f64 / total.max(1) as f64)
}

/// Token ids, row-major [rows × width], as a device tensor.
pub(crate) fn int_tensor(ids: &[u32], rows: usize, width: usize, device: &Device) -> Tensor<2, Int> {
    Tensor::from_data(TensorData::new(ids.iter().map(|&t| t as i32).collect::<Vec<_>>(), [rows, width]), device)
}

pub(crate) fn float_tensor<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(values, shape), device)
}

/// log π(target_t | prefix): the log-softmax of each position's logits, gathered at its target.
///
/// # Shapes
/// - `logits`: [batch, seq, vocab], `targets`: [batch, seq] → [batch, seq]
pub(crate) fn token_logprobs(logits: Tensor<3>, targets: Tensor<2, Int>) -> Tensor<2> {
    crate::engine::layers::target_log_probabilities(logits, targets)
}

/// log π(a_t | s_t) at `temperature` for every completion slot, and the logits it came from.
///
/// # Shapes
/// - `inputs`: [rows, SEQ_LEN − 1], `targets`: [rows, MAX_COMPLETION] → ([rows, N], [rows, N, V])
pub(crate) fn completion_logprobs(model: &Gpt, inputs: Tensor<2, Int>, targets: Tensor<2, Int>, temperature: f32) -> (Tensor<2>, Tensor<3>) {
    let [rows, _] = inputs.dims();
    let vocab = model.vocab_size();
    // Position P − 1 + t predicts completion token t.
    let logits = model.forward(inputs).slice([0..rows, PROMPT_LEN - 1..SEQ_LEN - 1, 0..vocab]).div_scalar(temperature);
    (token_logprobs(logits.clone(), targets), logits)
}

/// Refuses a completion that a helper's model of `vocab_size` tokens could not read: the reward
/// model's and DPO's shards carry completions, checked with this.
pub(crate) fn check_completion(completion: &Completion, vocab_size: usize) -> Result<()> {
    let Completion { product, tokens } = completion;
    if *product >= PRODUCTS_COUNT || tokens.len() > MAX_COMPLETION || tokens.iter().any(|&t| t as usize >= vocab_size) {
        return Err(LabError::InvalidInput(format!("a shard's completion must answer one of {PRODUCTS_COUNT} products in at most {MAX_COMPLETION} token ids below {vocab_size}")));
    }
    Ok(())
}

/// The first name whose value is not finite, if any.
pub(crate) fn first_non_finite<'a>(names: &[&'a str], values: &[f32]) -> Option<&'a str> {
    names.iter().zip(values).find(|(_, v)| !v.is_finite()).map(|(n, _)| *n)
}

/// Shuffled passes over `0..n`, handing out batches of indices; a new permutation each epoch.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Batches {
    order: Vec<usize>,
    cursor: usize,
    /// Completed passes over the data.
    pub epochs_done: usize,
    rng: crate::rng::Rng,
}

impl Batches {
    pub fn new(n: usize, mut rng: crate::rng::Rng) -> Self {
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        Self { order, cursor: 0, epochs_done: 0, rng }
    }

    /// The next `size` indices; the last batch of an epoch may be shorter.
    pub fn next(&mut self, size: usize) -> Vec<usize> {
        if self.cursor >= self.order.len() {
            self.epochs_done += 1;
            self.rng.shuffle(&mut self.order);
            self.cursor = 0;
        }
        let end = (self.cursor + size).min(self.order.len());
        let out = self.order[self.cursor..end].to_vec();
        self.cursor = end;
        out
    }

    pub fn steps_per_epoch(n: usize, size: usize) -> usize {
        n.div_ceil(size.max(1))
    }
}

/// Where an iteration of online RL (PPO, GRPO) is: a rollout next, or minibatch `minibatch` of
/// epoch `epoch` over the rollout's rows in `order`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) enum Phase {
    Rollout,
    Update { epoch: usize, minibatch: usize, order: Vec<usize> },
}

/// Sums of an iteration's per-minibatch metrics, for TRL's `*_avg` figures sent with its last
/// update (PPO, GRPO).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct UpdateTotals {
    pub count: f64,
    pub sums: std::collections::BTreeMap<String, f64>,
}
