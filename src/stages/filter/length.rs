//! `filter.length`: bounds on the characters and words of one text field, and on tokens:
//! prompt (text plus image tokens by the Qwen2-VL policy), reasoning, answer and total, counted
//! with a model tokenizer (the bundled Qwen2.5 tokenizer unless `tokenizer` names a file).

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::Result;
use crate::schema::Trace;
use crate::stages::{Measured, Stage, StageContext, Verdict};
use crate::text::tokens::{DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, TokenCounter, image_pad_tokens};
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
    /// `tokenizer.json` for token bounds (default: the bundled Qwen2.5 tokenizer).
    pub tokenizer: Option<String>,
    /// Qwen2-VL `min_pixels` for image tokens. Default 3136.
    pub min_pixels: Option<u64>,
    /// Qwen2-VL `max_pixels` for image tokens. Default 1003520.
    pub max_pixels: Option<u64>,
    /// Most tokens of the prompt, images included.
    pub max_prompt_tokens: Option<usize>,
    /// Most tokens of the reasoning (inside `<think>...</think>`).
    pub max_reasoning_tokens: Option<usize>,
    /// Most tokens of the answer (after `</think>`).
    pub max_answer_tokens: Option<usize>,
    /// Fewest tokens of prompt plus response.
    pub min_total_tokens: Option<usize>,
    /// Most tokens of prompt plus response (e.g. the packing length).
    pub max_total_tokens: Option<usize>,
}

impl LengthConfig {
    /// Whether any token bound is set.
    pub fn uses_tokens(&self) -> bool {
        [
            self.max_prompt_tokens,
            self.max_reasoning_tokens,
            self.max_answer_tokens,
            self.min_total_tokens,
            self.max_total_tokens,
        ]
        .iter()
        .any(Option::is_some)
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        let c = self;
        if c.min_chars.is_none()
            && c.max_chars.is_none()
            && c.min_words.is_none()
            && c.max_words.is_none()
            && !c.uses_tokens()
        {
            return Err("give at least one of min_chars, max_chars, min_words, max_words, or a *_tokens bound".into());
        }
        if let Some(t) = &c.tokenizer {
            if !std::path::Path::new(t).is_file() {
                return Err(format!("tokenizer `{t}` is not a file"));
            }
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
    tokens: Option<TokenCounter>,
}

impl Length {
    /// Build the stage; loads the tokenizer when a token bound is set.
    pub fn new(cfg: LengthConfig) -> Result<Self> {
        let tokens = if cfg.uses_tokens() {
            Some(match &cfg.tokenizer {
                Some(p) => TokenCounter::from_file(std::path::Path::new(p))?,
                None => TokenCounter::bundled()?,
            })
        } else {
            None
        };
        Ok(Self { cfg, tokens })
    }

    fn token_verdict(&self, t: &Trace, tk: &TokenCounter, values: &mut Vec<(&'static str, f64)>) -> Result<Verdict> {
        let c = &self.cfg;
        let (min_px, max_px) = (c.min_pixels.unwrap_or(DEFAULT_MIN_PIXELS), c.max_pixels.unwrap_or(DEFAULT_MAX_PIXELS));
        let image_tokens: u64 = t.images.iter().map(|i| image_pad_tokens(i.height, i.width, min_px, max_px) + 2).sum();
        let prompt = tk.count(&t.prompt.replace("<image>", ""))? as u64 + image_tokens;
        let r = &t.response;
        let split = c.max_reasoning_tokens.is_some() || c.max_answer_tokens.is_some();
        let (response, parts) = if split {
            // reasoning and answer counted inside one encoding of the whole response
            let (reasoning, answer) = match r.find("</think>") {
                Some(b) => {
                    let reasoning = super::repetition::reasoning(r);
                    let start = reasoning.as_ptr() as usize - r.as_ptr() as usize;
                    (start..(start + reasoning.len()).min(b), b + "</think>".len()..r.len())
                }
                None => (0..0, 0..r.len()),
            };
            let (n, parts) = tk.count_spans(r, &[reasoning, answer])?;
            (n as u64, parts)
        } else {
            (tk.count(r)? as u64, Vec::new())
        };
        let total = prompt + response;
        values.extend([
            ("image_tokens", image_tokens as f64),
            ("prompt_tokens", prompt as f64),
            ("response_tokens", response as f64),
            ("total_tokens", total as f64),
        ]);
        let mut checks: Vec<(&'static str, u64, Option<usize>)> = vec![("prompt", prompt, c.max_prompt_tokens)];
        if split {
            let (reasoning, answer) = (parts[0] as u64, parts[1] as u64);
            values.push(("reasoning_tokens", reasoning as f64));
            values.push(("answer_tokens", answer as f64));
            checks.push(("reasoning", reasoning, c.max_reasoning_tokens));
            checks.push(("answer", answer, c.max_answer_tokens));
        }
        checks.push(("total", total, c.max_total_tokens));
        for (what, n, max) in checks {
            if let Some(max) = max {
                if n > max as u64 {
                    return Ok(Verdict::drop(
                        "too_many_tokens",
                        format!("{what} has {n} tokens > max_{what}_tokens {max}"),
                    ));
                }
            }
        }
        if let Some(min) = c.min_total_tokens {
            if total < min as u64 {
                return Ok(Verdict::drop(
                    "too_few_tokens",
                    format!("total has {total} tokens < min_total_tokens {min}"),
                ));
            }
        }
        Ok(Verdict::Keep)
    }
}

impl Stage for Length {
    fn name(&self) -> &'static str {
        "filter.length"
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let mut values = Vec::new();
        let verdict = self.judge_text(t);
        if verdict != Verdict::Keep {
            return Ok(Measured { verdict, values });
        }
        let verdict = match &self.tokens {
            Some(tk) => self.token_verdict(t, tk, &mut values)?,
            None => Verdict::Keep,
        };
        Ok(Measured { verdict, values })
    }
}

impl Length {
    fn judge_text(&self, t: &Trace) -> Verdict {
        let c = &self.cfg;
        let text = c.field.get(t);
        let f = c.field.name();
        let measures = [
            (
                "chars",
                c.min_chars,
                c.max_chars,
                if c.min_chars.is_some() || c.max_chars.is_some() { char_count(text) } else { 0 },
            ),
            (
                "words",
                c.min_words,
                c.max_words,
                if c.min_words.is_some() || c.max_words.is_some() { word_count(text) } else { 0 },
            ),
        ];
        for (unit, lo, hi, n) in measures {
            if let Some(lo) = lo {
                if n < lo {
                    return Verdict::drop("too_short", format!("{f} has {n} {unit} < min_{unit} {lo}"));
                }
            }
            if let Some(hi) = hi {
                if n > hi {
                    return Verdict::drop("too_long", format!("{f} has {n} {unit} > max_{unit} {hi}"));
                }
            }
        }
        Verdict::Keep
    }
}
