//! Linear projections with optional LoRA adapters: `y = x W^T + b + (alpha / r) *
//! (dropout(x) A^T) B^T`, A (r, in) and B (out, r). A starts uniform in +-1/sqrt(in) and B at
//! zero, so a new adapter leaves the model unchanged. Dropout masks are a pure function of a
//! seed, the adapter and the input's shape: the backward pass that recomputes a layer replays
//! exactly the masks of its forward pass. Merging folds `scale * B A` into W (for export).

use candle_core::{DType, Tensor};

use super::ops::linear;
use crate::rng::Rng;

/// The decoder projections an adapter can target, by their Hugging Face module names.
pub const TARGETS: [&str; 7] = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

/// A low-rank adapter of one projection.
#[derive(Clone)]
pub struct Lora {
    /// (rank, in)
    pub a: Tensor,
    /// (out, rank)
    pub b: Tensor,
    /// alpha / rank
    pub scale: f64,
    /// Dropout probability on the adapter's input (training only).
    pub dropout: f64,
    /// Identifies the adapter in dropout masks.
    pub key: u64,
}

/// A linear layer (weight (out, in), optional bias) with an optional adapter.
#[derive(Clone)]
pub struct Proj {
    pub w: Tensor,
    pub bias: Option<Tensor>,
    pub lora: Option<Lora>,
}

impl Proj {
    pub fn new(w: Tensor, bias: Option<Tensor>) -> Self {
        Self { w, bias, lora: None }
    }

    /// `x W^T + b`, plus the adapter's term; dropout applies when `dropout_seed` is given.
    pub fn forward(&self, x: &Tensor, dropout_seed: Option<u64>) -> candle_core::Result<Tensor> {
        let y = linear(x, &self.w, self.bias.as_ref())?;
        let Some(l) = &self.lora else { return Ok(y) };
        let xd = match dropout_seed {
            Some(seed) if l.dropout > 0.0 => x.mul(&dropout_mask(seed, l.key, l.dropout, x)?)?,
            _ => x.clone(),
        };
        y + (linear(&linear(&xd, &l.a, None)?, &l.b, None)? * l.scale)?
    }

    /// The weight with the adapter folded in (computed in f32, returned in the weight's dtype).
    pub fn merged(&self) -> candle_core::Result<Tensor> {
        let Some(l) = &self.lora else { return Ok(self.w.detach()) };
        let f = |t: &Tensor| t.detach().to_dtype(DType::F32);
        let delta = (f(&l.b)?.matmul(&f(&l.a)?)? * l.scale)?;
        (f(&self.w)? + delta)?.to_dtype(self.w.dtype())
    }

    /// A copy whose tensors record no gradients.
    pub fn detached(&self) -> Self {
        Self {
            w: self.w.detach(),
            bias: self.bias.as_ref().map(|b| b.detach()),
            lora: self.lora.as_ref().map(|l| Lora { a: l.a.detach(), b: l.b.detach(), ..l.clone() }),
        }
    }
}

/// Inverted-dropout mask of x's shape and dtype: 0 with probability `p`, else 1 / (1 - p); a
/// function of (seed, key, shape) only.
fn dropout_mask(seed: u64, key: u64, p: f64, x: &Tensor) -> candle_core::Result<Tensor> {
    let n = x.elem_count();
    let mut rng = Rng::for_item(seed, 0x6c6f_7261, key ^ (n as u64).rotate_left(32));
    let keep = (1.0 / (1.0 - p)) as f32;
    let v: Vec<f32> = (0..n).map(|_| if rng.f64() < p { 0.0 } else { keep }).collect();
    Tensor::from_vec(v, x.shape(), x.device())?.to_dtype(x.dtype())
}

/// A fresh adapter's A (rank, in): uniform in +-1/sqrt(in), as PEFT's default (Kaiming
/// uniform with a = sqrt(5)), from the project's RNG.
pub fn init_a(
    rank: usize,
    inputs: usize,
    seed: u64,
    key: u64,
    dtype: DType,
    device: &candle_core::Device,
) -> candle_core::Result<Tensor> {
    let mut rng = Rng::for_item(seed, 0x6c6f_7241, key);
    let bound = 1.0 / (inputs as f64).sqrt();
    let v: Vec<f32> = (0..rank * inputs).map(|_| ((2.0 * rng.f64() - 1.0) * bound) as f32).collect();
    Tensor::from_vec(v, (rank, inputs), device)?.to_dtype(dtype)
}
