//! The JS/Rust boundary: the only `#[wasm_bindgen]` file.
//!
//! One session object, `Lab`, created asynchronously (device set-up inside) and then called for
//! bounded work: "take one SFT step → metrics", "sample → completions". The page's worker owns the
//! clock. Arguments arrive as JSON strings or plain values and are validated before they touch
//! state; results leave as plain JS objects; every error leaves as a JS `Error` whose `name` is
//! the kind of failure (`InvalidSetting`, `Checkpoint`, `NumericalFault`, …) and whose message a
//! learner can read.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::config::LabConfig;
use crate::device::{self, BackendChoice, BackendInfo};
use crate::error::LabError;
use crate::metrics::CATALOG;
use crate::session::{Role, Session};

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn js_error(error: LabError) -> JsValue {
    let name = match &error {
        LabError::InvalidSetting { .. } => "InvalidSetting",
        LabError::InvalidInput(_) => "InvalidInput",
        LabError::Checkpoint(_) => "Checkpoint",
        LabError::Device(_) => "Device",
        LabError::NumericalFault { .. } => "NumericalFault",
        LabError::NotReady(_) => "NotReady",
    };
    let js = js_sys::Error::new(&error.to_string());
    js.set_name(name);
    js.into()
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error(LabError::InvalidInput(format!("could not convert a result for JavaScript: {e}"))))
}

fn parse_config(json: &str) -> Result<LabConfig, JsValue> {
    LabConfig::from_json(json).map_err(js_error)
}

/// A learner's session: the device, the models by role and each stage's trainer.
#[wasm_bindgen]
pub struct Lab {
    session: Session,
    backend: BackendInfo,
}

#[wasm_bindgen]
impl Lab {
    /// Picks the backend (`auto`, `webgpu` or `cpu`; WebGPU problems fall back to the CPU backend
    /// with the reason in `backendInfo()`) and validates the settings (JSON; missing fields take
    /// their defaults).
    pub async fn create(backend: String, config_json: String) -> Result<Lab, JsValue> {
        let choice = BackendChoice::parse(&backend).map_err(js_error)?;
        let config = parse_config(&config_json)?;
        let (device, backend) = device::select(choice).await;
        let session = Session::new(device, config).map_err(js_error)?;
        Ok(Lab { session, backend })
    }

    /// `{backend, adapter, reason, fallback}`.
    #[wasm_bindgen(js_name = backendInfo)]
    pub fn backend_info(&self) -> Result<JsValue, JsValue> {
        to_js(&self.backend)
    }

    /// Where each stage stands.
    pub fn status(&self) -> Result<JsValue, JsValue> {
        to_js(&self.session.status())
    }

    /// The current settings as JSON.
    pub fn config(&self) -> String {
        serde_json::to_string(self.session.config()).expect("configs serialize")
    }

    /// The default settings as JSON.
    #[wasm_bindgen(js_name = defaultConfig)]
    pub fn default_config() -> String {
        serde_json::to_string(&LabConfig::default()).expect("configs serialize")
    }

    /// Validates settings without applying them: the page checks a control's value with it.
    #[wasm_bindgen(js_name = validateConfig)]
    pub fn validate_config(json: String) -> Result<(), JsValue> {
        parse_config(&json).map(|_| ())
    }

    /// Replaces the settings (validated first; nothing changes if they are refused).
    #[wasm_bindgen(js_name = setConfig)]
    pub fn set_config(&mut self, json: String) -> Result<(), JsValue> {
        let config = parse_config(&json)?;
        self.session.set_config(config).map_err(js_error)
    }

    /// Every metric name with a one-line explanation and its equation's anchor.
    #[wasm_bindgen(js_name = metricCatalog)]
    pub fn metric_catalog() -> Result<JsValue, JsValue> {
        to_js(&CATALOG)
    }

    /// The tokenizer's fingerprint: labels and checkpoints carry it.
    pub fn vocabulary(&self) -> String {
        self.session.tokenizer().fingerprint()
    }

    #[wasm_bindgen(js_name = baseFromScratch)]
    pub fn base_from_scratch(&mut self) {
        self.session.base_from_scratch();
    }

    #[wasm_bindgen(js_name = pretrainBegin)]
    pub fn pretrain_begin(&mut self) -> Result<(), JsValue> {
        self.session.pretrain_begin().map_err(js_error)
    }

    #[wasm_bindgen(js_name = pretrainStep)]
    pub async fn pretrain_step(&mut self) -> Result<JsValue, JsValue> {
        let metrics = self.session.pretrain_step().await.map_err(js_error)?;
        to_js(&metrics)
    }

    #[wasm_bindgen(js_name = sftBegin)]
    pub fn sft_begin(&mut self) -> Result<(), JsValue> {
        self.session.sft_begin().map_err(js_error)
    }

    /// One SFT step: `{step, "loss/train", …}` (held-out metrics every `eval_every` steps).
    #[wasm_bindgen(js_name = sftStep)]
    pub async fn sft_step(&mut self) -> Result<JsValue, JsValue> {
        let metrics = self.session.sft_step().await.map_err(js_error)?;
        to_js(&metrics)
    }

    #[wasm_bindgen(js_name = sftFinish)]
    pub fn sft_finish(&mut self) -> Result<(), JsValue> {
        self.session.sft_finish().map_err(js_error)
    }

    /// Fault injection for tests: SFT step `step` computes a NaN loss.
    #[wasm_bindgen(js_name = sftPoisonStep)]
    pub fn sft_poison_step(&mut self, step: usize) -> Result<(), JsValue> {
        self.session.sft_poison_step(step).map_err(js_error)
    }

    /// One completion per product prompt from the model in `role` (`base` or `sft`):
    /// `[{prompt, completion, gold}]`. Temperature 0 is greedy.
    pub async fn samples(&self, role: String, temperature: f32, seed: u32) -> Result<JsValue, JsValue> {
        let role = Role::parse(&role).map_err(js_error)?;
        let samples = self.session.samples(role, temperature, u64::from(seed)).await.map_err(js_error)?;
        to_js(&samples)
    }

    /// The model in `role` as checkpoint bytes (burn's record format behind a header).
    pub async fn save(&self, role: String) -> Result<Vec<u8>, JsValue> {
        let role = Role::parse(&role).map_err(js_error)?;
        self.session.save(role).await.map_err(js_error)
    }

    /// Loads checkpoint bytes into the role their header names; returns the header. A checkpoint
    /// for another model or vocabulary is refused and nothing changes.
    pub fn load(&mut self, bytes: Vec<u8>) -> Result<JsValue, JsValue> {
        let header = self.session.load(&bytes).map_err(js_error)?;
        to_js(&header)
    }
}
