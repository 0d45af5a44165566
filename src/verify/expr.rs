//! A small parser and evaluator for answer expressions, written for the verifier.
//!
//! Input is the *cleaned* form produced by [`super::normalize::clean`]: LaTeX with `\frac{a}{b}`,
//! `\sqrt[n]{x}`, `\pi`, `\infty`, Greek letters and function commands, or plain text math with
//! `+ - * / ^`, parentheses, implicit multiplication (`2x`, `2\pi`, `3(x+1)`), `|x|`, `n!`,
//! scientific literals (`1.5e3`), the functions sqrt, sin, cos, tan, sec, csc, cot, their `arc`
//! inverses, sinh, cosh, tanh, log, ln, lg, exp, abs, `\binom{n}{k}` and the constants pi and e.
//!
//! Instead of building a tree, the parser evaluates as it goes, at [`NPTS`] fixed points at once:
//! every variable (a letter, a Greek letter, optionally with a subscript such as `x_1`) takes a
//! deterministic pseudo-random value at each point, in `[0.5, 2.5)` at the first three points and
//! in `(-2.5, -0.5]` at the last two (so `\sqrt{x^2}` and `x` differ). Two expressions are then
//! "symbolically equal" when their values agree at every point where both are defined, with at
//! least two such points. An expression without variables has the same value at every point.
//!
//! The parser never panics: malformed input, unknown commands and too deep nesting give `None`.
//! Results that overflow from finite operands become NaN, so huge numbers never compare equal
//! by both being infinite.

/// Number of evaluation points.
pub const NPTS: usize = 5;

/// The first points give every variable a positive value, the others a negative one.
const NPTS_POSITIVE: usize = 3;

/// Nesting limit of the recursive descent (parentheses, groups, function arguments).
const MAX_DEPTH: u32 = 64;

/// Values of an expression at the evaluation points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vals {
    pub v: [f64; NPTS],
    /// Whether any variable occurred.
    pub var: bool,
}

impl Vals {
    fn konst(x: f64) -> Vals {
        Vals { v: [x; NPTS], var: false }
    }
    fn map(self, f: impl Fn(f64) -> f64) -> Vals {
        let mut v = self.v;
        for x in &mut v {
            *x = guard1(*x, f(*x));
        }
        Vals { v, var: self.var }
    }
    fn zip(self, o: Vals, f: impl Fn(f64, f64) -> f64) -> Vals {
        let mut v = self.v;
        for (x, y) in v.iter_mut().zip(o.v) {
            let r = f(*x, y);
            *x = if r.is_infinite() && x.is_finite() && y.is_finite() { f64::NAN } else { r };
        }
        Vals { v, var: self.var || o.var }
    }
}

/// An infinite result from a finite argument is an overflow: make it NaN.
fn guard1(x: f64, r: f64) -> f64 {
    if r.is_infinite() && x.is_finite() { f64::NAN } else { r }
}

/// Evaluate a whole cleaned expression; `None` when it does not parse completely.
pub fn eval(s: &str) -> Option<Vals> {
    let mut p = Parser { b: s.as_bytes(), i: 0, depth: 0 };
    let v = p.sum()?;
    p.ws();
    if p.i == p.b.len() { Some(v) } else { None }
}

/// Deterministic value of variable `name` at point `k`.
fn var_value(name: &[u8], k: usize) -> f64 {
    // FNV-1a of the name, then splitmix64 with the point index.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &c in name {
        h ^= u64::from(c);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ (k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let u = 0.5 + 2.0 * ((z >> 11) as f64 / (1u64 << 53) as f64);
    if k < NPTS_POSITIVE { u } else { -u }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Func {
    Sqrt,
    Sin,
    Cos,
    Tan,
    Sec,
    Csc,
    Cot,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    Tanh,
    Ln,
    Log10,
    Exp,
    Abs,
}

impl Func {
    fn apply(self, x: f64) -> f64 {
        match self {
            Func::Sqrt => x.sqrt(),
            Func::Sin => x.sin(),
            Func::Cos => x.cos(),
            Func::Tan => x.tan(),
            Func::Sec => 1.0 / x.cos(),
            Func::Csc => 1.0 / x.sin(),
            Func::Cot => 1.0 / x.tan(),
            Func::Asin => x.asin(),
            Func::Acos => x.acos(),
            Func::Atan => x.atan(),
            Func::Sinh => x.sinh(),
            Func::Cosh => x.cosh(),
            Func::Tanh => x.tanh(),
            Func::Ln => x.ln(),
            Func::Log10 => x.log10(),
            Func::Exp => x.exp(),
            Func::Abs => x.abs(),
        }
    }
    fn inverse(self) -> Option<Func> {
        match self {
            Func::Sin => Some(Func::Asin),
            Func::Cos => Some(Func::Acos),
            Func::Tan => Some(Func::Atan),
            _ => None,
        }
    }
}

/// Function names, longest first so that `sinh` wins over `sin`.
const FUNCS: &[(&str, Func)] = &[
    ("arcsin", Func::Asin),
    ("arccos", Func::Acos),
    ("arctan", Func::Atan),
    ("sqrt", Func::Sqrt),
    ("sinh", Func::Sinh),
    ("cosh", Func::Cosh),
    ("tanh", Func::Tanh),
    ("sin", Func::Sin),
    ("cos", Func::Cos),
    ("tan", Func::Tan),
    ("sec", Func::Sec),
    ("csc", Func::Csc),
    ("cot", Func::Cot),
    ("log", Func::Ln),
    ("exp", Func::Exp),
    ("abs", Func::Abs),
    ("ln", Func::Ln),
    ("lg", Func::Log10),
];

fn func_named(name: &[u8]) -> Option<Func> {
    FUNCS.iter().find(|(n, _)| n.as_bytes() == name).map(|&(_, f)| f)
}

/// Greek letters (and a few other symbols) that act as variables.
const GREEK: &[&str] = &[
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "varepsilon",
    "zeta",
    "eta",
    "theta",
    "vartheta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "varphi",
    "chi",
    "psi",
    "omega",
    "Gamma",
    "Delta",
    "Theta",
    "Lambda",
    "Xi",
    "Sigma",
    "Phi",
    "Psi",
    "Omega",
];

/// Is `w` a word the expression parser understands (function or constant)? Used by the answer
/// parser to tell prose from math.
pub fn is_math_word(w: &str) -> bool {
    w == "pi" || w == "e" || w == "infinity" || FUNCS.iter().any(|(n, _)| *n == w)
}

/// The command name after a backslash at `i` (empty when there is none).
fn cmd_at(b: &[u8], i: usize) -> &[u8] {
    if b.get(i) != Some(&b'\\') {
        return &[];
    }
    let start = i + 1;
    let mut j = start;
    while j < b.len() && b[j].is_ascii_alphabetic() {
        j += 1;
    }
    &b[start..j]
}

/// `n choose k` for whole `0 <= k <= n`; NaN otherwise.
fn binomial(n: f64, k: f64) -> f64 {
    if n.fract() != 0.0 || k.fract() != 0.0 || k < 0.0 || n < k || n > 1e6 {
        return f64::NAN;
    }
    let k = k.min(n - k);
    let mut r = 1.0;
    let mut i = 1.0;
    while i <= k {
        r = r * (n - k + i) / i;
        i += 1.0;
    }
    r.round()
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
    depth: u32,
}

fn factorial(x: f64) -> f64 {
    if !(0.0..=170.0).contains(&x) || x.fract() != 0.0 {
        return f64::NAN;
    }
    let mut r = 1.0;
    let mut k = 2.0;
    while k <= x {
        r *= k;
        k += 1.0;
    }
    r
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { None } else { Some(()) }
    }
    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn sum(&mut self) -> Option<Vals> {
        self.enter()?;
        let mut acc = self.product()?;
        loop {
            self.ws();
            match self.peek() {
                Some(b'+') => {
                    self.i += 1;
                    let r = self.product()?;
                    acc = acc.zip(r, |a, b| a + b);
                }
                Some(b'-') => {
                    self.i += 1;
                    let r = self.product()?;
                    acc = acc.zip(r, |a, b| a - b);
                }
                _ => break,
            }
        }
        self.leave();
        Some(acc)
    }

    /// Does the next token start an operand (for implicit multiplication)?
    fn starts_operand(&self) -> bool {
        match self.peek() {
            Some(c) if c.is_ascii_alphanumeric() => true,
            Some(b'.' | b'(' | b'{') => true,
            Some(b'\\') => {
                let c = cmd_at(self.b, self.i);
                !c.is_empty() && c != b"right" && c != b"}" && c != b"cup"
            }
            _ => false,
        }
    }

    fn product(&mut self) -> Option<Vals> {
        let mut acc = self.unary()?;
        loop {
            self.ws();
            match self.peek() {
                Some(b'*') => {
                    self.i += 1;
                    if self.peek() == Some(b'*') {
                        // `**` power in plain-text math
                        self.i += 1;
                        let e = self.unary()?;
                        acc = acc.zip(e, f64::powf);
                        continue;
                    }
                    let r = self.unary()?;
                    acc = acc.zip(r, |a, b| a * b);
                }
                Some(b'/') => {
                    self.i += 1;
                    let r = self.unary()?;
                    acc = acc.zip(r, |a, b| a / b);
                }
                _ if self.starts_operand() => {
                    let r = self.power()?;
                    acc = acc.zip(r, |a, b| a * b);
                }
                _ => break,
            }
        }
        Some(acc)
    }

    fn unary(&mut self) -> Option<Vals> {
        self.ws();
        match self.peek() {
            Some(b'-') => {
                self.i += 1;
                self.enter()?;
                let v = self.unary()?;
                self.leave();
                Some(v.map(|x| -x))
            }
            Some(b'+') => {
                self.i += 1;
                self.enter()?;
                let v = self.unary()?;
                self.leave();
                Some(v)
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Option<Vals> {
        let base = self.postfix()?;
        self.ws();
        if self.peek() == Some(b'^') {
            self.i += 1;
            let e = self.exponent()?;
            return Some(base.zip(e, f64::powf));
        }
        Some(base)
    }

    /// The exponent after `^`: a group, a parenthesis, or one atom (a whole number literal, a
    /// letter, a command), optionally signed, itself possibly raised to a power.
    fn exponent(&mut self) -> Option<Vals> {
        self.enter()?;
        self.ws();
        let r = match self.peek() {
            Some(b'-') => {
                self.i += 1;
                self.exponent().map(|v| v.map(|x| -x))
            }
            Some(b'+') => {
                self.i += 1;
                self.exponent()
            }
            _ => self.power(),
        };
        self.leave();
        r
    }

    fn postfix(&mut self) -> Option<Vals> {
        let mut v = self.primary()?;
        while self.peek() == Some(b'!') && self.b.get(self.i + 1) != Some(&b'=') {
            self.i += 1;
            v = v.map(factorial);
        }
        Some(v)
    }

    fn group(&mut self, close: u8) -> Option<Vals> {
        let v = self.sum()?;
        if self.eat(close) { Some(v) } else { None }
    }

    fn number(&mut self) -> Option<Vals> {
        let start = self.i;
        let b = self.b;
        let mut j = self.i;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j < b.len() && b[j] == b'.' {
            j += 1;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
        }
        if j == start + 1 && b[start] == b'.' {
            return None;
        }
        // scientific exponent: e/E, optional sign, at least one digit
        if j < b.len() && (b[j] == b'e' || b[j] == b'E') {
            let mut k = j + 1;
            if k < b.len() && (b[k] == b'+' || b[k] == b'-') {
                k += 1;
            }
            if k < b.len() && b[k].is_ascii_digit() {
                while k < b.len() && b[k].is_ascii_digit() {
                    k += 1;
                }
                j = k;
            }
        }
        self.i = j;
        let s = std::str::from_utf8(&b[start..j]).ok()?;
        let x: f64 = s.parse().ok()?;
        Some(Vals::konst(if x.is_finite() { x } else { f64::NAN }))
    }

    /// A braced group, a parenthesis or a single token: the argument of `\frac`, `\sqrt`, etc.
    fn arg(&mut self) -> Option<Vals> {
        self.ws();
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                self.group(b'}')
            }
            Some(b'(') => {
                self.i += 1;
                self.group(b')')
            }
            Some(c) if c.is_ascii_digit() => {
                // `\frac12`: a single digit
                self.i += 1;
                Some(Vals::konst(f64::from(c - b'0')))
            }
            _ => self.primary(),
        }
    }

    /// Argument of a function written without parentheses (`\sin 2x`): a chain of implicitly
    /// multiplied powers that stops at explicit operators and at the next function.
    fn func_arg(&mut self) -> Option<Vals> {
        self.ws();
        match self.peek() {
            Some(b'(') => {
                self.i += 1;
                return self.group(b')');
            }
            Some(b'{') => {
                self.i += 1;
                return self.group(b'}');
            }
            _ => {}
        }
        let mut acc = self.power()?;
        loop {
            self.ws();
            if !self.starts_operand() || self.at_function() {
                break;
            }
            let r = self.power()?;
            acc = acc.zip(r, |a, b| a * b);
        }
        Some(acc)
    }

    fn at_function(&self) -> bool {
        if self.peek() == Some(b'\\') {
            return func_named(cmd_at(self.b, self.i)).is_some();
        }
        self.word_function().is_some()
    }

    /// A function name written without a backslash at the cursor (`sqrt(2)`, `sin x`).
    fn word_function(&self) -> Option<(Func, usize)> {
        let rest = &self.b[self.i..];
        for &(n, f) in FUNCS {
            let nb = n.as_bytes();
            if rest.len() > nb.len() && rest.starts_with(nb) && !rest[nb.len()].is_ascii_alphabetic() {
                return Some((f, nb.len()));
            }
        }
        None
    }

    fn apply_func(&mut self, f: Func) -> Option<Vals> {
        self.enter()?;
        self.ws();
        let mut f = f;
        let mut post_pow: Option<Vals> = None;
        let mut base: Option<Vals> = None;
        // `\sin^2 x`, `\sin^{-1} x`
        if self.peek() == Some(b'^') {
            self.i += 1;
            let e = self.exponent()?;
            if !e.var && e.v[0] == -1.0 {
                f = f.inverse()?;
            } else {
                post_pow = Some(e);
            }
        }
        // `\log_2 8`, `\log_{10} x`
        self.ws();
        if self.peek() == Some(b'_') {
            if f != Func::Ln {
                return None;
            }
            self.i += 1;
            base = Some(self.arg()?);
        }
        let a = self.func_arg()?;
        let mut r = a.map(|x| f.apply(x));
        if let Some(b) = base {
            r = r.zip(b, |y, b| y / b.ln());
        }
        if let Some(e) = post_pow {
            r = r.zip(e, f64::powf);
        }
        self.leave();
        Some(r)
    }

    /// A variable name: its bytes, plus an optional subscript.
    fn variable(&mut self, name_start: usize, name_end: usize) -> Option<Vals> {
        let mut end = name_end;
        let mut key: [u8; 24] = [0; 24];
        let mut n = 0usize;
        for &c in &self.b[name_start..name_end] {
            if n < key.len() {
                key[n] = c;
                n += 1;
            }
        }
        if self.b.get(end) == Some(&b'_') {
            end += 1;
            let sub_start;
            let sub_end;
            match self.b.get(end) {
                Some(b'{') => {
                    sub_start = end + 1;
                    let close = self.b[sub_start..].iter().position(|&c| c == b'}')?;
                    sub_end = sub_start + close;
                    end = sub_end + 1;
                }
                Some(c) if c.is_ascii_alphanumeric() => {
                    sub_start = end;
                    sub_end = end + 1;
                    end = sub_end;
                }
                _ => return None,
            }
            if n < key.len() {
                key[n] = b'_';
                n += 1;
            }
            for &c in &self.b[sub_start..sub_end] {
                if c != b' ' && n < key.len() {
                    key[n] = c;
                    n += 1;
                }
            }
        }
        self.i = end;
        let name = &key[..n];
        let mut v = [0.0; NPTS];
        for (k, x) in v.iter_mut().enumerate() {
            *x = var_value(name, k);
        }
        Some(Vals { v, var: true })
    }

    fn primary(&mut self) -> Option<Vals> {
        self.ws();
        let c = self.peek()?;
        match c {
            b'0'..=b'9' | b'.' => self.number(),
            b'(' => {
                self.i += 1;
                self.enter()?;
                let v = self.group(b')');
                self.leave();
                v
            }
            b'[' => {
                self.i += 1;
                self.enter()?;
                let v = self.group(b']');
                self.leave();
                v
            }
            b'{' => {
                self.i += 1;
                self.enter()?;
                let v = self.group(b'}');
                self.leave();
                v
            }
            b'|' => {
                self.i += 1;
                self.enter()?;
                let v = self.group(b'|');
                self.leave();
                v.map(|v| v.map(f64::abs))
            }
            b'a'..=b'z' | b'A'..=b'Z' => {
                if let Some((f, len)) = self.word_function() {
                    self.i += len;
                    return self.apply_func(f);
                }
                let rest = &self.b[self.i..];
                if rest.starts_with(b"infinity") && !rest.get(8).is_some_and(u8::is_ascii_alphabetic) {
                    self.i += 8;
                    return Some(Vals::konst(f64::INFINITY));
                }
                if rest.starts_with(b"pi") && !rest.get(2).is_some_and(u8::is_ascii_alphabetic) {
                    self.i += 2;
                    return Some(Vals::konst(std::f64::consts::PI));
                }
                if c == b'e' && self.b.get(self.i + 1) != Some(&b'_') {
                    self.i += 1;
                    return Some(Vals::konst(std::f64::consts::E));
                }
                let s = self.i;
                self.variable(s, s + 1)
            }
            b'\\' => self.command(),
            _ => None,
        }
    }

    fn command(&mut self) -> Option<Vals> {
        let start = self.i;
        let name = cmd_at(self.b, start);
        if name.is_empty() {
            return None;
        }
        let name_end = start + 1 + name.len();
        self.i = name_end;
        match name {
            b"frac" | b"dfrac" | b"tfrac" | b"cfrac" => {
                self.enter()?;
                let a = self.arg()?;
                let b = self.arg()?;
                self.leave();
                Some(a.zip(b, |x, y| x / y))
            }
            b"sqrt" => {
                self.enter()?;
                self.ws();
                let root = if self.peek() == Some(b'[') {
                    self.i += 1;
                    Some(self.group(b']')?)
                } else {
                    None
                };
                let x = self.arg()?;
                self.leave();
                Some(match root {
                    None => x.map(f64::sqrt),
                    Some(n) => x.zip(n, |x, n| {
                        if x < 0.0 && n.fract() == 0.0 && (n as i64) % 2 != 0 {
                            -(-x).powf(1.0 / n)
                        } else {
                            x.powf(1.0 / n)
                        }
                    }),
                })
            }
            b"binom" | b"dbinom" | b"tbinom" => {
                self.enter()?;
                let n = self.arg()?;
                let k = self.arg()?;
                self.leave();
                Some(n.zip(k, binomial))
            }
            b"pi" => Some(Vals::konst(std::f64::consts::PI)),
            b"infty" | b"infin" => Some(Vals::konst(f64::INFINITY)),
            b"exp" => self.apply_func(Func::Exp),
            _ => {
                if let Some(f) = func_named(name) {
                    return self.apply_func(f);
                }
                if GREEK.iter().any(|g| g.as_bytes() == name) {
                    return self.variable(start + 1, name_end);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn val(s: &str) -> f64 {
        eval(s).map_or(f64::NAN, |v| v.v[0])
    }

    #[test]
    fn arithmetic_and_precedence() {
        assert_eq!(val("1+2*3"), 7.0);
        assert_eq!(val("2^3^2"), 512.0);
        assert_eq!(val("-2^2"), -4.0);
        assert_eq!(val("2(3+4)"), 14.0);
        assert_eq!(val("\\frac{1}{2}"), 0.5);
        assert_eq!(val("\\frac12"), 0.5);
        assert_eq!(val("\\sqrt[3]{8}"), 2.0);
        assert_eq!(val("1.5e3"), 1500.0);
        assert_eq!(val("5!"), 120.0);
        assert_eq!(val("|-3|"), 3.0);
        assert_eq!(val("\\binom{5}{2}"), 10.0);
        assert!((val("\\log_2 8") - 3.0).abs() < 1e-12);
        assert!((val("2\\pi") - std::f64::consts::TAU).abs() < 1e-12);
        assert!((val("sqrt(2)^2") - 2.0).abs() < 1e-12);
    }

    #[test]
    fn variables_and_functions() {
        let a = eval("\\sin^2 x + \\cos^2 x").map(|v| v.v);
        assert!(a.is_some_and(|v| v.iter().all(|x| (x - 1.0).abs() < 1e-12)));
        let b = eval("2x_1").map(|v| v.var);
        assert_eq!(b, Some(true));
        assert!(eval("x +").is_none());
        assert!(eval("\\unknown{3}").is_none());
        assert!(eval("((((").is_none());
    }

    #[test]
    fn overflow_is_nan() {
        assert!(val("10^{400}").is_nan());
        assert!(val("1e999").is_nan());
        assert!(val("\\infty").is_infinite());
    }
}
