//! The output layer and cross-entropy, in chunks of positions, only where a loss is taken.
//!
//! With a 151k vocabulary the logits of a 2,048-token row are 1.2 GB in f32, and autograd
//! would keep them (and their softmax) until the backward pass. Here the head runs outside the
//! graph: for each chunk of loss positions it computes the logits, the log-probabilities of the
//! targets and the entropy, and, given each position's coefficient c_i in the objective
//! `sum_i c_i * log p_i`, the gradients with respect to the hidden states and the head weight
//! at once (dlogits = c * (onehot - p)). The hidden-state gradient re-enters autograd through
//! a surrogate `sum(h * dh)` whose backward is exactly dh; the head gradient is returned to be
//! added to the weight's. Only one chunk of logits exists at a time, forward and backward.

use candle_core::{D, DType, Tensor};

use crate::error::{Error, Result};

fn ce(e: candle_core::Error) -> Error {
    Error::Run(format!("loss: {e}"))
}

/// Per-position results of the head over loss positions.
#[derive(Debug, Clone, Default)]
pub struct HeadOutput {
    /// log p(target) at each position.
    pub logp: Vec<f32>,
    /// Entropy of the predicted distribution at each position (when asked for).
    pub entropy: Vec<f32>,
}

/// Gradients of the objective `sum_i coef_i * log p_i`.
pub struct HeadGrads {
    /// A scalar whose backward gives the hidden states their gradient.
    pub surrogate: Tensor,
    /// Gradient of the head weight (vocab, hidden), f32.
    pub weight: Tensor,
}

/// The coefficients c_i of the objective `sum_i c_i * log p_i`, computed from each position's
/// index and its log-probability in the same pass (a constant for SFT; the policy-gradient
/// losses weigh a token by its current probability).
pub type Coef<'a> = &'a dyn Fn(usize, f32) -> f32;

/// Positions per chunk so that one chunk of f32 logits stays near `budget_bytes`.
pub fn chunk_rows(vocab: usize, budget_bytes: usize) -> usize {
    (budget_bytes / (vocab.max(1) * 4)).clamp(16, 4096)
}

/// The head over hidden states `h` (N, hidden) of the loss positions (a graph tensor when
/// `coef` is given) against `targets` (N), with head weight `w` (vocab, hidden). Returns the
/// per-position log-probabilities (and entropies when asked), and with `coef` the gradients.
pub fn head(
    h: &Tensor,
    w: &Tensor,
    targets: &[u32],
    coef: Option<Coef>,
    entropy: bool,
    chunk: usize,
) -> Result<(HeadOutput, Option<HeadGrads>)> {
    let n = h.dim(0).map_err(ce)?;
    if targets.len() != n {
        return Err(Error::Run(format!("loss: {n} positions, {} targets", targets.len())));
    }
    let hd = h.detach().to_dtype(DType::F32).map_err(ce)?;
    let wd = w.detach().to_dtype(DType::F32).map_err(ce)?;
    let device = h.device();
    let mut out = HeadOutput { logp: Vec::with_capacity(n), entropy: Vec::with_capacity(n) };
    let mut dh_parts = Vec::new();
    let mut dw = match coef {
        Some(_) => Some(wd.zeros_like().map_err(ce)?),
        None => None,
    };
    let mut scaled_rows = Vec::new();
    let mut start = 0;
    while start < n {
        let len = chunk.max(1).min(n - start);
        let step = (|| -> candle_core::Result<()> {
            let hc = hd.narrow(0, start, len)?;
            let t = Tensor::new(&targets[start..start + len], device)?;
            let logits = hc.matmul(&wd.t()?)?; // (len, vocab)
            let shifted = logits.broadcast_sub(&logits.max_keepdim(D::Minus1)?)?;
            drop(logits);
            let e = shifted.exp()?;
            let z = e.sum_keepdim(D::Minus1)?; // (len, 1)
            let lse = z.log()?; // of the shifted logits
            let picked = shifted.gather(&t.unsqueeze(1)?, 1)?;
            let logp = (picked - &lse)?.squeeze(1)?.to_vec1::<f32>()?;
            let coefs: Option<Vec<f32>> =
                coef.map(|f| logp.iter().enumerate().map(|(i, &lp)| f(start + i, lp)).collect());
            out.logp.extend(logp);
            if entropy {
                // entropy = lse - sum(p * shifted) = lse - sum(e * shifted) / z
                let ent = (&lse - ((&e * &shifted)?.sum_keepdim(D::Minus1)? / &z)?)?.squeeze(1)?;
                out.entropy.extend(ent.to_vec1::<f32>()?);
            }
            drop(shifted);
            if let (Some(coefs), Some(dw)) = (coefs, dw.as_mut()) {
                let c = Tensor::new(coefs.as_slice(), device)?.unsqueeze(1)?; // (len, 1)
                // dlogits = c * onehot - c * p, with -c * p = e * (-c / z)
                let g = e.broadcast_mul(&(c.neg()? / &z)?)?;
                drop(e);
                let dh = (g.matmul(&wd)? + wd.index_select(&t, 0)?.broadcast_mul(&c)?)?;
                *dw = (&*dw + g.t()?.matmul(&hc)?)?;
                scaled_rows.push(hc.broadcast_mul(&c)?);
                dh_parts.push(dh);
            }
            Ok(())
        })();
        step.map_err(ce)?;
        start += len;
    }
    // the one-hot part of the head's gradient, once: dW[t_i] += c_i * h_i
    if let Some(dw) = dw.as_mut()
        && !scaled_rows.is_empty()
    {
        let rows = Tensor::cat(&scaled_rows, 0).map_err(ce)?;
        let t = Tensor::new(targets, device).map_err(ce)?;
        *dw = dw.index_add(&t, &rows, 0).map_err(ce)?;
    }
    let grads = match dw {
        Some(weight) => {
            let dh = if dh_parts.is_empty() {
                hd.zeros_like().map_err(ce)?
            } else {
                Tensor::cat(&dh_parts, 0).map_err(ce)?
            };
            let surrogate = (h * dh.to_dtype(h.dtype()).map_err(ce)?).and_then(|x| x.sum_all()).map_err(ce)?;
            Some(HeadGrads { surrogate, weight })
        }
        None => None,
    };
    Ok((out, grads))
}

/// Loss positions of a packed row: position t predicts token t + 1 when that token carries
/// loss and lies in the same segment. Returns (positions, targets).
pub fn loss_positions(ids: &[u32], loss_mask: &[bool], segments: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut pos = Vec::new();
    let mut tgt = Vec::new();
    let mut start = 0usize;
    for &len in segments {
        let end = start + len as usize;
        for t in start..end.saturating_sub(1) {
            if loss_mask[t + 1] {
                pos.push(t as u32);
                tgt.push(ids[t + 1]);
            }
        }
        start = end;
    }
    (pos, tgt)
}
