//! `LayerOps` on the CPU backend: `cpu::math`'s row loops and vectorized exp and erf, the page's
//! matrix product (`cpu::matmul`) and attention (`cpu::attention`), each falling back to the
//! operations where a tensor does not fit (another dtype, a broadcast).

use super::*;

/// The CPU backend runs a LayerNorm and the LM loss's target log-probabilities as row loops of
/// their own, and exp, GELU and the softmaxes with `cpu::math`'s vectorized exp and erf (flex
/// computes them one float at a time).
impl LayerOps for burn::backend::Flex {
    fn layer_norm_last(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
        <Self as burn::backend::ops::ModuleOps<Self>>::layer_norm(x, gamma, Some(beta), f64::from(epsilon))
    }

    fn layer_norm_keeping_parts(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let Some((rows_shape, width)) = flex_f32::rows_of(&x, &[&gamma, &beta]) else {
            return layer_norm_forward::<Self>(x, gamma, beta, epsilon).into_tuple();
        };
        let (x, gamma, beta) = (x.to_contiguous(), gamma.to_contiguous(), beta.to_contiguous());
        let n = x.layout().num_elements();
        let (mut output, mut normalized, mut inverse_std) = (vec![0.0; n], vec![0.0; n], vec![0.0; n / width]);
        crate::engine::cpu::math::layer_norm_rows(flex_f32::floats(&x), flex_f32::floats(&gamma), flex_f32::floats(&beta), epsilon, &mut output, &mut normalized, &mut inverse_std);
        let shape = x.layout().shape().clone();
        (flex_f32::f32_tensor(output, shape.clone()), flex_f32::f32_tensor(normalized, shape), flex_f32::f32_tensor(inverse_std, rows_shape))
    }

    fn layer_norm_gradients(grad: FloatTensor<Self>, normalized: FloatTensor<Self>, inverse_std: FloatTensor<Self>, gamma: FloatTensor<Self>, wanted: [bool; 3]) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        let fits = flex_f32::rows_of(&grad, &[&gamma]).is_some_and(|(rows_shape, _)| grad.layout().shape() == normalized.layout().shape() && *inverse_std.layout().shape() == rows_shape && inverse_std.dtype() == grad.dtype() && normalized.dtype() == grad.dtype());
        if !fits {
            return layer_norm_gradients_in_operations::<Self>(grad, normalized, inverse_std, gamma, wanted);
        }
        let (grad, normalized, inverse_std, gamma) = (grad.to_contiguous(), normalized.to_contiguous(), inverse_std.to_contiguous(), gamma.to_contiguous());
        let (n, width) = (grad.layout().num_elements(), gamma.layout().num_elements());
        let (mut d_x, mut d_gamma, mut d_beta) = (vec![0.0; n], vec![0.0; width], vec![0.0; width]);
        crate::engine::cpu::math::layer_norm_backward_rows(flex_f32::floats(&grad), flex_f32::floats(&normalized), flex_f32::floats(&inverse_std), flex_f32::floats(&gamma), &mut d_x, &mut d_gamma, &mut d_beta);
        let [want_x, want_gamma, want_beta] = wanted;
        let vector = Shape::from(vec![width]);
        (
            want_x.then(|| flex_f32::f32_tensor(d_x, grad.layout().shape().clone())),
            want_gamma.then(|| flex_f32::f32_tensor(d_gamma, vector.clone())),
            want_beta.then(|| flex_f32::f32_tensor(d_beta, vector)),
        )
    }

    fn exp_elementwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        flex_f32::map(x, crate::engine::cpu::math::exp_slice).unwrap_or_else(Self::float_exp)
    }

    /// In the page `cpu::matmul`'s kernel; natively flex's product, which has AVX2 and FMA.
    fn matrix_product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        #[cfg(target_arch = "wasm32")]
        if let Some(kernel) = crate::engine::cpu::matmul::active() {
            return crate::engine::cpu::matmul::matmul(lhs, rhs, kernel).unwrap_or_else(|(lhs, rhs)| Self::float_matmul(lhs, rhs));
        }
        Self::float_matmul(lhs, rhs)
    }

    /// `cpu::attention`, where the page's matrix product runs (`cpu::attention::kernel`).
    fn head_attention_keeping_probabilities(qkv: FloatTensor<Self>, bias: FloatTensor<Self>, n_heads: usize, scale: f32) -> Option<(FloatTensor<Self>, FloatTensor<Self>)> {
        let kernel = crate::engine::cpu::attention::kernel()?;
        let (q_shape, b_shape) = (qkv.layout().shape().clone(), bias.layout().shape().clone());
        let fits = qkv.dtype() == burn::tensor::DType::F32 && bias.dtype() == qkv.dtype() && q_shape.num_dims() == 3 && n_heads > 0 && q_shape[2] % (3 * n_heads) == 0 && b_shape.as_slice() == [1, 1, q_shape[1], q_shape[1]];
        if !fits || q_shape.num_elements() == 0 {
            return None;
        }
        let heads = crate::engine::cpu::attention::Heads { batch: q_shape[0], seq: q_shape[1], d_model: q_shape[2] / 3, heads: n_heads };
        let (qkv, bias) = (qkv.to_contiguous(), bias.to_contiguous());
        let (y, probabilities) = crate::engine::cpu::attention::forward(flex_f32::floats(&qkv), flex_f32::floats(&bias), heads, scale, kernel);
        let (batch, seq, d_model) = (heads.batch, heads.seq, heads.d_model);
        Some((flex_f32::f32_tensor(y, Shape::from(vec![batch, seq, d_model])), flex_f32::f32_tensor(probabilities, Shape::from(vec![batch, n_heads, seq, seq]))))
    }

    fn head_attention_gradient(qkv: FloatTensor<Self>, probabilities: FloatTensor<Self>, grad: FloatTensor<Self>, n_heads: usize, scale: f32) -> Option<FloatTensor<Self>> {
        // The forward kept the probabilities: the backward runs whatever product is chosen now
        // (the core's own if the page changed its choice in between).
        let kernel = crate::engine::cpu::attention::kernel().unwrap_or_else(crate::engine::cpu::matmul::separate_mul_add);
        let shape = qkv.layout().shape().clone();
        let heads = crate::engine::cpu::attention::Heads { batch: shape[0], seq: shape[1], d_model: shape[2] / 3, heads: n_heads };
        let (qkv, probabilities, grad) = (qkv.to_contiguous(), probabilities.to_contiguous(), grad.to_contiguous());
        let d_qkv = crate::engine::cpu::attention::backward(flex_f32::floats(&qkv), flex_f32::floats(&probabilities), flex_f32::floats(&grad), heads, scale, kernel);
        Some(flex_f32::f32_tensor(d_qkv, shape))
    }

    fn gelu_elementwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        flex_f32::map(x, crate::engine::cpu::math::gelu_slice).unwrap_or_else(Self::gelu)
    }

    fn gelu_keeping_derivative(x: FloatTensor<Self>) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        match flex_f32::map_to_two(x, crate::engine::cpu::math::gelu_with_derivative_slice) {
            Ok((output, derivative)) => (output, Some(derivative)),
            Err(x) => (Self::gelu(x), None),
        }
    }

    fn gelu_elementwise_backward(x: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        flex_f32::map2(x, grad, crate::engine::cpu::math::gelu_backward_slice).unwrap_or_else(|(x, grad)| Self::gelu_backward(x, grad))
    }

    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let width = x.shape()[last_dim::<Self>(&x)];
        flex_f32::map(x, |input, output| crate::engine::cpu::math::softmax_rows(input, width, output)).unwrap_or_else(|x| {
            let last = last_dim::<Self>(&x);
            Self::softmax(x, last)
        })
    }

    fn log_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let width = x.shape()[last_dim::<Self>(&x)];
        flex_f32::map(x, |input, output| crate::engine::cpu::math::log_softmax_rows(input, width, output)).unwrap_or_else(|x| {
            let last = last_dim::<Self>(&x);
            Self::log_softmax(x, last)
        })
    }

    fn target_log_probabilities(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        let Some((rows_shape, width, indices)) = target_rows(&logits, &targets) else {
            return target_log_probabilities_forward::<Self>(logits, targets).0;
        };
        let logits = logits.to_contiguous();
        let mut picked = vec![0.0; indices.len()];
        crate::engine::cpu::math::target_log_softmax_rows(flex_f32::floats(&logits), width, &indices, &mut picked, None);
        flex_f32::f32_tensor(picked, rows_shape)
    }

    fn target_log_probabilities_keeping_probabilities(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let Some((rows_shape, width, indices)) = target_rows(&logits, &targets) else {
            return target_log_probabilities_keeping_in_operations::<Self>(logits, targets);
        };
        let logits = logits.to_contiguous();
        let (mut picked, mut probabilities) = (vec![0.0; indices.len()], vec![0.0; logits.layout().num_elements()]);
        crate::engine::cpu::math::target_log_softmax_rows(flex_f32::floats(&logits), width, &indices, &mut picked, Some(&mut probabilities));
        (flex_f32::f32_tensor(picked, rows_shape), flex_f32::f32_tensor(probabilities, logits.layout().shape().clone()))
    }

    fn target_log_probabilities_gradient(probabilities: FloatTensor<Self>, targets: IntTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        let fits = target_rows(&probabilities, &targets).filter(|(rows_shape, _, _)| grad.dtype() == probabilities.dtype() && grad.layout().shape() == rows_shape);
        let Some((_, width, indices)) = fits else {
            return target_log_probabilities_gradient_in_operations::<Self>(probabilities, targets, grad);
        };
        let (probabilities, grad) = (probabilities.to_contiguous(), grad.to_contiguous());
        let mut d_logits = vec![0.0; probabilities.layout().num_elements()];
        crate::engine::cpu::math::target_log_softmax_backward_rows(flex_f32::floats(&probabilities), width, &indices, flex_f32::floats(&grad), &mut d_logits);
        flex_f32::f32_tensor(d_logits, probabilities.layout().shape().clone())
    }
}

/// For the CPU backend's row loops over logits [.., V] and targets [.., 1]: the rows' shape
/// [.., 1], V and the targets as indices, where the logits hold f32s and every target is a
/// class; `None`: the caller runs the operations (which fail as flex does on a bad target).
pub(super) fn target_rows(logits: &burn::backend::flex::FlexTensor, targets: &burn::backend::flex::FlexTensor) -> Option<(Shape, usize, Vec<usize>)> {
    let (rows_shape, width) = flex_f32::rows_of(logits, &[])?;
    let indices = flex_f32::indices(targets).filter(|indices| targets.layout().shape() == &rows_shape && indices.iter().all(|&y| y < width))?;
    Some((rows_shape, width, indices))
}
