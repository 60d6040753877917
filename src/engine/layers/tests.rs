use super::*;
use burn::nn::LayerNormConfig;
use burn::tensor::activation;
use burn::tensor::{Distribution, TensorData};

fn assert_close<const D: usize>(ours: Tensor<D>, theirs: Tensor<D>, tolerance: f32, what: &str) {
    let a: Vec<f32> = ours.into_data().iter::<f32>().collect();
    let b: Vec<f32> = theirs.into_data().iter::<f32>().collect();
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst <= tolerance, "{what}: max |difference| {worst} > {tolerance}");
}

/// A random [2, 3, 8] input and a loss that weighs every output differently, so that no
/// gradient term cancels by symmetry.
fn input_and_weights(device: &Device) -> (Tensor<3>, Tensor<3>) {
    let x = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.5, 2.0), device);
    let w = Tensor::<3>::random([2, 3, 8], Distribution::Normal(0.0, 1.0), device);
    (x, w)
}

#[test]
fn layer_norm_matches_burns_forward_and_gradients() {
    let device = Device::flex().autodiff();
    let (x, w) = input_and_weights(&device);
    // γ and β away from 1 and 0, so that a term that forgets them shows.
    let mut norm = LayerNormConfig::new(8).init(&device);
    norm.gamma = burn::module::Param::from_tensor(Tensor::random([8], Distribution::Normal(1.0, 0.5), &device));
    norm.beta = Some(burn::module::Param::from_tensor(Tensor::random([8], Distribution::Normal(0.0, 0.5), &device)));
    let beta = norm.beta.as_ref().unwrap();

    let x_ours = x.clone().require_grad();
    let (gamma, beta_ours) = (norm.gamma.val(), beta.val());
    let ours = layer_norm(x_ours.clone(), gamma.clone(), beta_ours.clone(), 1e-5);
    let grads_ours = (ours.clone() * w.clone()).sum().backward();

    let x_theirs = x.require_grad();
    let theirs = norm.forward(x_theirs.clone());
    let grads_theirs = (theirs.clone() * w).sum().backward();

    assert_close(ours, theirs, 1e-5, "forward");
    assert_close(x_ours.grad(&grads_ours).unwrap(), x_theirs.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂x");
    assert_close(gamma.grad(&grads_ours).unwrap(), norm.gamma.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂γ");
    assert_close(beta_ours.grad(&grads_ours).unwrap(), beta.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂β");
}

#[test]
fn softmax_and_log_softmax_match_burns_forward_and_gradients() {
    let device = Device::flex().autodiff();
    let (x, w) = input_and_weights(&device);
    for (name, ours_fn, theirs_fn) in [
        ("softmax", softmax::<3> as fn(Tensor<3>) -> Tensor<3>, (|x| activation::softmax(x, 2)) as fn(Tensor<3>) -> Tensor<3>),
        ("log-softmax", log_softmax::<3>, |x| activation::log_softmax(x, 2)),
    ] {
        let x_ours = x.clone().require_grad();
        let ours = ours_fn(x_ours.clone());
        let grads_ours = (ours.clone() * w.clone()).sum().backward();
        let x_theirs = x.clone().require_grad();
        let theirs = theirs_fn(x_theirs.clone());
        let grads_theirs = (theirs.clone() * w.clone()).sum().backward();
        assert_close(ours, theirs, 1e-6, name);
        assert_close(x_ours.grad(&grads_ours).unwrap(), x_theirs.grad(&grads_theirs).unwrap(), 1e-5, name);
    }
}

#[test]
fn gelu_and_exp_match_burns_forward_and_gradients() {
    let device = Device::flex().autodiff();
    let (x, w) = input_and_weights(&device);
    for (name, ours_fn, theirs_fn) in [
        ("GELU", gelu::<3> as fn(Tensor<3>) -> Tensor<3>, activation::gelu as fn(Tensor<3>) -> Tensor<3>),
        ("exp", exp::<3>, |x: Tensor<3>| x.exp()),
    ] {
        let x_ours = x.clone().require_grad();
        let ours = ours_fn(x_ours.clone());
        let grads_ours = (ours.clone() * w.clone()).sum().backward();
        let x_theirs = x.clone().require_grad();
        let theirs = theirs_fn(x_theirs.clone());
        let grads_theirs = (theirs.clone() * w.clone()).sum().backward();
        // x ~ N(0.5, 2): e^x reaches ~e^7, so exp's tolerance is relative.
        let scale = theirs.clone().abs().max().into_scalar::<f32>().max(1.0);
        assert_close(ours, theirs, 1e-6 * scale, name);
        let grad_scale = x_theirs.grad(&grads_theirs).unwrap().abs().max().into_scalar::<f32>().max(1.0);
        assert_close(x_ours.grad(&grads_ours).unwrap(), x_theirs.grad(&grads_theirs).unwrap(), 1e-6 * grad_scale, name);
    }
}

#[test]
fn matmul_matches_burns_forward_and_gradients() {
    let device = Device::flex().autodiff();
    // Batched, with a transposed right side as the attention's scores take it.
    let a = Tensor::<3>::random([2, 5, 8], Distribution::Normal(0.0, 1.0), &device);
    let b = Tensor::<3>::random([2, 7, 8], Distribution::Normal(0.0, 1.0), &device);
    let w = Tensor::<3>::random([2, 5, 7], Distribution::Normal(0.0, 1.0), &device);
    let (a_ours, b_ours) = (a.clone().require_grad(), b.clone().require_grad());
    let ours = matmul(a_ours.clone(), b_ours.clone().swap_dims(1, 2));
    let grads_ours = (ours.clone() * w.clone()).sum().backward();
    let (a_theirs, b_theirs) = (a.require_grad(), b.require_grad());
    let theirs = a_theirs.clone().matmul(b_theirs.clone().swap_dims(1, 2));
    let grads_theirs = (theirs.clone() * w).sum().backward();
    assert_close(ours, theirs, 1e-5, "forward");
    assert_close(a_ours.grad(&grads_ours).unwrap(), a_theirs.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂A");
    assert_close(b_ours.grad(&grads_ours).unwrap(), b_theirs.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂B");
}

/// The CPU backend's head attention (`cpu::attention`, turned on for this test's thread)
/// against the heads composed from burn's operations, forward and ∂qkv; without it, `None`.
#[test]
fn head_attention_matches_the_composed_heads() {
    let device = Device::flex().autodiff();
    let (batch, seq, d_model, heads) = (2, 7, 12, 3);
    let scale = 1.0 / ((d_model / heads) as f32).sqrt();
    let qkv = Tensor::<3>::random([batch, seq, 3 * d_model], Distribution::Normal(0.0, 1.0), &device);
    let bias: Vec<f32> = (0..seq * seq).map(|i| if i % seq > i / seq { -1e9 } else { 0.0 }).collect();
    let bias = Tensor::<4>::from_data(TensorData::new(bias, [1, 1, seq, seq]), &device);
    let w = Tensor::<3>::random([batch, seq, d_model], Distribution::Normal(0.0, 1.0), &device);
    assert!(head_attention(qkv.clone(), bias.clone(), heads, scale).is_none(), "natively, the model composes it");

    crate::engine::cpu::attention::tests::NATIVE.with(|on| on.set(true));
    let ours_qkv = qkv.clone().require_grad();
    let ours = head_attention(ours_qkv.clone(), bias.clone(), heads, scale).expect("turned on");
    let grads_ours = (ours.clone() * w.clone()).sum().backward();
    let without_grad = head_attention(qkv.clone().inner(), bias.clone().inner(), heads, scale).expect("turned on");
    crate::engine::cpu::attention::tests::NATIVE.with(|on| on.set(false));

    let theirs_qkv = qkv.require_grad();
    let split = |t: Tensor<3>| t.reshape([batch, seq, heads, d_model / heads]).swap_dims(1, 2);
    let parts = theirs_qkv.clone().chunk(3, 2);
    let scores = split(parts[0].clone()).matmul(split(parts[1].clone()).swap_dims(2, 3)).mul_scalar(scale) + bias;
    let theirs = burn::tensor::activation::softmax(scores, 3).matmul(split(parts[2].clone())).swap_dims(1, 2).reshape([batch, seq, d_model]);
    let grads_theirs = (theirs.clone() * w).sum().backward();
    assert_close(ours, theirs.clone(), 1e-5, "forward");
    assert_close(without_grad, theirs.inner(), 1e-5, "forward without autodiff");
    assert_close(ours_qkv.grad(&grads_ours).unwrap(), theirs_qkv.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂qkv");
}

#[test]
#[should_panic(expected = "equal batch dimensions")]
fn matmul_refuses_broadcast_batches() {
    let device = Device::flex();
    let _ = matmul(Tensor::<3>::zeros([2, 3, 4], &device), Tensor::<3>::zeros([1, 4, 5], &device));
}

#[test]
fn target_log_probabilities_match_a_gathered_log_softmax() {
    let device = Device::flex().autodiff();
    let (x, _) = input_and_weights(&device);
    // Repeated targets in a row, so that the scatter must add rather than overwrite.
    let targets = Tensor::<2, Int>::from_data(TensorData::new(vec![0i32, 7, 7, 3, 3, 1], [2, 3]), &device);
    let w = Tensor::<2>::random([2, 3], Distribution::Normal(0.0, 1.0), &device);
    let x_ours = x.clone().require_grad();
    let ours = target_log_probabilities(x_ours.clone(), targets.clone());
    let grads_ours = (ours.clone() * w.clone()).sum().backward();
    let x_theirs = x.require_grad();
    let theirs = activation::log_softmax(x_theirs.clone(), 2).gather(2, targets.reshape([2, 3, 1])).reshape([2, 3]);
    let grads_theirs = (theirs.clone() * w).sum().backward();
    assert_close(ours, theirs, 1e-5, "forward");
    assert_close(x_ours.grad(&grads_ours).unwrap(), x_theirs.grad(&grads_theirs).unwrap(), 1e-5, "∂/∂z");
}

#[test]
fn target_log_probabilities_in_rows_and_in_operations_agree() {
    use burn::backend::flex::FlexTensor;
    use burn::backend::Flex;
    let floats = |t: FlexTensor| -> Vec<f32> { t.into_data().iter::<f32>().collect() };
    let worst = |a: Vec<f32>, b: Vec<f32>| a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let logits: Vec<f32> = (0..2 * 3 * 9).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.4).collect();
    let logits = || FlexTensor::from_data(TensorData::new(logits.clone(), [2, 3, 9]));
    let targets = || FlexTensor::from_data(TensorData::new(vec![0i64, 8, 8, 3, 3, 1], [2, 3, 1]));
    let grad = || FlexTensor::from_data(TensorData::new(vec![0.5f32, -1.0, 2.0, 0.25, -0.75, 1.5], [2, 3, 1]));
    let (picked_rows, p_rows) = <Flex as LayerOps>::target_log_probabilities_keeping_probabilities(logits(), targets());
    let (picked_ops, p_ops) = target_log_probabilities_keeping_in_operations::<Flex>(logits(), targets());
    assert!(worst(floats(picked_rows), floats(picked_ops.clone())) <= 1e-6, "picked");
    assert!(worst(floats(p_rows.clone()), floats(p_ops.clone())) <= 1e-6, "softmax");
    assert!(worst(floats(<Flex as LayerOps>::target_log_probabilities(logits(), targets())), floats(picked_ops)) <= 1e-6, "untracked");
    let d_rows = <Flex as LayerOps>::target_log_probabilities_gradient(p_rows, targets(), grad());
    let d_ops = target_log_probabilities_gradient_in_operations::<Flex>(p_ops, targets(), grad());
    assert!(worst(floats(d_rows), floats(d_ops)) <= 1e-6, "∂/∂z");
    // A target outside the classes is left to the operations (which fail as flex does).
    let outside = FlexTensor::from_data(TensorData::new(vec![0i64, 9, 8, 3, 3, 1], [2, 3, 1]));
    assert!(cpu::target_rows(&logits(), &outside).is_none());
}

#[test]
fn without_autodiff_the_forward_is_the_same() {
    let device = Device::flex();
    let (x, _) = input_and_weights(&device);
    assert_close(softmax(x.clone()), activation::softmax(x.clone(), 2), 1e-6, "softmax");
    assert_close(log_softmax(x.clone()), activation::log_softmax(x.clone(), 2), 1e-6, "log-softmax");
    assert_close(gelu(x.clone()), activation::gelu(x.clone()), 1e-6, "GELU");
    // A strided input (a transposed view) and a NaN: the CPU path copies it to rows first,
    // and NaN stays NaN.
    let transposed = x.clone().swap_dims(1, 2);
    assert_close(gelu(transposed.clone()), activation::gelu(transposed.clone()), 1e-6, "GELU of a view");
    assert_close(softmax(transposed.clone()), activation::softmax(transposed, 2), 1e-6, "softmax of a view");
    let with_nan = Tensor::<1>::from_floats([0.5, f32::NAN, -1.0], &device);
    let values: Vec<f32> = gelu(with_nan.clone()).into_data().iter::<f32>().collect();
    assert!(values[1].is_nan() && !values[0].is_nan(), "GELU of NaN: {values:?}");
    let values: Vec<f32> = exp(with_nan).into_data().iter::<f32>().collect();
    assert!(values[1].is_nan() && !values[0].is_nan(), "exp of NaN: {values:?}");
    let gamma = Tensor::<1>::random([8], Distribution::Normal(1.0, 0.5), &device);
    let beta = Tensor::<1>::random([8], Distribution::Normal(0.0, 0.5), &device);
    let mut norm = LayerNormConfig::new(8).init(&device);
    norm.gamma = burn::module::Param::from_tensor(gamma.clone());
    norm.beta = Some(burn::module::Param::from_tensor(beta.clone()));
    assert_close(layer_norm(x.clone(), gamma, beta, 1e-5), norm.forward(x), 1e-5, "layer norm");
}
