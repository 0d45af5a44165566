//! Differentiable building blocks. candle's fused `softmax_last_dim`, `rms_norm`, `layer_norm`
//! and `rope` kernels record no gradient, so every op here is composed of primitives whose
//! backward candle implements (exp, sums, sqrt, matmul, narrow, cat); the gradient test in
//! tests/it/model.rs checks every parameter against finite differences.

use candle_core::{D, DType, Result, Tensor};

/// The dtype reductions run in: f32 for half-precision inputs, the input's own otherwise.
pub fn accumulate_dtype(dtype: DType) -> DType {
    match dtype {
        DType::F64 => DType::F64,
        _ => DType::F32,
    }
}

/// Softmax over the last dimension (the max is subtracted as a constant).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// RMSNorm over the last dimension, computed in f32 (f64 for f64 inputs).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(accumulate_dtype(dtype))?;
    let rms = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
    x.broadcast_div(&rms)?.to_dtype(dtype)?.broadcast_mul(weight)
}

/// LayerNorm over the last dimension, computed in f32 (f64 for f64 inputs).
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x = x.to_dtype(accumulate_dtype(dtype))?;
    let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
    let std = (centred.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
    centred.broadcast_div(&std)?.to_dtype(dtype)?.broadcast_mul(weight)?.broadcast_add(bias)
}

/// SiLU, x * sigmoid(x).
pub fn silu(x: &Tensor) -> Result<Tensor> {
    x / (x.neg()?.exp()? + 1.0)?
}

/// QuickGELU, x * sigmoid(1.702 x).
pub fn quick_gelu(x: &Tensor) -> Result<Tensor> {
    x / ((x * -1.702)?.exp()? + 1.0)?
}

/// `rotate_half` of the Hugging Face rotary embedding: (-x2, x1) over the last dimension.
pub fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d - d / 2)?;
    Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)
}

/// Rotary embedding, x * cos + rotate_half(x) * sin; `cos`/`sin` broadcast against `x`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    x.broadcast_mul(cos)? + rotate_half(x)?.broadcast_mul(sin)?
}

/// `x @ w^T (+ b)` for a weight stored as (out, in), on inputs of any leading shape.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let y = match x.dims() {
        [_, _] => x.matmul(&w.t()?)?,
        dims => {
            let k = *dims.last().expect("non-empty shape");
            let lead: usize = dims[..dims.len() - 1].iter().product();
            let mut out = dims.to_vec();
            *out.last_mut().expect("non-empty shape") = w.dim(0)?;
            x.reshape((lead, k))?.matmul(&w.t()?)?.reshape(out)?
        }
    };
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// Softmax over the last dimension of scores (.., n, t) times `scale`, causal: query row i (of
/// the n) sees keys j <= offset + i, the others get probability 0. On the CPU (f32) it is one
/// fused pass forward and one backward (`dx = scale * y * (dy - sum(dy * y))`) instead of
/// about six element-wise ops with their allocations each way; elsewhere it is composed of
/// differentiable primitives with an additive mask.
pub fn causal_softmax(x: &Tensor, scale: f64, offset: usize) -> Result<Tensor> {
    let dims = x.dims();
    if dims.len() < 2 {
        candle_core::bail!("causal_softmax: scores of shape {dims:?}");
    }
    let (n, t) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        return x.contiguous()?.apply_op1(CausalSoftmax { scale: scale as f32, offset, n, t });
    }
    let mask: Vec<f32> = (0..n * t).map(|k| if k % t > offset + k / t { f32::NEG_INFINITY } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, (n, t), x.device())?;
    let acc = accumulate_dtype(x.dtype());
    softmax_last_dim(&(x * scale)?.to_dtype(acc)?.broadcast_add(&mask.to_dtype(acc)?)?)?.to_dtype(x.dtype())
}

struct CausalSoftmax {
    scale: f32,
    offset: usize,
    n: usize,
    t: usize,
}

fn f32_slice<'a>(s: &'a candle_core::CpuStorage, l: &candle_core::Layout) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (candle_core::CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("causal_softmax: expected a contiguous f32 tensor"),
    }
}

impl candle_core::CustomOp1 for CausalSoftmax {
    fn name(&self) -> &'static str {
        "causal-softmax"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let x = f32_slice(s, l)?;
        let (n, t, scale, offset) = (self.n, self.t, self.scale, self.offset);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(t).zip(x.par_chunks(t)).enumerate().for_each(|(r, (o, x))| {
            let seen = (offset + r % n + 1).min(t);
            let max = x[..seen].iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v * scale));
            let mut sum = 0f32;
            for (o, &v) in o[..seen].iter_mut().zip(&x[..seen]) {
                *o = (v * scale - max).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            o[..seen].iter_mut().for_each(|o| *o *= inv);
        });
        Ok((candle_core::CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let g = res
            .contiguous()?
            .apply_op2_no_bwd(&grad_res.contiguous()?, &SoftmaxGrad { scale: self.scale, t: self.t })?;
        Ok(Some(g))
    }
}

/// The gradient of a (scaled) softmax from its output y and the output's gradient dy.
struct SoftmaxGrad {
    scale: f32,
    t: usize,
}

impl candle_core::CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "causal-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &candle_core::CpuStorage,
        l1: &candle_core::Layout,
        s2: &candle_core::CpuStorage,
        l2: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let (y, dy) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        if y.len() != dy.len() {
            candle_core::bail!("causal_softmax backward: {} outputs, {} gradients", y.len(), dy.len());
        }
        let (t, scale) = (self.t, self.scale);
        let mut out = vec![0f32; y.len()];
        out.par_chunks_mut(t).zip(y.par_chunks(t).zip(dy.par_chunks(t))).for_each(|(o, (y, dy))| {
            let dot: f32 = y.iter().zip(dy).map(|(a, b)| a * b).sum();
            for ((o, &y), &dy) in o.iter_mut().zip(y).zip(dy) {
                *o = scale * y * (dy - dot);
            }
        });
        Ok((candle_core::CpuStorage::F32(out), l1.shape().clone()))
    }
}
