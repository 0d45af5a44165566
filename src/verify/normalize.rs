//! Normalisation of an extracted answer into a cleaned, canonical string.
//!
//! [`clean`] rewrites LaTeX and plain-text answers so that spelling variants meet:
//!
//! * math delimiters `$`, `$$`, `\(`, `\)`, `\[`, `\]` and `\boxed{}`/`\fbox{}` wrappers go;
//! * `\left`/`\right`/`\big...`, spacing commands (`\,`, `\;`, `\quad`, `~`), `\displaystyle` go;
//! * `\text{}`, `\mathrm{}`, `\textbf{}`, `\mbox{}`, `\operatorname{}` ... are replaced by their
//!   content;
//! * `\dfrac`, `\tfrac`, `\cfrac` become `\frac`, and short forms `\frac12`, `\sqrt2` get braces;
//! * `\cdot`, `\times`, `\ast` become `*`, `\div` becomes `/`;
//! * degree marks (`^\circ`, `^{\circ}`, `\circ`, `\degree`, `°`) are dropped;
//! * `\%` becomes `%` (the answer parser reads a trailing `%`);
//! * thousands separators `{,}`, `\,` between digits, and `1,000`-style commas outside brackets
//!   are removed;
//! * Unicode math (`π`, `√`, `×`, `·`, `−`, `∞`, `≤`, `∪` ...) is mapped to its LaTeX form;
//! * runs of whitespace become one space; trailing `.`, `,`, `;`, `:` and surrounding markdown
//!   bold `**` go.
//!
//! Case is kept: the comparison decides where case matters (math) and where not (words).
//! Nesting beyond a fixed depth is copied through unchanged instead of recursing further.

/// Recursion limit for nested `\text{}` / `\frac{}{}` rewriting.
const MAX_DEPTH: u32 = 48;

/// Clean an extracted answer (see the module docs).
pub fn clean(input: &str) -> String {
    let mut raw = String::with_capacity(input.len() + 8);
    clean_into(input, &mut raw, 0);
    let s = collapse_ws(&raw);
    let t = strip_decorations(&s);
    if t.contains(',') {
        drop_thousands_commas(t)
    } else if t.len() == s.len() {
        s
    } else {
        t.to_string()
    }
}

/// The cleaned form without any whitespace: what "exact" equality compares.
pub fn canonical(cleaned: &str) -> String {
    cleaned.chars().filter(|c| !c.is_whitespace()).collect()
}

fn collapse_ws(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for w in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Remove trailing sentence punctuation, a leading `=` and markdown bold around the answer.
fn strip_decorations(s: &str) -> &str {
    let mut t = s.trim();
    loop {
        let before = t.len();
        t = t.strip_prefix("**").unwrap_or(t);
        t = t.strip_suffix("**").unwrap_or(t);
        t = t.trim_end_matches(['.', ',', ';', ':']).trim();
        t = t.strip_prefix('=').unwrap_or(t).trim();
        if t.len() == before {
            return t;
        }
    }
}

/// Remove commas used as thousands separators: `1,234,567` -> `1234567`, only outside any
/// brackets and only when every group after a comma has exactly three digits and the number
/// starts with one to three digits.
fn drop_thousands_commas(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut depth = 0i32;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth == 0 && c.is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.')) {
            // scan a candidate number with thousands groups
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let lead = j - i;
            let mut groups = 0;
            let mut k = j;
            while lead <= 3
                && k + 4 <= b.len()
                && b[k] == b','
                && b[k + 1..k + 4].iter().all(u8::is_ascii_digit)
                && !b.get(k + 4).is_some_and(u8::is_ascii_digit)
            {
                groups += 1;
                k += 4;
            }
            if groups > 0 {
                for &d in &b[i..k] {
                    if d != b',' {
                        out.push(char::from(d));
                    }
                }
                i = k;
                continue;
            }
            out.push_str(&s[i..j]);
            i = j;
            continue;
        }
        // copy one UTF-8 char
        let ch_len = utf8_len(c);
        let end = (i + ch_len).min(b.len());
        out.push_str(s.get(i..end).unwrap_or(""));
        i = end;
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xff => 4,
        _ => 1,
    }
}

/// Read a LaTeX command at `i` (which holds `\`): returns the name and the index after it.
/// A name is a run of ASCII letters, or one other character (`\{`, `\,`, `\%`).
pub(crate) fn read_cmd(s: &str, i: usize) -> (&str, usize) {
    let b = s.as_bytes();
    let start = i + 1;
    let mut j = start;
    while j < b.len() && b[j].is_ascii_alphabetic() {
        j += 1;
    }
    if j == start {
        if start >= b.len() {
            return ("", start);
        }
        let l = utf8_len(b[start]);
        let end = (start + l).min(b.len());
        return (s.get(start..end).unwrap_or(""), end);
    }
    (&s[start..j], j)
}

/// Index just past the `}` matching the `{` at `open`, honouring `\{`/`\}` escapes; `None`
/// when unbalanced.
pub(crate) fn match_brace(b: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Read a macro argument at `i`: a braced group (content returned without braces), a command, or
/// one character. Returns the argument and the index after it. An unbalanced group takes the rest.
fn read_arg(s: &str, mut i: usize) -> (&str, usize) {
    let b = s.as_bytes();
    while i < b.len() && b[i] == b' ' {
        i += 1;
    }
    if i >= b.len() {
        return ("", i);
    }
    match b[i] {
        b'{' => match match_brace(b, i) {
            Some(end) => (&s[i + 1..end - 1], end),
            None => (&s[i + 1..], b.len()),
        },
        b'\\' => {
            let (_, end) = read_cmd(s, i);
            (&s[i..end], end)
        }
        c => {
            let end = (i + utf8_len(c)).min(b.len());
            (s.get(i..end).unwrap_or(""), end)
        }
    }
}

const DROP_CMDS: &[&str] = &[
    "left",
    "right",
    "bigl",
    "bigr",
    "big",
    "Big",
    "Bigl",
    "Bigr",
    "bigg",
    "Bigg",
    "biggl",
    "biggr",
    "Biggl",
    "Biggr",
    "middle",
    "displaystyle",
    "textstyle",
    "scriptstyle",
    "limits",
    "nolimits",
    "quad",
    "qquad",
    "medspace",
    "thinspace",
    "enspace",
    "hfill",
    "rm",
    "bf",
    "it",
    "bm",
    "mathstrut",
    "strut",
    "noindent",
];

const CONTENT_CMDS: &[&str] = &[
    "text",
    "textbf",
    "textit",
    "textrm",
    "textsf",
    "texttt",
    "textup",
    "textnormal",
    "mathrm",
    "mathbf",
    "mathit",
    "mathsf",
    "mathtt",
    "mathbb",
    "mathcal",
    "mathnormal",
    "boldsymbol",
    "mbox",
    "hbox",
    "operatorname",
    "boxed",
    "fbox",
    "emph",
    "underline",
    "overline",
    "bm",
    "pmb",
    "textsc",
    "framebox",
];

fn clean_into(s: &str, out: &mut String, depth: u32) {
    if depth > MAX_DEPTH {
        out.push_str(s);
        return;
    }
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'$' => i += 1,
            b'\\' => {
                let (name, next) = read_cmd(s, i);
                i = next;
                match name {
                    "" => {}
                    "(" | ")" | "[" | "]" | "$" | "." | "!" | "/" => {}
                    "," => {
                        // thin space; between digits it is a thousands separator
                        let prev_digit = out.as_bytes().last().is_some_and(u8::is_ascii_digit);
                        let next_digit = b.get(i).is_some_and(u8::is_ascii_digit);
                        if !(prev_digit && next_digit) {
                            out.push(' ');
                        }
                    }
                    ";" | ":" | " " | ">" => out.push(' '),
                    "%" => out.push('%'),
                    "{" | "lbrace" => out.push_str("\\{"),
                    "}" | "rbrace" => out.push_str("\\}"),
                    "|" | "lvert" | "rvert" | "vert" | "mid" | "lVert" | "rVert" | "Vert" => out.push('|'),
                    "cdot" | "times" | "ast" | "cdotp" => out.push('*'),
                    "div" => out.push('/'),
                    "circ" | "degree" => {}
                    "dots" | "ldots" | "cdots" => out.push_str("..."),
                    "leq" | "leqslant" | "le" => out.push_str("\\le "),
                    "geq" | "geqslant" | "ge" => out.push_str("\\ge "),
                    "neq" | "ne" => out.push_str("\\ne "),
                    "dfrac" | "tfrac" | "frac" | "cfrac" => {
                        let (a, n1) = read_arg(s, i);
                        let (d, n2) = read_arg(s, n1);
                        i = n2;
                        out.push_str("\\frac{");
                        clean_into(a, out, depth + 1);
                        out.push_str("}{");
                        clean_into(d, out, depth + 1);
                        out.push('}');
                    }
                    "sqrt" => {
                        out.push_str("\\sqrt");
                        let mut j = i;
                        while b.get(j) == Some(&b' ') {
                            j += 1;
                        }
                        if b.get(j) == Some(&b'[') {
                            if let Some(close) = s[j..].find(']') {
                                out.push('[');
                                clean_into(&s[j + 1..j + close], out, depth + 1);
                                out.push(']');
                                j += close + 1;
                            }
                        }
                        let (a, n) = read_arg(s, j);
                        i = n;
                        out.push('{');
                        clean_into(a, out, depth + 1);
                        out.push('}');
                    }
                    _ if DROP_CMDS.contains(&name) => {
                        // `\left.` is an invisible delimiter
                        if (name == "left" || name == "right") && b.get(i) == Some(&b'.') {
                            i += 1;
                        }
                        out.push(' ');
                    }
                    _ if CONTENT_CMDS.contains(&name) => {
                        let (a, n) = read_arg(s, i);
                        i = n;
                        clean_into(a, out, depth + 1);
                    }
                    _ => {
                        out.push('\\');
                        out.push_str(name);
                        // keep a separator so `\pi r` does not become `\pir`
                        if name.as_bytes()[0].is_ascii_alphabetic() && b.get(i).is_some_and(u8::is_ascii_alphabetic) {
                            out.push(' ');
                        }
                    }
                }
            }
            b'^' => {
                // degrees: ^\circ, ^{\circ}, ^{\circ}C
                let rest = &s[i + 1..];
                let r = rest.trim_start();
                let skip = rest.len() - r.len();
                if r.starts_with("\\circ") {
                    i += 1 + skip + 5;
                } else if r.starts_with("{\\circ}") {
                    i += 1 + skip + 7;
                } else if r.starts_with("{\\circ }") {
                    i += 1 + skip + 8;
                } else {
                    out.push('^');
                    i += 1;
                }
            }
            b'{' => {
                if b.get(i + 1) == Some(&b',') && b.get(i + 2) == Some(&b'}') {
                    i += 3;
                } else if b.get(i + 1) == Some(&b'}') {
                    i += 2;
                } else {
                    out.push('{');
                    i += 1;
                }
            }
            b'~' | b'\t' | b'\n' | b'\r' => {
                out.push(' ');
                i += 1;
            }
            0x80..=0xff => {
                let ch = s.get(i..).and_then(|r| r.chars().next()).unwrap_or(' ');
                i += ch.len_utf8().max(1);
                match ch {
                    '°' | 'º' => {}
                    'π' => out.push_str("\\pi "),
                    '√' => out.push_str("\\sqrt"),
                    '×' | '·' | '⋅' | '∗' => out.push('*'),
                    '÷' => out.push('/'),
                    '−' | '–' | '—' | '‐' | '‑' => out.push('-'),
                    '∞' => out.push_str("\\infty "),
                    '≤' => out.push_str("\\le "),
                    '≥' => out.push_str("\\ge "),
                    '≠' => out.push_str("\\ne "),
                    '∪' => out.push_str("\\cup "),
                    '∅' => out.push_str("\\emptyset "),
                    '±' => out.push_str("\\pm "),
                    '’' | '‘' => out.push('\''),
                    '\u{a0}' | '\u{2009}' | '\u{202f}' | '\u{3000}' => out.push(' '),
                    '％' => out.push('%'),
                    _ => out.push(ch),
                }
            }
            _ => {
                out.push(char::from(c));
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latex_variants_meet() {
        assert_eq!(clean("$\\dfrac{1}{2}$"), "\\frac{1}{2}");
        assert_eq!(clean("\\tfrac12"), "\\frac{1}{2}");
        assert_eq!(clean("\\left( 1, 2 \\right)"), "( 1, 2 )");
        assert_eq!(clean("12\\text{ cm}"), "12 cm");
        assert_eq!(clean("30^\\circ"), "30");
        assert_eq!(clean("30^{\\circ}"), "30");
        assert_eq!(clean("30°"), "30");
        assert_eq!(clean("25\\%"), "25%");
        assert_eq!(clean("1{,}000"), "1000");
        assert_eq!(clean("1,000,000"), "1000000");
        assert_eq!(clean("1\\,000"), "1000");
        assert_eq!(clean("(1,000, 2)"), "(1,000, 2)");
        assert_eq!(clean("1,2"), "1,2");
        assert_eq!(clean("2 \\cdot 3"), "2 * 3");
        assert_eq!(clean("\\sqrt2"), "\\sqrt{2}");
        assert_eq!(clean("\\boxed{42}."), "42");
        assert_eq!(clean("**B**"), "B");
        assert_eq!(clean("\\textbf{(B)}"), "(B)");
        assert_eq!(clean("−5"), "-5");
    }

    #[test]
    fn unbalanced_and_deep_input_is_safe() {
        let _ = clean("\\frac{1}{");
        let _ = clean("\\sqrt[");
        let _ = clean("\\");
        let deep = "\\text{".repeat(500);
        let _ = clean(&deep);
        let _ = clean("^");
        let _ = clean("é\\é{ü");
    }
}
