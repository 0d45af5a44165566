//! `filter.repetition`: looping traces. The main rule drops a reasoning in which some
//! W-word passage occurs at least K times (defaults 50 x 3). Gopher-style ratios: duplicate
//! line and paragraph character fractions are measured on every row and kept as histograms in
//! stats.json; top 2/3/4-gram character fractions are measured where a threshold is given.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use schemars::JsonSchema;
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::Result;
use crate::schema::Trace;
use crate::stages::{Measured, Stage, StageContext, Verdict};

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

/// A hasher for keys that are already hashes (xxh3 of words, rolling hashes): identity.
#[derive(Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HashedMap<V> = HashMap<u64, V, BuildHasherDefault<PreHashed>>;

fn hashed_map<V>(capacity: usize) -> HashedMap<V> {
    HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

/// xxh3 of every word.
pub fn word_hashes(words: &[&str]) -> Vec<u64> {
    words.iter().map(|w| xxh3_64(w.as_bytes())).collect()
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
/// Linear in the number of words (rolling hash over the word hashes `h`).
pub fn max_passage_repeats(h: &[u64], window: usize) -> (usize, usize) {
    if h.len() < window || window == 0 {
        return (0, 0);
    }
    const B: u64 = 0x100_0000_01b3;
    let top = (0..window - 1).fold(1u64, |p, _| p.wrapping_mul(B));
    let mut cur = h[..window].iter().fold(0u64, |acc, x| acc.wrapping_mul(B).wrapping_add(*x));
    let mut seen: HashedMap<(u32, u32)> = hashed_map(h.len());
    let mut best = (0usize, 0usize);
    for i in 0..=h.len() - window {
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
    let mut seen: HashedMap<()> = hashed_map(64);
    let (mut dup, mut total) = (0usize, 0usize);
    for p in pieces {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        total += p.len();
        if seen.insert(xxh3_64(p.as_bytes()), ()).is_some() {
            dup += p.len();
        }
    }
    if total == 0 { 0.0 } else { dup as f64 / total as f64 }
}

/// Fraction of word characters covered by the most frequent n-gram (Gopher's top n-gram
/// ratio); `h` are the word hashes of `words`.
pub fn top_ngram_frac(words: &[&str], h: &[u64], n: usize) -> f64 {
    let total: usize = words.iter().map(|w| w.len()).sum();
    if words.len() < n || total == 0 || n == 0 {
        return 0.0;
    }
    let mut counts: HashedMap<(u32, u32)> = hashed_map(words.len());
    for i in 0..=words.len() - n {
        let key = h[i..i + n].iter().fold(0u64, |acc, x| acc.rotate_left(17) ^ x.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let chars: usize = words[i..i + n].iter().map(|w| w.len()).sum();
        let e = counts.entry(key).or_insert((0, chars as u32));
        e.0 += 1;
    }
    let best =
        counts.values().filter(|(c, _)| *c > 1).map(|(c, chars)| *c as usize * *chars as usize).max().unwrap_or(0);
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

    fn judge_measured(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let c = &self.cfg;
        let text = reasoning(&t.response);
        let words: Vec<&str> = text.split_whitespace().collect();
        let h = word_hashes(&words);
        let (repeats, at) = max_passage_repeats(&h, c.window_words);
        let line = dup_char_frac(text.lines());
        let para = dup_char_frac(text.split("\n\n"));
        // n-gram ratios cost a hash map per n: measured only where a threshold is set
        let gram = |n: usize, max: Option<f64>| max.map(|_| top_ngram_frac(&words, &h, n)).unwrap_or(0.0);
        let grams = [gram(2, c.max_top_2gram_frac), gram(3, c.max_top_3gram_frac), gram(4, c.max_top_4gram_frac)];
        let mut values =
            vec![("max_passage_repeats", repeats as f64), ("dup_line_frac", line), ("dup_para_frac", para)];
        for (name, v, max) in [
            ("top_2gram_frac", grams[0], c.max_top_2gram_frac),
            ("top_3gram_frac", grams[1], c.max_top_3gram_frac),
            ("top_4gram_frac", grams[2], c.max_top_4gram_frac),
        ] {
            if max.is_some() {
                values.push((name, v));
            }
        }
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
