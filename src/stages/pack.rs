//! `pack`: the last stage. Row by row it settles samples longer than `max_length`: dropped to
//! the ledger (`over_length`, the default) or truncated at a safe point. After the run, the
//! kept rows are packed best-fit-decreasing over the whole dataset and written as Parquet
//! shards with a manifest (see [`crate::shards`]).
//!
//! A safe truncation point lies inside an assistant turn: the prompt, its images and the
//! template's headers stay whole, and at least one assistant token remains. (Images sit in
//! user turns, so no cut falls inside an image span.) A sample whose prompt alone fills
//! `max_length` is dropped even when truncation is asked.

use schemars::JsonSchema;
use serde::Deserialize;

use super::tokenize::TokenizeConfig;
use super::{Measured, Stage, StageContext, Verdict};
use crate::error::{Error, Result};
use crate::schema::Trace;

/// What happens to samples longer than `max_length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OverLength {
    /// Drop them to the ledger as `over_length` (default; as ms-swift does).
    #[default]
    Drop,
    /// Cut them inside the last assistant turn that starts before `max_length`.
    Truncate,
}

/// Parameters of `pack`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PackConfig {
    /// Tokens per pack (image tokens included), e.g. 8192 or 16384.
    pub max_length: u32,
    /// `drop` (default) or `truncate` samples over `max_length`.
    #[serde(default)]
    pub over_length: OverLength,
    /// Most samples in one pack. Default: no limit.
    #[serde(default)]
    pub max_segments: Option<usize>,
    /// Packs per Parquet row group (the unit of random access). Default 16.
    #[serde(default = "row_group_packs")]
    pub row_group_packs: usize,
    /// Packs per shard file. Default 2048.
    #[serde(default = "packs_per_file")]
    pub packs_per_file: usize,
    /// The `tokenize` stage's settings, filled in when the spec is read.
    #[serde(skip)]
    #[schemars(skip)]
    pub tokenize: Option<TokenizeConfig>,
}

fn row_group_packs() -> usize {
    16
}
fn packs_per_file() -> usize {
    2048
}

impl PackConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.max_length < 16 {
            return Err(format!("max_length {} is too small; packs hold whole samples (e.g. 8192)", self.max_length));
        }
        if self.max_segments == Some(0) || self.row_group_packs == 0 || self.packs_per_file == 0 {
            return Err("max_segments, row_group_packs and packs_per_file must be at least 1".into());
        }
        Ok(())
    }

    /// The tokenize settings (present once the spec is validated).
    pub fn tokenize(&self) -> Result<&TokenizeConfig> {
        self.tokenize.as_ref().ok_or_else(|| Error::Spec("pack: no `tokenize` stage before `pack`".into()))
    }
}

/// Where to cut a sample of `ids` tokens with these assistant spans to fit `max`: the end of the
/// last assistant span starting before `max`, or `max` inside it. None: no assistant token fits.
pub fn safe_cut(assistant: &[(u32, u32)], max: u32) -> Option<u32> {
    assistant.iter().rev().find(|&&(a, _)| a < max).map(|&(_, b)| b.min(max))
}

pub struct Pack {
    cfg: PackConfig,
}

impl Pack {
    pub fn new(cfg: &PackConfig) -> Result<Self> {
        cfg.tokenize()?;
        Ok(Self { cfg: cfg.clone() })
    }
}

impl Stage for Pack {
    fn name(&self) -> &'static str {
        "pack"
    }

    fn judge_measured(&self, pos: u64, t: &Trace, ctx: &StageContext) -> Result<Measured> {
        self.apply(pos, &mut t.clone(), ctx)
    }

    fn apply(&self, _pos: u64, t: &mut Trace, _ctx: &StageContext) -> Result<Measured> {
        let max = self.cfg.max_length;
        let tokens = t
            .tokens
            .as_mut()
            .ok_or_else(|| Error::Run(format!("pack: row {} is not tokenized; put `tokenize` before `pack`", t.id)))?;
        let n = tokens.ids.len() as u32;
        if n <= max {
            return Ok(Measured { verdict: Verdict::Keep, values: vec![("tokens", n as f64)] });
        }
        if self.cfg.over_length == OverLength::Drop {
            return Ok(Measured::only(Verdict::drop("over_length", format!("{n} tokens > max_length {max}"))));
        }
        let Some(cut) = safe_cut(&tokens.assistant, max) else {
            let prompt = tokens.assistant.first().map(|s| s.0).unwrap_or(n);
            return Ok(Measured::only(Verdict::drop(
                "over_length",
                format!(
                    "{n} tokens > max_length {max}, and the prompt alone is {prompt} tokens: no safe truncation point"
                ),
            )));
        };
        tokens.ids.truncate(cut as usize);
        tokens.assistant.retain(|s| s.0 < cut);
        if let Some(last) = tokens.assistant.last_mut() {
            last.1 = last.1.min(cut);
        }
        t.num_tokens = Some(cut);
        Ok(Measured {
            verdict: Verdict::Keep,
            values: vec![("tokens", cut as f64), ("truncated_tokens", (n - cut) as f64)],
        })
    }
}
