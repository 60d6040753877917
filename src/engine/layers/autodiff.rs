//! `LayerOps` under autodiff: each operation one node whose backward is written out, the
//! gradient in closed form (the formulas are on each node's `backward`).

use super::*;

#[derive(Debug)]
struct TargetLogProbabilitiesBackward;

impl<B: Backend + LayerOps> Backward<B, 1> for TargetLogProbabilitiesBackward {
    /// softmax(z) and the targets.
    type State = (FloatTensor<B>, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [logits_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = logits_node else { return };
        let (probabilities, targets) = ops.state;
        grads.register::<B>(node.id, B::target_log_probabilities_gradient(probabilities, targets, grad));
    }
}

#[derive(Debug)]
struct AttentionBackward;

impl<B: Backend + LayerOps> Backward<B, 1> for AttentionBackward {
    type State = AttentionState<B>;

    /// With P the probabilities, S the scores and dY the output's gradient (Y = P·V):
    /// dV = Pᵀ·dY, dP = dY·Vᵀ, dS = P ⊙ (dP − Σ_row dP ⊙ P) (the softmax's backward, per head),
    /// dQ = scale·dS·K, dK = scale·dSᵀ·Q; each repeated part's gradient is masked to its head
    /// and summed over the heads, and [dQ, dK, dV] is the gradient of qkv.
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [qkv_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = qkv_node else { return };
        let AttentionState { q, keys, values, probabilities, head_mask, scale } = ops.state;
        let shape = q.shape();
        let (batch, seq, d_model) = (shape[0], shape[1], shape[2]);
        let n_heads = head_mask.shape()[1];
        let per_head_back = |t: FloatTensor<B>| {
            let t = B::float_reshape(t, Shape::from(vec![batch, n_heads, seq, d_model]));
            B::float_reshape(B::float_sum_dim(B::float_mul(t, head_mask.clone()), 1), Shape::from(vec![batch, seq, d_model]))
        };
        let d_values = B::matrix_product(B::float_swap_dims(probabilities.clone(), 1, 2), grad.clone());
        let d_probabilities = B::matrix_product(grad, B::float_swap_dims(values, 1, 2));
        let by_head = Shape::from(vec![batch, seq, n_heads, seq]);
        let p = B::float_reshape(probabilities, by_head.clone());
        let dp = B::float_reshape(d_probabilities, by_head);
        let d_scores = B::float_mul_scalar(softmax_backward::<B>(p, dp, 3), scale.into());
        let d_scores = B::float_reshape(d_scores, Shape::from(vec![batch, seq, n_heads * seq]));
        let d_q = B::matrix_product(d_scores.clone(), keys);
        let d_keys = B::matrix_product(B::float_swap_dims(d_scores, 1, 2), q);
        let d_qkv = B::float_cat(vec![d_q, per_head_back(d_keys), per_head_back(d_values)], 2);
        grads.register::<B>(node.id, d_qkv);
    }
}

#[derive(Debug)]
struct LayerNormBackward;

impl<B: Backend + LayerOps> Backward<B, 3> for LayerNormBackward {
    /// x̂, r and γ.
    type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

    /// `LayerOps::layer_norm_gradients`: on the CPU backend one pass per row
    /// (`cpu::math::layer_norm_backward_rows`), elsewhere `layer_norm_gradients_in_operations`.
    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (normalized, inverse_std, gamma) = ops.state;
        let (d_x, d_gamma, d_beta) = B::layer_norm_gradients(grad, normalized, inverse_std, gamma, [x_node.is_some(), gamma_node.is_some(), beta_node.is_some()]);
        for (node, gradient) in [(x_node, d_x), (gamma_node, d_gamma), (beta_node, d_beta)] {
            if let (Some(node), Some(gradient)) = (node, gradient) {
                grads.register::<B>(node.id, gradient);
            }
        }
    }
}

#[derive(Debug)]
struct SoftmaxBackward;

impl<B: Backend> Backward<B, 1> for SoftmaxBackward {
    /// y = softmax(x).
    type State = FloatTensor<B>;

    /// ∂L/∂x = y·(∂L/∂y − Σ_j ∂L/∂y_j·y_j) (`softmax_backward`).
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = x_node else { return };
        let output = ops.state;
        let last = last_dim::<B>(&output);
        grads.register::<B>(node.id, softmax_backward::<B>(output, grad, last));
    }
}

#[derive(Debug)]
struct LogSoftmaxBackward;

impl<B: Backend + LayerOps> Backward<B, 1> for LogSoftmaxBackward {
    /// y = log softmax(x).
    type State = FloatTensor<B>;

    /// ∂L/∂x = ∂L/∂y − exp(y)·Σ_j ∂L/∂y_j.
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = x_node else { return };
        let output = ops.state;
        let last = last_dim::<B>(&output);
        let total = B::float_sum_dim(grad.clone(), last);
        grads.register::<B>(node.id, B::float_sub(grad, B::float_mul(B::exp_elementwise(output), total)));
    }
}

#[derive(Debug)]
struct ExpBackward;

impl<B: Backend> Backward<B, 1> for ExpBackward {
    /// y = e^x.
    type State = FloatTensor<B>;

    /// ∂L/∂x = ∂L/∂y·e^x = ∂L/∂y·y.
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = x_node else { return };
        grads.register::<B>(node.id, B::float_mul(grad, ops.state));
    }
}

#[derive(Debug)]
struct GeluBackward;

/// What a GELU keeps for its backward: GELU'(x) where the forward computed it, else x.
#[derive(Debug, Clone)]
enum GeluState<B: Backend> {
    Derivative(FloatTensor<B>),
    Input(FloatTensor<B>),
}

impl<B: Backend + LayerOps> Backward<B, 1> for GeluBackward {
    type State = GeluState<B>;

    /// ∂L/∂x = ∂L/∂y·(Φ(x) + x·φ(x)).
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = x_node else { return };
        let grad_x = match ops.state {
            GeluState::Derivative(derivative) => B::float_mul(grad, derivative),
            GeluState::Input(x) => B::gelu_elementwise_backward(x, grad),
        };
        grads.register::<B>(node.id, grad_x);
    }
}

#[derive(Debug)]
struct MatrixProductBackward;

impl<B: Backend + LayerOps> Backward<B, 2> for MatrixProductBackward {
    /// lhs, rhs.
    type State = (FloatTensor<B>, FloatTensor<B>);

    /// For Y = A·B: ∂L/∂A = ∂L/∂Y·Bᵀ, ∂L/∂B = Aᵀ·∂L/∂Y (per batch index).
    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [lhs_node, rhs_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (lhs, rhs) = ops.state;
        let rank = grad.shape().num_dims();
        if let Some(node) = lhs_node {
            grads.register::<B>(node.id, B::matrix_product(grad.clone(), B::float_swap_dims(rhs, rank - 2, rank - 1)));
        }
        if let Some(node) = rhs_node {
            grads.register::<B>(node.id, B::matrix_product(B::float_swap_dims(lhs, rank - 2, rank - 1), grad));
        }
    }
}

#[derive(Debug)]
struct HeadAttentionBackward;

impl<B: Backend + LayerOps> Backward<B, 1> for HeadAttentionBackward {
    /// qkv, the probabilities, the number of heads and the scale.
    type State = (FloatTensor<B>, FloatTensor<B>, usize, f32);

    /// `LayerOps::head_attention_gradient` (`cpu::attention::backward` has the formulas).
    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [qkv_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let Some(node) = qkv_node else { return };
        let (qkv, probabilities, n_heads, scale) = ops.state;
        let d_qkv = B::head_attention_gradient(qkv, probabilities, grad, n_heads, scale).expect("the backend that kept the probabilities differentiates them");
        grads.register::<B>(node.id, d_qkv);
    }
}

impl<B: Backend + LayerOps, C: CheckpointStrategy> LayerOps for Autodiff<B, C> {
    fn head_attention(qkv: FloatTensor<Self>, bias: FloatTensor<Self>, n_heads: usize, scale: f32) -> Option<FloatTensor<Self>> {
        // The bias is a constant: only qkv is differentiated.
        let bias = bias.into_primitive();
        match HeadAttentionBackward.prepare::<C>([qkv.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let qkv = qkv.into_primitive();
                let (y, probabilities) = B::head_attention_keeping_probabilities(qkv.clone(), bias, n_heads, scale)?;
                Some(prep.finish((qkv, probabilities, n_heads, scale), y))
            }
            OpsKind::UnTracked(prep) => Some(prep.finish(B::head_attention(qkv.into_primitive(), bias, n_heads, scale)?)),
        }
    }

    fn matrix_product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        match MatrixProductBackward.prepare::<C>([lhs.node(), rhs.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (lhs, rhs) = (lhs.into_primitive(), rhs.into_primitive());
                prep.finish((lhs.clone(), rhs.clone()), B::matrix_product(lhs, rhs))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::matrix_product(lhs.into_primitive(), rhs.into_primitive())),
        }
    }

    fn exp_elementwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match ExpBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::exp_elementwise(x.into_primitive());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::exp_elementwise(x.into_primitive())),
        }
    }

    fn gelu_elementwise(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match GeluBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let x = x.into_primitive();
                let (output, derivative) = B::gelu_keeping_derivative(x.clone());
                let state = match derivative {
                    Some(derivative) => GeluState::Derivative(derivative),
                    None => GeluState::Input(x),
                };
                prep.finish(state, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::gelu_elementwise(x.into_primitive())),
        }
    }

    fn layer_norm_last(x: FloatTensor<Self>, gamma: FloatTensor<Self>, beta: FloatTensor<Self>, epsilon: f32) -> FloatTensor<Self> {
        match LayerNormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let gamma = gamma.into_primitive();
                let (output, normalized, inverse_std) = B::layer_norm_keeping_parts(x.into_primitive(), gamma.clone(), beta.into_primitive(), epsilon);
                prep.finish((normalized, inverse_std, gamma), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::layer_norm_last(x.into_primitive(), gamma.into_primitive(), beta.into_primitive(), epsilon)),
        }
    }

    fn softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match SoftmaxBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::softmax_last(x.into_primitive());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::softmax_last(x.into_primitive())),
        }
    }

    fn masked_head_attention(qkv: FloatTensor<Self>, head_mask: FloatTensor<Self>, causal_bias: FloatTensor<Self>, scale: f32) -> FloatTensor<Self> {
        // The mask and the bias are constants: only qkv is differentiated.
        let (head_mask, causal_bias) = (head_mask.into_primitive(), causal_bias.into_primitive());
        match AttentionBackward.prepare::<C>([qkv.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let parts = attention_forward::<B>(qkv.into_primitive(), head_mask, causal_bias, scale);
                prep.finish(parts.state, parts.output)
            }
            OpsKind::UnTracked(prep) => prep.finish(attention_forward::<B>(qkv.into_primitive(), head_mask, causal_bias, scale).output),
        }
    }

    fn target_log_probabilities(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        match TargetLogProbabilitiesBackward.prepare::<C>([logits.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (picked, probabilities) = B::target_log_probabilities_keeping_probabilities(logits.into_primitive(), targets.clone());
                prep.finish((probabilities, targets), picked)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::target_log_probabilities(logits.into_primitive(), targets)),
        }
    }

    fn log_softmax_last(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match LogSoftmaxBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let output = B::log_softmax_last(x.into_primitive());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::log_softmax_last(x.into_primitive())),
        }
    }
}
