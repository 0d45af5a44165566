//! Structured answers and their equivalence.
//!
//! A cleaned answer string (see [`super::normalize`]) is parsed into an [`Ans`]:
//!
//! * a multiple-choice letter, optionally with the option text (`B`, `(B)`, `B) 12 apples`);
//! * a clock time (`4:05`, `10:30 pm`), compared as a string;
//! * a set `\{1, 2\}` or a bare list `1, 2` (both unordered), a tuple `(1, 2)` (ordered), an
//!   interval `[0, 1)` (bracket types matter; `(a, b)` is a tuple, which never equals a
//!   half-open or closed interval), a union of intervals `A \cup B` (unordered);
//! * `1 \pm \sqrt 2`, read as the list `1 + \sqrt 2, 1 - \sqrt 2`;
//! * an equation `lhs = rhs` after a single `var =` (or `var \in`) prefix has been removed;
//! * a number or an expression, with a percent flag and trailing units removed; an integer
//!   directly followed by a proper fraction is a mixed number (`3\frac{1}{2}` = 3.5);
//! * otherwise text, compared case-insensitively without whitespace.
//!
//! Numeric rule: two values are equal when `|a - b| <= rel_tol * max(|a|, |b|)` (or both are
//! within 1e-12 of zero, or both are the same infinity). Integer literals are compared exactly,
//! digit for digit, so huge integers never pass on rounding.
//!
//! Symbolic rule: expressions with variables are evaluated at fixed points (see [`super::expr`]:
//! three with positive, two with negative variable values) and are equal when they agree within
//! `max(rel_tol, 1e-9)` at every point where both are defined, with at least two such points.
//! Equations `l = r` are equal when `l - r` agree up to a constant non-zero factor.
//!
//! Percent rule: `p%` equals both `p` and `p/100`, so `50%` == `50` == `0.5`; without a percent
//! sign on either side `50` != `0.5`.
//!
//! Units rule: a number followed by unit words (`12 cm`, `12 cm^2`, `5 m/s`, `3 apples`) equals
//! the bare number; the unit itself is not checked. Degrees are dropped the same way.

use super::expr::{self, NPTS, Vals};

/// Structure nesting limit when parsing answers.
const MAX_DEPTH: u32 = 6;
/// Elements compared pairwise in sets and lists at most (beyond, the answer is text).
const MAX_ELEMS: usize = 256;

/// A parsed answer (see the module docs).
#[derive(Debug, Clone)]
pub enum Ans {
    Choice { letter: u8, text: Option<String> },
    Time(String),
    Num { v: Vals, pct: bool, int: Option<String> },
    Eq(Vals),
    Tuple(Vec<Ans>),
    Interval { lo_closed: bool, lo: Box<Ans>, hi: Box<Ans>, hi_closed: bool },
    Set(Vec<Ans>),
    List(Vec<Ans>),
    Union(Vec<Ans>),
    Text(String),
}

/// Comparison settings.
pub struct Ctx<'a> {
    pub rel_tol: f64,
    pub options: Option<&'a [(char, String)]>,
}

/// Split at `sep` where brackets `()[]{}` are balanced.
fn split_top<'a>(s: &'a str, sep: &str) -> Vec<&'a str> {
    let b = s.as_bytes();
    let sb = sep.as_bytes();
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut last = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        if depth == 0 && b[i..].starts_with(sb) {
            parts.push(&s[last..i]);
            i += sb.len();
            last = i;
            continue;
        }
        i += 1;
    }
    parts.push(&s[last..]);
    parts
}

/// Does the bracket opened at byte `open` close exactly at the last byte?
fn wraps_whole(b: &[u8], open: usize) -> bool {
    let mut depth = 0i32;
    for (k, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return k == b.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

fn is_choice_letter(c: u8) -> bool {
    (b'A'..=b'J').contains(&c)
}

fn parse_choice(s: &str) -> Option<(u8, Option<&str>)> {
    let mut t = s.trim();
    for p in ["option ", "Option ", "choice ", "Choice ", "OPTION "] {
        if let Some(r) = t.strip_prefix(p) {
            t = r.trim_start();
        }
    }
    let b = t.as_bytes();
    let rest_of = |from: usize| t.get(from..).map(str::trim).filter(|r| !r.is_empty());
    if b.len() >= 3 && b[0] == b'(' && is_choice_letter(b[1]) && b[2] == b')' {
        return Some((b[1], rest_of(3)));
    }
    if b.len() == 1 && is_choice_letter(b[0]) {
        return Some((b[0], None));
    }
    if b.len() >= 2 && is_choice_letter(b[0]) && matches!(b[1], b'.' | b':' | b')') {
        if b.len() == 2 {
            return Some((b[0], None));
        }
        if b[2] == b' ' {
            return Some((b[0], rest_of(3)));
        }
    }
    None
}

/// `4:05`, `12:30:15`, `10:30 pm`, `10:30 a.m.`: a normalised time string.
fn parse_time(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    if i == 0 || i > 2 {
        return None;
    }
    let mut groups = 0;
    while b.get(i) == Some(&b':') {
        if !(b.get(i + 1).is_some_and(u8::is_ascii_digit) && b.get(i + 2).is_some_and(u8::is_ascii_digit)) {
            return None;
        }
        i += 3;
        groups += 1;
    }
    if groups == 0 || groups > 2 || b.get(i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let suffix: String = s[i..].chars().filter(|c| c.is_ascii_alphabetic()).map(|c| c.to_ascii_lowercase()).collect();
    if !(suffix.is_empty() || suffix == "am" || suffix == "pm") {
        return None;
    }
    if s[i..].chars().any(|c| !(c.is_ascii_alphabetic() || c == '.' || c == ' ')) {
        return None;
    }
    Some(format!("{}{}", &s[..i], suffix))
}

const GREEK_VARS: &[&str] = &[
    "\\alpha",
    "\\beta",
    "\\gamma",
    "\\delta",
    "\\theta",
    "\\lambda",
    "\\mu",
    "\\phi",
    "\\varphi",
    "\\omega",
    "\\rho",
    "\\sigma",
    "\\tau",
    "\\epsilon",
    "\\varepsilon",
    "\\psi",
    "\\xi",
    "\\eta",
];

/// A name that can stand before `=` as the thing being solved for: `x`, `x_1`, `a_{n}`, `AB`,
/// `f(x)`, `\theta`.
fn is_var_name(t: &str) -> bool {
    let b = t.as_bytes();
    if b.is_empty() {
        return false;
    }
    if GREEK_VARS.contains(&t) {
        return true;
    }
    if !b[0].is_ascii_alphabetic() {
        return false;
    }
    let rest = &b[1..];
    if rest.is_empty() {
        return true;
    }
    if rest[0] == b'_' {
        return rest.len() >= 2 && rest[1..].iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'{' | b'}'));
    }
    // two capitals (a segment), or f(x)
    (rest.len() == 1 && b[0].is_ascii_uppercase() && rest[0].is_ascii_uppercase())
        || (rest.len() == 3 && rest[0] == b'(' && rest[1].is_ascii_alphabetic() && rest[2] == b')')
}

/// Remove a single `var =` or `var \in` prefix.
fn strip_var_prefix(s: &str) -> &str {
    if let Some(p) = s.find("\\in") {
        let after = p + 3;
        if !s.as_bytes().get(after).is_some_and(u8::is_ascii_alphabetic) && is_var_name(s[..p].trim()) {
            return s[after..].trim();
        }
    }
    let Some(p) = s.find('=') else { return s };
    let lhs = s[..p].trim();
    let rhs = s[p + 1..].trim();
    if rhs.is_empty() || rhs.starts_with('=') || lhs.ends_with(['<', '>', '!']) {
        return s;
    }
    if is_var_name(lhs) || is_var_tuple(lhs) { rhs } else { s }
}

/// `(a, b)`: a tuple of names, as in `(a, b) = (2, 3)`.
fn is_var_tuple(t: &str) -> bool {
    t.strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .is_some_and(|inner| inner.contains(',') && inner.split(',').all(|v| is_var_name(v.trim())))
}

const SINGLE_UNITS: &[&str] = &["m", "g", "s", "L", "l", "h", "N", "J", "W", "V", "K", "C", "F"];
const GLUED_UNITS: &[&str] = &[
    "cm", "mm", "km", "kg", "mg", "ms", "hr", "hrs", "min", "mins", "ft", "yd", "mi", "lb", "lbs", "oz", "mL", "ml",
    "mph", "kph", "sec", "in", "units",
];
const NOT_UNITS: &[&str] = &["or", "and", "to", "of", "no", "not", "none", "undefined", "infinity"];

/// `cm`, `cm^2`, `m/s`, `apples`, `sq.`: a word that may follow a number as its unit.
fn is_unit_word(w: &str) -> bool {
    let w = w.trim_end_matches('.');
    if w.is_empty() {
        return false;
    }
    w.split('/').all(|part| {
        let base = match part.find('^') {
            Some(p) => {
                let e = part[p + 1..].trim_matches(['{', '}']);
                if e.is_empty() || !e.bytes().all(|c| c.is_ascii_digit()) {
                    return false;
                }
                &part[..p]
            }
            None => part,
        };
        !base.is_empty()
            && base.bytes().all(|c| c.is_ascii_alphabetic())
            && !NOT_UNITS.contains(&base)
            && !expr::is_math_word(base)
            && (base.len() >= 2 || SINGLE_UNITS.contains(&base))
    })
}

/// No ASCII letters outside `\commands`: the text is a number or a constant expression (an
/// `e` right after a digit is an exponent).
fn letter_free(s: &str) -> bool {
    let b = s.as_bytes();
    !super::extract::plain_words(s).any(|(st, w)| !(w == "e" && st > 0 && b[st - 1].is_ascii_digit()))
}

/// Strip trailing units and a percent sign. Returns the core and whether it was a percentage.
fn strip_units_pct(s: &str) -> (&str, bool) {
    let mut t = s.trim();
    let mut pct = false;
    let mut stripped = false;
    loop {
        if let Some(r) = t.strip_suffix('%') {
            t = r.trim_end();
            pct = true;
            continue;
        }
        let Some(p) = t.rfind(' ') else { break };
        let (head, last) = (t[..p].trim_end(), &t[p + 1..]);
        if head.is_empty() {
            break;
        }
        if last.eq_ignore_ascii_case("percent") {
            pct = true;
            t = head;
            continue;
        }
        if is_unit_word(last) {
            t = head;
            stripped = true;
            continue;
        }
        break;
    }
    // glued unit: `12cm`, `5kg`, `3cm^2`
    if let Some(p) = t.rfind(|c: char| c.is_ascii_digit() || c == '}') {
        let tail = &t[p + 1..];
        let base = tail.split('^').next().unwrap_or(tail);
        if !tail.is_empty() && t.as_bytes()[p].is_ascii_digit() && GLUED_UNITS.contains(&base) && is_unit_word(tail) {
            t = &t[..p + 1];
            stripped = true;
        }
    }
    if stripped && !letter_free(t) {
        // the head is not a plain number: leave the words alone
        return (s.trim(), false);
    }
    (t, pct)
}

/// Prose rather than math: non-ASCII text, or a run of three or more letters that is not a
/// math word.
fn is_wordy(s: &str) -> bool {
    !s.is_ascii()
        || super::extract::plain_words(s).any(|(_, w)| w.len() >= 3 && !expr::is_math_word(w) && !func_prefixed(w))
}

/// Words like `sinx`, `sqrtx`, `lnx` that the expression parser reads as a function applied to
/// a letter.
fn func_prefixed(w: &str) -> bool {
    ["sin", "cos", "tan", "sqrt", "log", "ln", "exp"].iter().any(|f| w.len() <= f.len() + 2 && w.starts_with(f))
}

/// Text form: lowercase without whitespace and outer punctuation.
pub fn text_key(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

fn int_literal(s: &str) -> Option<String> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let d = digits.trim_start_matches('0');
    let d = if d.is_empty() { "0" } else { d };
    Some(if neg && d != "0" { format!("-{d}") } else { d.to_string() })
}

/// A mixed number: an integer directly followed by a proper fraction of integers, `3\frac{1}{2}`
/// (= 3.5, not 3 * 1/2), optionally negative.
fn mixed_number(s: &str) -> Option<f64> {
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t.trim_start()),
        None => (false, s),
    };
    let p = t.find(|c: char| !c.is_ascii_digit())?;
    let whole: f64 = t[..p].parse().ok()?;
    let rest = t[p..].trim_start().strip_prefix("\\frac{")?;
    let (num, rest) = rest.split_once("}{")?;
    let den = rest.strip_suffix('}')?;
    if num.is_empty() || den.is_empty() || !num.bytes().chain(den.bytes()).all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (n, d): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    if !(d > 0.0 && n < d) {
        return None;
    }
    let x = whole + n / d;
    if !x.is_finite() {
        return None;
    }
    Some(if neg { -x } else { x })
}

fn parse_list(parts: &[&str], depth: u32) -> Vec<Ans> {
    parts.iter().map(|p| parse_ans(p, depth + 1)).collect()
}

/// Parse a cleaned answer.
pub fn parse_ans(s: &str, depth: u32) -> Ans {
    let s = s.trim();
    if depth > MAX_DEPTH || s.is_empty() {
        return Ans::Text(text_key(s));
    }
    if let Some((letter, text)) = parse_choice(s) {
        return Ans::Choice { letter, text: text.map(str::to_string) };
    }
    if let Some(t) = parse_time(s) {
        return Ans::Time(t);
    }
    if matches!(s, "\\emptyset" | "\\varnothing" | "\\{\\}" | "\\{ \\}") {
        return Ans::Set(Vec::new());
    }
    let s = strip_var_prefix(s);
    let b = s.as_bytes();

    let commas = split_top(s, ",");
    if commas.len() > MAX_ELEMS {
        return Ans::Text(text_key(s));
    }
    let (s, pct) = if commas.len() == 1 { strip_units_pct(s) } else { (s, false) };
    let b = if commas.len() == 1 { s.as_bytes() } else { b };

    let cups = split_top(s, "\\cup");
    if cups.len() > 1 {
        return Ans::Union(parse_list(&cups, depth));
    }
    if commas.len() == 1 {
        let pm = split_top(s, "\\pm");
        if pm.len() == 2 {
            let plus = format!("{}+{}", pm[0], pm[1]);
            let minus = format!("{}-{}", pm[0], pm[1]);
            return Ans::List(vec![parse_ans(&plus, depth + 1), parse_ans(&minus, depth + 1)]);
        }
    }
    if s.starts_with("\\{") && s.ends_with("\\}") && s.len() >= 4 && wraps_whole(b, 1) {
        let inner = &s[2..s.len() - 2];
        let parts = split_top(inner, ",");
        if parts.len() > MAX_ELEMS {
            return Ans::Text(text_key(s));
        }
        return Ans::Set(parse_list(&parts, depth));
    }
    if s.len() >= 2 && matches!(b[0], b'(' | b'[') && matches!(b[b.len() - 1], b')' | b']') && wraps_whole(b, 0) {
        let inner = &s[1..s.len() - 1];
        let parts = split_top(inner, ",");
        if parts.len() > MAX_ELEMS {
            return Ans::Text(text_key(s));
        }
        if parts.len() >= 2 {
            let (open, close) = (b[0], b[b.len() - 1]);
            if parts.len() == 2 && !(open == b'(' && close == b')') {
                let mut it = parse_list(&parts, depth).into_iter();
                let (Some(lo), Some(hi)) = (it.next(), it.next()) else {
                    return Ans::Text(text_key(s));
                };
                return Ans::Interval {
                    lo_closed: open == b'[',
                    lo: Box::new(lo),
                    hi: Box::new(hi),
                    hi_closed: close == b']',
                };
            }
            return Ans::Tuple(parse_list(&parts, depth));
        }
    }
    if commas.len() > 1 {
        return Ans::List(parse_list(&commas, depth));
    }
    for sep in [" or ", " and "] {
        let parts = split_top(s, sep);
        if parts.len() > 1 && parts.len() <= MAX_ELEMS {
            return Ans::List(parse_list(&parts, depth));
        }
    }
    let eqs = split_top(s, "=");
    if eqs.len() > 2 {
        return parse_ans(eqs[eqs.len() - 1], depth + 1);
    }
    if eqs.len() == 2 && !eqs[0].ends_with(['<', '>', '!']) {
        let (l, r) = (expr::eval(eqs[0]), expr::eval(eqs[1]));
        if let (Some(l), Some(r)) = (l, r) {
            if !l.var {
                return parse_ans(eqs[1], depth + 1);
            }
            let mut d = l;
            for (x, y) in d.v.iter_mut().zip(r.v) {
                *x -= y;
            }
            d.var = true;
            return Ans::Eq(d);
        }
        return Ans::Text(text_key(s));
    }
    if is_wordy(s) {
        return Ans::Text(text_key(s));
    }
    if let Some(x) = mixed_number(s) {
        return Ans::Num { v: Vals { v: [x; NPTS], var: false }, pct, int: None };
    }
    match expr::eval(s) {
        Some(v) => Ans::Num { v, pct, int: int_literal(s) },
        None => Ans::Text(text_key(s)),
    }
}

/// The numeric closeness rule (see the module docs).
pub fn close(x: f64, y: f64, rel_tol: f64) -> bool {
    if x == y {
        return true;
    }
    if !(x.is_finite() && y.is_finite()) {
        return false;
    }
    let d = (x - y).abs();
    if x == 0.0 || y == 0.0 || (x.abs() < 1e-12 && y.abs() < 1e-12) {
        return d <= 1e-12;
    }
    d <= rel_tol * x.abs().max(y.abs())
}

fn num_eq(a: (&Vals, bool, &Option<String>), b: (&Vals, bool, &Option<String>), tol: f64) -> Option<&'static str> {
    let (va, pa, ia) = a;
    let (vb, pb, ib) = b;
    if let (Some(x), Some(y), false, false) = (ia, ib, pa, pb) {
        return (x == y).then_some("numeric");
    }
    if !va.var && !vb.var {
        let (x, y) = (va.v[0], vb.v[0]);
        let ok = close(x, y, tol) || (pa && close(x / 100.0, y, tol)) || (pb && close(x, y / 100.0, tol));
        return ok.then_some("numeric");
    }
    let mut good = 0;
    for k in 0..NPTS {
        let (x, y) = (va.v[k], vb.v[k]);
        if x.is_nan() || y.is_nan() {
            // compare only where both are defined
            continue;
        }
        if !close(x, y, tol.max(1e-9)) {
            return None;
        }
        good += 1;
    }
    (good >= 2).then_some("symbolic")
}

fn eq_eq(a: &Vals, b: &Vals, tol: f64) -> bool {
    let tol = tol.max(1e-9);
    let mut ratio: Option<f64> = None;
    let mut good = 0;
    for k in 0..NPTS {
        let (x, y) = (a.v[k], b.v[k]);
        if x.is_nan() || y.is_nan() {
            continue;
        }
        if !(x.is_finite() && y.is_finite()) {
            return false;
        }
        good += 1;
        let (zx, zy) = (x.abs() < 1e-12, y.abs() < 1e-12);
        if zx || zy {
            if zx != zy {
                return false;
            }
            continue;
        }
        match ratio {
            None => ratio = Some(x / y),
            Some(r) => {
                if !close(x, r * y, tol) {
                    return false;
                }
            }
        }
    }
    good >= 2
}

fn all_match(a: &[Ans], b: &[Ans], ctx: &Ctx) -> bool {
    a.iter().all(|x| b.iter().any(|y| cmp(x, y, ctx, 0).is_some()))
}

fn unordered(a: &[Ans], b: &[Ans], ctx: &Ctx) -> bool {
    all_match(a, b, ctx) && all_match(b, a, ctx)
}

fn ordered(a: &[Ans], b: &[Ans], ctx: &Ctx) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| cmp(x, y, ctx, 0).is_some())
}

fn option_text<'a>(letter: u8, text: &'a Option<String>, ctx: &'a Ctx) -> Option<&'a str> {
    if let Some(opts) = ctx.options {
        if let Some((_, t)) = opts.iter().find(|(c, _)| *c as u32 == u32::from(letter)) {
            return Some(t.as_str());
        }
    }
    text.as_deref()
}

/// Compare a choice letter (with its text) against a non-letter answer.
fn choice_vs(letter: u8, text: &Option<String>, other: &Ans, ctx: &Ctx, depth: u32) -> Option<&'static str> {
    if depth > 0 {
        return None;
    }
    let t = option_text(letter, text, ctx)?;
    let cleaned = super::normalize::clean(t);
    let a = parse_ans(&cleaned, 1);
    let inner = Ctx { rel_tol: ctx.rel_tol, options: None };
    cmp(&a, other, &inner, depth + 1).map(|_| "choice")
}

/// Compare two answers; `Some(reason)` when equal.
pub fn cmp(a: &Ans, b: &Ans, ctx: &Ctx, depth: u32) -> Option<&'static str> {
    use Ans::*;
    match (a, b) {
        (Choice { letter: x, .. }, Choice { letter: y, .. }) => (x == y).then_some("choice"),
        (Choice { letter, text }, other) | (other, Choice { letter, text }) => {
            choice_vs(*letter, text, other, ctx, depth)
        }
        (Time(x), Time(y)) => (x == y).then_some("exact"),
        (Num { v: va, pct: pa, int: ia }, Num { v: vb, pct: pb, int: ib }) => {
            num_eq((va, *pa, ia), (vb, *pb, ib), ctx.rel_tol)
        }
        (Eq(x), Eq(y)) => eq_eq(x, y, ctx.rel_tol).then_some("equation"),
        (Tuple(x), Tuple(y)) => ordered(x, y, ctx).then_some("tuple"),
        (List(x), Tuple(y)) | (Tuple(x), List(y)) => ordered(x, y, ctx).then_some("tuple"),
        (Set(x) | List(x), Set(y) | List(y)) => unordered(x, y, ctx).then_some("set"),
        (
            Interval { lo_closed: a1, lo: l1, hi: h1, hi_closed: b1 },
            Interval { lo_closed: a2, lo: l2, hi: h2, hi_closed: b2 },
        ) => (a1 == a2 && b1 == b2 && cmp(l1, l2, ctx, 0).is_some() && cmp(h1, h2, ctx, 0).is_some())
            .then_some("interval"),
        (Union(x), Union(y)) => unordered(x, y, ctx).then_some("interval"),
        (Text(x), Text(y)) => (x == y).then_some("text"),
        _ => None,
    }
}
