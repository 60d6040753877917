//! The one place that picks the compute backend, and says why.
//!
//! In the page: WebGPU (burn-wgpu) when the browser exposes an adapter with what burn needs,
//! otherwise burn's CPU backend (flex), with the reason shown to the learner. cubecl-wgpu panics
//! on an adapter without `timestamp-query`, so that feature is checked here first. Natively: the
//! CPU backend, or burn-wgpu with the `gpu` feature.
//!
//! A WebGPU device can be initialized once per worker; the caller keeps the returned `Device`
//! and clones it for every model.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};

/// What the learner (or a link) asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// WebGPU if it works here, else the CPU backend.
    #[default]
    Auto,
    WebGpu,
    Cpu,
}

impl BackendChoice {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(Self::Auto),
            "webgpu" => Ok(Self::WebGpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(LabError::setting("backend", format!("must be auto, webgpu or cpu (got {other:?})"))),
        }
    }
}

/// The backend a session got.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackendInfo {
    /// `webgpu` or `cpu`.
    pub backend: String,
    /// The adapter's vendor and architecture, or the CPU backend's name.
    pub adapter: String,
    /// Why this backend: shown to the learner, especially when WebGPU was not used.
    pub reason: String,
    /// Whether it is the fallback (WebGPU was wanted but not available).
    pub fallback: bool,
}

fn cpu(reason: impl Into<String>, fallback: bool) -> (Device, BackendInfo) {
    let simd = if cfg!(target_feature = "simd128") { ", SIMD" } else { "" };
    let adapter = if cfg!(target_arch = "wasm32") { format!("burn flex (WebAssembly{simd})") } else { "burn flex (native)".to_string() };
    (Device::flex(), BackendInfo { backend: "cpu".into(), adapter, reason: reason.into(), fallback })
}

#[cfg(target_arch = "wasm32")]
mod browser {
    use js_sys::{Function, Promise, Reflect};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;

    fn get(target: &JsValue, key: &str) -> Option<JsValue> {
        Reflect::get(target, &JsValue::from_str(key)).ok().filter(|v| !v.is_undefined() && !v.is_null())
    }

    fn call(target: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, String> {
        let function: Function = get(target, method).ok_or(format!("{method} is missing"))?.dyn_into().map_err(|_| format!("{method} is not a function"))?;
        let array = js_sys::Array::new();
        for a in args {
            array.push(a);
        }
        function.apply(target, &array).map_err(|e| format!("{method} failed: {e:?}"))
    }

    /// Looks for an adapter from the worker's (or window's) `navigator.gpu`. Returns its
    /// description, or why WebGPU cannot be used.
    pub async fn probe_adapter() -> Result<String, String> {
        let global = js_sys::global();
        let navigator = get(&global, "navigator").ok_or("no navigator in this context")?;
        let gpu = get(&navigator, "gpu").ok_or("this browser does not expose WebGPU (navigator.gpu is missing)")?;
        let promise: Promise = call(&gpu, "requestAdapter", &[])?.dyn_into().map_err(|_| "requestAdapter did not return a promise")?;
        let adapter = JsFuture::from(promise).await.map_err(|e| format!("requestAdapter failed: {e:?}"))?;
        if adapter.is_null() || adapter.is_undefined() {
            return Err("the browser has WebGPU but offered no adapter".into());
        }
        let features = get(&adapter, "features").ok_or("the adapter lists no features")?;
        let has_timestamps = call(&features, "has", &[JsValue::from_str("timestamp-query")])?.as_bool().unwrap_or(false);
        if !has_timestamps {
            return Err("the WebGPU adapter lacks the timestamp-query feature that burn's runtime needs".into());
        }
        let info = get(&adapter, "info");
        let field = |name: &str| info.as_ref().and_then(|i| get(i, name)).and_then(|v| v.as_string()).filter(|s| !s.is_empty());
        let vendor = field("vendor").unwrap_or_else(|| "unknown vendor".into());
        let architecture = field("architecture").or_else(|| field("description")).unwrap_or_else(|| "unknown architecture".into());
        Ok(format!("{vendor} {architecture}"))
    }
}

/// Sets up burn's fusion for cubecl devices; must run before the first operation on one.
///
/// burn's "reduce-broadcasted" fusion claims chains like a LayerNorm's (reduce, broadcast,
/// elementwise, reduce), but without burn's `autotune` feature, which this crate leaves off (it
/// benchmarks every candidate kernel at first use, and fusion with autotune has corrupted
/// KV-cache forwards, burn #5257), it always runs them through its fallback: an unfused
/// reduction kernel plus separate elementwise kernels for each block. Removed, the same chains
/// go to the plain reduce fusion, which runs its elementwise reads and writes inside the
/// reduction kernel.
#[cfg(any(feature = "webgpu", feature = "gpu"))]
fn configure_fusion() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Fails only once the fusion service runs, i.e. when a device is already in use, and
        // then it was configured by the first call.
        let _ = burn_cubecl::fusion::remove("ReduceBroadcasted");
    });
}

/// Runs the module's static constructors once: the `inventory` registrations of pliron, the IR
/// library under cubecl, ~4,900 of them, which WebGPU's kernel compiler looks up.
///
/// Referencing `__wasm_call_ctors` here is also what keeps them from running on every call:
/// when nothing in a module calls it, wasm-ld treats the module as a "command" and wraps each
/// export in a call to all of them. Every call from JS into the core (each `step`, each poll of
/// an async call, each JS object handed over) then ran them again; in the page that was ~17% of
/// a CPU-backend training step (`scripts/profile-cpu.sh`, 2026-11-30).
#[cfg(target_arch = "wasm32")]
pub fn run_static_constructors() {
    unsafe extern "C" {
        fn __wasm_call_ctors();
    }
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: wasm-ld defines the function; `Once` runs it a single time, before any backend
    // exists, as a reactor module's `_initialize` would.
    ONCE.call_once(|| unsafe { __wasm_call_ctors() });
}

/// Picks the backend in the page. Never fails: WebGPU problems fall back to the CPU backend,
/// with the reason recorded.
#[cfg(target_arch = "wasm32")]
pub async fn select(choice: BackendChoice) -> (Device, BackendInfo) {
    run_static_constructors();
    if choice == BackendChoice::Cpu {
        return cpu("the CPU backend was chosen in the settings", false);
    }
    let adapter = match browser::probe_adapter().await {
        Ok(adapter) => adapter,
        Err(why) => return cpu(format!("WebGPU is not available: {why}; training runs on the CPU backend instead"), true),
    };
    webgpu_device(adapter).await
}

#[cfg(all(target_arch = "wasm32", feature = "webgpu"))]
async fn webgpu_device(adapter: String) -> (Device, BackendInfo) {
    configure_fusion();
    match Device::wgpu_options().init_async().await {
        Ok(device) => (device, BackendInfo { backend: "webgpu".into(), adapter, reason: "WebGPU adapter found".into(), fallback: false }),
        Err(e) => cpu(format!("WebGPU could not be initialized ({e}); training runs on the CPU backend instead"), true),
    }
}

/// The CPU-only build of the core (no `webgpu` feature) has no WebGPU to initialize.
#[cfg(all(target_arch = "wasm32", not(feature = "webgpu")))]
async fn webgpu_device(adapter: String) -> (Device, BackendInfo) {
    cpu(format!("this is the CPU-only build of the core; WebGPU ({adapter}) runs in the other build"), true)
}

/// Picks the backend natively: the CPU backend, or burn-wgpu when built with `gpu` and asked for.
#[cfg(not(target_arch = "wasm32"))]
pub fn select(choice: BackendChoice) -> (Device, BackendInfo) {
    match choice {
        BackendChoice::Cpu | BackendChoice::Auto if !cfg!(feature = "gpu") => cpu("native build without the `gpu` feature", false),
        BackendChoice::Cpu => cpu("the CPU backend was chosen", false),
        _ => native_gpu(),
    }
}

#[cfg(all(not(target_arch = "wasm32"), feature = "gpu"))]
fn native_gpu() -> (Device, BackendInfo) {
    configure_fusion();
    match Device::wgpu_options().init() {
        Ok(device) => (device, BackendInfo { backend: "wgpu".into(), adapter: "burn-wgpu (native)".into(), reason: "native GPU".into(), fallback: false }),
        Err(e) => cpu(format!("burn-wgpu could not be initialized ({e})"), true),
    }
}

#[cfg(all(not(target_arch = "wasm32"), not(feature = "gpu")))]
fn native_gpu() -> (Device, BackendInfo) {
    cpu("a GPU was asked for, but this build has no `gpu` feature", true)
}

/// The burn-wgpu device for the native `gpu` tests: a process initializes it once, and the tests
/// of a `cargo test` run share one process.
#[cfg(all(test, feature = "gpu"))]
pub(crate) fn test_gpu() -> Device {
    static GPU: std::sync::OnceLock<(Device, BackendInfo)> = std::sync::OnceLock::new();
    let (device, info) = GPU.get_or_init(native_gpu);
    assert_eq!(info.backend, "wgpu", "no Vulkan device: {}", info.reason);
    device.clone()
}
