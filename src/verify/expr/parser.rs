//! The expression parser: LaTeX and plain math text to an expression that evaluates at sample
//! points, with the commands, functions and Greek letters it knows.

use super::*;

/// The command name after a backslash at `i` (empty when there is none).
pub(super) fn cmd_at(b: &[u8], i: usize) -> &[u8] {
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
pub(super) fn binomial(n: f64, k: f64) -> f64 {
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

pub(super) struct Parser<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
    pub(super) depth: u32,
}

pub(super) fn factorial(x: f64) -> f64 {
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
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    pub(super) fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    pub(super) fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    pub(super) fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { None } else { Some(()) }
    }
    pub(super) fn leave(&mut self) {
        self.depth -= 1;
    }

    pub(super) fn sum(&mut self) -> Option<Vals> {
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
    pub(super) fn starts_operand(&self) -> bool {
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

    pub(super) fn product(&mut self) -> Option<Vals> {
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

    pub(super) fn unary(&mut self) -> Option<Vals> {
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

    pub(super) fn power(&mut self) -> Option<Vals> {
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
    pub(super) fn exponent(&mut self) -> Option<Vals> {
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

    pub(super) fn postfix(&mut self) -> Option<Vals> {
        let mut v = self.primary()?;
        while self.peek() == Some(b'!') && self.b.get(self.i + 1) != Some(&b'=') {
            self.i += 1;
            v = v.map(factorial);
        }
        Some(v)
    }

    pub(super) fn group(&mut self, close: u8) -> Option<Vals> {
        let v = self.sum()?;
        if self.eat(close) { Some(v) } else { None }
    }

    pub(super) fn number(&mut self) -> Option<Vals> {
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
    pub(super) fn arg(&mut self) -> Option<Vals> {
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
    pub(super) fn func_arg(&mut self) -> Option<Vals> {
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

    pub(super) fn at_function(&self) -> bool {
        if self.peek() == Some(b'\\') {
            return func_named(cmd_at(self.b, self.i)).is_some();
        }
        self.word_function().is_some()
    }

    /// A function name written without a backslash at the cursor (`sqrt(2)`, `sin x`).
    pub(super) fn word_function(&self) -> Option<(Func, usize)> {
        let rest = &self.b[self.i..];
        for &(n, f) in FUNCS {
            let nb = n.as_bytes();
            if rest.len() > nb.len() && rest.starts_with(nb) && !rest[nb.len()].is_ascii_alphabetic() {
                return Some((f, nb.len()));
            }
        }
        None
    }

    pub(super) fn apply_func(&mut self, f: Func) -> Option<Vals> {
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
    pub(super) fn variable(&mut self, name_start: usize, name_end: usize) -> Option<Vals> {
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

    pub(super) fn primary(&mut self) -> Option<Vals> {
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

    pub(super) fn command(&mut self) -> Option<Vals> {
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
