//! Pure text functions shared by stages: normalisation for matching, word and token counts.

pub mod minhash;
pub mod tokens;

/// Normalise text for exact matching: Unicode lowercase, runs of whitespace collapsed to one
/// space, trimmed. Two prompts that differ only in case or spacing normalise equally.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in w.chars() {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Number of whitespace-separated words.
pub fn word_count(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Number of Unicode scalar values.
pub fn char_count(s: &str) -> usize {
    s.chars().count()
}
