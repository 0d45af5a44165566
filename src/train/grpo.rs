//! The GRPO objective, as plain functions of per-token numbers: group-normalised advantages,
//! the PPO clipped ratio with separate low and high clip (clip-higher), the k3 estimator of
//! the KL to a reference model, and the aggregation of token losses into one loss.
//!
//! The trainer's output layer computes the gradient of `sum_i c_i * log p_i` for coefficients
//! `c_i` given per token ([`crate::train::loss::Coef`]); [`token_coef`] gives the `c_i` that
//! make that gradient the gradient of the GRPO loss: `w_i * d(loss_i)/d(log p_i)`.

use serde::{Deserialize, Serialize};

/// How token losses become one loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// The mean over all response tokens of the batch (DAPO): long responses weigh more.
    TokenMean,
    /// The mean over sequences of each sequence's token mean (the original GRPO).
    SeqMeanTokenMean,
    /// The mean over sequences of each sequence's token sum (Dr. GRPO's length-unbiased form,
    /// up to a constant).
    SeqMeanTokenSum,
}

impl Aggregation {
    /// Each token's weight in the loss, for sequences of `lens` response tokens (a sequence
    /// whose loss is masked out counts with length 0 and gets no weight).
    pub fn weights(self, lens: &[usize]) -> Vec<f64> {
        let seqs = lens.iter().filter(|&&l| l > 0).count().max(1) as f64;
        let tokens = lens.iter().sum::<usize>().max(1) as f64;
        lens.iter()
            .map(|&l| match self {
                _ if l == 0 => 0.0,
                Aggregation::TokenMean => 1.0 / tokens,
                Aggregation::SeqMeanTokenMean => 1.0 / (seqs * l as f64),
                Aggregation::SeqMeanTokenSum => 1.0 / seqs,
            })
            .collect()
    }
}

/// Group-normalised advantages: each reward minus its group's mean, divided by the group's
/// standard deviation (unbiased, as `torch.std`) plus `eps` when `std_normalize`. `rewards` is
/// group-major, `group` rewards per group; a group whose rewards are all equal gets zeros.
pub fn group_advantages(rewards: &[f64], group: usize, std_normalize: bool, eps: f64) -> Vec<f64> {
    let group = group.max(1);
    let mut out = Vec::with_capacity(rewards.len());
    for g in rewards.chunks(group) {
        if degenerate(g) {
            out.extend(std::iter::repeat_n(0.0, g.len()));
            continue;
        }
        let n = g.len() as f64;
        let mean = g.iter().sum::<f64>() / n;
        let std =
            if g.len() > 1 { (g.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
        for r in g {
            let centred = r - mean;
            out.push(if std_normalize { centred / (std + eps) } else { centred });
        }
    }
    out
}

/// Whether a group's rewards are all equal (dynamic sampling drops such groups: they carry no
/// advantage).
pub fn degenerate(group: &[f64]) -> bool {
    group.windows(2).all(|w| w[0] == w[1])
}

/// Clip range of the probability ratio: `[1 - low, 1 + high]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clip {
    pub low: f64,
    pub high: f64,
}

/// One token's clipped policy loss `-min(r A, clip(r) A)` with `r = exp(logp - old)`, its
/// derivative with respect to `logp`, and whether the clipped branch is the active one (then
/// the derivative is 0).
pub fn ppo_token(logp: f64, old: f64, adv: f64, clip: Clip) -> (f64, f64, bool) {
    let r = (logp - old).exp();
    let rc = r.clamp(1.0 - clip.low, 1.0 + clip.high);
    let (unclipped, clipped) = (r * adv, rc * adv);
    if clipped < unclipped { (-clipped, 0.0, true) } else { (-unclipped, -unclipped, false) }
}

/// The k3 estimator of KL(policy || reference) at one token, `exp(ref - logp) - (ref - logp)
/// - 1` (never negative), and its derivative with respect to `logp`.
pub fn k3(logp: f64, reference: f64) -> (f64, f64) {
    let d = reference - logp;
    let e = d.exp();
    (e - d - 1.0, 1.0 - e)
}

/// What one token contributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenTerm {
    /// The token's loss: policy loss plus `beta` times k3.
    pub loss: f64,
    /// `d(loss)/d(logp)`.
    pub grad: f64,
    pub clipped: bool,
    pub kl: f64,
}

/// A token's loss and its derivative: the clipped policy loss plus `beta * k3` against
/// `reference` (skipped when `beta` is 0 or there is no reference).
pub fn token_term(logp: f64, old: f64, reference: Option<f64>, adv: f64, clip: Clip, beta: f64) -> TokenTerm {
    let (pl, pg, clipped) = ppo_token(logp, old, adv, clip);
    let (kl, kg) = match reference {
        Some(r) if beta != 0.0 => k3(logp, r),
        _ => (0.0, 0.0),
    };
    TokenTerm { loss: pl + beta * kl, grad: pg + beta * kg, clipped, kl }
}

/// The head's coefficient for a token of aggregation weight `weight`: `weight * d(loss)/d(logp)`
/// (the head differentiates `sum_i c_i * log p_i`).
pub fn token_coef(term: &TokenTerm, weight: f64) -> f32 {
    (weight * term.grad) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIP: Clip = Clip { low: 0.2, high: 0.28 };

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn ratio_inside_the_clip_range_is_the_plain_policy_gradient() {
        // r = e^0.1 = 1.10517, A = 2: loss = -2.21034, dloss/dlogp = -r A
        let (l, g, c) = ppo_token(0.1, 0.0, 2.0, CLIP);
        assert!(close(l, -2.0 * 0.1f64.exp()) && close(g, l) && !c);
    }

    #[test]
    fn the_high_side_clips_positive_advantages_only() {
        // r = e^0.3 = 1.3499 > 1.28: with A > 0 the clipped 1.28 A is smaller, no gradient
        let (l, g, c) = ppo_token(0.3, 0.0, 1.5, CLIP);
        assert!(close(l, -1.28 * 1.5) && g == 0.0 && c);
        // with A < 0 the unclipped r A is the minimum: the gradient stays
        let (l, g, c) = ppo_token(0.3, 0.0, -1.5, CLIP);
        assert!(close(l, 1.5 * 0.3f64.exp()) && close(g, l) && !c);
        // 1.25 is inside [0.8, 1.28] (it would be clipped at a symmetric 0.2)
        let (_, g, c) = ppo_token(1.25f64.ln(), 0.0, 1.0, CLIP);
        assert!(close(g, -1.25) && !c);
    }

    #[test]
    fn the_low_side_clips_negative_advantages_only() {
        // r = 0.7 < 0.8: with A < 0 the clipped 0.8 A is smaller (-min(0.7 A, 0.8 A) with A = -1)
        let (l, g, c) = ppo_token(0.7f64.ln(), 0.0, -1.0, CLIP);
        assert!(close(l, 0.8) && g == 0.0 && c);
        let (l, g, c) = ppo_token(0.7f64.ln(), 0.0, 1.0, CLIP);
        assert!(close(l, -0.7) && close(g, -0.7) && !c);
    }

    #[test]
    fn k3_is_zero_at_equality_positive_otherwise_with_its_derivative() {
        assert_eq!(k3(-1.3, -1.3), (0.0, 0.0));
        // ref - logp = 0.5: e^0.5 - 0.5 - 1 = 0.148721, derivative 1 - e^0.5 = -0.648721
        let (kl, g) = k3(-1.0, -0.5);
        assert!(close(kl, 0.5f64.exp() - 1.5) && close(g, 1.0 - 0.5f64.exp()));
        let (kl_back, _) = k3(-0.5, -1.0);
        assert!(close(kl_back, (-0.5f64).exp() - 0.5));
        // the derivative matches a central difference
        let h = 1e-6;
        let num = (k3(-1.0 + h, -0.5).0 - k3(-1.0 - h, -0.5).0) / (2.0 * h);
        assert!((num - g).abs() < 1e-6);
        // beta scales it into the token's loss and gradient; no reference, no KL
        let t = token_term(-1.0, -1.0, Some(-0.5), 1.0, CLIP, 0.1);
        assert!(close(t.loss, -1.0 + 0.1 * kl) && close(t.grad, -1.0 + 0.1 * g) && close(t.kl, kl));
        assert_eq!(token_term(-1.0, -1.0, None, 1.0, CLIP, 0.1).kl, 0.0);
    }

    #[test]
    fn group_advantages_with_ties_and_without_std() {
        // group 1: [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(1/3) = 0.57735
        // group 2: all equal: zeros
        let a = group_advantages(&[1.0, 0.0, 0.0, 1.0, 0.7, 0.7, 0.7, 0.7], 4, true, 0.0);
        let s = (1.0f64 / 3.0).sqrt();
        for (x, y) in a.iter().zip([0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0.0, 0.0, 0.0, 0.0]) {
            assert!(close(*x, y), "{a:?}");
        }
        let a = group_advantages(&[3.0, 1.0, 2.0], 3, false, 1e-4);
        assert_eq!(a, vec![1.0, -1.0, 0.0]);
        assert!(degenerate(&[0.7, 0.7, 0.7]) && !degenerate(&[1.0, 0.0]));
    }

    #[test]
    fn aggregation_weights() {
        // sequences of 1, 3 and 0 (masked) tokens
        let lens = [1, 3, 0];
        assert_eq!(Aggregation::TokenMean.weights(&lens), vec![0.25, 0.25, 0.0]);
        assert_eq!(Aggregation::SeqMeanTokenMean.weights(&lens), vec![0.5, 0.5 / 3.0, 0.0]);
        assert_eq!(Aggregation::SeqMeanTokenSum.weights(&lens), vec![0.5, 0.5, 0.0]);
        // token mean of losses [l1 | l2 l3 l4] = (l1 + l2 + l3 + l4) / 4; sequence mean of
        // token means = (l1 + (l2 + l3 + l4) / 3) / 2
        let l = [1.0, 2.0, 4.0, 6.0];
        let w = Aggregation::SeqMeanTokenMean.weights(&lens);
        let total = l[0] * w[0] + (l[1] + l[2] + l[3]) * w[1];
        assert!(close(total, (1.0 + 4.0) / 2.0));
    }
}
