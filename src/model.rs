//! The GPT, from the smallest part to the whole (as nanoGPT's `model.py` reads):
//! causal self-attention → MLP → block → GPT → scalar head.
//!
//! GPT-2 in miniature: token and position embeddings, pre-LayerNorm blocks, a final LayerNorm,
//! an LM head tied to the token embedding (Radford et al., 2019). The same trunk with a scalar
//! head is the reward model and the value model.
//!
//! Weights are drawn on the host (`rng.rs`) and uploaded, so a seed gives the same model on
//! WebGPU and on the CPU backend.

use burn::module::Param;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::prelude::*;
use burn::tensor::module::embedding;
use burn::tensor::TensorData;

use crate::config::ModelConfig;
use crate::layers::softmax;
use crate::rng::Rng;

/// GPT-2's initial scale for every weight matrix.
const INIT_STD: f32 = 0.02;
/// Tokens a model never writes (they mark structure, not text).
const NEVER_WRITTEN: [u32; 3] = [crate::task::PAD, crate::task::BOS, crate::task::UNK];
/// Added to masked attention scores: far below any real score, but finite (WGSL need not
/// support infinities).
const MASKED_SCORE: f32 = -1e9;

fn normal_tensor<const D: usize>(shape: [usize; D], std: f32, rng: &mut Rng, device: &Device) -> Tensor<D> {
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.normal() * std).collect();
    Tensor::from_data(TensorData::new(values, shape), device)
}

fn linear(d_input: usize, d_output: usize, std: f32, rng: &mut Rng, device: &Device) -> Linear {
    Linear {
        weight: Param::from_tensor(normal_tensor([d_input, d_output], std, rng, device)),
        bias: Some(Param::from_tensor(Tensor::zeros([d_output], device))),
    }
}

/// Additive causal mask for a block of `len` new positions after `past` cached ones:
/// 0 where query i may see key j (j ≤ past + i), a large negative number elsewhere. Made on the
/// host and uploaded: no kernel launches.
fn causal_bias(past: usize, len: usize, device: &Device) -> Tensor<4> {
    causal_bias_over(past, len, past + len, device)
}

/// The same mask over `keys` key positions, `keys` ≥ past + len: positions beyond the last
/// query's are masked too (a KV cache's buffer not yet written).
fn causal_bias_over(past: usize, len: usize, keys: usize, device: &Device) -> Tensor<4> {
    let mut values = vec![0.0f32; len * keys];
    for i in 0..len {
        for j in past + i + 1..keys {
            values[i * keys + j] = MASKED_SCORE;
        }
    }
    Tensor::from_data(TensorData::new(values, [1, 1, len, keys]), device)
}

/// x·W + b over the last dimension of [batch, seq, d_in]: one 2-D matmul, then a broadcast add.
///
/// burn's `Linear::forward` is a single module operation that its fusion cannot look into, so
/// its bias add ran as a kernel of its own. Written out, the add fuses with what follows it
/// (the residual, GELU) into one elementwise kernel.
fn dense(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [batch, seq, d_in] = x.dims();
    let weight = layer.weight.val();
    let d_out = weight.dims()[1];
    let y = crate::layers::matmul(x.reshape([batch * seq, d_in]), weight).reshape([batch, seq, d_out]);
    match &layer.bias {
        Some(bias) => y + bias.val().reshape([1, 1, d_out]),
        None => y,
    }
}

/// `LayerNormConfig`'s default ε, which every LayerNorm of the model is made with.
const LAYER_NORM_EPSILON: f32 = 1e-5;

/// LayerNorm over the last dimension (Ba et al., 2016): (x − μ)/√(σ² + ε)·γ + β, σ² the biased
/// variance, as `burn::nn::LayerNorm::forward` computes it, with its gradient written out
/// (`layers::layer_norm`).
///
/// burn's module is one operation that its fusion cannot look into, and written out in tensor
/// operations its backward was 28 kernel launches on burn-wgpu; `layers` keeps the forward in
/// fusible operations and gives autodiff one node with the closed-form backward.
fn layer_norm(norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
    let (gamma, beta) = norm_parameters(norm, &x.device());
    crate::layers::layer_norm(x, gamma, beta, LAYER_NORM_EPSILON)
}

/// Keys and values of earlier positions, one entry per block, for autoregressive generation.
///
/// Each block's keys and values live in one [batch, heads, context, head_dim] buffer allocated
/// at the first call: a new position is written in place (one slice-assign) and attention runs
/// over the whole buffer with the positions not yet written masked out. Growing the cache by
/// concatenation instead copied it at every token.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    /// Positions already cached.
    pub len: usize,
    /// Positions the buffers hold: the model's context length.
    capacity: usize,
}

impl KvCache {
    pub fn new(model: &Gpt) -> Self {
        Self { layers: (0..model.n_layers()).map(|_| None).collect(), len: 0, capacity: model.context_length() }
    }
}

/// Where a block's attention reads and writes the cache: its buffers, and how many positions
/// they already hold.
struct CacheSlot<'a> {
    buffers: &'a mut Option<(Tensor<4>, Tensor<4>)>,
    past: usize,
    capacity: usize,
}

impl CacheSlot<'_> {
    /// Writes the new positions' keys and values, [B, H, T, hd], after the `past` cached ones;
    /// returns the whole buffers, [B, H, capacity, hd].
    fn write(self, k: Tensor<4>, v: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let [batch, n_heads, seq, head_dim] = k.dims();
        let (past, capacity) = (self.past, self.capacity);
        let (keys, values) = self.buffers.take().unwrap_or_else(|| {
            let zeros = || Tensor::zeros([batch, n_heads, capacity, head_dim], &k.device());
            (zeros(), zeros())
        });
        let written = [0..batch, 0..n_heads, past..past + seq, 0..head_dim];
        let keys = keys.slice_assign(written.clone(), k);
        let values = values.slice_assign(written, v);
        *self.buffers = Some((keys.clone(), values.clone()));
        (keys, values)
    }
}

/// Multi-head causal self-attention with one fused QKV projection.
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// d_model → 3·d_model: queries, keys and values in one matmul.
    qkv: Linear,
    /// Heads back into the residual stream.
    proj: Linear,
    n_heads: usize,
}

impl CausalSelfAttention {
    fn new(config: &ModelConfig, rng: &mut Rng, device: &Device) -> Self {
        let d = config.d_model;
        // GPT-2 scales residual projections by 1/√(2·n_layers) so the stream's variance does not
        // grow with depth.
        let residual_std = INIT_STD / (2.0 * config.n_layers as f32).sqrt();
        Self { qkv: linear(d, 3 * d, INIT_STD, rng, device), proj: linear(d, d, residual_std, rng, device), n_heads: config.n_heads }
    }

    /// # Shapes
    /// - `x`: [batch, seq, d_model] — the new positions only when a cache is given
    /// - returns [batch, seq, d_model]
    fn forward(&self, x: Tensor<3>, bias: Option<Tensor<4>>, cache: Option<CacheSlot>) -> Tensor<3> {
        let [batch, seq, d_model] = x.dims();
        let head_dim = d_model / self.n_heads;
        let qkv = dense(&self.qkv, x); // [B, T, 3D]
        let n_heads = self.n_heads;
        let scale = 1.0 / (head_dim as f32).sqrt();
        if cache.is_none() && launches_dominate(&qkv.device()) {
            return dense(&self.proj, masked_head_attention(qkv, n_heads, scale, bias));
        }
        // The CPU backend in the page runs the heads on strided views of qkv (`cpu_attention`).
        if let (None, Some(bias)) = (&cache, &bias)
            && let Some(y) = crate::layers::head_attention(qkv.clone(), bias.clone(), n_heads, scale)
        {
            return dense(&self.proj, y);
        }
        let (q, mut k, mut v) = if seq == 1 {
            let [q, k, v] = one_position_heads(qkv, n_heads);
            (q, k, v)
        } else {
            let heads = |t: Tensor<3>| t.reshape([batch, seq, n_heads, head_dim]).swap_dims(1, 2); // [B, H, T, hd]
            let mut parts = qkv.chunk(3, 2).into_iter();
            (heads(parts.next().unwrap()), heads(parts.next().unwrap()), heads(parts.next().unwrap()))
        };
        if let Some(slot) = cache {
            (k, v) = slot.write(k, v);
        }
        let mut scores = crate::layers::matmul(q, k.swap_dims(2, 3)).mul_scalar(scale); // [B, H, T, T_keys]
        if let Some(bias) = bias {
            scores = scores + bias;
        }
        let attention = softmax(scores);
        let y = crate::layers::matmul(attention, v); // [B, H, T, hd]
        // Heads back side by side, [B, T, D]. For one position (generation) [B, H, 1, hd] is
        // already that in memory: a reshape, where the transpose would cost a copy kernel.
        let y = match seq {
            1 => y.reshape([batch, 1, d_model]),
            _ => y.swap_dims(1, 2).reshape([batch, seq, d_model]),
        };
        dense(&self.proj, y)
    }

    /// One new position's attention on a GPU: its keys and values into the cache, then one
    /// kernel over the cache (`kernels::cached_attention`).
    ///
    /// # Shapes
    /// - `qkv`: [batch, 1, 3·d_model] → [batch, 1, d_model]
    fn attend_one_position(&self, qkv: Tensor<3>, slot: CacheSlot) -> Tensor<3> {
        let n_heads = self.n_heads;
        let head_dim = qkv.dims()[2] / 3 / n_heads;
        let length = slot.past + 1;
        let [_, k, v] = one_position_heads(qkv.clone(), n_heads);
        let (keys, values) = slot.write(k, v);
        crate::kernels::cached_attention(qkv, keys, values, length, 1.0 / (head_dim as f32).sqrt())
    }
}

/// One position's q, k and v heads, each [B, H, 1, hd]: its qkv [B, 1, 3D] is [B, 3H, 1, hd] in
/// memory, and they are slices of it, where the transpose of the general case would cost copies.
fn one_position_heads(qkv: Tensor<3>, n_heads: usize) -> [Tensor<4>; 3] {
    let [batch, _, width] = qkv.dims();
    let head_dim = width / 3 / n_heads;
    let all = qkv.reshape([batch, 3 * n_heads, 1, head_dim]);
    [0, 1, 2].map(|i| all.clone().slice([0..batch, i * n_heads..(i + 1) * n_heads]))
}

/// Whether a step's time on `device` goes to launching kernels rather than to arithmetic: on
/// a GPU (WebGPU, burn-wgpu) each launch costs the same whatever its size (~6 ms on the
/// SwiftShader of headless Chromium), so fewer, larger kernels win; on the CPU backend the
/// arithmetic is the cost. The full-sequence attention is formulated accordingly (see
/// `masked_head_attention`).
fn launches_dominate(device: &Device) -> bool {
    // Device equality ignores autodiff: an autodiff CPU device is the CPU backend too.
    *device != Device::flex()
}

/// Causal attention of every head at once without splitting the heads apart.
///
/// Head h sees only its own dimensions: its scores are q_h·k_hᵀ, and q_h·k_hᵀ = q·(k ⊙ m_h)ᵀ for
/// the 0/1 mask m_h of those dimensions. So the keys are repeated once per head with the other
/// heads' dimensions zeroed, [B, H·T, D], and one matmul gives every head's scores,
/// [B, T, H·T]. The values are repeated and masked the same way, so the second matmul sums the
/// heads' outputs into their own dimensions of [B, T, D] directly. The usual layout,
/// [B, H, T, hd], costs a transpose (a copy kernel) for each of q, k, v and y, forward and
/// backward; this costs two masked products and H times the attention's multiply-adds. On
/// burn-wgpu (lavapipe) a training step of the tiny GPT launches 342 kernels instead of 366; on
/// the CPU backend, where those multiply-adds are the cost, the split heads stay.
///
/// # Shapes
/// - `qkv`: [batch, seq, 3·d_model]; `bias`: [1, 1, seq, seq] → [batch, seq, d_model]
fn masked_head_attention(qkv: Tensor<3>, n_heads: usize, scale: f32, bias: Option<Tensor<4>>) -> Tensor<3> {
    let [_, seq, width] = qkv.dims();
    let d_model = width / 3;
    let head_dim = d_model / n_heads;
    let mask: Vec<f32> = (0..n_heads).flat_map(|h| (0..d_model).map(move |d| if d / head_dim == h { 1.0 } else { 0.0 })).collect();
    let mask = Tensor::<4>::from_data(TensorData::new(mask, [1, n_heads, 1, d_model]), &qkv.device());
    // The causal bias [1, 1, T, T] is [1, T, 1, T] in memory: the query, then the key.
    let bias = match bias {
        Some(bias) => bias.reshape([1, seq, 1, seq]),
        None => Tensor::zeros([1, seq, 1, seq], &qkv.device()),
    };
    // One operation with its gradient written out (`layers`): q, k and v, and the keys and
    // values repeated per head with the others' dimensions zeroed, [B, H·T, D]; the scores
    // q·kᵀ per head side by side, [B, T, H·T]; their softmax times the values.
    crate::layers::masked_head_attention(qkv, mask, bias, scale)
}

/// The position-wise MLP: d → 4d → GELU → d.
#[derive(Module, Debug)]
pub struct Mlp {
    fc: Linear,
    proj: Linear,
}

impl Mlp {
    fn new(config: &ModelConfig, rng: &mut Rng, device: &Device) -> Self {
        let d = config.d_model;
        let hidden = config.mlp_ratio * d;
        let residual_std = INIT_STD / (2.0 * config.n_layers as f32).sqrt();
        Self { fc: linear(d, hidden, INIT_STD, rng, device), proj: linear(hidden, d, residual_std, rng, device) }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        dense(&self.proj, crate::layers::gelu(dense(&self.fc, x)))
    }
}

/// A pre-LayerNorm transformer block: x + attn(ln1(x)), then + mlp(ln2(·)).
#[derive(Module, Debug)]
pub struct Block {
    ln_1: LayerNorm,
    attn: CausalSelfAttention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(config: &ModelConfig, rng: &mut Rng, device: &Device) -> Self {
        Self {
            ln_1: LayerNormConfig::new(config.d_model).init(device),
            attn: CausalSelfAttention::new(config, rng, device),
            ln_2: LayerNormConfig::new(config.d_model).init(device),
            mlp: Mlp::new(config, rng, device),
        }
    }

    fn forward(&self, x: Tensor<3>, bias: Option<Tensor<4>>, cache: Option<CacheSlot>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(layer_norm(&self.ln_1, x), bias, cache);
        x.clone() + self.mlp.forward(layer_norm(&self.ln_2, x))
    }

    /// One new position on a GPU, the block as five kernels and the cache write: LayerNorm and
    /// the QKV projection, the attention over the cache, the output projection with the
    /// residual, LayerNorm with the MLP's first layer and GELU, its second layer with the
    /// residual (`kernels`). A whole token of the tiny GPT (two blocks, the LM head, sampling)
    /// took 57.65 launches on burn-wgpu composed of burn's operations, and takes 21.95 so.
    fn forward_one_position(&self, x: Tensor<3>, slot: CacheSlot) -> Tensor<3> {
        let qkv = norm_linear(&self.ln_1, &self.attn.qkv, x.clone(), false);
        let x = linear_residual(&self.attn.proj, self.attn.attend_one_position(qkv, slot), x);
        let hidden = norm_linear(&self.ln_2, &self.mlp.fc, x.clone(), true);
        linear_residual(&self.mlp.proj, hidden, x)
    }
}

/// γ and β of a LayerNorm (β zero where it has none).
fn norm_parameters(norm: &LayerNorm, device: &Device) -> (Tensor<1>, Tensor<1>) {
    let d = norm.gamma.dims()[0];
    let beta = match &norm.beta {
        Some(beta) => beta.val(),
        None => Tensor::from_data(TensorData::new(vec![0.0f32; d], [d]), device),
    };
    (norm.gamma.val(), beta)
}

/// A linear layer's bias (zero where it has none).
fn bias_of(layer: &Linear, device: &Device) -> Tensor<1> {
    match &layer.bias {
        Some(bias) => bias.val(),
        None => {
            let n = layer.weight.dims()[1];
            Tensor::from_data(TensorData::new(vec![0.0f32; n], [n]), device)
        }
    }
}

/// layer(LayerNorm(x)), then GELU if `gelu`: one kernel (`kernels::norm_linear_rows`).
fn norm_linear(norm: &LayerNorm, layer: &Linear, x: Tensor<3>, gelu: bool) -> Tensor<3> {
    let device = x.device();
    let (gamma, beta) = norm_parameters(norm, &device);
    crate::kernels::norm_linear_rows(x, gamma, beta, LAYER_NORM_EPSILON, layer.weight.val(), bias_of(layer, &device), gelu)
}

/// residual + layer(x): one kernel (`kernels::linear_residual_rows`).
fn linear_residual(layer: &Linear, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
    let device = x.device();
    crate::kernels::linear_residual_rows(x, layer.weight.val(), bias_of(layer, &device), residual)
}

/// The decoder-only transformer. `wte`, `wpe`, `ln_f` as in GPT-2; the LM head is `wte`ᵀ.
#[derive(Module, Debug)]
pub struct Gpt {
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
}

impl Gpt {
    /// A freshly initialized GPT; the same `rng` state gives the same weights on every backend.
    pub fn new(config: &ModelConfig, rng: &mut Rng, device: &Device) -> Self {
        let wte = Embedding { weight: Param::from_tensor(normal_tensor([config.vocab_size, config.d_model], INIT_STD, rng, device)) };
        let wpe = Embedding { weight: Param::from_tensor(normal_tensor([config.context_length, config.d_model], 0.01, rng, device)) };
        let blocks = (0..config.n_layers).map(|_| Block::new(config, rng, device)).collect();
        Self { wte, wpe, blocks, ln_f: LayerNormConfig::new(config.d_model).init(device) }
    }

    /// The shape this model was made with, read from its parameters.
    pub fn config(&self) -> ModelConfig {
        let [vocab_size, d_model] = self.wte.weight.dims();
        let first = self.blocks.first();
        ModelConfig {
            vocab_size,
            context_length: self.context_length(),
            d_model,
            n_layers: self.blocks.len(),
            n_heads: first.map_or(1, |b| b.attn.n_heads),
            mlp_ratio: first.map_or(1, |b| b.mlp.fc.weight.dims()[1] / d_model),
        }
    }

    pub fn vocab_size(&self) -> usize {
        self.wte.weight.dims()[0]
    }

    pub fn context_length(&self) -> usize {
        self.wpe.weight.dims()[0]
    }

    pub fn n_layers(&self) -> usize {
        self.blocks.len()
    }

    /// The final hidden states.
    ///
    /// # Shapes
    /// - `tokens`: [batch, seq] — seq ≤ context_length
    /// - returns [batch, seq, d_model]
    pub fn hidden(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        let [_, seq] = tokens.dims();
        let device = tokens.device();
        let x = self.embed(tokens, 0, &device);
        let bias = causal_bias(0, seq, &device);
        let x = self.blocks.iter().fold(x, |x, block| block.forward(x, Some(bias.clone()), None));
        layer_norm(&self.ln_f, x)
    }

    /// Hidden states of `tokens`, the positions after the `cache.len` already cached; the cache
    /// grows by `seq`. Used by generation so each new token costs one position, not the whole
    /// context.
    pub fn hidden_cached(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<3> {
        let [_, seq] = tokens.dims();
        let device = tokens.device();
        let (past, capacity) = (cache.len, cache.capacity);
        assert!(past + seq <= capacity, "{past} cached + {seq} new positions exceed the context length {capacity}");
        let x = self.embed(tokens, past, &device);
        // Keys past `past + i` are either later positions or not written yet: both masked.
        let bias = causal_bias_over(past, seq, capacity, &device);
        let mut x = x;
        for (block, buffers) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward(x, Some(bias.clone()), Some(CacheSlot { buffers, past, capacity }));
        }
        cache.len += seq;
        layer_norm(&self.ln_f, x)
    }

    /// The next token's logits after one new token per row, the cache growing by one: what
    /// generation runs for every token after the prompt. On a GPU each block is a handful of
    /// kernels (`Block::forward_one_position`) and the final LayerNorm with the LM head one
    /// more; elsewhere it is `logits(hidden_cached(tokens))`.
    ///
    /// # Shapes
    /// - `tokens`: [batch, 1] → [batch, vocab]
    pub fn next_token_logits(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<2> {
        let [batch, seq] = tokens.dims();
        assert_eq!(seq, 1, "one new token per row");
        let vocab = self.vocab_size();
        let device = tokens.device();
        if !launches_dominate(&device) {
            return self.logits(self.hidden_cached(tokens, cache)).reshape([batch, vocab]);
        }
        let (past, capacity) = (cache.len, cache.capacity);
        assert!(past < capacity, "{past} cached positions fill the context length {capacity}");
        let mut x = self.embed(tokens, past, &device);
        for (block, buffers) in self.blocks.iter().zip(cache.layers.iter_mut()) {
            x = block.forward_one_position(x, CacheSlot { buffers, past, capacity });
        }
        cache.len += 1;
        let (gamma, beta) = norm_parameters(&self.ln_f, &device);
        let head = self.wte.weight.val().transpose(); // [D, V], a view
        crate::kernels::norm_linear_rows(x, gamma, beta, LAYER_NORM_EPSILON, head, self.never_written(&device), false).reshape([batch, vocab])
    }

    /// Added to every logit: far down for PAD, BOS and UNK (see `logits`). Made on the host.
    fn never_written(&self, device: &Device) -> Tensor<1> {
        let vocab = self.vocab_size();
        let mut never = vec![0.0f32; vocab];
        for id in NEVER_WRITTEN {
            if (id as usize) < vocab {
                never[id as usize] = MASKED_SCORE;
            }
        }
        Tensor::from_data(TensorData::new(never, [vocab]), device)
    }

    fn embed(&self, tokens: Tensor<2, Int>, start: usize, device: &Device) -> Tensor<3> {
        let [batch, seq] = tokens.dims();
        let positions: Vec<i32> = (start as i32..(start + seq) as i32).collect();
        let positions = Tensor::<2, Int>::from_data(TensorData::new(positions, [1, seq]), device);
        let tok_emb = embedding(self.wte.weight.val(), tokens); // [B, T, D]
        let pos_emb = embedding(self.wpe.weight.val(), positions); // [1, T, D]
        let _ = batch;
        tok_emb + pos_emb
    }

    /// Next-token logits from hidden states through the tied LM head.
    ///
    /// PAD, BOS and UNK are never a valid next token: their logits are pushed far down here, the
    /// one place every stage gets logits from, so sampling, the log-probs PPO and DPO train on,
    /// and SFT's cross-entropy all see the same distribution over the tokens a model may write.
    ///
    /// # Shapes
    /// - `hidden`: [batch, seq, d_model] → [batch, seq, vocab]
    pub fn logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let [batch, seq, d_model] = hidden.dims();
        let vocab = self.vocab_size();
        let weight = self.wte.weight.val(); // [V, D]
        let never = self.never_written(&hidden.device()).reshape([1, 1, vocab]);
        crate::layers::matmul(hidden.reshape([batch * seq, d_model]), weight.transpose()).reshape([batch, seq, vocab]) + never
    }

    /// Logits for every position: [batch, seq] → [batch, seq, vocab].
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.logits(self.hidden(tokens))
    }
}

/// A GPT trunk with a scalar head: the reward model r_φ (read at the last real token) and the
/// value model V_ψ (read at every position). Initialized from another model's trunk.
#[derive(Module, Debug)]
pub struct ScalarModel {
    pub trunk: Gpt,
    head: Linear,
}

impl ScalarModel {
    /// A scalar head on `trunk`, starting at zero so the first scores are all 0.
    pub fn from_trunk(trunk: Gpt, device: &Device) -> Self {
        let d_model = trunk.ln_f.gamma.dims()[0];
        let head = Linear {
            weight: Param::from_tensor(Tensor::zeros([d_model, 1], device)),
            bias: Some(Param::from_tensor(Tensor::zeros([1], device))),
        };
        Self { trunk, head }
    }

    /// A scalar for every position: [batch, seq] → [batch, seq].
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<2> {
        let hidden = self.trunk.hidden(tokens);
        let [batch, seq, _] = hidden.dims();
        dense(&self.head, hidden).reshape([batch, seq])
    }

    /// Adds `delta` to the head's bias: shifting every score by a constant, which the
    /// Bradley–Terry likelihood cannot see (the page: r is identified up to a constant).
    pub fn shift_scores(self, delta: f32) -> Self {
        let device = self.head.weight.val().device();
        let bias = self.head.bias.as_ref().map(|b| b.val()).unwrap_or_else(|| Tensor::zeros([1], &device));
        let shifted = bias + delta;
        Self { trunk: self.trunk, head: Linear { weight: self.head.weight, bias: Some(Param::from_tensor(shifted)) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Preset;

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
    /// time: on a GPU, through `kernels`) equal the full forward's, on two rows.
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
        let device = crate::device::test_gpu();
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
}

/// The same module with a new identity for every parameter.
///
/// A copy made for another role (the reward model's trunk from π_ref, the value model from the
/// reward model, the policy from π_ref) must not share parameter ids with its source: optimizers
/// and gradients are keyed by id, so two roles trained together would otherwise mix their
/// gradients and Adam states.
pub fn with_fresh_ids<M: Module>(module: M) -> M {
    struct Fresh;
    impl burn::module::ModuleMapper for Fresh {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (_, value, mapper) = param.consume();
            Param::from_mapped_value(burn::module::ParamId::new(), value, mapper)
        }
    }
    module.map(&mut Fresh)
}
