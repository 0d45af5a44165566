//! The Qwen2 / Qwen2.5 / Qwen3 decoder (and the language model of Qwen2-VL / 2.5-VL): GQA
//! attention with bias (Qwen2) or per-head q/k RMSNorm (Qwen3), RMSNorm, SwiGLU, rotary
//! positions (1-D, or M-RoPE with 3-D sections), tied or untied embeddings.
//!
//! Packed rows: the forward pass takes segment lengths and attends within each segment only
//! (causal inside it), so the cost is the sum of squared segment lengths; positions are given
//! per token, restarting per segment (see [`super::positions`]).

mod cache;
pub use cache::*;

use candle_core::{DType, Device, Tensor};

use super::config::TextConfig;
use super::lora::{Lora, Proj, TARGETS};
use super::ops::{accumulate_dtype, causal_softmax, linear, rms_norm, rope, silu, softmax_last_dim};
use super::weights::Weights;
use crate::error::{Error, Result};

fn ce(e: candle_core::Error) -> Error {
    Error::Run(format!("model: {e}"))
}

#[derive(Clone)]
struct Layer {
    ln1: Tensor,
    ln2: Tensor,
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    q_norm: Option<Tensor>,
    k_norm: Option<Tensor>,
    gate: Proj,
    up: Proj,
    down: Proj,
}

impl Layer {
    /// The projection of a [`TARGETS`] module name.
    fn proj_mut(&mut self, name: &str) -> Option<&mut Proj> {
        Some(match name {
            "q_proj" => &mut self.q,
            "k_proj" => &mut self.k,
            "v_proj" => &mut self.v,
            "o_proj" => &mut self.o,
            "gate_proj" => &mut self.gate,
            "up_proj" => &mut self.up,
            "down_proj" => &mut self.down,
            _ => return None,
        })
    }
}

/// The decoder with its embedding and output head.
#[derive(Clone)]
pub struct TextModel {
    pub cfg: TextConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    inv_freq: Vec<f64>,
    device: Device,
    dtype: DType,
    /// Query rows per attention block (default: sized so one block's scores take about
    /// 64 MiB); results do not depend on it beyond float rounding.
    pub query_block_rows: Option<usize>,
    /// Training: the seed of this row's LoRA dropout masks (None: no dropout).
    pub dropout_seed: Option<u64>,
}

/// Token positions: one row for 1-D RoPE models, three (temporal, height, width) for M-RoPE.
pub type Positions = [Vec<u32>; 3];

impl TextModel {
    /// Take the decoder's weights under `prefix` (`model`) and the head (`lm_head`).
    pub fn load(cfg: &TextConfig, w: &mut Weights, prefix: &str) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim);
        let (nh, nkv, inter) = (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size);
        let embed = w.get(&format!("{prefix}.embed_tokens.weight"), (cfg.vocab_size, h))?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("{prefix}.layers.{i}");
            let mut proj = |name: &str, out: usize, bias: bool| -> Result<Proj> {
                let wt = w.get(&format!("{p}.self_attn.{name}.weight"), (out, h))?;
                let b = if bias { Some(w.get(&format!("{p}.self_attn.{name}.bias"), out)?) } else { None };
                Ok(Proj::new(wt, b))
            };
            let q = proj("q_proj", nh * hd, cfg.qkv_bias)?;
            let k = proj("k_proj", nkv * hd, cfg.qkv_bias)?;
            let v = proj("v_proj", nkv * hd, cfg.qkv_bias)?;
            layers.push(Layer {
                q,
                k,
                v,
                o: Proj::new(w.get(&format!("{p}.self_attn.o_proj.weight"), (h, nh * hd))?, None),
                q_norm: if cfg.qk_norm { Some(w.get(&format!("{p}.self_attn.q_norm.weight"), hd)?) } else { None },
                k_norm: if cfg.qk_norm { Some(w.get(&format!("{p}.self_attn.k_norm.weight"), hd)?) } else { None },
                ln1: w.get(&format!("{p}.input_layernorm.weight"), h)?,
                ln2: w.get(&format!("{p}.post_attention_layernorm.weight"), h)?,
                gate: Proj::new(w.get(&format!("{p}.mlp.gate_proj.weight"), (inter, h))?, None),
                up: Proj::new(w.get(&format!("{p}.mlp.up_proj.weight"), (inter, h))?, None),
                down: Proj::new(w.get(&format!("{p}.mlp.down_proj.weight"), (h, inter))?, None),
            });
        }
        let norm = w.get(&format!("{prefix}.norm.weight"), h)?;
        let lm_head = if cfg.tie_word_embeddings && !w.has("lm_head.weight") {
            embed.clone()
        } else {
            w.get("lm_head.weight", (cfg.vocab_size, h))?
        };
        let inv_freq = (0..hd / 2).map(|j| 1.0 / cfg.rope_theta.powf(2.0 * j as f64 / hd as f64)).collect();
        Ok(Self {
            cfg: cfg.clone(),
            embed,
            layers,
            norm,
            lm_head,
            inv_freq,
            device: w.device.clone(),
            dtype: w.dtype,
            query_block_rows: None,
            dropout_seed: None,
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.device.clone()
    }

    /// The output layer's weight (vocab, hidden): the embedding when tied.
    pub fn lm_head(&self) -> &Tensor {
        &self.lm_head
    }

    /// Embeddings of token ids, (L, hidden).
    pub fn embed(&self, ids: &[u32]) -> Result<Tensor> {
        let ids = Tensor::new(ids, &self.device).map_err(ce)?;
        self.embed.index_select(&ids, 0).map_err(ce)
    }

    /// cos and sin tables, (L, head_dim), for the positions.
    fn rope_tables(&self, pos: &Positions) -> Result<(Tensor, Tensor)> {
        let n = pos[0].len();
        let half = self.cfg.head_dim / 2;
        let axis_of = |j: usize| -> usize {
            match self.cfg.mrope_section {
                None => 0,
                Some([t, hh, _]) => {
                    if j < t {
                        0
                    } else if j < t + hh {
                        1
                    } else {
                        2
                    }
                }
            }
        };
        let mut cos = Vec::with_capacity(n * 2 * half);
        let mut sin = Vec::with_capacity(n * 2 * half);
        #[allow(clippy::needless_range_loop)] // `i` indexes one of three position rows
        for i in 0..n {
            for _rep in 0..2 {
                for j in 0..half {
                    let a = pos[axis_of(j)][i] as f64 * (self.inv_freq[j] as f32) as f64;
                    cos.push(a.cos() as f32);
                    sin.push(a.sin() as f32);
                }
            }
        }
        let mk = |v: Vec<f32>| {
            Tensor::from_vec(v, (n, 2 * half), &self.device).and_then(|t| t.to_dtype(self.dtype)).map_err(ce)
        };
        Ok((mk(cos)?, mk(sin)?))
    }

    /// Logits (L, vocab) of a packed row: input embeddings (L, hidden), per-token positions,
    /// and segment lengths summing to L (no attention across segments).
    pub fn forward(&self, x: &Tensor, pos: &Positions, segments: &[usize]) -> Result<Tensor> {
        let h = self.hidden(x, pos, segments)?;
        linear(&h, &self.lm_head, None).map_err(ce)
    }

    /// Final hidden states (L, hidden), after the last norm. Every op records gradients when
    /// the weights are variables; [`Self::detached`] gives a copy that records none.
    pub fn hidden(&self, x: &Tensor, pos: &Positions, segments: &[usize]) -> Result<Tensor> {
        let plan = self.plan(x, pos, segments)?;
        let mut x = x.clone();
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &plan).map_err(ce)?.1;
        }
        self.final_norm(&x)
    }

    /// One decoder layer over a packed row: its attention output (before the output
    /// projection) and the layer's output.
    fn layer_forward(&self, layer: &Layer, x: &Tensor, plan: &RowPlan) -> candle_core::Result<(Tensor, Tensor)> {
        let r = rms_norm(x, &layer.ln1, self.cfg.rms_norm_eps)?;
        let (q, k, v) = self.project(layer, &r, &plan.cos, &plan.sin)?;
        let o = self.segments_attention(&q, &k, &v, &plan.blocks)?;
        let out = self.mlp_residual(layer, &(x + layer.o.forward(&o, self.dropout_seed)?)?)?;
        Ok((o, out))
    }

    /// The last RMSNorm.
    pub fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        rms_norm(x, &self.norm, self.cfg.rms_norm_eps).map_err(ce)
    }

    /// Check a row's sizes and prepare what all its layers share: the rotary tables
    /// (L, 1, head_dim) and the query blocks of its segments.
    fn plan(&self, x: &Tensor, pos: &Positions, segments: &[usize]) -> Result<RowPlan> {
        let l = x.dim(0).map_err(ce)?;
        if segments.iter().sum::<usize>() != l || pos.iter().any(|p| p.len() != l) {
            return Err(Error::Run(format!(
                "model: {l} tokens, segments sum to {}, positions {}",
                segments.iter().sum::<usize>(),
                pos[0].len()
            )));
        }
        let (cos, sin) = self.rope_tables(pos)?;
        let mut blocks = Vec::new();
        let mut start = 0;
        for &len in segments {
            let rows = self.query_block(len);
            let mut b0 = 0;
            while b0 < len {
                let b1 = (b0 + rows).min(len);
                blocks.push(QueryBlock { start, len, b0, b1 });
                b0 = b1;
            }
            start += len;
        }
        Ok(RowPlan { cos: cos.unsqueeze(1).map_err(ce)?, sin: sin.unsqueeze(1).map_err(ce)?, blocks })
    }

    /// A copy whose weights record no gradients (they share storage with these, so optimizer
    /// updates show): inference and the stored forward pass of training.
    pub fn detached(&self) -> Self {
        let d = |t: &Tensor| t.detach();
        let od = |t: &Option<Tensor>| t.as_ref().map(d);
        let layers = self
            .layers
            .iter()
            .map(|l| Layer {
                ln1: d(&l.ln1),
                ln2: d(&l.ln2),
                q: l.q.detached(),
                k: l.k.detached(),
                v: l.v.detached(),
                o: l.o.detached(),
                q_norm: od(&l.q_norm),
                k_norm: od(&l.k_norm),
                gate: l.gate.detached(),
                up: l.up.detached(),
                down: l.down.detached(),
            })
            .collect();
        Self { layers, embed: d(&self.embed), norm: d(&self.norm), lm_head: d(&self.lm_head), ..self.clone() }
    }

    /// Add LoRA adapters (rank, alpha, dropout) to the `targets` projections (names in
    /// [`TARGETS`]) of every layer; the base weights stop recording gradients. Returns the
    /// adapters' variables by name (`{prefix}.layers.{i}.self_attn.q_proj.lora_A.weight`, ...);
    /// A is seeded by `seed`, B starts at zero.
    pub fn add_lora(
        &mut self,
        prefix: &str,
        rank: usize,
        alpha: f64,
        dropout: f64,
        targets: &[String],
        seed: u64,
    ) -> Result<std::collections::BTreeMap<String, candle_core::Var>> {
        if let Some(t) = targets.iter().find(|t| !TARGETS.contains(&t.as_str())) {
            return Err(Error::Spec(format!("lora target `{t}` is not one of {}", TARGETS.join(", "))));
        }
        let mut base = self.detached();
        let mut vars = std::collections::BTreeMap::new();
        for (i, layer) in base.layers.iter_mut().enumerate() {
            for (j, name) in TARGETS.iter().enumerate() {
                if !targets.iter().any(|t| t == name) {
                    continue;
                }
                let key = (i * TARGETS.len() + j) as u64;
                let p = layer.proj_mut(name).expect("a target module");
                let made = (|| -> candle_core::Result<(candle_core::Var, candle_core::Var)> {
                    let (out, inputs) = p.w.dims2()?;
                    let a = candle_core::Var::from_tensor(&super::lora::init_a(
                        rank,
                        inputs,
                        seed,
                        key,
                        self.dtype,
                        &self.device,
                    )?)?;
                    Ok((a, candle_core::Var::zeros((out, rank), self.dtype, &self.device)?))
                })();
                let (a, b) = made.map_err(ce)?;
                p.lora = Some(Lora {
                    a: a.as_tensor().clone(),
                    b: b.as_tensor().clone(),
                    scale: alpha / rank as f64,
                    dropout,
                    key,
                });
                let stem = format!("{prefix}.layers.{i}.{}.{name}", module_group(name));
                vars.insert(format!("{stem}.lora_A.weight"), a);
                vars.insert(format!("{stem}.lora_B.weight"), b);
            }
        }
        *self = base;
        Ok(vars)
    }

    /// A copy (sharing the weights) whose LoRA adapters draw dropout masks from `seed`.
    pub fn with_dropout(&self, seed: Option<u64>) -> Self {
        Self { dropout_seed: seed, ..self.clone() }
    }

    /// The weights of the projections that carry adapters, with the adapters merged, under
    /// their Hugging Face names.
    pub fn merged_weights(&self, prefix: &str) -> Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let mut layer = layer.clone();
            for name in TARGETS {
                let p = layer.proj_mut(name).expect("a target module");
                if p.lora.is_some() {
                    out.push((
                        format!("{prefix}.layers.{i}.{}.{name}.weight", module_group(name)),
                        p.merged().map_err(ce)?,
                    ));
                }
            }
        }
        Ok(out)
    }

    /// Estimated bytes of the autograd graph of [`Self::hidden`] over a row of these segments
    /// (activations kept for the backward pass, attention scores included).
    pub fn graph_bytes(&self, segments: &[usize]) -> usize {
        let c = &self.cfg;
        let n: usize = segments.iter().sum();
        let width = c.num_attention_heads * c.head_dim;
        let per_token = 8 * c.hidden_size + 5 * c.intermediate_size + 4 * width;
        let scores: usize = segments.iter().map(|&s| 5 * c.num_attention_heads * s * s).sum();
        let elem = if self.dtype == DType::F32 { 4 } else { 2 };
        c.num_hidden_layers * (n * per_token + scores) * elem
    }

    /// Rows of one query block: the scores (heads x block x keys, f32) stay near 64 MiB.
    fn query_block(&self, keys: usize) -> usize {
        const BUDGET: usize = 64 << 20;
        if let Some(rows) = self.query_block_rows {
            return rows.max(1);
        }
        (BUDGET / (self.cfg.num_attention_heads * keys.max(1) * 4)).max(64)
    }

    /// Causal attention within each segment, in query blocks (so the scores of a long segment
    /// never exist at once when no gradient is recorded); q (L, heads, hd), k and v (L, kv
    /// heads, hd); returns (L, heads * hd).
    fn segments_attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        blocks: &[QueryBlock],
    ) -> candle_core::Result<Tensor> {
        let mut outs = Vec::with_capacity(blocks.len());
        for b in blocks {
            outs.push(self.attend_block(q, k, v, b.start, b)?);
        }
        if outs.len() == 1 { Ok(outs.pop().expect("one block")) } else { Tensor::cat(&outs, 0) }
    }

    /// Attention of one query block, with q, k and v holding its segment from row `at`.
    fn attend_block(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        at: usize,
        b: &QueryBlock,
    ) -> candle_core::Result<Tensor> {
        self.attend_one(
            &q.narrow(0, at + b.b0, b.b1 - b.b0)?,
            &k.narrow(0, at, b.b1)?,
            &v.narrow(0, at, b.b1)?,
            Mask::Causal(b.b0),
        )
    }

    /// The forward pass of training, recording no graph: the final hidden states before the
    /// last norm, and per layer its input and attention output (what [`Self::backward_stored`]
    /// needs to recompute the layer; 2 x L x hidden values per layer instead of the whole
    /// graph, and no attention scores).
    pub fn forward_stored(&self, x: &Tensor, pos: &Positions, segments: &[usize]) -> Result<(Tensor, Vec<Stored>)> {
        let plan = self.plan(x, pos, segments)?;
        let m = self.detached();
        let mut x = x.detach();
        let mut stored = Vec::with_capacity(m.layers.len());
        for layer in &m.layers {
            let (o, out) = m.layer_forward(layer, &x, &plan).map_err(ce)?;
            stored.push(Stored { input: x, attn: o });
            x = out;
        }
        Ok((x, stored))
    }

    /// The backward pass matching [`Self::forward_stored`]: from the gradient of the final
    /// hidden states (before the last norm), layer by layer from the top, each layer is
    /// recomputed with its graph and differentiated (attention in query blocks, recomputing
    /// the scores); `sink` receives each partial gradient store (the weights' gradients are
    /// the sums over all stores). Returns the gradient of the input embeddings.
    pub fn backward_stored(
        &self,
        stored: &[Stored],
        pos: &Positions,
        segments: &[usize],
        grad: &Tensor,
        sink: &mut dyn FnMut(&candle_core::backprop::GradStore) -> Result<()>,
    ) -> Result<Tensor> {
        let first = stored.first().ok_or_else(|| Error::Run("model: nothing stored".into()))?;
        let plan = self.plan(&first.input, pos, segments)?;
        let mut g = grad.clone();
        for (layer, st) in self.layers.iter().zip(stored).rev() {
            let step = (|| -> candle_core::Result<Tensor> {
                let u = candle_core::Var::from_tensor(&st.input)?;
                let o = candle_core::Var::from_tensor(&st.attn)?;
                // attention output -> residual -> MLP
                let out =
                    self.mlp_residual(layer, &(u.as_tensor() + layer.o.forward(o.as_tensor(), self.dropout_seed)?)?)?;
                let gs = (out * &g)?.sum_all()?.backward()?;
                sink(&gs).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                let g_o = gs.get(o.as_tensor()).cloned().unwrap_or(o.as_tensor().zeros_like()?);
                let g_u = gs.get(u.as_tensor()).cloned().unwrap_or(u.as_tensor().zeros_like()?);
                // input -> norm -> q, k, v
                let r = rms_norm(u.as_tensor(), &layer.ln1, self.cfg.rms_norm_eps)?;
                let (q, k, v) = self.project(layer, &r, &plan.cos, &plan.sin)?;
                let (dq, dk, dv) = self.attention_backward(&q, &k, &v, &g_o, &plan.blocks)?;
                let s = ((q * dq)?.sum_all()? + (k * dk)?.sum_all()?)?;
                let gs = (s + (v * dv)?.sum_all()?)?.backward()?;
                sink(&gs).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                match gs.get(u.as_tensor()) {
                    Some(more) => g_u + more,
                    None => Ok(g_u),
                }
            })();
            g = step.map_err(ce)?;
        }
        Ok(g)
    }

    /// Gradients of q, k, v (post-rope) from the gradient of the attention output, per
    /// segment and query block, recomputing the scores of one block at a time.
    fn attention_backward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        g_o: &Tensor,
        blocks: &[QueryBlock],
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let (mut dqs, mut dks, mut dvs) = (Vec::new(), Vec::new(), Vec::new());
        for segment in blocks.chunk_by(|a, b| a.start == b.start) {
            let (start, n) = (segment[0].start, segment[0].len);
            let qs = candle_core::Var::from_tensor(&q.narrow(0, start, n)?.detach())?;
            let ks = candle_core::Var::from_tensor(&k.narrow(0, start, n)?.detach())?;
            let vs = candle_core::Var::from_tensor(&v.narrow(0, start, n)?.detach())?;
            let (mut dq, mut dk, mut dv): (Option<Tensor>, Option<Tensor>, Option<Tensor>) = (None, None, None);
            for b in segment {
                let o = self.attend_block(qs.as_tensor(), ks.as_tensor(), vs.as_tensor(), 0, b)?;
                let gs = (o * g_o.narrow(0, start + b.b0, b.b1 - b.b0)?)?.sum_all()?.backward()?;
                let add = |acc: &mut Option<Tensor>, var: &candle_core::Var| -> candle_core::Result<()> {
                    if let Some(g) = gs.get(var.as_tensor()) {
                        *acc = Some(match acc.take() {
                            Some(a) => (a + g)?,
                            None => g.clone(),
                        });
                    }
                    Ok(())
                };
                add(&mut dq, &qs)?;
                add(&mut dk, &ks)?;
                add(&mut dv, &vs)?;
            }
            dqs.push(dq.map_or_else(|| qs.as_tensor().zeros_like(), Ok)?);
            dks.push(dk.map_or_else(|| ks.as_tensor().zeros_like(), Ok)?);
            dvs.push(dv.map_or_else(|| vs.as_tensor().zeros_like(), Ok)?);
        }
        Ok((Tensor::cat(&dqs, 0)?, Tensor::cat(&dks, 0)?, Tensor::cat(&dvs, 0)?))
    }

    /// x + SwiGLU MLP of the post-attention-normed x.
    fn mlp_residual(&self, layer: &Layer, x: &Tensor) -> candle_core::Result<Tensor> {
        let r = rms_norm(x, &layer.ln2, self.cfg.rms_norm_eps)?;
        let g = silu(&layer.gate.forward(&r, self.dropout_seed)?)?;
        let u = layer.up.forward(&r, self.dropout_seed)?;
        x + layer.down.forward(&(g * u)?, self.dropout_seed)?
    }

    /// q (L, heads, hd) and k, v (L, kv heads, hd), with q/k norms and rotary positions applied.
    fn project(
        &self,
        layer: &Layer,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let c = &self.cfg;
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let l = x.dim(0)?;
        let mut q = layer.q.forward(x, self.dropout_seed)?.reshape((l, nh, hd))?;
        let mut k = layer.k.forward(x, self.dropout_seed)?.reshape((l, nkv, hd))?;
        let v = layer.v.forward(x, self.dropout_seed)?.reshape((l, nkv, hd))?;
        if let (Some(qn), Some(kn)) = (&layer.q_norm, &layer.k_norm) {
            q = rms_norm(&q, qn, c.rms_norm_eps)?;
            k = rms_norm(&k, kn, c.rms_norm_eps)?;
        }
        Ok((rope(&q, cos, sin)?, rope(&k, cos, sin)?, v))
    }

    /// Attention of queries q (B, n, heads, hd) over keys and values (B, t, kv heads, hd) under
    /// a [`Mask`] (causal ones run as the fused [`causal_softmax`]); returns
    /// (B, n, heads * hd). The query heads sharing a kv head are stacked as rows, so keys and
    /// values are never repeated per head.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Mask<'_>) -> candle_core::Result<Tensor> {
        let c = &self.cfg;
        let (nh, nkv, hd) = (c.num_attention_heads, c.num_key_value_heads, c.head_dim);
        let (b, n, t) = (q.dim(0)?, q.dim(1)?, k.dim(1)?);
        let group = nh / nkv;
        let qs = q.transpose(1, 2)?.contiguous()?.reshape((b, nkv, group * n, hd))?;
        let ks = k.transpose(1, 2)?.contiguous()?; // (B, nkv, t, hd)
        let vs = v.transpose(1, 2)?.contiguous()?;
        let acc = accumulate_dtype(vs.dtype());
        let scores = qs.matmul(&ks.t()?)?.reshape((b, nkv, group, n, t))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let p = match mask {
            Mask::Causal(offset) => causal_softmax(&scores, scale, offset)?,
            Mask::Additive(m) => softmax_last_dim(&(scores * scale)?.to_dtype(acc)?.broadcast_add(&m.to_dtype(acc)?)?)?,
        };
        let p = p.to_dtype(vs.dtype())?.reshape((b, nkv, group * n, t))?;
        p.matmul(&vs)?.reshape((b, nh, n, hd))?.transpose(1, 2)?.reshape((b, n, nh * hd))
    }

    /// [`Self::attend`] for one sequence: q (n, heads, hd), k and v (t, kv heads, hd), mask
    /// (n, t); returns (n, heads * hd).
    fn attend_one(&self, q: &Tensor, k: &Tensor, v: &Tensor, mask: Mask<'_>) -> candle_core::Result<Tensor> {
        self.attend(&q.unsqueeze(0)?, &k.unsqueeze(0)?, &v.unsqueeze(0)?, mask)?.squeeze(0)
    }

    /// Decoding with a cache: the logits (vocab) of the last of the new tokens `x` (n, hidden)
    /// at positions `pos`, attending to everything in `cache` and causally among themselves;
    /// their keys and values join the cache.
    pub fn forward_cached(&self, x: &Tensor, pos: &Positions, cache: &mut KvCache) -> Result<Tensor> {
        let n = x.dim(0).map_err(ce)?;
        if cache.layers.len() != self.layers.len() {
            cache.layers = vec![None; self.layers.len()];
        }
        let past = cache.len;
        let (cos, sin) = self.rope_tables(pos)?;
        let (cos, sin) = (cos.unsqueeze(1).map_err(ce)?, sin.unsqueeze(1).map_err(ce)?);
        let mut x = x.clone();
        for (layer, slot) in self.layers.iter().zip(cache.layers.iter_mut()) {
            let step = (|| -> candle_core::Result<Tensor> {
                let r = rms_norm(&x, &layer.ln1, self.cfg.rms_norm_eps)?;
                let (q, k, v) = self.project(layer, &r, &cos, &sin)?;
                let (k, v) = match slot.take() {
                    Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 0)?, Tensor::cat(&[&pv, &v], 0)?),
                    None => (k, v),
                };
                let o = layer.o.forward(&self.attend_one(&q, &k, &v, Mask::Causal(past))?, self.dropout_seed)?;
                *slot = Some((k.detach(), v.detach()));
                self.mlp_residual(layer, &(&x + o)?)
            })()
            .map_err(ce)?;
            x = step;
        }
        cache.len += n;
        let last = x.narrow(0, n - 1, 1).map_err(ce)?;
        let h = rms_norm(&last, &self.norm, self.cfg.rms_norm_eps).map_err(ce)?;
        linear(&h, &self.lm_head, None).and_then(|t| t.squeeze(0)).map_err(ce)
    }

    /// One decoding step for a batch: the logits (B, vocab) after one new token per row, `x`
    /// (B, hidden) at per-row positions `pos` (B entries per axis); each row attends to its own
    /// cached keys (padding hidden by the cache's mask), and the new keys join the cache.
    pub fn forward_step(&self, x: &Tensor, pos: &Positions, cache: &mut BatchCache) -> Result<Tensor> {
        let b = x.dim(0).map_err(ce)?;
        if cache.layers.len() != self.layers.len() || cache.rows() != b || pos.iter().any(|p| p.len() != b) {
            return Err(Error::Run(format!(
                "model: a step of {b} rows over a cache of {} rows and {} layers",
                cache.rows(),
                cache.layers.len()
            )));
        }
        let (cos, sin) = self.rope_tables(pos)?;
        let (cos, sin) = (cos.unsqueeze(1).map_err(ce)?, sin.unsqueeze(1).map_err(ce)?);
        let step = (|| -> candle_core::Result<Tensor> {
            let zero = Tensor::zeros((b, 1), DType::F32, &self.device)?;
            cache.mask = Tensor::cat(&[&cache.mask, &zero], 1)?;
            let t = cache.mask.dim(1)?;
            let mask = cache.mask.reshape((b, 1, 1, 1, t))?;
            let mut x = x.clone();
            for (layer, (ck, cv)) in self.layers.iter().zip(cache.layers.iter_mut()) {
                let r = rms_norm(&x, &layer.ln1, self.cfg.rms_norm_eps)?;
                let (q, k, v) = self.project(layer, &r, &cos, &sin)?; // (B, heads, hd)
                *ck = Tensor::cat(&[&*ck, &k.unsqueeze(1)?.detach()], 1)?;
                *cv = Tensor::cat(&[&*cv, &v.unsqueeze(1)?.detach()], 1)?;
                let o = self.attend(&q.unsqueeze(1)?, ck, cv, Mask::Additive(&mask))?.squeeze(1)?;
                x = self.mlp_residual(layer, &(&x + layer.o.forward(&o, self.dropout_seed)?)?)?;
            }
            let h = rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?;
            linear(&h, &self.lm_head, None)
        })();
        step.map_err(ce)
    }
}

/// The Hugging Face submodule of a projection: `mlp` or `self_attn`.
fn module_group(name: &str) -> &'static str {
    if matches!(name, "gate_proj" | "up_proj" | "down_proj") { "mlp" } else { "self_attn" }
}

/// Positions of a packed text row: 0.. restarting at each segment, the same on all three axes.
pub fn text_positions(segments: &[usize]) -> Positions {
    let p: Vec<u32> = segments.iter().flat_map(|&n| 0..n as u32).collect();
    [p.clone(), p.clone(), p]
}
