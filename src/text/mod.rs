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

/// `s` cut to at most `max` characters for a message or a ledger detail, with what was left out
/// said (`…(+N chars)`); short strings come back whole. Payloads such as base64 images never
/// reach a message in full.
pub fn clip(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}…(+{} chars)", n - max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_short_strings_and_says_what_it_cut() {
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcdef", 2), "ab…(+4 chars)");
        assert_eq!(clip("ééé", 1), "é…(+2 chars)");
    }
}
