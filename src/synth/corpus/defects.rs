//! The planted defects of a synthetic corpus: their kinds and rates, and how each one is made
//! from a clean row (near-duplicate edits, loops, drift, truncation, corrupt images).

use crate::rng::Rng;

use super::*;

/// Kinds of planted defects, as written in `labels.parquet`.
pub const DEFECT_KINDS: &[&str] = &[
    "exact_duplicate",
    "near_duplicate",
    "truncated",
    "wrong_answer",
    "loop",
    "overlong",
    "corrupt_image",
    "shared_image",
    "invalid_utf8",
    "contamination",
    "language_drift",
];

/// Rate of each defect kind (fraction of rows), indexed like [`DEFECT_KINDS`].
#[derive(Debug, Clone, PartialEq)]
pub struct DefectRates(pub [f64; 11]);

impl DefectRates {
    /// No defects: a clean corpus.
    pub fn none() -> Self {
        Self([0.0; 11])
    }

    /// The default mix: about 25% of rows carry one defect.
    pub fn default_rates() -> Self {
        Self([0.04, 0.03, 0.03, 0.04, 0.03, 0.01, 0.01, 0.03, 0.01, 0.02, 0.01])
    }

    /// `default`, `none`, or `kind=rate,kind=rate` (kinds not named are 0).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "default" => return Ok(Self::default_rates()),
            "none" => return Ok(Self::none()),
            _ => {}
        }
        let mut r = Self::none();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("`{part}`: expected kind=rate"))?;
            let i = DEFECT_KINDS
                .iter()
                .position(|d| *d == k.trim())
                .ok_or_else(|| format!("unknown defect kind `{k}`; known: {}", DEFECT_KINDS.join(", ")))?;
            let v: f64 = v.trim().parse().map_err(|_| format!("`{part}`: rate must be a number"))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("`{part}`: rate must be in [0, 1]"));
            }
            r.0[i] = v;
        }
        if r.0.iter().sum::<f64>() > 1.0 {
            return Err("defect rates add up to more than 1".into());
        }
        Ok(r)
    }

    pub fn rate(&self, kind: &str) -> f64 {
        DEFECT_KINDS.iter().position(|d| *d == kind).map(|i| self.0[i]).unwrap_or(0.0)
    }
}

/// The defect kind of row `i` (at most one per row).
pub fn defect_of(seed: u64, i: u64, rates: &DefectRates) -> Option<&'static str> {
    let mut rng = Rng::for_item(seed, STREAM_DEFECT, i);
    let u = rng.f64();
    let mut acc = 0.0;
    for (k, r) in DEFECT_KINDS.iter().zip(rates.0) {
        acc += r;
        if u < acc {
            return Some(k);
        }
    }
    None
}

pub(super) const EDITS: &[(&str, &str)] = &[
    ("What is", "What's"),
    ("How many", "How many of the"),
    ("the total", "the overall total"),
    ("Give", "Please give"),
    ("Round", "Please round"),
    ("in total", "altogether"),
    ("the chart", "this chart"),
    ("the table", "this table"),
    ("the clock", "this clock"),
    ("shapes", "figures"),
];

/// Jaccard similarity of two prompts as `dedup.minhash` measures it by default (character
/// 5-grams of the normalised text).
pub fn prompt_jaccard(a: &str, b: &str) -> f64 {
    use crate::text::minhash::{ShingleKind, exact_jaccard, normalize_for_dedup, shingle_hashes};
    let (mut x, mut y) = (Vec::new(), Vec::new());
    shingle_hashes(&normalize_for_dedup(a), ShingleKind::Chars, 5, &mut x);
    shingle_hashes(&normalize_for_dedup(b), ShingleKind::Chars, 5, &mut y);
    exact_jaccard(&mut x, &mut y)
}

/// Similarity a planted near-duplicate prompt keeps with its source, comfortably above the
/// default threshold of 0.8 so that MinHash's estimation error does not decide.
pub const NEAR_DUP_MIN_JACCARD: f64 = 0.86;

/// A near-duplicate of a prompt, as merged sources reword it: one or two small word edits when
/// the prompt is long enough to keep [`NEAR_DUP_MIN_JACCARD`], otherwise changes of
/// punctuation (which `dedup.exact` does not see through). Always differs.
pub(super) fn near_edit(prompt: &str, rng: &mut Rng) -> String {
    let mut p = prompt.to_string();
    let want = rng.range(1, 2);
    let mut done = 0;
    for _ in 0..12 {
        let (a, b) = *rng.pick(EDITS);
        if done < want && p.contains(a) {
            let q = p.replacen(a, b, 1);
            if prompt_jaccard(prompt, &q) >= NEAR_DUP_MIN_JACCARD {
                p = q;
                done += 1;
            }
        }
    }
    if done == 0 {
        // the question follows the `<image>` placeholders, which stay as they are
        let (head, q) = match p.rsplit_once('\n') {
            Some((h, q)) => (format!("{h}\n"), q.to_string()),
            None => (String::new(), p.clone()),
        };
        p = match rng.below(2) {
            0 => format!("{head}{}", q.replacen('?', " ?", 1).replacen(". ", ", ", 1)),
            _ => format!("{head}{}", q.replacen('?', "", 1).replacen('.', ";", 1)),
        };
        if p == prompt {
            p.push_str(" .");
        }
    }
    p
}

/// A 50-word passage of the trace repeated 3-5 times in a row (a degenerate loop).
pub(super) fn plant_loop(response: &str, rng: &mut Rng) -> String {
    let end = response.find("</think>").unwrap_or(response.len());
    let words: Vec<&str> = response[..end].split_whitespace().collect();
    let start = if words.len() > 60 { rng.below(words.len() - 55) } else { 0 };
    let passage = words[start..(start + 50).min(words.len())].join(" ");
    let times = rng.range(3, 5) as usize;
    let mut out = response[..end].to_string();
    for _ in 0..times {
        out.push('\n');
        out.push_str(&passage);
    }
    out.push('\n');
    out.push_str(&response[end..]);
    out
}

/// Phrases of the planted language drift (Chinese, as Qwen-family teachers drift into).
pub(super) const DRIFT_PHRASES: &[&str] = &[
    "我们需要",
    "计算",
    "这个图形",
    "图中的",
    "长度",
    "面积",
    "所以",
    "因此",
    "首先",
    "然后",
    "检查一下",
    "结果",
    "等于",
    "看起来",
    "是正确的",
    "让我们",
    "再想一想",
    "已知条件",
    "可以得到",
    "另外",
];

/// Switch the reasoning into Chinese for 3 to 6 sentences at a sentence boundary (the answer
/// after `</think>` stays as it was).
pub(super) fn plant_drift(response: &str, rng: &mut Rng) -> String {
    let end = response.find("</think>").unwrap_or(response.len());
    let bounds: Vec<usize> = response[..end].match_indices(". ").map(|(i, _)| i + 2).collect();
    let at = if bounds.is_empty() { end } else { bounds[rng.below(bounds.len())] };
    let mut drift = String::new();
    for _ in 0..rng.range(3, 6) {
        for k in 0..rng.range(4, 8) {
            if k > 0 && rng.chance(0.3) {
                drift.push('，');
            }
            drift.push_str(DRIFT_PHRASES[rng.below(DRIFT_PHRASES.len())]);
        }
        drift.push('。');
    }
    drift.push(' ');
    format!("{}{drift}{}", &response[..at], &response[at..])
}

/// Cut a trace in its middle: no closing tag, no final answer.
pub(super) fn truncate_trace(response: &str, rng: &mut Rng) -> String {
    let end = response.find("</think>").unwrap_or(response.len());
    let cut = ((end as f64) * (0.3 + 0.6 * rng.f64())) as usize;
    let mut cut = cut.min(end);
    while !response.is_char_boundary(cut) {
        cut -= 1;
    }
    response[..cut].trim_end().to_string()
}

/// Damage image bytes so that they no longer decode (checked: lenient decoders accept some
/// truncated files, so harsher damage is applied until decoding fails).
pub(super) fn corrupt(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if rng.chance(0.5) {
        let keep = (b.len() as f64 * (0.3 + 0.4 * rng.f64())) as usize;
        b.truncate(keep.max(24));
    } else {
        let mid = b.len() / 2;
        for k in mid..(mid + 64).min(b.len()) {
            b[k] = b[k].wrapping_mul(31).wrapping_add(7);
        }
        b.truncate(b.len() * 3 / 4);
    }
    if crate::image::decode_check(&b).is_ok() {
        b.truncate(b.len().min(40)); // the header alone
    }
    b
}
