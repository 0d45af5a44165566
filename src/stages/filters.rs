//! Row-local long-CoT filters: `filter.format`, `filter.truncated`, `filter.image` and
//! `filter.correct`. Each drop names the reason and the measured value in the ledger detail.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Measured, Stage, StageContext, Verdict};
use crate::error::Result;
use crate::schema::Trace;
use crate::verify::{VerifyOptions, extract_answer, verify_with};

fn default_open() -> String {
    "<think>".into()
}
fn default_close() -> String {
    "</think>".into()
}

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
                return Verdict::drop("malformed_tags", format!("{n_open} {open} and {n_close} {close}; expected one of each"));
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
                return Ok(Measured::only(Verdict::drop("unclosed_reasoning", format!("{} is never closed ({words} words)", self.cfg.open))));
            }
        }
        if extract_answer(r).is_none() {
            return Ok(Measured::only(Verdict::drop("no_final_answer", "no extractable final answer")));
        }
        Ok(Measured::only(Verdict::Keep))
    }
}

/// Parameters of `filter.image`; every bound is optional.
#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// Smallest allowed shorter side, pixels.
    pub min_side: Option<u32>,
    /// Largest allowed longer side, pixels.
    pub max_side: Option<u32>,
    /// Largest allowed ratio of longer to shorter side.
    pub max_aspect: Option<f64>,
    /// Largest allowed width x height.
    pub max_pixels: Option<u64>,
    /// Fewest images per row (e.g. 1 for multimodal-only sets).
    pub min_images: Option<usize>,
    /// Most images per row.
    pub max_images: Option<usize>,
}

impl ImageConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        if let (Some(a), Some(b)) = (self.min_side, self.max_side) {
            if a > b {
                return Err(format!("min_side ({a}) is greater than max_side ({b})"));
            }
        }
        if let (Some(a), Some(b)) = (self.min_images, self.max_images) {
            if a > b {
                return Err(format!("min_images ({a}) is greater than max_images ({b})"));
            }
        }
        if self.max_aspect.is_some_and(|a| a < 1.0) {
            return Err("max_aspect must be at least 1".into());
        }
        Ok(())
    }
}

pub struct Image {
    cfg: ImageConfig,
}

impl Image {
    pub fn new(cfg: ImageConfig) -> Self {
        Self { cfg }
    }
}

impl Stage for Image {
    fn name(&self) -> &'static str {
        "filter.image"
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let c = &self.cfg;
        let n = t.images.len();
        let mut values = vec![("images", n as f64)];
        let verdict = (|| {
            if let Some(min) = c.min_images {
                if n < min {
                    return Verdict::drop("too_few_images", format!("{n} images < min_images {min}"));
                }
            }
            if let Some(max) = c.max_images {
                if n > max {
                    return Verdict::drop("too_many_images", format!("{n} images > max_images {max}"));
                }
            }
            for (k, i) in t.images.iter().enumerate() {
                let (short, long) = (i.width.min(i.height), i.width.max(i.height));
                let px = i.width as u64 * i.height as u64;
                let what = format!("image {k} ({}x{})", i.width, i.height);
                if c.min_side.is_some_and(|m| short < m) {
                    return Verdict::drop("image_too_small", format!("{what}: shorter side < min_side {}", c.min_side.unwrap_or(0)));
                }
                if c.max_side.is_some_and(|m| long > m) {
                    return Verdict::drop("image_too_large", format!("{what}: longer side > max_side {}", c.max_side.unwrap_or(0)));
                }
                if let Some(m) = c.max_aspect {
                    let aspect = long as f64 / short.max(1) as f64;
                    if aspect > m {
                        return Verdict::drop("extreme_aspect", format!("{what}: aspect {aspect:.2} > max_aspect {m}"));
                    }
                }
                if c.max_pixels.is_some_and(|m| px > m) {
                    return Verdict::drop("too_many_pixels", format!("{what}: {px} pixels > max_pixels {}", c.max_pixels.unwrap_or(0)));
                }
            }
            Verdict::Keep
        })();
        for i in &t.images {
            values.push(("image_pixels", i.width as f64 * i.height as f64));
        }
        Ok(Measured { verdict, values })
    }
}

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
