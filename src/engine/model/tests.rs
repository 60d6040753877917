use super::*;
use super::attention::masked_head_attention;
use crate::engine::model::config::Preset;

fn device() -> Device {
    Device::flex()
}

fn read(t: Tensor<3>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

#[test]
fn shapes_and_parameter_count() {
    let config = Preset::Micro.model(40);
    let model = Gpt::new(&config, &mut Rng::new(1), &device());
    let tokens = Tensor::<2, Int>::from_data(TensorData::new(vec![1i32, 5, 7, 9, 2, 3], [2, 3]), &device());
    assert_eq!(model.forward(tokens).dims(), [2, 3, 40]);
    assert_eq!(model.num_params(), config.num_params());
}

#[test]
fn a_later_token_never_changes_an_earlier_positions_logits() {
    let config = Preset::Micro.model(40);
    let model = Gpt::new(&config, &mut Rng::new(2), &device());
    let a = Tensor::<2, Int>::from_data(TensorData::new(vec![1i32, 5, 7, 9, 11], [1, 5]), &device());
    let b = Tensor::<2, Int>::from_data(TensorData::new(vec![1i32, 5, 7, 30, 3], [1, 5]), &device());
    let la = read(model.forward(a));
    let lb = read(model.forward(b));
    let v = 40;
    // Positions 0..3 see only tokens 0..3, which agree.
    for i in 0..3 * v {
        assert!((la[i] - lb[i]).abs() < 1e-6, "position {} changed", i / v);
    }
    // Position 3 sees the changed token.
    assert!((3 * v..4 * v).any(|i| (la[i] - lb[i]).abs() > 1e-4));
}

/// Logits position by position through the KV cache (a prefix of 4, then one token at a
/// time: on a GPU, through `gpu_kernels`) equal the full forward's, on two rows.
fn cached_forward_matches_the_full_forward_on(device: &Device) {
    let config = Preset::Micro.model(40);
    let model = Gpt::new(&config, &mut Rng::new(3), device);
    let rows: [[i32; 7]; 2] = [[1, 5, 7, 9, 11, 13, 2], [1, 8, 3, 30, 4, 6, 12]];
    let tokens = |range: std::ops::Range<usize>| {
        let ids: Vec<i32> = rows.iter().flat_map(|row| row[range.clone()].to_vec()).collect();
        Tensor::<2, Int>::from_data(TensorData::new(ids, [2, range.len()]), device)
    };
    let full = read(model.logits(model.hidden(tokens(0..7)))); // [2, 7, V]
    let mut cache = KvCache::new(&model);
    let mut steps = vec![read(model.logits(model.hidden_cached(tokens(0..4), &mut cache)))];
    for i in 4..7 {
        steps.push(model.next_token_logits(tokens(i..i + 1), &mut cache).into_data().iter::<f32>().collect());
    }
    let v = 40;
    let lengths = [4, 1, 1, 1];
    for b in 0..2 {
        let mut position = 0;
        for (step, &len) in steps.iter().zip(&lengths) {
            for i in 0..len {
                let cached = &step[(b * len + i) * v..(b * len + i + 1) * v];
                let expected = &full[(b * 7 + position) * v..(b * 7 + position + 1) * v];
                for (c, f) in cached.iter().zip(expected) {
                    assert!((f - c).abs() < 1e-4, "row {b}, position {position}: {f} vs {c}");
                }
                position += 1;
            }
        }
    }
}

#[test]
fn cached_forward_matches_the_full_forward() {
    cached_forward_matches_the_full_forward_on(&device());
}

/// The same on burn-wgpu (a software Vulkan device does): `cargo test --release --features
/// gpu --target-dir target/gpu cached_forward`.
#[cfg(feature = "gpu")]
#[test]
fn cached_forward_matches_the_full_forward_on_a_gpu() {
    let device = crate::engine::device::test_gpu();
    cached_forward_matches_the_full_forward_on(&device);
}

/// The masked-head attention computes what splitting the heads does ([B, H, T, hd], one
/// attention per head), forward and backward, on a batch with several heads.
#[test]
fn masked_head_attention_matches_split_heads() {
    let device = Device::flex().autodiff();
    let (batch, seq, n_heads, head_dim) = (3, 6, 4, 5);
    let d_model = n_heads * head_dim;
    let mut rng = Rng::new(11);
    let values: Vec<f32> = (0..batch * seq * 3 * d_model).map(|_| rng.normal()).collect();
    let input = || Tensor::<3>::from_data(TensorData::new(values.clone(), [batch, seq, 3 * d_model]), &device).require_grad();
    let scale = 1.0 / (head_dim as f32).sqrt();
    let weights: Vec<f32> = (0..batch * seq * d_model).map(|_| rng.normal()).collect();
    let weights = Tensor::<3>::from_data(TensorData::new(weights, [batch, seq, d_model]), &device);

    let qkv = input();
    let masked = masked_head_attention(qkv.clone(), n_heads, scale, Some(causal_bias(0, seq, &device)));
    let masked_grad = (masked.clone() * weights.clone()).sum().backward();

    let reference_qkv = input();
    let heads = |t: Tensor<3>| t.reshape([batch, seq, n_heads, head_dim]).swap_dims(1, 2);
    let parts: Vec<_> = reference_qkv.clone().chunk(3, 2).into_iter().map(heads).collect();
    let scores = parts[0].clone().matmul(parts[1].clone().swap_dims(2, 3)).mul_scalar(scale) + causal_bias(0, seq, &device);
    let reference = burn::tensor::activation::softmax(scores, 3).matmul(parts[2].clone()).swap_dims(1, 2).reshape([batch, seq, d_model]);
    let reference_grad = (reference.clone() * weights).sum().backward();

    let close = |a: Vec<f32>, b: Vec<f32>, what: &str| {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!((x - y).abs() < 1e-5, "{what}[{i}]: {x} vs {y}");
        }
    };
    close(read(masked), read(reference), "output");
    let grad = |t: &Tensor<3>, g| read(t.grad(g).expect("qkv has a gradient"));
    close(grad(&qkv, &masked_grad), grad(&reference_qkv, &reference_grad), "d output / d qkv");
}

#[test]
fn the_cpu_backend_is_not_launch_bound_with_or_without_autodiff() {
    assert!(!launches_dominate(&Device::flex()));
    assert!(!launches_dominate(&Device::flex().autodiff()));
}

/// The written-out LayerNorm and dense layer compute what burn's modules do, forward and
/// backward: the shipped checkpoints were trained with those.
#[test]
fn written_out_layer_norm_and_dense_match_burns_modules() {
    let device = Device::flex().autodiff();
    let mut rng = Rng::new(5);
    let d = 16;
    let x = normal_tensor([3, 5, d], 1.5, &mut rng, &device).add_scalar(0.7).require_grad();
    let weights = normal_tensor([3, 5, d], 1.0, &mut rng, &device);
    let mut norm = LayerNormConfig::new(d).init(&device);
    norm.gamma = Param::from_tensor(normal_tensor([d], 1.0, &mut rng, &device).require_grad());
    norm.beta = Some(Param::from_tensor(normal_tensor([d], 1.0, &mut rng, &device).require_grad()));
    let layer = linear(d, 2 * d, 0.3, &mut rng, &device);

    let grads_of = |out: Tensor<3>, w: &Tensor<3>| {
        let grads = (out * w.clone()).sum().backward();
        let read = |t: Option<Tensor<1>>| t.map(|t| t.into_data().iter::<f32>().collect::<Vec<f32>>()).unwrap_or_default();
        let input: Vec<f32> = x.grad(&grads).unwrap().into_data().iter::<f32>().collect();
        (input, read(norm.gamma.val().grad(&grads)), read(norm.beta.as_ref().unwrap().val().grad(&grads)))
    };
    let close = |a: &[f32], b: &[f32], what: &str| {
        assert_eq!(a.len(), b.len(), "{what}");
        let worst = a.iter().zip(b).map(|(p, q)| (p - q).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{what}: differs by {worst}");
    };
    let ours = layer_norm(&norm, x.clone());
    let theirs = norm.forward(x.clone());
    close(&read(ours.clone()), &read(theirs.clone()), "layer norm");
    let (a, b) = (grads_of(ours, &weights), grads_of(theirs, &weights));
    close(&a.0, &b.0, "∂/∂x");
    close(&a.1, &b.1, "∂/∂γ");
    close(&a.2, &b.2, "∂/∂β");

    let wide = weights.clone().repeat_dim(2, 2);
    let ours = dense(&layer, x.clone());
    let theirs = layer.forward(x.clone());
    close(&read(ours.clone()), &read(theirs.clone()), "dense");
    let input_grad = |out: Tensor<3>| -> Vec<f32> { x.grad(&(out * wide.clone()).sum().backward()).unwrap().into_data().iter::<f32>().collect() };
    close(&input_grad(ours), &input_grad(theirs), "dense ∂/∂x");
}

#[test]
fn same_seed_same_weights() {
    let config = Preset::Micro.model(40);
    let tokens = || Tensor::<2, Int>::from_data(TensorData::new(vec![1i32, 5, 7], [1, 3]), &device());
    let a = read(Gpt::new(&config, &mut Rng::new(9), &device()).forward(tokens()));
    let b = read(Gpt::new(&config, &mut Rng::new(9), &device()).forward(tokens()));
    assert_eq!(a, b);
}
