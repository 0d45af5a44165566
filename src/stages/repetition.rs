//! `filter.repetition`: looping traces. The main rule drops a reasoning in which some
//! W-word passage occurs at least K times (defaults 50 x 3). Gopher-style ratios (duplicate
//! line and paragraph character fractions, top 2/3/4-gram character fractions) are measured
//! on every row and kept as histograms in stats.json; each can be given a threshold.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

use super::{Measured, Stage, StageContext, Verdict};
use crate::error::Result;
use crate::schema::Trace;

/// Parameters of `filter.repetition`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepetitionConfig {
    /// Passage length in words. Default 50.
    #[serde(default = "default_window")]
    pub window_words: usize,
    /// Occurrences of one passage that make a loop. Default 3.
    #[serde(default = "default_repeats")]
    pub min_repeats: usize,
    /// Drop when characters in repeated lines exceed this fraction (Gopher: 0.2). Off by default.
    pub max_dup_line_frac: Option<f64>,
    /// Drop when characters in repeated paragraphs exceed this fraction (Gopher: 0.2). Off by default.
    pub max_dup_para_frac: Option<f64>,
    /// Drop when the most frequent 2-gram covers more than this fraction of characters (Gopher: 0.2).
    pub max_top_2gram_frac: Option<f64>,
    /// Same for 3-grams (Gopher: 0.18).
    pub max_top_3gram_frac: Option<f64>,
    /// Same for 4-grams (Gopher: 0.16).
    pub max_top_4gram_frac: Option<f64>,
}

fn default_window() -> usize {
    50
}
fn default_repeats() -> usize {
    3
}

impl RepetitionConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.window_words == 0 {
            return Err("window_words must be at least 1".into());
        }
        if self.min_repeats < 2 {
            return Err("min_repeats must be at least 2".into());
        }
        Ok(())
    }
}

/// The reasoning of a response: inside `<think>...</think>` (to the end if unclosed), else all.
pub fn reasoning(response: &str) -> &str {
    match response.find("<think>") {
        Some(a) => {
            let rest = &response[a + "<think>".len()..];
            match rest.find("</think>") {
                Some(b) => &rest[..b],
                None => rest,
            }
        }
        None => response,
    }
}

/// The most repeated `window`-word passage: (occurrences, word index of its first occurrence).
/// Linear in the number of words (rolling hash over word hashes).
pub fn max_passage_repeats(words: &[&str], window: usize) -> (usize, usize) {
    if words.len() < window || window == 0 {
        return (0, 0);
    }
    const B: u64 = 0x100_0000_01b3;
    let h: Vec<u64> = words.iter().map(|w| xxh3_64(w.as_bytes())).collect();
    let top = (0..window - 1).fold(1u64, |p, _| p.wrapping_mul(B));
    let mut cur = h[..window].iter().fold(0u64, |acc, x| acc.wrapping_mul(B).wrapping_add(*x));
    let mut seen: HashMap<u64, (u32, u32)> = HashMap::with_capacity(words.len());
    let mut best = (0usize, 0usize);
    for i in 0..=words.len() - window {
        if i > 0 {
            cur = cur.wrapping_sub(h[i - 1].wrapping_mul(top)).wrapping_mul(B).wrapping_add(h[i + window - 1]);
        }
        let e = seen.entry(cur).or_insert((0, i as u32));
        e.0 += 1;
        if e.0 as usize > best.0 {
            best = (e.0 as usize, e.1 as usize);
        }
    }
    best
}

/// Fraction of characters in pieces that repeat an earlier piece (Gopher's duplicate-line and
/// duplicate-paragraph ratios).
pub fn dup_char_frac<'a>(pieces: impl Iterator<Item = &'a str>) -> f64 {
    let mut seen: HashMap<&str, ()> = HashMap::new();
    let (mut dup, mut total) = (0usize, 0usize);
    for p in pieces {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        total += p.len();
        if seen.insert(p, ()).is_some() {
            dup += p.len();
        }
    }
    if total == 0 { 0.0 } else { dup as f64 / total as f64 }
}

/// Fraction of word characters covered by the most frequent n-gram (Gopher's top n-gram ratio).
pub fn top_ngram_frac(words: &[&str], n: usize) -> f64 {
    let total: usize = words.iter().map(|w| w.len()).sum();
    if words.len() < n || total == 0 {
        return 0.0;
    }
    let mut counts: HashMap<&[&str], usize> = HashMap::new();
    for g in words.windows(n) {
        *counts.entry(g).or_default() += 1;
    }
    let best = counts
        .iter()
        .map(|(g, c)| (c * g.iter().map(|w| w.len()).sum::<usize>(), *c))
        .max()
        .map(|(chars, c)| if c > 1 { chars } else { 0 })
        .unwrap_or(0);
    (best as f64 / total as f64).min(1.0)
}

pub struct Repetition {
    cfg: RepetitionConfig,
}

impl Repetition {
    pub fn new(cfg: RepetitionConfig) -> Self {
        Self { cfg }
    }
}

impl Stage for Repetition {
    fn name(&self) -> &'static str {
        "filter.repetition"
    }

    fn judge(&self, pos: u64, t: &Trace, ctx: &StageContext) -> Result<Verdict> {
        Ok(self.judge_measured(pos, t, ctx)?.verdict)
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let c = &self.cfg;
        let text = reasoning(&t.response);
        let words: Vec<&str> = text.split_whitespace().collect();
        let (repeats, at) = max_passage_repeats(&words, c.window_words);
        let line = dup_char_frac(text.lines());
        let para = dup_char_frac(text.split("\n\n"));
        let grams = [top_ngram_frac(&words, 2), top_ngram_frac(&words, 3), top_ngram_frac(&words, 4)];
        let values = vec![
            ("max_passage_repeats", repeats as f64),
            ("dup_line_frac", line),
            ("dup_para_frac", para),
            ("top_2gram_frac", grams[0]),
            ("top_3gram_frac", grams[1]),
            ("top_4gram_frac", grams[2]),
        ];
        let mut verdict = Verdict::Keep;
        if repeats >= c.min_repeats {
            let passage: Vec<&str> = words[at..(at + 8).min(words.len())].to_vec();
            verdict = Verdict::drop(
                "repeated_passage",
                format!(
                    "a {}-word passage occurs {repeats} times (first at word {at}: \"{} ...\")",
                    c.window_words,
                    passage.join(" ")
                ),
            );
        } else {
            let checks = [
                ("duplicate_lines", "dup_line_frac", line, c.max_dup_line_frac),
                ("duplicate_paragraphs", "dup_para_frac", para, c.max_dup_para_frac),
                ("top_ngram", "top_2gram_frac", grams[0], c.max_top_2gram_frac),
                ("top_ngram", "top_3gram_frac", grams[1], c.max_top_3gram_frac),
                ("top_ngram", "top_4gram_frac", grams[2], c.max_top_4gram_frac),
            ];
            for (reason, name, v, max) in checks {
                if let Some(max) = max {
                    if v > max {
                        verdict = Verdict::drop(reason, format!("{name} {v:.3} > {max}"));
                        break;
                    }
                }
            }
        }
        Ok(Measured { verdict, values })
    }
}
