//! `score`: difficulty by the model's own pass rate. It samples k answers per prompt with a
//! given model and records the share the verifier accepts (`pass_rate`); `filter.pass_rate`
//! (in [`crate::stages::filter::pass_rate`]) keeps a band of it.
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
use crate::model::{CausalLm, GenerateOptions};
use crate::schema::Trace;
use crate::text::tokens::{DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS};
use crate::tokenize::encode::{ChatEncoder, EncodeOptions};

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
            return Err(format!(
                "`model`: {} has no config.json (a Hugging Face model directory is needed)",
                dir.display()
            ));
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
            return Err(format!(
                "`temperature` must be > 0 (got {}): k greedy answers would all be the same",
                self.temperature
            ));
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
        let opts = EncodeOptions {
            system: cfg.system.clone(),
            min_pixels: cfg.min_pixels,
            max_pixels: cfg.max_pixels,
            ..EncodeOptions::default()
        };
        let encoder = ChatEncoder::from_dir(&tok, opts)?;
        let stop = crate::tokenize::stop_tokens(&encoder.tokenizer);
        if stop.is_empty() {
            return Err(Error::Input(format!(
                "score: the tokenizer in {} has no <|im_end|> or <|endoftext|> token to stop at",
                tok.display()
            )));
        }
        Ok(Self { cfg, model, encoder, stop, outcomes: Vec::new() })
    }

    /// Sample and verify the answers to one row's prompt.
    fn score(&self, t: &Trace, ctx: &IndexContext) -> Result<Outcome> {
        let Some(reference) = t.reference.as_deref().filter(|r| !r.trim().is_empty()) else {
            return Ok(Outcome::NoReference);
        };
        let images = t.images.iter().map(|im| ctx.images.get(&im.id)).collect::<Result<Vec<_>>>()?;
        let prompt = match crate::rollout::trace_prompt(&self.encoder, &self.model, t, &images)? {
            Ok(p) => p,
            Err(r) => return Ok(Outcome::Bad(r.reason, r.detail)),
        };
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
            let a = crate::rollout::judge(&self.encoder.tokenizer, &self.stop, reference, out)?;
            correct += usize::from(!a.truncated && a.correct);
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
        Some(vec![
            "id",
            "system",
            "prompt",
            "response",
            "reference",
            "image_ids",
            "image_paths",
            "image_widths",
            "image_heights",
        ])
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
        let o =
            self.outcomes.get(pos as usize).ok_or_else(|| Error::Run(format!("score: row {pos} was not indexed")))?;
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
        let rates: Vec<f64> =
            self.outcomes.iter().filter_map(|o| if let Outcome::Rate(p) = o { Some(*p) } else { None }).collect();
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
