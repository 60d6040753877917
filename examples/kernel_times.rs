//! Times each `kernels` operation at generation's shapes (tiny preset, batch 16) against the
//! same computation in burn's operations, on burn-wgpu: ms per call, device synchronized.
//!
//! usage: cargo run --release --features gpu --example kernel_times
use burn::prelude::*;
use burn::tensor::TensorData;
use rlhf_lab::engine::gpu_kernels::{self, reference};

fn tensor<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    Tensor::from_data(TensorData::new(reference::values(n, seed), shape), device)
}

fn time(name: &str, device: &Device, mut f: impl FnMut() -> Tensor<3>) {
    for _ in 0..5 {
        let _ = f().into_data();
    }
    let calls = 50;
    let started = std::time::Instant::now();
    let mut outputs = Vec::new();
    for _ in 0..calls {
        outputs.push(f());
    }
    device.sync().expect("sync");
    let ms = started.elapsed().as_secs_f64() * 1e3 / calls as f64;
    println!("{ms:8.3} ms  {name}");
}

fn main() {
    let (device, info) = rlhf_lab::engine::device::select(rlhf_lab::engine::device::BackendChoice::WebGpu);
    assert_eq!(info.backend, "wgpu", "no Vulkan device: {}", info.reason);
    let (b, d, capacity, heads) = (16, 64, 32, 4);
    let x = tensor([b, 1, d], 1, &device);
    let gamma = tensor([d], 2, &device);
    let beta = tensor([d], 3, &device);
    for n in [3 * d, 4 * d, 40] {
        let w = tensor([d, n], 4, &device);
        let bias = tensor([n], 5, &device);
        time(&format!("norm_linear_rows n={n}"), &device, || kernels::norm_linear_rows(x.clone(), gamma.clone(), beta.clone(), 1e-5, w.clone(), bias.clone(), false));
        time(&format!("norm_linear_rows n={n} gelu"), &device, || kernels::norm_linear_rows(x.clone(), gamma.clone(), beta.clone(), 1e-5, w.clone(), bias.clone(), true));
        time(&format!("  composed n={n}"), &device, || {
            let y = kernels::layer_norm_rows(x.clone(), gamma.clone(), beta.clone(), 1e-5);
            y.reshape([b, d]).matmul(w.clone()).reshape([b, 1, n]) + bias.clone().reshape([1, 1, n])
        });
    }
    let wt = tensor([40, d], 6, &device);
    let bias = tensor([40], 5, &device);
    time("norm_linear_rows n=40 transposed weight", &device, || kernels::norm_linear_rows(x.clone(), gamma.clone(), beta.clone(), 1e-5, wt.clone().transpose(), bias.clone(), false));
    for k in [d, 4 * d] {
        let h = tensor([b, 1, k], 7, &device);
        let w = tensor([k, d], 8, &device);
        let bias = tensor([d], 9, &device);
        time(&format!("linear_residual_rows k={k}"), &device, || kernels::linear_residual_rows(h.clone(), w.clone(), bias.clone(), x.clone()));
        time(&format!("  composed k={k}"), &device, || h.clone().reshape([b, k]).matmul(w.clone()).reshape([b, 1, d]) + bias.clone().reshape([1, 1, d]) + x.clone());
    }
    let qkv = tensor([b, 1, 3 * d], 10, &device);
    let keys = tensor([b, heads, capacity, d / heads], 11, &device);
    let values = tensor([b, heads, capacity, d / heads], 12, &device);
    for length in [8, 32] {
        time(&format!("cached_attention length={length}"), &device, || kernels::cached_attention(qkv.clone(), keys.clone(), values.clone(), length, 0.25));
    }
    time("layer_norm_rows", &device, || kernels::layer_norm_rows(x.clone(), gamma.clone(), beta.clone(), 1e-5));
    time("x + x (one elementwise kernel)", &device, || x.clone() + x.clone());
}
