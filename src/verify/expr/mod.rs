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

mod parser;
use parser::*;

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
