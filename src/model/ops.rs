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
