//! The session's snapshots (a stage resumed after a reload) and checkpoints (models as bytes).

use crate::engine::checkpoint::{self, CheckpointHeader};
use crate::engine::model::{Gpt, ScalarModel};
use crate::error::{LabError, Result};
use crate::rlhf::labels;
use crate::rlhf::stages::dpo::DpoTrainer;
use crate::rlhf::stages::on_policy::recipe::RewardSource;
use crate::rlhf::stages::ppo::PpoTrainer;
use crate::rlhf::stages::reward::RewardTrainer;
use crate::rlhf::stages::sft::SftTrainer;
use crate::rng::Rng;

use super::*;

impl Session {
    // ---- snapshots: resuming a stage after a reload ----

    /// What a snapshot of any stage must agree on with the session resuming it.
    pub(super) fn session_settings(&self) -> serde_json::Value {
        serde_json::json!({ "preset": self.config.preset.name(), "seed": self.config.seed, "vocabulary": self.tokenizer.fingerprint() })
    }

    /// The stage's own settings, as its trainer checks them.
    pub(super) fn stage_settings(&self, stage: Stage) -> Result<serde_json::Value> {
        let value = match stage {
            Stage::Sft => serde_json::to_value(&self.config.sft),
            Stage::Reward => serde_json::to_value(&self.config.reward),
            // A custom reward's expression is part of what the run optimizes.
            Stage::Ppo if self.config.ppo.reward == RewardSource::Custom => serde_json::to_value((&self.config.ppo, &self.config.reward.expression)),
            Stage::Grpo if self.config.grpo.reward == RewardSource::Custom => serde_json::to_value((&self.config.grpo, &self.config.reward.expression)),
            Stage::Ppo => serde_json::to_value(&self.config.ppo),
            Stage::Grpo => serde_json::to_value(&self.config.grpo),
            Stage::Dpo => serde_json::to_value((&self.config.dpo, self.config.reward.held_out_fraction)),
            Stage::Pretrain | Stage::Sweep => {
                return Err(LabError::InvalidInput(format!("the {} stage is not resumable: run it again", stage.name())));
            }
        };
        value.map_err(|e| LabError::InvalidInput(format!("settings do not serialize: {e}")))
    }

    /// The trainer of `stage` as bytes: weights, optimizer moments, counters, random streams and
    /// (for the reward and DPO stages) the labels it trains on.
    pub async fn snapshot(&self, stage: Stage) -> Result<Vec<u8>> {
        let settings = self.stage_settings(stage)?;
        let not_begun = || LabError::NotReady(format!("the {} stage has not begun", stage.name()));
        let (trainer, labels) = match stage {
            Stage::Sft => (self.sft.as_ref().ok_or_else(not_begun)?.snapshot(settings).await?, None),
            Stage::Reward => (self.reward.as_ref().ok_or_else(not_begun)?.snapshot(settings).await?, self.reward_labels.clone()),
            Stage::Ppo => (self.ppo.as_ref().ok_or_else(not_begun)?.snapshot(settings).await?, None),
            Stage::Grpo => (self.grpo.as_ref().ok_or_else(not_begun)?.snapshot(settings).await?, None),
            Stage::Dpo => (self.dpo.as_ref().ok_or_else(not_begun)?.snapshot(settings).await?, self.dpo_labels.clone()),
            Stage::Pretrain | Stage::Sweep => unreachable!("stage_settings refused it"),
        };
        let meta = crate::engine::snapshot::Meta { stage: format!("session/{}", stage.name()), settings: self.session_settings(), state: StageSnapshot { labels } };
        Ok(crate::engine::snapshot::pack(&meta, &[trainer]))
    }

    /// Begins `stage` again and puts its trainer back where the snapshot was. Needs what the
    /// stage's begin needs (the base model for SFT, π_ref after it, r_φ for PPO). Refuses a
    /// snapshot from another preset, seed, vocabulary or stage settings, and then changes nothing.
    pub async fn resume(&mut self, stage: Stage, bytes: &[u8]) -> Result<Resumed> {
        let (meta, blobs): (StageSnapshot, _) = crate::engine::snapshot::unpack(bytes, &format!("session/{}", stage.name()), &self.session_settings())?;
        let trainer_bytes = blobs.first().ok_or_else(|| LabError::Checkpoint("the snapshot holds no trainer".into()))?;
        let settings = self.stage_settings(stage)?;
        let labels = || meta.labels.clone().ok_or_else(|| LabError::Checkpoint("the snapshot lost its labels".into()));
        match stage {
            Stage::Sft => {
                let base = self.base.clone().ok_or_else(|| LabError::NotReady("resuming SFT needs the base model: load it first".into()))?;
                let mut trainer = SftTrainer::sft(crate::engine::model::with_fresh_ids(base), &self.config.sft, &self.tokenizer, self.config.seed, &self.device)?;
                trainer.restore(trainer_bytes, &settings)?;
                self.reference = trainer.is_done().then(|| trainer.model());
                self.sft = Some(trainer);
            }
            Stage::Reward => {
                let labels = labels()?;
                let pairs = labels::parse_jsonl(&labels, &self.tokenizer)?;
                let mut trainer = RewardTrainer::new(self.reference()?, pairs, &self.config.reward, self.config.seed, &self.tokenizer, &self.device)?;
                trainer.restore(trainer_bytes, &settings)?;
                (self.reward, self.reward_model, self.reward_labels) = (Some(trainer), None, Some(labels));
            }
            Stage::Ppo => {
                let mut trainer = self.new_ppo()?;
                trainer.restore(trainer_bytes, &settings)?;
                self.ppo = Some(trainer);
            }
            Stage::Grpo => {
                let mut trainer = self.new_grpo()?;
                trainer.restore(trainer_bytes, &settings)?;
                self.grpo = Some(trainer);
            }
            Stage::Dpo => {
                let labels = labels()?;
                let pairs = labels::parse_jsonl(&labels, &self.tokenizer)?;
                let reference = self.reference()?.clone();
                let mut trainer = DpoTrainer::new(&reference, pairs, &self.config.dpo, self.config.reward.held_out_fraction, self.config.seed, &self.tokenizer, &self.device).await?;
                trainer.restore(trainer_bytes, &settings)?;
                (self.dpo, self.dpo_labels) = (Some(trainer), Some(labels));
            }
            Stage::Pretrain | Stage::Sweep => unreachable!("stage_settings refused it"),
        }
        let plan = match stage {
            Stage::Reward => self.reward.as_ref().map(|t| serde_json::json!(RewardPlan { train: t.train_len(), held_out: t.held_out_len(), steps: t.total_steps(), ceiling: t.ceiling() })),
            Stage::Dpo => self.dpo.as_ref().map(|t| serde_json::json!(DpoPlan { train: t.train_len(), held_out: t.held_out_len(), steps: t.total_steps(), ties_skipped: t.ties_skipped() })),
            _ => None,
        };
        Ok(Resumed { progress: self.status().of(stage).expect("the stage was just restored"), plan })
    }

    // ---- checkpoints ----

    pub async fn save(&self, role: Role) -> Result<Vec<u8>> {
        let header = CheckpointHeader {
            role: role.name().into(),
            architecture: role.architecture().into(),
            model: self.model_config(),
            vocab: self.tokenizer.fingerprint(),
            // The settings (seed included) the model was made with: a Hugging Face export's card
            // reads them from here.
            note: serde_json::json!({"config": self.config}),
            record_len: 0,
            record_checksum: String::new(),
            header_checksum: String::new(),
        };
        let record = match role {
            Role::Reward => {
                let model = self.reward_model.as_ref().ok_or_else(|| LabError::NotReady("there is no trained reward model yet".into()))?;
                checkpoint::record_bytes(model).await?
            }
            Role::Value => {
                let model = self.ppo.as_ref().map(PpoTrainer::value_model).ok_or_else(|| LabError::NotReady("PPO has not begun".into()))?;
                checkpoint::record_bytes(&model).await?
            }
            _ => checkpoint::record_bytes(&self.language_model(role)?).await?,
        };
        Ok(checkpoint::encode(&header, &record))
    }

    /// Loads a checkpoint into the role its header names; refuses one made for another model or
    /// vocabulary, and changes nothing when it refuses.
    pub fn load(&mut self, bytes: &[u8]) -> Result<CheckpointHeader> {
        let (header, record) = checkpoint::decode(bytes)?;
        let role = Role::parse(&header.role).map_err(|_| LabError::Checkpoint(format!("unknown role {:?}", header.role)))?;
        checkpoint::check_header(&header, role.architecture(), &self.model_config(), &self.tokenizer.fingerprint())?;
        let blank = Gpt::new(&self.model_config(), &mut Rng::new(0), &self.device);
        match role {
            Role::Reward => {
                let model = checkpoint::load_record(ScalarModel::from_trunk(blank, &self.device), record)?;
                self.reward_model = Some(model);
            }
            Role::Policy | Role::Value | Role::Dpo | Role::Grpo => {
                return Err(LabError::Checkpoint(format!(
                    "a {} checkpoint is saved for inspection; PPO, GRPO and DPO restart from π_ref and r_φ (load those instead)",
                    role.name()
                )));
            }
            Role::Base | Role::Sft => {
                let model = checkpoint::load_record(blank, record)?;
                if role == Role::Base {
                    self.base = Some(model);
                    self.sft = None;
                    self.reference = None;
                } else {
                    self.reference = Some(model);
                }
            }
        }
        Ok(header)
    }
}
