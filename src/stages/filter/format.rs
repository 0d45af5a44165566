//! `filter.format`: the `<think>...</think>` shape. One pair of tags, non-empty reasoning,
//! and a final answer after it (optionally inside an answer tag).

use schemars::JsonSchema;
use serde::Deserialize;

use super::{default_close, default_open};
use crate::error::Result;
use crate::schema::Trace;
use crate::stages::{Measured, Stage, StageContext, Verdict};
use crate::verify::extract_answer;

/// Parameters of `filter.format`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormatConfig {
    /// Opening tag of the reasoning. Default `<think>`.
    #[serde(default = "default_open")]
    pub open: String,
    /// Closing tag of the reasoning. Default `</think>`.
    #[serde(default = "default_close")]
    pub close: String,
    /// Also require `<TAG>...</TAG>` around the final answer after the reasoning, e.g. `answer`.
    pub answer_tag: Option<String>,
}

pub struct Format {
    cfg: FormatConfig,
}

impl Format {
    pub fn new(cfg: FormatConfig) -> Self {
        Self { cfg }
    }
}

impl Stage for Format {
    fn name(&self) -> &'static str {
        "filter.format"
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let (open, close) = (self.cfg.open.as_str(), self.cfg.close.as_str());
        let r = &t.response;
        let (n_open, n_close) = (r.matches(open).count(), r.matches(close).count());
        let verdict = (|| {
            if n_open == 0 && n_close == 0 {
                return Verdict::drop("no_reasoning", format!("no {open}...{close} block"));
            }
            if n_open != 1 || n_close != 1 {
                return Verdict::drop(
                    "malformed_tags",
                    format!("{n_open} {open} and {n_close} {close}; expected one of each"),
                );
            }
            let (a, b) = (r.find(open).unwrap_or(0), r.find(close).unwrap_or(0));
            if b < a {
                return Verdict::drop("malformed_tags", format!("{close} comes before {open}"));
            }
            let reasoning = &r[a + open.len()..b];
            if reasoning.trim().is_empty() {
                return Verdict::drop("empty_reasoning", "the reasoning block is empty");
            }
            let after = &r[b + close.len()..];
            if let Some(tag) = &self.cfg.answer_tag {
                let (o, c) = (format!("<{tag}>"), format!("</{tag}>"));
                let ok = after.find(&o).is_some_and(|i| after[i + o.len()..].contains(&c));
                if !ok {
                    return Verdict::drop("missing_answer_tag", format!("no {o}...{c} after {close}"));
                }
            }
            if after.trim().is_empty() || extract_answer(after).is_none() {
                return Verdict::drop("no_final_answer", format!("no final answer after {close}"));
            }
            Verdict::Keep
        })();
        Ok(Measured { verdict, values: vec![("think_blocks", n_open as f64)] })
    }
}
