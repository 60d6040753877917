//! Values across the boundary: errors as JS `Error`s, results as plain JS objects, floats as
//! typed arrays, a helper's answer read back.

use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::error::LabError;

pub(super) fn js_error(error: LabError) -> JsValue {
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

pub(super) fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_error(LabError::InvalidInput(format!("could not convert a result for JavaScript: {e}"))))
}

/// `values` in `into` when it has their length, else in a new `Float32Array`.
///
/// Refilling an array is one copy (~0.01 ms for a tiny GPT's 440 KB in Chromium). A new one costs
/// ~0.3 ms more, the first touch of its pages, and `Float32Array::from` (`new Float32Array(view)`)
/// is as slow (Chromium 156, 2026-12-04): once for θ on its way to a helper and once for the
/// helper's gradient on its way back, both on a split step's critical path.
pub(super) fn floats_into(values: &[f32], into: Option<js_sys::Float32Array>) -> js_sys::Float32Array {
    let array = into.filter(|a| a.length() as usize == values.len()).unwrap_or_else(|| js_sys::Float32Array::new_with_length(values.len() as u32));
    array.copy_from(values);
    array
}

pub(super) fn set(object: &js_sys::Object, key: &str, value: &JsValue) -> Result<(), JsValue> {
    js_sys::Reflect::set(object, &key.into(), value).map(|_| ())
}

pub(super) fn describe(error: &JsValue) -> String {
    error.as_string().or_else(|| js_sys::Reflect::get(error, &"message".into()).ok().and_then(|m| m.as_string())).unwrap_or_else(|| format!("{error:?}"))
}

/// One `GradientWorker.gradient` answer, as it came back through the page.
pub(super) fn shard_result(value: &JsValue) -> Result<crate::engine::data_parallel::ShardResult, LabError> {
    let field = |key: &str| js_sys::Reflect::get(value, &key.into()).map_err(|_| LabError::InvalidInput(format!("a shard's result has no {key}")));
    let step = field("step")?.as_f64().filter(|s| *s >= 0.0 && s.fract() == 0.0).ok_or_else(|| LabError::InvalidInput("a shard's result has no step number".into()))? as usize;
    let floats = |key: &str| -> Result<Vec<f32>, LabError> {
        let v = field(key)?;
        if !v.is_instance_of::<js_sys::Float32Array>() {
            return Err(LabError::InvalidInput(format!("a shard's {key} must be a Float32Array")));
        }
        Ok(js_sys::Float32Array::from(v).to_vec())
    };
    Ok(crate::engine::data_parallel::ShardResult { step, gradient: floats("gradient")?, sums: floats("sums")?, per_token: floats("perToken")? })
}
