//! Rollouts, the one path from a trace to judged continuations that `score`, `eval` and GRPO
//! share: the trace's prompt rendered with the chat template up to the assistant header and
//! its images turned into pixels ([`trace_prompt`]), then each generated continuation decoded,
//! checked for a stop token and verified against the reference ([`judge`]).

use crate::error::{Error, Result};
use crate::model::{CausalLm, Prompt};
use crate::schema::Trace;
use crate::tokenize::encode::{ChatEncoder, Reject};

/// The prompt of `trace` for `model`: its token ids up to the assistant header and the pixels
/// of `images` (the trace's image files, in order). A trace the template cannot render is
/// the inner error, with its reason.
pub fn trace_prompt(
    encoder: &ChatEncoder,
    model: &CausalLm,
    trace: &Trace,
    images: &[Vec<u8>],
) -> Result<std::result::Result<Prompt, Reject>> {
    let tokens = match encoder.encode_prompt(trace)? {
        Ok(k) => k,
        Err(r) => return Ok(Err(r)),
    };
    let pixel_values = model.pixel_values_for(images, &tokens.grids, &format!("trace {}", trace.id))?;
    Ok(Ok(Prompt { ids: tokens.ids, pixel_values, grids: tokens.grids }))
}

/// One continuation, judged.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The continuation as text (special tokens left out).
    pub text: String,
    /// It ended without a stop token (at the length limit).
    pub truncated: bool,
    /// The verifier found its final answer equal to the reference.
    pub correct: bool,
    /// The final answer found in it.
    pub extracted: Option<String>,
}

/// Decode a continuation, see whether it ended at one of `stop`, and verify it against
/// `reference`.
pub fn judge(tokenizer: &tokenizers::Tokenizer, stop: &[u32], reference: &str, tokens: &[u32]) -> Result<Answer> {
    let truncated = !tokens.last().is_some_and(|t| stop.contains(t));
    let text = tokenizer.decode(tokens, true).map_err(|e| Error::Run(format!("decoding a continuation: {e}")))?;
    let v = crate::verify::verify(reference, &text);
    Ok(Answer { text, truncated, correct: v.equal, extracted: v.pred_extracted })
}
