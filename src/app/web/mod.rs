//! The JS/Rust boundary: the only `#[wasm_bindgen]` module (this file: `Lab` and its set-up and
//! step calls; `stages.rs`, `data.rs`: its other calls; `workers.rs`: the other exports;
//! `convert.rs`: values across the boundary).
//!
//! One session object, `Lab`, created asynchronously (device set-up inside) and then called for
//! bounded work: "take one SFT step → metrics", "sample → completions". The page's worker owns the
//! clock. Arguments arrive as JSON strings or plain values and are validated before they touch
//! state; results leave as plain JS objects; every error leaves as a JS `Error` whose `name` is
//! the kind of failure (`InvalidSetting`, `Checkpoint`, `NumericalFault`, …) and whose message a
//! learner can read.

use wasm_bindgen::prelude::*;

use crate::app::session::{Session, Stage};
use crate::engine::device::{self, BackendChoice, BackendInfo};
use crate::error::LabError;
use crate::rlhf::config::LabConfig;
use crate::rlhf::metrics::CATALOG;

mod convert;
mod data;
mod stages;
mod workers;

pub use self::workers::GradientWorker;

use self::convert::{describe, floats_into, js_error, set, shard_result, to_js};

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    device::run_static_constructors();
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

    /// One bounded step of `stage` (`pretrain`, `sft`, `reward`, `ppo`, `grpo`, `dpo`) → its metrics.
    pub async fn step(&mut self, stage: String) -> Result<JsValue, JsValue> {
        let stage = Stage::parse(&stage).map_err(js_error)?;
        let metrics = self.session.step(stage).await.map_err(js_error)?;
        to_js(&metrics)
    }

    /// For a data-parallel step (`engine::data_parallel`, driven by `www/shards.js`): `{theta, work}` —
    /// every parameter as a `Float32Array`, and what each of the other `shards − 1` workers
    /// computes — or `null` when `stage` takes whole steps. Changes nothing.
    ///
    /// θ is written into `into` when it is a `Float32Array` of θ's length (a helper's last
    /// answer, `GradientWorker.gradient`'s, comes back in such an array), else into a new one.
    #[wasm_bindgen(js_name = shardPlan)]
    pub async fn shard_plan(&self, stage: String, shards: usize, into: Option<js_sys::Float32Array>) -> Result<JsValue, JsValue> {
        let stage = Stage::parse(&stage).map_err(js_error)?;
        let Some((theta, work)) = self.session.shard_plan(stage, shards).await.map_err(js_error)? else { return Ok(JsValue::NULL) };
        let plan = js_sys::Object::new();
        set(&plan, "theta", &floats_into(&theta, into).into())?;
        set(&plan, "work", &to_js(&work)?)?;
        Ok(plan.into())
    }

    /// One data-parallel step of `stage` → its metrics: this worker computes shard 0 of
    /// `shards` while `results` (a promise) brings the other shards' `GradientWorker.gradient`
    /// answers, in shard order.
    #[wasm_bindgen(js_name = stepSharded)]
    pub async fn step_sharded(&mut self, stage: String, shards: usize, results: js_sys::Promise) -> Result<JsValue, JsValue> {
        let stage = Stage::parse(&stage).map_err(js_error)?;
        let helpers = async move {
            let results = wasm_bindgen_futures::JsFuture::from(results).await.map_err(|e| LabError::InvalidInput(format!("a helper worker failed: {}", describe(&e))))?;
            js_sys::Array::from(&results).iter().map(|r| shard_result(&r)).collect::<Result<Vec<_>, LabError>>()
        };
        let metrics = self.session.step_sharded(stage, shards, helpers).await.map_err(js_error)?;
        to_js(&metrics)
    }

    /// Fault injection for tests: step `step` of `stage` (a PPO update, for `ppo`) computes a
    /// NaN loss, as a diverging run would.
    pub fn poison(&mut self, stage: String, step: usize) -> Result<(), JsValue> {
        let result = match Stage::parse(&stage).map_err(js_error)? {
            Stage::Sft => self.session.sft_poison_step(step),
            Stage::Reward => self.session.reward_poison_step(step),
            Stage::Ppo => self.session.ppo_poison_update(step),
            Stage::Grpo => self.session.grpo_poison_update(step),
            Stage::Dpo => self.session.dpo_poison_step(step),
            Stage::Pretrain | Stage::Sweep => Err(LabError::InvalidInput("pretraining and the sweep have no fault injection".into())),
        };
        result.map_err(js_error)
    }
}
