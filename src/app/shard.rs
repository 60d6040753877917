//! The helper worker of data-parallel steps (`engine::data_parallel` is the mechanism; each stage
//! says what its shard computes). In the page each helper is a Web Worker of its own
//! (`www/shard-worker.js`) holding one `GradientWorker`: it is sent θ and a shard's work, and
//! answers with the shard's gradient and sums. It holds no state between steps but the models θ
//! is loaded into, one per shape and kind, so a snapshot, a rollback or a resumed stage is the
//! training worker's alone.

use serde::{Deserialize, Serialize};

use crate::engine::data_parallel::{compute, ShardResult, ShardWork};
use crate::engine::model::config::ModelConfig;
use crate::engine::model::{Gpt, ScalarModel};
use crate::error::Result;
use crate::rlhf::stages::dpo::DpoShard;
use crate::rlhf::stages::on_policy::loss::{GrpoShard, PolicyAndValue, PpoShard};
use crate::rlhf::stages::reward::BradleyTerryShard;
use crate::rlhf::stages::sft::MaskedLmShard;
use crate::rlhf::task::SEQ_LEN;

/// What one shard of a step computes: the masked language-model loss (SFT, pretraining), the
/// Bradley–Terry loss (the reward model), the DPO loss, or a PPO or GRPO minibatch update. The
/// rollouts are taken whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ShardObjective {
    MaskedLm(MaskedLmShard),
    BradleyTerry(BradleyTerryShard),
    Dpo(DpoShard),
    Ppo(PpoShard),
    Grpo(GrpoShard),
}

/// A helper of data-parallel steps: models of its own, loaded with θ for each shard.
#[derive(Default)]
pub struct GradientWorker {
    language_model: Option<(ModelConfig, Gpt)>,
    reward_model: Option<(ModelConfig, ScalarModel)>,
    policy_and_value: Option<(ModelConfig, PolicyAndValue)>,
}

impl GradientWorker {
    /// A helper on the CPU backend (shards are a CPU-backend technique: on a GPU one worker
    /// already has the whole device).
    pub fn new() -> Self {
        Self::default()
    }

    /// The gradient of `work`'s shard at parameters `theta` (one readback).
    pub async fn gradient(&mut self, theta: &[f32], work: &ShardWork<ShardObjective>) -> Result<ShardResult> {
        work.model.validate(SEQ_LEN)?;
        let (step, config) = (work.step, &work.model);
        // Each kind of model keeps its own cache: the shard takes it and hands it back.
        Ok(match &work.objective {
            ShardObjective::MaskedLm(shard) => {
                let cache = self.language_model.take();
                cached(&mut self.language_model, compute(step, config, shard, theta, cache).await?)
            }
            ShardObjective::Dpo(shard) => {
                let cache = self.language_model.take();
                cached(&mut self.language_model, compute(step, config, shard, theta, cache).await?)
            }
            ShardObjective::Grpo(shard) => {
                let cache = self.language_model.take();
                cached(&mut self.language_model, compute(step, config, shard, theta, cache).await?)
            }
            ShardObjective::BradleyTerry(shard) => {
                let cache = self.reward_model.take();
                cached(&mut self.reward_model, compute(step, config, shard, theta, cache).await?)
            }
            ShardObjective::Ppo(shard) => {
                let cache = self.policy_and_value.take();
                cached(&mut self.policy_and_value, compute(step, config, shard, theta, cache).await?)
            }
        })
    }
}

/// Keeps the model a shard was computed on in `cache`, and returns the shard's result.
fn cached<M>(cache: &mut Option<(ModelConfig, M)>, (result, model): (ShardResult, (ModelConfig, M))) -> ShardResult {
    *cache = Some(model);
    result
}
