//! Where a training step's kernel dispatches come from: each part of the tiny GPT's step run on
//! its own, on burn-wgpu with fusion, counted with cubecl's launch observer (issue 11's goal is
//! ≤ 200 per step). The device is synchronized before and after each part, so its count is its
//! own; each part runs three times and the last is reported (fusion runs a sequence fused only
//! once it has explored it). Counts include drawing the part's random input (one `Uniform…`
//! launch) and, for backward passes, the gradient seed of `.sum()`; the flushing readback's own
//! launches are subtracted.
//!
//! Needs a Vulkan device; a software one (Mesa's lavapipe, `apt-get install mesa-vulkan-drivers`)
//! counts the same kernels as a GPU.
//!
//! usage: cargo run --release --features gpu --example dispatches
use burn::nn::{LayerNormConfig, LinearConfig};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::{gelu, log_softmax, softmax};
use rlhf_lab::app::bench::DispatchCounter;
use rlhf_lab::engine::layers;
use rlhf_lab::engine::model::Gpt;
use rlhf_lab::engine::model::config::Preset;
use rlhf_lab::engine::optim::FlatAdam;
use rlhf_lab::rlhf::task::Tokenizer;
use rlhf_lab::rng::Rng;

const BATCH: usize = 16;
const SEQ: usize = 31;

fn flush<const D: usize>(t: Tensor<D>) {
    let _ = t.into_data();
}

/// Launches of `part`, less those of the readback that flushes it.
/// Runs `part` three times and reports the last: burn's fusion explores a sequence of operations
/// the first times it sees it, and runs it fused once it has a plan (as in a training loop).
fn count(name: &str, overhead: usize, device: &Device, mut part: impl FnMut()) -> usize {
    for _ in 0..2 {
        part();
    }
    device.sync().expect("sync");
    let counter = DispatchCounter::start();
    part();
    device.sync().expect("sync");
    let n = counter.count().saturating_sub(overhead);
    let kernels: Vec<String> = counter
        .by_kernel(8)
        .into_iter()
        .map(|(k, n)| format!("{n}×{}", k.rsplit("::").next().unwrap_or(&k).chars().take(40).collect::<String>()))
        .collect();
    println!("{n:5}  {name:<44} {}", kernels.join(", "));
    n
}

fn main() {
    let (device, info) = rlhf_lab::engine::device::select(rlhf_lab::engine::device::BackendChoice::WebGpu);
    assert_eq!(info.backend, "wgpu", "no Vulkan device: {}", info.reason);
    let ad = device.clone().autodiff();
    let d = 64;
    let x = || Tensor::<3>::random([BATCH, SEQ, d], burn::tensor::Distribution::Default, &ad).require_grad();
    flush(x());
    let overhead = {
        let counter = DispatchCounter::start();
        flush(Tensor::<1>::ones([4], &ad).sum());
        counter.count().saturating_sub(1) // the sum itself
    };
    println!("readback overhead: {overhead} launches\n");

    let ln = LayerNormConfig::new(d).init(&ad);
    count("layer norm, forward", overhead, &ad, || flush(ln.forward(x())));
    count("layer norm, forward + backward", overhead, &ad, || {
        let input = x();
        let g = ln.forward(input.clone()).sum().backward();
        flush(input.grad(&g).unwrap());
    });
    count("layer norm, gradient written out (layers)", overhead, &ad, || {
        let input = x();
        let beta = ln.beta.as_ref().map(|b| b.val()).unwrap();
        let g = layers::layer_norm(input.clone(), ln.gamma.val(), beta, 1e-5).sum().backward();
        flush(input.grad(&g).unwrap());
    });
    let linear = LinearConfig::new(d, 3 * d).init(&ad);
    count("linear 64→192, forward", overhead, &ad, || flush(linear.forward(x())));
    count("linear 64→192, forward + backward", overhead, &ad, || {
        let input = x();
        let g = linear.forward(input.clone()).sum().backward();
        flush(input.grad(&g).unwrap());
    });
    count("linear 64→192 on [B·T, 64], forward + backward", overhead, &ad, || {
        let input = x();
        let g = linear.forward(input.clone().reshape([BATCH * SEQ, d])).sum().backward();
        flush(input.grad(&g).unwrap());
    });
    count("layer norm on [B·T, 64], forward + backward", overhead, &ad, || {
        let input = x();
        let g = ln.forward(input.clone().reshape([BATCH * SEQ, d])).sum().backward();
        flush(input.grad(&g).unwrap());
    });
    count("gelu, forward + backward", overhead, &ad, || {
        let input = x();
        let g = gelu(input.clone()).sum().backward();
        flush(input.grad(&g).unwrap());
    });
    let scores = || Tensor::<4>::random([BATCH, 4, SEQ, SEQ], burn::tensor::Distribution::Default, &ad).require_grad();
    count("softmax [16,4,31,31], forward", overhead, &ad, || flush(softmax(scores(), 3)));
    count("softmax, forward + backward", overhead, &ad, || {
        let input = scores();
        let g = softmax(input.clone(), 3).sum().backward();
        flush(input.grad(&g).unwrap());
    });
    count("softmax, gradient written out (layers)", overhead, &ad, || {
        let input = scores();
        let g = layers::softmax(input.clone()).sum().backward();
        flush(input.grad(&g).unwrap());
    });
    count("log_softmax over 150 words, forward + backward", overhead, &ad, || {
        let logits = Tensor::<3>::random([BATCH, SEQ, 150], burn::tensor::Distribution::Default, &ad).require_grad();
        let g = log_softmax(logits.clone(), 2).sum().backward();
        flush(logits.grad(&g).unwrap());
    });
    count("log_softmax, gradient written out (layers)", overhead, &ad, || {
        let logits = Tensor::<3>::random([BATCH, SEQ, 150], burn::tensor::Distribution::Default, &ad).require_grad();
        let g = layers::log_softmax(logits.clone()).sum().backward();
        flush(logits.grad(&g).unwrap());
    });
    count("residual x + f(x), forward + backward", overhead, &ad, || {
        let input = x();
        let g = (input.clone() + input.clone().mul_scalar(2.0)).sum().backward();
        flush(input.grad(&g).unwrap());
    });
    count("heads: reshape, swap_dims, matmul qkᵀ, backward", overhead, &ad, || {
        let (a, b) = (x(), x());
        let q = a.clone().reshape([BATCH, SEQ, 4, 16]).swap_dims(1, 2);
        let k = b.reshape([BATCH, SEQ, 4, 16]).swap_dims(1, 2);
        let g = q.matmul(k.swap_dims(2, 3)).sum().backward();
        flush(a.grad(&g).unwrap());
    });

    let tokenizer = Tokenizer::new();
    let config = Preset::Tiny.model(tokenizer.vocab_size());
    let mut model = Gpt::new(&config, &mut Rng::new(1), &ad);
    let tokens: Vec<i32> = (0..BATCH * SEQ).map(|i| (i % 100) as i32 + 4).collect();
    let tokens = || Tensor::<2, Int>::from_data(TensorData::new(tokens.clone(), [BATCH, SEQ]), &ad);
    count("GPT forward (logits)", overhead, &ad, || flush(model.forward(tokens())));
    count("GPT forward (no grad)", overhead, &ad, || flush(model.valid().forward(Tensor::from_data(TensorData::new((0..BATCH * SEQ).map(|i| (i % 100) as i32 + 4).collect::<Vec<_>>(), [BATCH, SEQ]), &device))));
    count("GPT forward + backward (sum of log-softmax)", overhead, &ad, || {
        let g = layers::log_softmax(model.forward(tokens())).sum().backward();
        let _grads = GradientsParams::from_grads(g, &model);
    });
    let mut adam = FlatAdam::default();
    count("GPT forward + backward + flat Adam", overhead, &ad, || {
        let loss = layers::log_softmax(model.forward(tokens())).sum();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let (next, norm) = adam.step(1e-3, model.clone(), &grads);
        flush(norm);
        model = next;
    });
}
