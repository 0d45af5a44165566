//! `validate`: the row-level sanity gate. Drops rows with an empty prompt or response, an image
//! file that was missing at ingest, or image bytes that do not decode. Measures the width and
//! height of every image of the rows it keeps.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Measured, Stage, StageContext, Verdict};
use crate::error::Result;
use crate::schema::Trace;

/// Parameters of `validate`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateConfig {
    /// Drop rows whose response is empty (set false for RL prompt sets). Default true.
    #[serde(default = "yes")]
    pub require_response: bool,
    /// Fully decode every image (catches truncated and corrupt files). Default true.
    #[serde(default = "yes")]
    pub decode_images: bool,
}

fn yes() -> bool {
    true
}

pub struct Validate {
    cfg: ValidateConfig,
}

impl Validate {
    pub fn new(cfg: ValidateConfig) -> Self {
        Self { cfg }
    }
}

impl Stage for Validate {
    fn name(&self) -> &'static str {
        "validate"
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, ctx: &StageContext) -> Result<Measured> {
        if t.prompt.trim().is_empty() {
            return Ok(Measured::only(Verdict::drop("empty_prompt", "prompt is empty")));
        }
        if self.cfg.require_response && t.response.trim().is_empty() {
            return Ok(Measured::only(Verdict::drop("empty_response", "response is empty")));
        }
        for (k, img) in t.images.iter().enumerate() {
            if img.id.is_empty() {
                return Ok(Measured::only(Verdict::drop(
                    "missing_image",
                    format!("image {k} `{}` was not found at ingest", crate::text::clip(&img.path, 120)),
                )));
            }
        }
        if self.cfg.decode_images {
            for (k, img) in t.images.iter().enumerate() {
                // decoding completely is the check; the fingerprint the dedup stages compare
                // comes out of it and goes into the image store's fingerprint log
                if let Err(e) = ctx.images.fingerprint_checked(&img.id)? {
                    return Ok(Measured::only(Verdict::drop(
                        "corrupt_image",
                        format!("image {k} `{}` ({}): {e}", img.path, img.id),
                    )));
                }
            }
        }
        // image sizes of the rows that pass, one value per image
        let mut values = Vec::with_capacity(2 * t.images.len());
        for img in &t.images {
            values.push(("image_width", img.width as f64));
            values.push(("image_height", img.height as f64));
        }
        Ok(Measured { verdict: Verdict::Keep, values })
    }
}
