//! `Lab`'s data calls: snapshots, checkpoints, Hugging Face folders, label formats.

use wasm_bindgen::prelude::*;
use crate::app::session::{Role, Stage};
use crate::error::LabError;

use super::convert::{js_error, to_js};
use super::Lab;

#[wasm_bindgen]
impl Lab {
    /// The trainer of `stage` as snapshot bytes, to resume it after a reload.
    pub async fn snapshot(&self, stage: String) -> Result<Vec<u8>, JsValue> {
        let stage = Stage::parse(&stage).map_err(js_error)?;
        self.session.snapshot(stage).await.map_err(js_error)
    }

    /// Begins `stage` again from a snapshot → its progress. Refused (nothing changes) when the
    /// snapshot is damaged or was taken under other settings.
    pub async fn resume(&mut self, stage: String, bytes: Vec<u8>) -> Result<JsValue, JsValue> {
        let stage = Stage::parse(&stage).map_err(js_error)?;
        let progress = self.session.resume(stage, &bytes).await.map_err(js_error)?;
        to_js(&progress)
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

    /// Checkpoint bytes as a zipped Hugging Face folder (`app::hf`): GPT-2's config.json,
    /// model.safetensors, the tokenizer, the generation config and a model card that quotes
    /// `metrics_json` (what the stage reached, as the page stored it). Read on the CPU backend: no
    /// GPU readback.
    #[wasm_bindgen(js_name = exportHf)]
    pub async fn export_hf(&self, bytes: Vec<u8>, metrics_json: String) -> Result<Vec<u8>, JsValue> {
        let metrics: serde_json::Value = serde_json::from_str(&metrics_json).unwrap_or(serde_json::Value::Null);
        let files = crate::app::hf::export_checkpoint(&bytes, self.session.tokenizer(), &metrics).await.map_err(js_error)?;
        let (header, _) = crate::engine::checkpoint::decode(&bytes).map_err(js_error)?;
        let dir = format!("rlhf-lab-{}-{}", header.role, self.session.config().preset.name());
        crate::app::hf::zip_folder(&dir, &files).map_err(js_error)
    }

    /// A zipped Hugging Face folder → the lab's checkpoint bytes for `role` (`base`, `sft` or
    /// `reward`; empty: the role the folder names), checked whole first. Nothing is loaded or
    /// stored here: the page loads the bytes (`load`) and stores them, as with any upload.
    #[wasm_bindgen(js_name = importHf)]
    pub async fn import_hf(&self, zip: Vec<u8>, role: String) -> Result<Vec<u8>, JsValue> {
        let role = if role.is_empty() { None } else { Some(Role::parse(&role).map_err(js_error)?) };
        let files = crate::app::hf::unzip_folder(&zip).map_err(js_error)?;
        crate::app::hf::import_folder(&files, self.session.tokenizer(), &self.session.model_config(), role).await.map_err(js_error)
    }

    /// Labels (the lab's JSON lines, checked) → TRL's preference format:
    /// `{text, rows, ties_left_out}`.
    #[wasm_bindgen(js_name = labelsToPreferences)]
    pub fn labels_to_preferences(&self, jsonl: String) -> Result<JsValue, JsValue> {
        self.session.check_labels(&jsonl).map_err(js_error)?;
        let records: Vec<crate::rlhf::labels::LabelRecord> = jsonl
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(|e| js_error(LabError::InvalidInput(e.to_string()))))
            .collect::<Result<_, _>>()?;
        to_js(&crate::rlhf::preference_dataset::to_preference_jsonl(&records))
    }

    /// A TRL preference file (prompt, chosen, rejected) → the lab's label records, chosen first;
    /// all or nothing, with the line and the reason of the first bad row.
    #[wasm_bindgen(js_name = labelsFromPreferences)]
    pub fn labels_from_preferences(&self, text: String) -> Result<JsValue, JsValue> {
        to_js(&crate::rlhf::preference_dataset::parse_preference_jsonl(&text, self.session.tokenizer()).map_err(js_error)?)
    }
}
