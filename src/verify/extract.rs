//! Final-answer extraction from a model response or a reference solution.
//!
//! Order of preference, within the *region* searched:
//!
//! 1. the last `\boxed{...}` / `\fbox{...}` (nested braces honoured; a box inside another box is
//!    part of the outer one; `\boxed 5` also works; unbalanced boxes are ignored);
//! 2. the last `<answer>...</answer>` or LLaVA-CoT `<CONCLUSION>...</CONCLUSION>` (its content
//!    is searched again, recursively, and used whole
//!    when nothing more specific is found);
//! 3. the last "answer" marker: "the answer is X", "final answer: X", "Answer: X",
//!    "the answer would be X", "the correct option is X", or GSM8K's "#### X"; X runs to the end
//!    of the sentence;
//! 4. the whole region, when it is short and looks like a bare answer (one line, at most three
//!    prose words, none of them a function word such as "is" or "the"): "12", "(B)",
//!    "B) 12 apples", "no solution";
//! 5. otherwise, in the last paragraph: the last choice mention (`(B)`, "option B"), else the last
//!    math span (`$..$`, `\(..\)`, `\[..\]`), else the last number.
//!
//! A `\boxed{` that never closes means the output was cut off: no answer (steps 3-5 are skipped).
//!
//! The region is the text after the last `</think>` when there is one. When that tail holds no
//! answer, or when a `<think>` is never closed (a truncated trace), only the strong markers (1, 2)
//! are looked for in the whole text: a number in the middle of unfinished reasoning is not an
//! answer.

use super::normalize::match_brace;

/// Extract the final answer of `text`, as written (not normalised).
pub fn extract_answer(text: &str) -> Option<String> {
    extract_span(text).map(str::to_string)
}

/// [`extract_answer`] as a slice of the input.
pub(crate) fn extract_span(text: &str) -> Option<&str> {
    if let Some(pos) = text.rfind("</think>") {
        let tail = &text[pos + "</think>".len()..];
        if let Some(a) = from_region(tail, 0) {
            return Some(a);
        }
        return strong(&text[..pos], 0);
    }
    if text.contains("<think>") {
        return strong(text, 0);
    }
    from_region(text, 0)
}

fn nonempty(s: &str) -> Option<&str> {
    let t = s.trim();
    if t.is_empty() { None } else { Some(t) }
}

/// Boxes and answer tags only.
fn strong(s: &str, depth: u32) -> Option<&str> {
    if let Some(b) = last_boxed(s) {
        return Some(b);
    }
    let inner = last_answer_tag(s)?;
    if depth < 4 {
        if let Some(x) = from_region(inner, depth + 1) {
            return Some(x);
        }
    }
    nonempty(inner)
}

fn from_region(s: &str, depth: u32) -> Option<&str> {
    let t = nonempty(s)?;
    if let Some(b) = last_boxed(t) {
        return Some(b);
    }
    if let Some(inner) = last_answer_tag(t) {
        if depth < 4 {
            if let Some(x) = from_region(inner, depth + 1) {
                return Some(x);
            }
        }
        if let Some(x) = nonempty(inner) {
            return Some(x);
        }
    }
    if t.contains("\\boxed") || t.contains("\\fbox") {
        // a box that never closes: the output was cut off before its answer
        return None;
    }
    if let Some(m) = after_marker(t) {
        return Some(m);
    }
    if is_bare(t) {
        return Some(t);
    }
    fallback_last(t)
}

/// Content of the last top-level `\boxed{}` / `\fbox{}`.
pub(crate) fn last_boxed(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut best = None;
    let mut i = 0;
    while let Some(off) = s.get(i..).and_then(|r| r.find('\\')) {
        let p = i + off;
        let rest = &b[p + 1..];
        let nlen = if rest.starts_with(b"boxed") {
            5
        } else if rest.starts_with(b"fbox") {
            4
        } else {
            i = p + 1;
            continue;
        };
        let name_end = p + 1 + nlen;
        let mut j = name_end;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if j < b.len() && b[j] == b'{' {
            match match_brace(b, j) {
                Some(end) => {
                    if let Some(c) = nonempty(&s[j + 1..end - 1]) {
                        best = Some(c);
                    }
                    i = end;
                }
                None => i = j + 1,
            }
        } else if j > name_end {
            // `\boxed 5`
            let mut k = j;
            while k < b.len() && !b[k].is_ascii_whitespace() && b[k] != b'$' {
                k += 1;
            }
            if let Some(c) = s.get(j..k).and_then(nonempty) {
                best = Some(c);
            }
            i = k;
        } else {
            i = name_end;
        }
    }
    best
}

/// Answer tags: `<answer>` (R1 style) and LLaVA-CoT's `<CONCLUSION>`.
const ANSWER_TAGS: &[(&str, &str)] =
    &[("<answer>", "</answer>"), ("<CONCLUSION>", "</CONCLUSION>"), ("<conclusion>", "</conclusion>")];

/// The content of the last closed answer tag of any kind.
fn last_answer_tag(s: &str) -> Option<&str> {
    ANSWER_TAGS
        .iter()
        .filter_map(|(open, close)| {
            let start = s.rfind(open)? + open.len();
            let end = s[start..].find(close)?;
            Some((start, &s[start..start + end]))
        })
        .max_by_key(|(start, _)| *start)
        .map(|(_, inner)| inner)
}

/// Case-insensitive (ASCII) search for the last occurrence of `needle` in `hay`.
fn rfind_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).rev().find(|&i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

const CONNECT_WORDS: &[&str] =
    &["is", "be", "would", "should", "will", "must", "then", "therefore", "thus", "here", "hence"];

/// After "answer" at `j`: the index where the answer text starts, if what follows is a
/// connector (`:`, `=`, "is", "would be", ...).
fn connector(b: &[u8], mut j: usize) -> Option<usize> {
    let skip = |b: &[u8], mut j: usize| {
        while j < b.len() && matches!(b[j], b' ' | b'*' | b'\t') {
            j += 1;
        }
        j
    };
    j = skip(b, j);
    let mut saw_word = false;
    for _ in 0..4 {
        match b.get(j) {
            Some(b':' | b'=') => {
                // the answer may start on the next line: "Answer:\n\n$$5$$"
                let mut k = j + 1;
                while k < b.len() && (b[k].is_ascii_whitespace() || b[k] == b'*') {
                    k += 1;
                }
                return Some(k);
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let s = j;
                while j < b.len() && b[j].is_ascii_alphabetic() {
                    j += 1;
                }
                let w = std::str::from_utf8(&b[s..j]).ok()?;
                if !CONNECT_WORDS.iter().any(|c| c.eq_ignore_ascii_case(w)) {
                    // "answer is yes": the answer starts at the first other word
                    return if saw_word { Some(s) } else { None };
                }
                saw_word = true;
                j = skip(b, j);
            }
            _ => break,
        }
    }
    if saw_word { Some(j) } else { None }
}

fn after_marker(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut start: Option<usize> = None;
    for key in [&b"answer"[..], &b"option"[..], &b"choice"[..]] {
        let mut end = b.len();
        while let Some(p) = rfind_ci(&b[..end], key) {
            let word_start = p == 0 || !b[p - 1].is_ascii_alphabetic();
            if word_start {
                if let Some(q) = connector(b, p + key.len()) {
                    if start.is_none_or(|st| q > st) {
                        start = Some(q);
                    }
                    break;
                }
            }
            end = p;
        }
    }
    if let Some(h) = s.rfind("####") {
        let mut q = h + 4;
        while q < b.len() && (b[q] == b'#' || b[q] == b' ') {
            q += 1;
        }
        if start.is_none_or(|st| q > st) {
            start = Some(q);
        }
    }
    let st = start?;
    let e = sentence_end(b, st);
    let span = s.get(st..e)?.trim();
    let span = span.trim_start_matches([':', '*', ' ']).trim_end_matches(['*', ' ']);
    nonempty(cut_tail(span))
}

/// Words that end an answer phrase: "5 because ...", "$7$ I hope it is correct".
/// Matched exactly: a lone `i` is the imaginary unit, `I` is the pronoun.
const CUT_WORDS: &[&str] =
    &["because", "since", "as", "which", "so", "where", "when", "I", "we", "We", "thus", "hence", "Because", "Since"];

/// Cut an answer phrase after its leading math span, or before a word that starts a new clause.
fn cut_tail(span: &str) -> &str {
    let b = span.as_bytes();
    // `$...$` (or `$$...$$`) first: the answer is that span
    if b.first() == Some(&b'$') {
        let run = if b.get(1) == Some(&b'$') { 2 } else { 1 };
        let mut k = run;
        while k < b.len() {
            match b[k] {
                b'\\' => k += 1,
                b'$' => return span.get(..(k + run).min(b.len())).unwrap_or(span),
                _ => {}
            }
            k += 1;
        }
        return span;
    }
    let mut depth = 0i32;
    let mut k = 0;
    while k < b.len() {
        match b[k] {
            b'\\' => {
                k += 1;
                while k < b.len() && b[k].is_ascii_alphabetic() {
                    k += 1;
                }
                continue;
            }
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => depth -= 1,
            b' ' if depth <= 0 && k > 0 => {
                let w_end = b[k + 1..].iter().position(|c| !c.is_ascii_alphabetic()).map_or(b.len(), |p| k + 1 + p);
                let w = &span[k + 1..w_end];
                if CUT_WORDS.contains(&w) {
                    return span[..k].trim_end();
                }
            }
            _ => {}
        }
        k += 1;
    }
    span
}

/// End of the sentence starting at `st`: a newline, or a `.`/`,`-then-prose at bracket depth 0
/// outside `$..$`.
fn sentence_end(b: &[u8], st: usize) -> usize {
    let mut in_dollar = false;
    let mut depth = 0i32;
    let mut k = st;
    while k < b.len() {
        let c = b[k];
        match c {
            b'\\' => {
                k += 2;
                continue;
            }
            b'$' => in_dollar = !in_dollar,
            b'{' | b'(' | b'[' => depth += 1,
            b'}' | b')' | b']' => depth -= 1,
            b'\n' => {
                // a newline inside an open `$$` display keeps going
                if !in_dollar {
                    return k;
                }
            }
            b'.' if !in_dollar && depth <= 0 => {
                if b.get(k + 1).is_none_or(u8::is_ascii_whitespace) {
                    return k;
                }
            }
            b',' if !in_dollar && depth <= 0 => {
                if b.get(k + 1) == Some(&b' ') {
                    let w = b[k + 2..].iter().take_while(|c| c.is_ascii_lowercase()).count();
                    if w >= 3 {
                        return k;
                    }
                }
            }
            _ => {}
        }
        k += 1;
    }
    b.len().min(k)
}

const STOP_WORDS: &[&str] = &[
    "is",
    "are",
    "was",
    "were",
    "be",
    "the",
    "so",
    "we",
    "thus",
    "therefore",
    "hence",
    "get",
    "equals",
    "answer",
    "of",
    "to",
    "it",
    "this",
    "that",
    "then",
    "which",
    "let",
    "since",
    "because",
    "find",
    "have",
    "has",
    "can",
    "will",
    "need",
    "if",
    "for",
    "with",
    "by",
    "on",
];

/// Runs of ASCII letters outside `\commands`, with their byte offsets.
pub(super) fn plain_words(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() {
            if b[i] == b'\\' {
                i += 1;
                while i < b.len() && b[i].is_ascii_alphabetic() {
                    i += 1;
                }
                continue;
            }
            if b[i].is_ascii_alphabetic() {
                let st = i;
                while i < b.len() && b[i].is_ascii_alphabetic() {
                    i += 1;
                }
                return Some((st, &s[st..i]));
            }
            i += 1;
        }
        None
    })
}

/// A short, one-line text that looks like an answer rather than prose.
fn is_bare(t: &str) -> bool {
    if t.len() > 120 || t.contains('\n') {
        return false;
    }
    let mut words = 0;
    for (_, w) in plain_words(t) {
        if w.len() >= 2 && !super::expr::is_math_word(w) {
            if STOP_WORDS.iter().any(|sw| sw.eq_ignore_ascii_case(w)) {
                return false;
            }
            words += 1;
        }
    }
    words <= 3
}

/// In the last paragraph: the last choice mention, else the last math span, else the last number.
fn fallback_last(s: &str) -> Option<&str> {
    let para = s.rsplit("\n\n").find(|p| !p.trim().is_empty())?;
    if let Some(c) = last_choice_mention(para) {
        return Some(c);
    }
    if let Some(m) = last_math_span(para) {
        return Some(m);
    }
    last_number(para)
}

/// `(B)`, or `B` in "option B" / "choice B": the last one in `p`.
fn last_choice_mention(p: &str) -> Option<&str> {
    let b = p.as_bytes();
    let letter = |i: usize| b.get(i).is_some_and(|c| (b'A'..=b'J').contains(c));
    let not_alnum = |i: usize| b.get(i).is_none_or(|c| !c.is_ascii_alphanumeric());
    let mut best: Option<(usize, usize)> = None;
    for i in 0..b.len() {
        if b[i] == b'(' && letter(i + 1) && b.get(i + 2) == Some(&b')') && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        {
            best = Some((i, i + 3));
        }
    }
    for word in [&b"option "[..], &b"choice "[..]] {
        if let Some(w) = rfind_ci(b, word) {
            let l = w + word.len();
            if letter(l) && not_alnum(l + 1) && best.is_none_or(|(s, _)| l > s) {
                best = Some((l, l + 1));
            }
        }
    }
    best.and_then(|(s, e)| p.get(s..e))
}

fn last_math_span(p: &str) -> Option<&str> {
    let b = p.as_bytes();
    let mut best: Option<(usize, &str)> = None;
    for (open, close) in [("\\[", "\\]"), ("\\(", "\\)")] {
        if let Some(o) = p.rfind(open) {
            if let Some(c) = p[o + 2..].find(close) {
                let end = o + 2 + c + 2;
                if let Some(inner) = nonempty(&p[o + 2..o + 2 + c]) {
                    if best.is_none_or(|(e, _)| end > e) {
                        best = Some((end, inner));
                    }
                }
            }
        }
    }
    // `$..$` and `$$..$$`: pair unescaped dollars left to right
    let mut open: Option<usize> = None;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'$' => {
                let run = if b.get(i + 1) == Some(&b'$') { 2 } else { 1 };
                match open {
                    None => open = Some(i + run),
                    Some(o) => {
                        if let Some(inner) = nonempty(&p[o..i]) {
                            let end = i + run;
                            if best.is_none_or(|(e, _)| end > e) {
                                best = Some((end, inner));
                            }
                        }
                        open = None;
                    }
                }
                i += run;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    best.map(|(_, m)| m)
}

fn last_number(p: &str) -> Option<&str> {
    let b = p.as_bytes();
    let last_digit = b.iter().rposition(u8::is_ascii_digit)?;
    let mut end = last_digit + 1;
    if b.get(end) == Some(&b'%') {
        end += 1;
    }
    let mut start = last_digit;
    while start > 0 {
        let c = b[start - 1];
        let keep =
            c.is_ascii_digit() || (matches!(c, b'.' | b',' | b'/') && start >= 2 && b[start - 2].is_ascii_digit());
        if !keep {
            break;
        }
        start -= 1;
    }
    if start > 0 && b[start - 1] == b'-' && (start == 1 || !b[start - 2].is_ascii_alphanumeric()) {
        start -= 1;
    }
    nonempty(&p[start..end])
}

/// Parse answer options from a question: "(A) 12 (B) 15 ...", or one per line "A. 12" / "A) 12" /
/// "A: 12". Letters must run A, B, C ... in order; at least two are needed.
pub fn parse_options(question: &str) -> Vec<(char, String)> {
    let b = question.as_bytes();
    // (start, after, letter)
    let mut cands: Vec<(usize, usize, u8)> = Vec::new();
    for i in 0..b.len() {
        let c = b[i];
        if c == b'(' && i + 2 < b.len() && (b'A'..=b'J').contains(&b[i + 1]) && b[i + 2] == b')' {
            cands.push((i, i + 3, b[i + 1]));
        } else if (b'A'..=b'J').contains(&c)
            && (i == 0 || b[i - 1].is_ascii_whitespace())
            && matches!(b.get(i + 1), Some(b'.' | b')' | b':'))
            && b.get(i + 2).is_none_or(u8::is_ascii_whitespace)
        {
            cands.push((i, i + 2, c));
        }
    }
    // bound the work on adversarial input: a few thousand markers, the first 16 "A"s
    cands.truncate(4096);
    let mut best: Vec<usize> = Vec::new();
    let starts = cands.iter().enumerate().filter(|(_, c)| c.2 == b'A').map(|(a, _)| a).take(16);
    for a in starts.collect::<Vec<_>>() {
        let mut chain = vec![a];
        let mut want = b'B';
        for (k, &(_, _, l2)) in cands.iter().enumerate().skip(a + 1) {
            if l2 == want {
                chain.push(k);
                want += 1;
                if want > b'J' {
                    break;
                }
            }
        }
        if chain.len() > best.len() {
            best = chain;
        }
    }
    if best.len() < 2 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(best.len());
    for (n, &k) in best.iter().enumerate() {
        let (_, after, l) = cands[k];
        let end = match best.get(n + 1) {
            Some(&next) => cands[next].0,
            None => question[after..].find('\n').map_or(question.len(), |e| after + e),
        };
        let text = question.get(after..end).unwrap_or("").trim().trim_end_matches([',', ';']).trim();
        out.push((char::from(l), text.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxed_variants() {
        assert_eq!(extract_span("so \\boxed{\\frac{1}{2}}."), Some("\\frac{1}{2}"));
        assert_eq!(extract_span("\\boxed{1} then \\boxed{2}"), Some("2"));
        assert_eq!(extract_span("\\fbox{7}"), Some("7"));
        assert_eq!(extract_span("\\boxed 5 is it"), Some("5"));
        assert_eq!(extract_span("\\boxed{\\boxed{3}}"), Some("\\boxed{3}"));
        assert_eq!(extract_span("we get \\boxed{3"), None);
    }

    #[test]
    fn markers_and_fallbacks() {
        assert_eq!(extract_span("Thus the answer is $12$. Done."), Some("$12$"));
        assert_eq!(extract_span("Answer: B"), Some("B"));
        assert_eq!(extract_span("The final answer is $7$ I hope it is correct"), Some("$7$"));
        assert_eq!(extract_span("The answer is 5 because 2 + 3 = 5"), Some("5"));
        assert_eq!(extract_span("The answer is:\n\n$$5$$"), Some("$$5$$"));
        assert_eq!(extract_span("blah\n#### 1,000"), Some("1,000"));
        assert_eq!(extract_span("So the total is 42."), Some("42"));
        assert_eq!(extract_span("The answer choices are odd. We pick $x=3$."), Some("x=3"));
        assert_eq!(extract_span("(B)"), Some("(B)"));
        assert_eq!(extract_span("So I pick (C) since 15 > 12."), Some("(C)"));
        assert_eq!(extract_span("The correct option is B."), Some("B"));
        assert_eq!(extract_span("<think>maybe 5</think>The answer is 3."), Some("3"));
        assert_eq!(extract_span("<think>we compute 3+4 = 7. Then"), None);
        assert_eq!(extract_span("<think>x</think>\n<answer>7</answer>"), Some("7"));
        // LLaVA-CoT's stages: the conclusion is the answer, searched again inside
        let llava = "<SUMMARY>s</SUMMARY><CAPTION>c</CAPTION><REASONING>r 12 steps</REASONING><CONCLUSION>The answer is B.</CONCLUSION>";
        assert_eq!(extract_span(llava), Some("B"));
        assert_eq!(extract_span("<CONCLUSION> 7 </CONCLUSION>"), Some("7"));
    }

    #[test]
    fn options_from_question() {
        let o = parse_options("Which? (A) 12 (B) 15 (C) 18");
        assert_eq!(o, vec![('A', "12".into()), ('B', "15".into()), ('C', "18".into())]);
        let o = parse_options("Pick one.\nA. red\nB. blue\n");
        assert_eq!(o, vec![('A', "red".into()), ('B', "blue".into())]);
        assert!(parse_options("no options here").is_empty());
    }
}
