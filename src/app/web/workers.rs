//! The boundary's other exports: the helper worker of data-parallel steps, the core's heap for the
//! soak, and the CPU backend's matrix-product kernels.

use wasm_bindgen::prelude::*;
use crate::engine::device::{self, BackendChoice};
use crate::error::LabError;

use super::convert::{floats_into, js_error, set, to_js};

/// A helper of data-parallel steps, in a Web Worker of its own (`www/shard-worker.js`).
#[wasm_bindgen]
pub struct GradientWorker {
    inner: crate::app::shard::GradientWorker,
}

#[wasm_bindgen]
impl GradientWorker {
    #[wasm_bindgen(constructor)]
    pub fn new() -> GradientWorker {
        GradientWorker { inner: crate::app::shard::GradientWorker::new() }
    }

    /// The gradient of one shard (`work`, from `Lab.shardPlan`) at parameters `theta` (a
    /// `Float32Array`) → `{step, gradient: Float32Array, sums: Float32Array, perToken:
    /// Float32Array}`. The gradient comes back in θ's array (its first values) where it fits:
    /// the page sends that array back and the next plan refills it (`Lab.shardPlan`).
    pub async fn gradient(&mut self, theta: JsValue, work: JsValue) -> Result<JsValue, JsValue> {
        let theta: js_sys::Float32Array = theta.dyn_into().map_err(|_| js_error(LabError::InvalidInput("θ must be a Float32Array".into())))?;
        let work: crate::engine::data_parallel::ShardWork<crate::app::shard::ShardObjective> = serde_wasm_bindgen::from_value(work).map_err(|e| js_error(LabError::InvalidInput(format!("not a shard's work: {e}"))))?;
        let result = self.inner.gradient(&theta.to_vec(), &work).await.map_err(js_error)?;
        let out = js_sys::Object::new();
        set(&out, "step", &JsValue::from(result.step as f64))?;
        let room = (result.gradient.len() <= theta.length() as usize).then(|| theta.subarray(0, result.gradient.len() as u32));
        set(&out, "gradient", &floats_into(&result.gradient, room).into())?;
        set(&out, "sums", &js_sys::Float32Array::from(result.sums.as_slice()).into())?;
        set(&out, "perToken", &js_sys::Float32Array::from(result.per_token.as_slice()).into())?;
        Ok(out.into())
    }
}

impl Default for GradientWorker {
    fn default() -> Self {
        Self::new()
    }
}





/// The benchmark in the page: each preset on the backend chosen by `backend` (`webgpu` or `cpu`),
/// measured with `plan` (`full`, or `quick` for a GPU emulated on the CPU). Returns
/// `{backend: {...}, plan: {...}, rows: [...]}`; see `app::bench`.
#[wasm_bindgen]
pub async fn benchmark(backend: String, presets: String, plan: String) -> Result<JsValue, JsValue> {
    let choice = BackendChoice::parse(&backend).map_err(js_error)?;
    let (device, info) = device::select(choice).await;
    let plan = match plan.as_str() {
        "quick" => crate::app::bench::BenchPlan::quick(),
        "counts" => crate::app::bench::BenchPlan::counts(),
        _ => crate::app::bench::BenchPlan::full(),
    };
    let name = if info.backend == "webgpu" { "browser-webgpu" } else { "browser-cpu" };
    let performance = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).map_err(|_| js_error(LabError::Device("no performance clock".into())))?;
    let performance: web_sys::Performance = performance.unchecked_into();
    let mut rows = Vec::new();
    for name_of_preset in presets.split(',') {
        let preset = crate::engine::model::config::Preset::from_name(name_of_preset).map_err(js_error)?;
        // The page's worker counts GPUQueue.submit calls in `self.__submissions`.
        let submissions = || {
            js_sys::Reflect::get(&js_sys::global(), &"__submissions".into()).ok().and_then(|v| v.as_f64()).unwrap_or(0.0) as usize
        };
        let row = crate::app::bench::measure(preset, name, &device, plan, || performance.now(), submissions).await.map_err(js_error)?;
        rows.push(row);
    }
    to_js(&serde_json::json!({"backend": info, "plan": plan, "rows": rows}))
}

/// The core's heap: `{live_bytes, peak_bytes}` from the counting allocator (`app::heap`). The soak
/// command reads it beside the wasm memory's size, which only grows.
#[wasm_bindgen(js_name = heapUsage)]
pub fn heap_usage() -> Result<JsValue, JsValue> {
    to_js(&crate::app::heap::usage())
}

// The relaxed-SIMD matrix product (`kernels/fma`, why: src/engine/cpu/matmul_kernel.rs). The
// page instantiates that module on this module's memory and hands its `matmul` export over; the
// core calls it through this small JS shim (one call per product, not per block).
#[wasm_bindgen(inline_js = "let kernel = null;
export function set_fma_kernel(f) { kernel = f; }
export function call_fma_kernel(batch, m, n, k, a, aBatch, aRow, aCol, b, bBatch, bRow, c, cBatch, cRow) {
  kernel(batch, m, n, k, a, aBatch, aRow, aCol, b, bBatch, bRow, c, cBatch, cRow);
}")]
extern "C" {
    fn set_fma_kernel(kernel: &JsValue);
    #[allow(clippy::too_many_arguments)]
    fn call_fma_kernel(batch: usize, m: usize, n: usize, k: usize, a: *const f32, a_batch: usize, a_row: usize, a_col: usize, b: *const f32, b_batch: usize, b_row: usize, c: *mut f32, c_batch: usize, c_row: usize);
}

/// `engine::cpu::matmul::Kernel` through the relaxed-SIMD module.
///
/// # Safety
/// As `matmul_kernel::matmul`.
#[allow(clippy::too_many_arguments)]
unsafe fn fma_matmul(batch: usize, m: usize, n: usize, k: usize, a: *const f32, a_batch: usize, a_row: usize, a_col: usize, b: *const f32, b_batch: usize, b_row: usize, c: *mut f32, c_batch: usize, c_row: usize) {
    call_fma_kernel(batch, m, n, k, a, a_batch, a_row, a_col, b, b_batch, b_row, c, c_batch, c_row);
}

/// Hands the CPU backend's matrix products to `kernel`, the `matmul` export of
/// `fma_kernel.wasm` instantiated on this module's memory, if it computes what the core's own
/// kernel does (a check on products of every blocking edge, within 1e-4:
/// `engine::cpu::matmul::use_fma_kernel`). `false` if it does not, or is not a function
/// (`null`, say): the core's own kernel runs from then on.
#[wasm_bindgen(js_name = useFmaMatmul)]
pub fn use_fma_matmul(kernel: JsValue) -> bool {
    set_fma_kernel(&kernel);
    crate::engine::cpu::matmul::use_fma_kernel(kernel.is_function().then_some(fma_matmul as crate::engine::cpu::matmul::Kernel))
}

/// The CPU backend's matrix product: `relaxed-simd fma`, `simd128` or `flex gemm`.
#[wasm_bindgen(js_name = matmulKernel)]
pub fn matmul_kernel() -> String {
    crate::engine::cpu::matmul::active_name().to_string()
}

/// Which matrix product the CPU backend runs: `fastest` (the default: the FMA kernel where it
/// was handed over, else the core's), `simd128` (the core's kernel) or `flex` (burn's own
/// product, what the page ran before these kernels: for the benchmark and the tests). Returns
/// `matmulKernel()`.
#[wasm_bindgen(js_name = preferMatmul)]
pub fn prefer_matmul(name: &str) -> Result<String, JsValue> {
    use crate::engine::cpu::matmul::Preference;
    let preference = match name {
        "fastest" => Preference::Fastest,
        "simd128" => Preference::Simd128,
        "flex" => Preference::Flex,
        other => return Err(js_error(LabError::InvalidInput(format!("matrix product {other:?}: must be fastest, simd128 or flex")))),
    };
    crate::engine::cpu::matmul::prefer(preference);
    Ok(matmul_kernel())
}
