//! The decoder's caches: the key/value cache of generation (one row per sequence, batched),
//! and the per-row plans of packed attention (query blocks, masks, stored keys and values).

use candle_core::{Device, Tensor};

use crate::error::{Error, Result};

use super::*;

/// The caches of several sequences decoded together, left-padded to one length: keys and
/// values (B, T, kv heads, hd) per layer and an additive f32 mask (B, T) that hides each row's
/// padding.
#[derive(Clone)]
pub struct BatchCache {
    pub(super) layers: Vec<(Tensor, Tensor)>,
    pub(super) mask: Tensor,
}

impl BatchCache {
    /// Stack filled single-sequence caches (of one model), left-padding the shorter ones.
    pub fn stack(caches: &[&KvCache]) -> Result<Self> {
        let first = caches.first().ok_or_else(|| Error::Run("model: no caches to stack".into()))?;
        let t = caches.iter().map(|c| c.len).max().unwrap_or(0);
        let layers = (0..first.layers.len())
            .map(|i| -> Result<(Tensor, Tensor)> {
                let pad = |x: &Tensor, len: usize| -> candle_core::Result<Tensor> {
                    if len == t {
                        return Ok(x.clone());
                    }
                    let (_, h, d) = x.dims3()?;
                    Tensor::cat(&[&Tensor::zeros((t - len, h, d), x.dtype(), x.device())?, x], 0)
                };
                let mut ks = Vec::with_capacity(caches.len());
                let mut vs = Vec::with_capacity(caches.len());
                for c in caches {
                    let (k, v) = c
                        .layers
                        .get(i)
                        .and_then(|l| l.as_ref())
                        .ok_or_else(|| Error::Run("model: stacking an empty cache".into()))?;
                    ks.push(pad(k, c.len).map_err(ce)?);
                    vs.push(pad(v, c.len).map_err(ce)?);
                }
                Ok((Tensor::stack(&ks, 0).map_err(ce)?, Tensor::stack(&vs, 0).map_err(ce)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let mask: Vec<f32> = caches
            .iter()
            .flat_map(|c| (0..t).map(move |j| if j < t - c.len { f32::NEG_INFINITY } else { 0.0 }))
            .collect();
        let device = first.layers.iter().flatten().next().map(|(k, _)| k.device().clone()).unwrap_or(Device::Cpu);
        let mask = Tensor::from_vec(mask, (caches.len(), t), &device).map_err(ce)?;
        Ok(Self { layers, mask })
    }

    /// The cache of rows `rows` of this one, in that order (repeats allowed).
    pub fn select(&self, rows: &[u32]) -> Result<Self> {
        let idx = Tensor::new(rows, self.mask.device()).map_err(ce)?;
        let pick = |x: &Tensor| x.index_select(&idx, 0).map_err(ce);
        let layers = self.layers.iter().map(|(k, v)| Ok((pick(k)?, pick(v)?))).collect::<Result<Vec<_>>>()?;
        Ok(Self { layers, mask: pick(&self.mask)? })
    }

    /// Sequences in the batch.
    pub fn rows(&self) -> usize {
        self.mask.dim(0).unwrap_or(0)
    }
}

/// What all layers of a packed row share (see [`TextModel::plan`]).
pub(super) struct RowPlan {
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
    pub(super) blocks: Vec<QueryBlock>,
}

/// A block of query rows [b0, b1) of the segment of `len` rows that starts at row `start`;
/// its keys are the segment's rows [0, b1), causally (query row i sees keys up to b0 + i).
pub(super) struct QueryBlock {
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) b0: usize,
    pub(super) b1: usize,
}

/// Which keys each query sees in [`TextModel::attend`].
#[derive(Clone, Copy)]
pub(super) enum Mask<'a> {
    /// An additive f32 mask broadcastable to the scores (B, kv heads, group, n, t).
    Additive(&'a Tensor),
    /// Query row i sees keys j <= offset + i.
    Causal(usize),
}

/// What the training forward pass keeps of one layer (see [`TextModel::forward_stored`]).
pub struct Stored {
    /// The layer's input (L, hidden).
    pub input: Tensor,
    /// Its attention output before the output projection (L, heads * hd).
    pub attn: Tensor,
}

/// Keys and values of the tokens seen so far, per layer.
#[derive(Default, Clone)]
pub struct KvCache {
    pub(super) layers: Vec<Option<(Tensor, Tensor)>>,
    /// Tokens in the cache.
    pub len: usize,
}
