//! The pipeline's state: the models by role and the trainer of each stage, behind bounded calls.
//!
//! `web.rs` wraps this for the page and `bin/rlhf.rs` drives it natively, so both run exactly the
//! same steps. Every call validates its input before it touches state, and returns metrics or a
//! `LabError`.
//!
//! ```text
//! base ──SFT──▶ π_ref ──pairs──▶ labels ──BT──▶ r_φ ──PPO──▶ π_θ, V_ψ
//!                 └──────────── labels ──DPO──▶ π_dpo
//! ```

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointHeader};
use crate::config::{LabConfig, ModelConfig};
use crate::error::{LabError, Result};
use crate::metrics::Metrics;
use crate::model::Gpt;
use crate::rng::Rng;
use crate::stages::sft::{prompt_samples, PromptSample, SftTrainer};
use crate::task::Tokenizer;

/// The models a session can hold, by the role each plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The pretrained (or freshly initialized) model SFT starts from.
    Base,
    /// π_ref: the SFT model, frozen.
    Sft,
}

impl Role {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "base" => Ok(Self::Base),
            "sft" => Ok(Self::Sft),
            other => Err(LabError::InvalidInput(format!("unknown model role {other:?} (expected base or sft)"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Sft => "sft",
        }
    }
}

/// Where each stage stands, for the page's pipeline view.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub preset: String,
    pub parameters: usize,
    pub has_base: bool,
    pub pretrain: Option<Progress>,
    pub sft: Option<Progress>,
    pub has_reference: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    pub step: usize,
    pub total: usize,
    pub done: bool,
}

pub struct Session {
    device: Device,
    tokenizer: Tokenizer,
    config: LabConfig,
    base: Option<Gpt>,
    pretrain: Option<SftTrainer>,
    sft: Option<SftTrainer>,
    reference: Option<Gpt>,
}

impl Session {
    pub fn new(device: Device, config: LabConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self { device, tokenizer: Tokenizer::new(), config, base: None, pretrain: None, sft: None, reference: None })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn config(&self) -> &LabConfig {
        &self.config
    }

    pub fn model_config(&self) -> ModelConfig {
        self.config.preset.model(self.tokenizer.vocab_size())
    }

    /// Replaces the settings. A different preset or seed invalidates every model, so those are
    /// dropped; a stage already running keeps the settings it started with.
    pub fn set_config(&mut self, config: LabConfig) -> Result<()> {
        config.validate()?;
        if config.preset != self.config.preset || config.seed != self.config.seed {
            self.base = None;
            self.pretrain = None;
            self.sft = None;
            self.reference = None;
        }
        self.config = config;
        Ok(())
    }

    pub fn status(&self) -> Status {
        let progress = |t: &SftTrainer| Progress { step: t.step_count(), total: t.total_steps(), done: t.is_done() };
        let model = self.model_config();
        Status {
            preset: self.config.preset.name().into(),
            parameters: model.num_params(),
            has_base: self.base.is_some(),
            pretrain: self.pretrain.as_ref().map(progress),
            sft: self.sft.as_ref().map(progress),
            has_reference: self.reference.is_some(),
        }
    }

    /// A freshly initialized base model (random weights from the seed).
    pub fn base_from_scratch(&mut self) {
        let mut rng = Rng::derive(self.config.seed, "init/base");
        self.base = Some(Gpt::new(&self.model_config(), &mut rng, &self.device));
        self.sft = None;
        self.reference = None;
    }

    // ---- pretraining (the base model, from scratch) ----

    pub fn pretrain_begin(&mut self) -> Result<()> {
        let base = self.base.clone().ok_or_else(|| LabError::NotReady("initialize a base model first".into()))?;
        self.pretrain = Some(SftTrainer::pretrain(base, &self.config.pretrain, &self.tokenizer, self.config.seed, &self.device)?);
        Ok(())
    }

    pub async fn pretrain_step(&mut self) -> Result<Metrics> {
        let trainer = self.pretrain.as_mut().ok_or_else(|| LabError::NotReady("pretraining has not begun".into()))?;
        let metrics = trainer.step().await?;
        self.base = Some(trainer.model());
        Ok(metrics)
    }

    // ---- stage 1: SFT ----

    pub fn sft_begin(&mut self) -> Result<()> {
        let base = self.base.clone().ok_or_else(|| LabError::NotReady("SFT needs a base model: load the shipped one or start from scratch".into()))?;
        let base = crate::model::with_fresh_ids(base);
        self.sft = Some(SftTrainer::sft(base, &self.config.sft, &self.tokenizer, self.config.seed, &self.device)?);
        self.reference = None;
        Ok(())
    }

    pub async fn sft_step(&mut self) -> Result<Metrics> {
        let trainer = self.sft.as_mut().ok_or_else(|| LabError::NotReady("SFT has not begun".into()))?;
        trainer.step().await
    }

    /// Ends SFT: a frozen copy of the model becomes π_ref.
    pub fn sft_finish(&mut self) -> Result<()> {
        let trainer = self.sft.as_ref().ok_or_else(|| LabError::NotReady("SFT has not begun".into()))?;
        self.reference = Some(trainer.model());
        Ok(())
    }

    /// Test hook: the given SFT step computes a NaN loss (see `SftTrainer::poison_step`).
    pub fn sft_poison_step(&mut self, step: usize) -> Result<()> {
        self.sft.as_mut().ok_or_else(|| LabError::NotReady("SFT has not begun".into()))?.poison_step(step);
        Ok(())
    }

    fn language_model(&self, role: Role) -> Result<Gpt> {
        match role {
            Role::Base => self.base.clone().ok_or_else(|| LabError::NotReady("there is no base model yet".into())),
            Role::Sft => self
                .reference
                .clone()
                .or_else(|| self.sft.as_ref().map(SftTrainer::model))
                .ok_or_else(|| LabError::NotReady("SFT has not begun".into())),
        }
    }

    /// One completion per product prompt from the model in `role`.
    pub async fn samples(&self, role: Role, temperature: f32, seed: u64) -> Result<Vec<PromptSample>> {
        let model = self.language_model(role)?;
        prompt_samples(&model, &self.tokenizer, temperature, seed, &self.device).await
    }

    // ---- checkpoints ----

    pub async fn save(&self, role: Role) -> Result<Vec<u8>> {
        let model = self.language_model(role)?;
        let header = CheckpointHeader {
            role: role.name().into(),
            architecture: "gpt".into(),
            model: self.model_config(),
            vocab: self.tokenizer.fingerprint(),
            note: serde_json::Value::Null,
        };
        Ok(checkpoint::encode(&header, &checkpoint::record_bytes(&model).await?))
    }

    /// Loads a checkpoint into the role its header names; refuses one made for another model or
    /// vocabulary, and changes nothing when it refuses.
    pub fn load(&mut self, bytes: &[u8]) -> Result<CheckpointHeader> {
        let (header, record) = checkpoint::decode(bytes)?;
        let role = Role::parse(&header.role).map_err(|_| LabError::Checkpoint(format!("unknown role {:?}", header.role)))?;
        checkpoint::check_header(&header, "gpt", &self.model_config(), &self.tokenizer.fingerprint())?;
        let blank = Gpt::new(&self.model_config(), &mut Rng::new(0), &self.device);
        let model = checkpoint::load_record(blank, record)?;
        match role {
            Role::Base => {
                self.base = Some(model);
                self.sft = None;
                self.reference = None;
            }
            Role::Sft => self.reference = Some(model),
        }
        Ok(header)
    }
}
