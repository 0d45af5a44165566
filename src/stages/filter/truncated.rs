//! `filter.truncated`: traces whose reasoning never closes or that end without an
//! extractable final answer.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{default_close, default_open};
use crate::error::Result;
use crate::schema::Trace;
use crate::stages::{Measured, Stage, StageContext, Verdict};
use crate::verify::extract_answer;

/// Parameters of `filter.truncated`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TruncatedConfig {
    /// Opening tag of the reasoning. Default `<think>`.
    #[serde(default = "default_open")]
    pub open: String,
    /// Closing tag of the reasoning. Default `</think>`.
    #[serde(default = "default_close")]
    pub close: String,
}

pub struct Truncated {
    cfg: TruncatedConfig,
}

impl Truncated {
    pub fn new(cfg: TruncatedConfig) -> Self {
        Self { cfg }
    }
}

impl Stage for Truncated {
    fn name(&self) -> &'static str {
        "filter.truncated"
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let r = &t.response;
        let opened = r.rfind(&self.cfg.open);
        if let Some(a) = opened {
            if !r[a..].contains(&self.cfg.close) {
                let words = r.split_whitespace().count();
                return Ok(Measured::only(Verdict::drop(
                    "unclosed_reasoning",
                    format!("{} is never closed ({words} words)", self.cfg.open),
                )));
            }
        }
        if extract_answer(r).is_none() {
            return Ok(Measured::only(Verdict::drop("no_final_answer", "no extractable final answer")));
        }
        Ok(Measured::only(Verdict::Keep))
    }
}
