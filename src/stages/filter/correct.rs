//! `filter.correct`: traces whose final answer the verifier finds different from the
//! reference.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::Result;
use crate::schema::Trace;
use crate::stages::{Measured, Stage, StageContext, Verdict};
use crate::verify::{VerifyOptions, verify_with};

/// What to do with rows that have no reference answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum MissingReference {
    #[default]
    Keep,
    Drop,
}

/// Parameters of `filter.correct`.
#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct CorrectConfig {
    /// Rows without a reference: `keep` (default) or `drop`.
    #[serde(default)]
    pub missing_reference: MissingReference,
    /// Relative tolerance of numeric comparison. Default 1e-6.
    pub rel_tol: Option<f64>,
}

pub struct Correct {
    cfg: CorrectConfig,
}

impl Correct {
    pub fn new(cfg: CorrectConfig) -> Self {
        Self { cfg }
    }
}

impl Stage for Correct {
    fn name(&self) -> &'static str {
        "filter.correct"
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let Some(reference) = t.reference.as_deref().filter(|r| !r.trim().is_empty()) else {
            let verdict = match self.cfg.missing_reference {
                MissingReference::Keep => Verdict::Keep,
                MissingReference::Drop => Verdict::drop("no_reference", "the row has no reference answer"),
            };
            return Ok(Measured { verdict, values: vec![] });
        };
        let mut opts = VerifyOptions { question: Some(t.prompt.clone()), ..Default::default() };
        if let Some(tol) = self.cfg.rel_tol {
            opts.rel_tol = tol;
        }
        let v = verify_with(reference, &t.response, &opts);
        let verdict = if v.equal {
            Verdict::Keep
        } else if v.pred_extracted.is_none() {
            Verdict::drop("no_final_answer", format!("no final answer to compare with reference `{reference}`"))
        } else {
            Verdict::drop(
                "wrong_answer",
                format!(
                    "answered `{}`, reference `{}` ({})",
                    v.pred_extracted.as_deref().unwrap_or_default(),
                    v.gold_extracted.as_deref().unwrap_or(reference),
                    v.reason
                ),
            )
        };
        Ok(Measured { values: vec![("correct", if v.equal { 1.0 } else { 0.0 })], verdict })
    }
}
