//! Final-answer verification: does a model's response reach the reference answer?
//!
//! [`verify`] extracts the final answer from both texts ([`extract_answer`]: `\boxed{}`,
//! `<answer>` tags, "the answer is ...", multiple-choice letters, the text after `</think>`),
//! normalises both ([`normalize`]: LaTeX variants, degrees, units, percent, thousands
//! separators, spacing) and compares them structurally ([`answer`]): exactly, numerically with a
//! relative tolerance, symbolically by evaluation at fixed random points ([`expr`]), or as
//! tuples, sets, intervals, equations, choice letters, times or words.
//!
//! The result is a [`Verdict`] whose `reason` is one of these machine-readable strings:
//!
//! | reason                    | meaning                                                      |
//! |---------------------------|--------------------------------------------------------------|
//! | `exact`                   | equal after normalisation (also equal clock times)           |
//! | `numeric`                 | equal numbers within `rel_tol` (fractions, decimals, percent) |
//! | `symbolic`                | expressions agree at every evaluation point                  |
//! | `equation`                | equations `l = r` whose `l - r` agree up to a factor         |
//! | `tuple`                   | ordered tuples, element by element                           |
//! | `set`                     | sets or bare lists, in any order                             |
//! | `interval`                | intervals (bracket types equal) or unions of them            |
//! | `choice`                  | the same option letter, or a letter and its option text      |
//! | `text`                    | the same words, ignoring case and spacing                    |
//! | `mismatch`                | both answers found, not equal                                |
//! | `no_answer_in_prediction` | nothing answer-like in the prediction                        |
//! | `no_answer_in_gold`       | the gold is empty                                            |
//!
//! Nothing here panics on any input; malformed math simply falls back to text comparison.

pub mod answer;
pub mod cli;
pub mod expr;
pub mod extract;
pub mod normalize;

pub use cli::run_cases;
pub use extract::{extract_answer, parse_options};

use serde::Serialize;

use answer::{Ans, Ctx, cmp, parse_ans, text_key};

/// Outcome of one comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub equal: bool,
    /// The gold answer as extracted (the whole trimmed gold when nothing more specific was found).
    pub gold_extracted: Option<String>,
    /// The predicted answer as extracted; `None` when the prediction has no answer.
    pub pred_extracted: Option<String>,
    /// Why: see the module docs for the list.
    pub reason: String,
}

/// Settings of [`verify_with`].
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Relative tolerance of numeric comparison (default 1e-6).
    pub rel_tol: f64,
    /// Multiple-choice options, letter -> text. Takes precedence over `question`.
    pub options: Option<Vec<(char, String)>>,
    /// Question text to parse options from ("(A) 12 (B) 15", or one "A. 12" per line).
    pub question: Option<String>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions { rel_tol: 1e-6, options: None, question: None }
    }
}

/// [`verify_with`] under default options.
pub fn verify(gold: &str, prediction: &str) -> Verdict {
    verify_with(gold, prediction, &VerifyOptions::default())
}

/// Is `prediction`'s final answer equivalent to `gold`'s? `gold` may be a bare answer or a full
/// solution text.
pub fn verify_with(gold: &str, prediction: &str, opts: &VerifyOptions) -> Verdict {
    let g = match extract::extract_span(gold) {
        Some(g) => g,
        None => gold.trim(),
    };
    if g.is_empty() {
        return Verdict {
            equal: false,
            gold_extracted: None,
            pred_extracted: extract_answer(prediction),
            reason: "no_answer_in_gold".into(),
        };
    }
    let Some(p) = extract::extract_span(prediction) else {
        return Verdict {
            equal: false,
            gold_extracted: Some(g.to_string()),
            pred_extracted: None,
            reason: "no_answer_in_prediction".into(),
        };
    };
    let parsed;
    let options: Option<&[(char, String)]> = match (&opts.options, &opts.question) {
        (Some(o), _) => Some(o.as_slice()),
        (None, Some(q)) => {
            parsed = parse_options(q);
            if parsed.is_empty() { None } else { Some(parsed.as_slice()) }
        }
        (None, None) => None,
    };
    let rel_tol = if opts.rel_tol.is_finite() && opts.rel_tol >= 0.0 { opts.rel_tol } else { 1e-6 };
    let reason = compare_answers(g, p, &Ctx { rel_tol, options });
    Verdict {
        equal: reason.is_some(),
        gold_extracted: Some(g.to_string()),
        pred_extracted: Some(p.to_string()),
        reason: reason.unwrap_or("mismatch").to_string(),
    }
}

/// Compare two extracted answers; `Some(reason)` when equivalent.
fn compare_answers(g: &str, p: &str, ctx: &Ctx) -> Option<&'static str> {
    let gc = normalize::clean(g);
    let pc = normalize::clean(p);
    if gc.is_empty() || pc.is_empty() {
        return None;
    }
    if normalize::canonical(&gc) == normalize::canonical(&pc) {
        return Some("exact");
    }
    let ga = parse_ans(&gc, 0);
    let pa = parse_ans(&pc, 0);
    if let Some(r) = cmp(&ga, &pa, ctx, 0) {
        return Some(r);
    }
    // case-insensitive spelling match, except between two math expressions, where case matters
    // (`2A` != `2a`), unless both are short words read as products (`No` == `no`)
    let math = |a: &Ans| matches!(a, Ans::Num { .. } | Ans::Eq(_));
    let word = |s: &str| s.len() >= 2 && s.bytes().all(|c| c.is_ascii_alphabetic() || c == b' ');
    let case_matters = math(&ga) && math(&pa) && !(word(&gc) && word(&pc));
    (!case_matters && text_key(&gc) == text_key(&pc)).then_some("text")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoke() {
        assert!(verify("\\frac{1}{2}", "The answer is $0.5$.").equal);
        assert!(!verify("3", "<think>so 3</think>").equal);
        assert_eq!(verify("3", "").reason, "no_answer_in_prediction");
        assert_eq!(verify("", "3").reason, "no_answer_in_gold");
    }

    /// Throughput on typical short cases: `cargo test --release --lib verify::tests::throughput
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing; run in release by hand"]
    fn throughput() {
        use rayon::prelude::*;
        let base: &[(&str, &str)] = &[
            ("42", "The answer is \\boxed{42}."),
            ("\\frac{1}{2}", "So we get $\\boxed{0.5}$"),
            ("25\\%", "\\boxed{0.25}"),
            ("B", "Answer: (B)"),
            ("x^2+2x+1", "\\boxed{(x+1)^2}"),
            ("(1, 2)", "<think>compute</think> The point is $(1,2)$."),
            ("[0, 1)", "\\boxed{[0,1)}"),
            ("12", "The answer is 12 apples."),
            ("2\\sqrt{2}", "\\boxed{\\sqrt{8}}"),
            ("1000", "#### 1,000"),
        ];
        let cases: Vec<(String, String)> =
            (0..200_000).map(|k| base[k % base.len()]).map(|(g, p)| (g.to_string(), p.to_string())).collect();
        let t = std::time::Instant::now();
        let n = cases.par_iter().filter(|(g, p)| verify(g, p).equal).count();
        let dt = t.elapsed().as_secs_f64();
        assert_eq!(n, cases.len());
        eprintln!(
            "{} cases in {dt:.3}s: {:.0} cases/s on {} threads",
            cases.len(),
            cases.len() as f64 / dt,
            rayon::current_num_threads()
        );
    }
}
