//! `filter.length`: bounds on the characters and words of one text field.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Stage, StageContext, Verdict};
use crate::error::Result;
use crate::schema::Trace;
use crate::text::{char_count, word_count};

/// A text field of the canonical trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum TextField {
    Prompt,
    #[default]
    Response,
    Reference,
}

impl TextField {
    pub fn get<'a>(&self, t: &'a Trace) -> &'a str {
        match self {
            TextField::Prompt => &t.prompt,
            TextField::Response => &t.response,
            TextField::Reference => t.reference.as_deref().unwrap_or(""),
        }
    }
    pub fn name(&self) -> &'static str {
        match self {
            TextField::Prompt => "prompt",
            TextField::Response => "response",
            TextField::Reference => "reference",
        }
    }
}

/// Parameters of `filter.length`; give at least one bound.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LengthConfig {
    /// Field to measure. Default `response`.
    #[serde(default)]
    pub field: TextField,
    pub min_chars: Option<usize>,
    pub max_chars: Option<usize>,
    pub min_words: Option<usize>,
    pub max_words: Option<usize>,
}

impl LengthConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        let c = self;
        if c.min_chars.is_none() && c.max_chars.is_none() && c.min_words.is_none() && c.max_words.is_none() {
            return Err("give at least one of min_chars, max_chars, min_words, max_words".into());
        }
        for (lo, hi, unit) in [(c.min_chars, c.max_chars, "chars"), (c.min_words, c.max_words, "words")] {
            if let (Some(lo), Some(hi)) = (lo, hi) {
                if lo > hi {
                    return Err(format!("min_{unit} ({lo}) is greater than max_{unit} ({hi})"));
                }
            }
        }
        Ok(())
    }
}

pub struct Length {
    cfg: LengthConfig,
}

impl Length {
    pub fn new(cfg: LengthConfig) -> Self {
        Self { cfg }
    }
}

impl Stage for Length {
    fn name(&self) -> &'static str {
        "filter.length"
    }

    fn judge(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Verdict> {
        let c = &self.cfg;
        let text = c.field.get(t);
        let f = c.field.name();
        let measures = [
            ("chars", c.min_chars, c.max_chars, if c.min_chars.is_some() || c.max_chars.is_some() { char_count(text) } else { 0 }),
            ("words", c.min_words, c.max_words, if c.min_words.is_some() || c.max_words.is_some() { word_count(text) } else { 0 }),
        ];
        for (unit, lo, hi, n) in measures {
            if let Some(lo) = lo {
                if n < lo {
                    return Ok(Verdict::drop("too_short", format!("{f} has {n} {unit} < min_{unit} {lo}")));
                }
            }
            if let Some(hi) = hi {
                if n > hi {
                    return Ok(Verdict::drop("too_long", format!("{f} has {n} {unit} > max_{unit} {hi}")));
                }
            }
        }
        Ok(Verdict::Keep)
    }
}
