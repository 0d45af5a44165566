//! Difficulty by the model's own pass rate: `score` samples k answers per prompt with a given
//! model and records the share the verifier accepts (`pass_rate`); `filter.pass_rate` keeps a
//! band of it (e.g. `gt: 0, le: 0.5`: hard but learnable), whether `score` computed it or the
//! input carried it (the `pass_rate` column mapping).
//!
//! `score` is a global stage: its index pass generates for every row (the prompt rendered
//! with the chat template up to the assistant header, images included; the k samples of a
//! prompt decode together with the KV cache), then rows are judged. Each row's samples draw
//! from a random stream seeded by the stage seed and the row id, so a pass rate does not
//! depend on batch size, thread count or the other rows.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{IndexContext, Measured, Stage, StageContext, Verdict};
use crate::error::{Error, Result};
use crate::model::{CausalLm, GenerateOptions, Prompt};
use crate::pack::encode::{ChatEncoder, EncodeOptions};
use crate::text::tokens::{DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS};
use crate::schema::Trace;

/// Parameters of `score`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    /// Model directory (Hugging Face `config.json` + safetensors), e.g. an SFT checkpoint.
    pub model: String,
    /// Tokenizer directory with the chat template. Default: the model directory.
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// System prompt for traces without one (use the one the model was trained with).
    #[serde(default)]
    pub system: Option<String>,
    /// Answers sampled per prompt (k). Default 8.
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Sampling temperature (> 0). Default 1.0.
    #[serde(default = "one")]
    pub temperature: f64,
    /// Nucleus mass kept, in (0, 1]. Default 1.0.
    #[serde(default = "one")]
    pub top_p: f64,
    /// Longest answer, in tokens; a longer one counts as wrong. Default 1024.
    #[serde(default = "default_new_tokens")]
    pub max_new_tokens: usize,
    /// Random seed. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// `cpu` (default), `cuda` or `cuda:N`.
    #[serde(default = "cpu")]
    pub device: String,
    /// Image resizing bounds, as in `tokenize` (keep them equal to the model's training data).
    #[serde(default = "min_pixels")]
    pub min_pixels: u64,
    #[serde(default = "max_pixels")]
    pub max_pixels: u64,
}

fn default_samples() -> usize {
    8
}
fn one() -> f64 {
    1.0
}
fn default_new_tokens() -> usize {
    1024
}
fn cpu() -> String {
    "cpu".into()
}
fn min_pixels() -> u64 {
    DEFAULT_MIN_PIXELS
}
fn max_pixels() -> u64 {
    DEFAULT_MAX_PIXELS
}

impl ScoreConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        let dir = PathBuf::from(&self.model);
        if !dir.join("config.json").is_file() {
            return Err(format!("`model`: {} has no config.json (a Hugging Face model directory is needed)", dir.display()));
        }
        if let Some(t) = &self.tokenizer {
            if !PathBuf::from(t).join("tokenizer.json").is_file() {
                return Err(format!("`tokenizer`: {t} has no tokenizer.json"));
            }
        }
        if self.samples == 0 {
            return Err("`samples` must be at least 1".into());
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!("`temperature` must be > 0 (got {}): k greedy answers would all be the same", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!("`top_p` must be in (0, 1] (got {})", self.top_p));
        }
        if self.max_new_tokens == 0 {
            return Err("`max_new_tokens` must be at least 1".into());
        }
        Ok(())
    }
}

/// What the index pass found for one row.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Rate(f64),
    /// No reference to verify against: kept without a pass rate.
    NoReference,
    /// The prompt could not be rendered (reason, detail).
    Bad(&'static str, String),
}

pub struct Score {
    cfg: ScoreConfig,
    model: CausalLm,
    encoder: ChatEncoder,
    stop: Vec<u32>,
    outcomes: Vec<Outcome>,
}

impl Score {
    pub fn new(cfg: ScoreConfig) -> Result<Self> {
        let device = crate::model::device(&cfg.device)?;
        let dir = PathBuf::from(&cfg.model);
        let model = CausalLm::load(&dir, candle_core::DType::F32, &device)?;
        let tok = cfg.tokenizer.clone().map(PathBuf::from).unwrap_or_else(|| dir.clone());
        let opts = EncodeOptions { system: cfg.system.clone(), min_pixels: cfg.min_pixels, max_pixels: cfg.max_pixels, ..EncodeOptions::default() };
        let encoder = ChatEncoder::from_dir(&tok, opts)?;
        let stop = crate::train::eval::stop_tokens(&encoder.tokenizer);
        if stop.is_empty() {
            return Err(Error::Input(format!("score: the tokenizer in {} has no <|im_end|> or <|endoftext|> token to stop at", tok.display())));
        }
        Ok(Self { cfg, model, encoder, stop, outcomes: Vec::new() })
    }

    /// Sample and verify the answers to one row's prompt.
    fn score(&self, t: &Trace, ctx: &IndexContext) -> Result<Outcome> {
        let Some(reference) = t.reference.as_deref().filter(|r| !r.trim().is_empty()) else {
            return Ok(Outcome::NoReference);
        };
        let tokens = match self.encoder.encode_prompt(t)? {
            Ok(k) => k,
            Err(r) => return Ok(Outcome::Bad(r.reason, r.detail)),
        };
        let images = t.images.iter().map(|im| ctx.images.get(&im.id)).collect::<Result<Vec<_>>>()?;
        let pixel_values = self.model.pixel_values_for(&images, &tokens.grids, &format!("trace {}", t.id))?;
        let prompt = Prompt { ids: tokens.ids, pixel_values, grids: tokens.grids };
        let opts = GenerateOptions {
            max_new_tokens: self.cfg.max_new_tokens,
            temperature: self.cfg.temperature,
            top_p: self.cfg.top_p,
            stop: self.stop.clone(),
            seed: self.cfg.seed ^ xxhash_rust::xxh3::xxh3_64(t.id.as_bytes()),
            samples: self.cfg.samples,
        };
        let outs = self.model.generate(&[prompt], &opts)?;
        let mut correct = 0usize;
        for out in &outs {
            let finished = out.last().is_some_and(|x| self.stop.contains(x));
            let text = self.encoder.tokenizer.decode(out, true).map_err(|e| Error::Run(format!("score: decoding: {e}")))?;
            correct += usize::from(finished && crate::verify::verify(reference, &text).equal);
        }
        Ok(Outcome::Rate(correct as f64 / outs.len().max(1) as f64))
    }
}

impl Stage for Score {
    fn name(&self) -> &'static str {
        "score"
    }

    fn needs_index(&self) -> bool {
        true
    }

    fn index_columns(&self) -> Option<Vec<&'static str>> {
        Some(vec!["id", "system", "prompt", "response", "reference", "image_ids", "image_paths", "image_widths", "image_heights"])
    }

    fn index(&mut self, first: u64, batch: &[Trace], ctx: &IndexContext) -> Result<()> {
        if self.outcomes.len() as u64 != first {
            return Err(Error::Run(format!("score: index batch at row {first}, expected row {}", self.outcomes.len())));
        }
        for t in batch {
            let o = self.score(t, ctx)?;
            self.outcomes.push(o);
        }
        Ok(())
    }

    fn judge_measured(&self, pos: u64, _t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let o = self.outcomes.get(pos as usize).ok_or_else(|| Error::Run(format!("score: row {pos} was not indexed")))?;
        Ok(match o {
            Outcome::Rate(p) => Measured { verdict: Verdict::Keep, values: vec![("pass_rate", *p)] },
            Outcome::NoReference => Measured::only(Verdict::Keep),
            Outcome::Bad(reason, detail) => Measured::only(Verdict::drop(reason, detail.clone())),
        })
    }

    fn apply(&self, pos: u64, t: &mut Trace, ctx: &StageContext) -> Result<Measured> {
        let m = self.judge_measured(pos, t, ctx)?;
        if let Some(Outcome::Rate(p)) = self.outcomes.get(pos as usize) {
            t.pass_rate = Some(*p);
        }
        Ok(m)
    }

    fn summary(&self) -> Option<serde_json::Value> {
        let rates: Vec<f64> = self.outcomes.iter().filter_map(|o| if let Outcome::Rate(p) = o { Some(*p) } else { None }).collect();
        let count = |f: fn(f64) -> bool| rates.iter().filter(|&&p| f(p)).count();
        Some(serde_json::json!({
            "model": self.cfg.model,
            "samples": self.cfg.samples,
            "scored": rates.len(),
            "no_reference": self.outcomes.iter().filter(|o| **o == Outcome::NoReference).count(),
            "mean_pass_rate": if rates.is_empty() { 0.0 } else { rates.iter().sum::<f64>() / rates.len() as f64 },
            "never_solved": count(|p| p == 0.0),
            "always_solved": count(|p| p == 1.0),
        }))
    }
}

/// Parameters of `filter.pass_rate`: bounds of the band kept (at least one), e.g.
/// `{gt: 0, le: 0.5}` keeps 0 < p <= 0.5.
#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PassRateConfig {
    /// Keep rows whose pass rate is greater than this.
    #[serde(default)]
    pub gt: Option<f64>,
    /// ... greater than or equal to this.
    #[serde(default)]
    pub ge: Option<f64>,
    /// ... less than this.
    #[serde(default)]
    pub lt: Option<f64>,
    /// ... less than or equal to this.
    #[serde(default)]
    pub le: Option<f64>,
}

impl PassRateConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        let bounds = [("gt", self.gt), ("ge", self.ge), ("lt", self.lt), ("le", self.le)];
        if bounds.iter().all(|(_, b)| b.is_none()) {
            return Err("give at least one bound: gt, ge, lt or le (e.g. `{gt: 0, le: 0.5}`)".into());
        }
        if self.gt.is_some() && self.ge.is_some() {
            return Err("give `gt` or `ge`, not both".into());
        }
        if self.lt.is_some() && self.le.is_some() {
            return Err("give `lt` or `le`, not both".into());
        }
        for (k, b) in bounds {
            if let Some(b) = b {
                if !(0.0..=1.0).contains(&b) {
                    return Err(format!("`{k}` is {b}; pass rates are in [0, 1]"));
                }
            }
        }
        // some p in [0, 1] must pass both sides
        let lo = self.gt.or(self.ge).unwrap_or(0.0);
        let hi = self.lt.or(self.le).unwrap_or(1.0);
        if lo > hi || (lo == hi && (self.gt.is_some() || self.lt.is_some())) {
            return Err(format!("the band keeps no pass rate (lower bound {lo}, upper bound {hi})"));
        }
        Ok(())
    }

    /// The band as text, e.g. `0 < p <= 0.5`.
    fn band(&self) -> String {
        let lo = match (self.gt, self.ge) {
            (Some(v), _) => format!("{v} < "),
            (_, Some(v)) => format!("{v} <= "),
            _ => String::new(),
        };
        let hi = match (self.lt, self.le) {
            (Some(v), _) => format!(" < {v}"),
            (_, Some(v)) => format!(" <= {v}"),
            _ => String::new(),
        };
        format!("{lo}p{hi}")
    }
}

pub struct PassRate {
    cfg: PassRateConfig,
}

impl PassRate {
    pub fn new(cfg: PassRateConfig) -> Self {
        Self { cfg }
    }
}

impl Stage for PassRate {
    fn name(&self) -> &'static str {
        "filter.pass_rate"
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let Some(p) = t.pass_rate else {
            return Ok(Measured::only(Verdict::drop("no_pass_rate", "the row has no pass rate (run `score` first, or map a `pass_rate` column)")));
        };
        let c = &self.cfg;
        let low = c.gt.is_some_and(|b| p <= b) || c.ge.is_some_and(|b| p < b);
        let high = c.lt.is_some_and(|b| p >= b) || c.le.is_some_and(|b| p > b);
        let verdict = if low {
            Verdict::drop("too_hard", format!("pass rate {p} is outside {}", c.band()))
        } else if high {
            Verdict::drop("too_easy", format!("pass rate {p} is outside {}", c.band()))
        } else {
            Verdict::Keep
        };
        Ok(Measured { verdict, values: vec![("pass_rate", p)] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> PassRateConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn bands_are_checked() {
        assert!(cfg("{gt: 0, le: 0.5}").check().is_ok());
        assert!(cfg("{ge: 0.5, le: 0.5}").check().is_ok());
        for (y, needle) in [
            ("{}", "at least one bound"),
            ("{gt: 0, ge: 0}", "not both"),
            ("{lt: 1, le: 1}", "not both"),
            ("{le: 1.5}", "[0, 1]"),
            ("{gt: 0.5, le: 0.5}", "keeps no pass rate"),
            ("{ge: 0.6, lt: 0.4}", "keeps no pass rate"),
        ] {
            let e = cfg(y).check().unwrap_err();
            assert!(e.contains(needle), "{y}: {e}");
        }
        assert_eq!(cfg("{gt: 0, le: 0.5}").band(), "0 < p <= 0.5");
    }
}
