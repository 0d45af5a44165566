//! Questions over rendered scenes, their exact answers, and long reasoning traces.
//!
//! Every question is answerable from the image alone and needs several steps over values read
//! from it. Traces are `<think>` ... `</think>` with step-by-step working, self-checks, optional
//! backtracking and varied filler reasoning (fresh numbers in every sentence, so clean traces do
//! not repeat themselves), then a final answer in `\boxed{}`.

use super::render::{Colour, GeoKind, Scene, Shape};
use crate::rng::Rng;

/// A final answer in one of the forms real datasets use.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Int(i64),
    /// numerator, denominator (reduced, denominator > 1)
    Frac(i64, i64),
    /// value with this many decimals
    Decimal(f64, usize),
    /// percentage with this many decimals
    Percent(f64, usize),
    /// value and unit
    Units(i64, &'static str),
    /// multiple-choice letter
    Letter(char),
    /// hours, minutes
    Time(u32, u32),
}

impl Answer {
    /// The reference solution as plain text (`1/2`, `12.5`, `25%`, `14 cm`, `B`, `4:05`).
    pub fn plain(&self) -> String {
        match self {
            Answer::Int(v) => v.to_string(),
            Answer::Frac(n, d) => format!("{n}/{d}"),
            Answer::Decimal(v, p) => format!("{v:.p$}"),
            Answer::Percent(v, p) => format!("{v:.p$}%"),
            Answer::Units(v, u) => format!("{v} {u}"),
            Answer::Letter(c) => c.to_string(),
            Answer::Time(h, m) => format!("{h}:{m:02}"),
        }
    }

    /// The answer as written inside `\boxed{}` (LaTeX where natural).
    pub fn boxed(&self) -> String {
        match self {
            Answer::Frac(n, d) => format!("\\frac{{{n}}}{{{d}}}"),
            Answer::Percent(v, p) => format!("{v:.p$}\\%"),
            Answer::Units(v, u) => format!("{v}\\text{{ {u}}}"),
            other => other.plain(),
        }
    }

    /// A different, wrong answer of the same form (for planted wrong-answer defects).
    pub fn perturbed(&self, rng: &mut Rng) -> Answer {
        let d = rng.range(1, 5) * if rng.chance(0.5) { 1 } else { -1 };
        match self {
            Answer::Int(v) => Answer::Int(v + d),
            Answer::Frac(n, den) => Answer::Frac(n + d.abs(), *den + 1).reduced(),
            Answer::Decimal(v, p) => Answer::Decimal(v + d as f64 * 0.5, *p),
            Answer::Percent(v, p) => Answer::Percent(v + d as f64, *p),
            Answer::Units(v, u) => Answer::Units(v + d, u),
            Answer::Letter(c) => Answer::Letter(if *c == 'A' { 'B' } else { 'A' }),
            Answer::Time(h, m) => Answer::Time(*h, (m + 5) % 60),
        }
    }

    fn reduced(self) -> Answer {
        match self {
            Answer::Frac(n, d) => frac(n, d),
            other => other,
        }
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs().max(1) } else { gcd(b, a % b) }
}

/// A reduced fraction; an integer when the denominator divides.
pub fn frac(n: i64, d: i64) -> Answer {
    let g = gcd(n, d);
    let (n, d) = (n / g, d / g);
    if d == 1 { Answer::Int(n) } else { Answer::Frac(n, d) }
}

/// A question with its answer and the essential reasoning.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub question: String,
    pub answer: Answer,
    /// What is read off the image(s), one sentence each.
    pub readings: Vec<String>,
    /// The computation, one step per sentence.
    pub steps: Vec<String>,
    /// A one-line self-check of the result.
    pub check: String,
}

fn join_sum(vs: &[i64]) -> String {
    vs.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(" + ")
}

fn running_sum_steps(vs: &[i64]) -> Vec<String> {
    let mut steps = Vec::new();
    let mut acc = vs[0];
    for v in &vs[1..] {
        steps.push(format!("{acc} + {v} = {}.", acc + v));
        acc += v;
    }
    steps
}

const TOTAL_Q: &[&str] = &[
    "What is the total shown in the chart?",
    "What is the sum of all the values in the chart?",
    "Add up every bar in the chart. What do you get?",
];

fn bar_problem(title: &str, labels: &[String], values: &[i64], rng: &mut Rng) -> Problem {
    let readings: Vec<String> =
        labels.iter().zip(values).map(|(l, v)| format!("The bar labelled {l} in \"{title}\" reaches {v}.")).collect();
    let total: i64 = values.iter().sum();
    let (imax, imin) = {
        let mut imax = 0;
        let mut imin = 0;
        for (i, v) in values.iter().enumerate() {
            if *v > values[imax] {
                imax = i;
            }
            if *v < values[imin] {
                imin = i;
            }
        }
        (imax, imin)
    };
    match rng.below(5) {
        0 => Problem {
            question: rng.pick(TOTAL_Q).to_string(),
            answer: Answer::Int(total),
            readings,
            steps: running_sum_steps(values),
            check: format!(
                "Adding in reverse order: {} = {total}.",
                join_sum(&values.iter().rev().copied().collect::<Vec<_>>())
            ),
        },
        1 => Problem {
            question: "What is the difference between the tallest and the shortest bar?".into(),
            answer: Answer::Int(values[imax] - values[imin]),
            readings,
            steps: vec![
                format!("The tallest bar is {} with {}.", labels[imax], values[imax]),
                format!("The shortest bar is {} with {}.", labels[imin], values[imin]),
                format!("{} - {} = {}.", values[imax], values[imin], values[imax] - values[imin]),
            ],
            check: format!(
                "{} + {} = {}, which matches the tallest bar.",
                values[imin],
                values[imax] - values[imin],
                values[imax]
            ),
        },
        2 => {
            let mean = total as f64 / values.len() as f64;
            let mut steps = running_sum_steps(values);
            steps.push(format!(
                "There are {} bars, so the mean is {total} / {} = {mean:.2}.",
                values.len(),
                values.len()
            ));
            Problem {
                question: "What is the average value of the bars? Give your answer to two decimal places.".into(),
                answer: Answer::Decimal(mean, 2),
                readings,
                steps,
                check: format!("{mean:.2} x {} is about {total}, as it should be.", values.len()),
            }
        }
        3 => {
            let i = rng.below(values.len());
            let pct = 100.0 * values[i] as f64 / total as f64;
            let mut steps = running_sum_steps(values);
            steps.push(format!(
                "The share of {} is {} / {total} = {:.4}, i.e. {pct:.1}%.",
                labels[i],
                values[i],
                values[i] as f64 / total as f64
            ));
            Problem {
                question: format!(
                    "What percentage of the total does bar {} represent? Round to one decimal place.",
                    labels[i]
                ),
                answer: Answer::Percent((pct * 10.0).round() / 10.0, 1),
                readings,
                steps,
                check: format!(
                    "{pct:.1}% of {total} is about {:.1}, close to {}.",
                    pct * total as f64 / 100.0,
                    values[i]
                ),
            }
        }
        _ => {
            let letters = ['A', 'B', 'C', 'D'];
            let mut options: Vec<usize> = vec![imax];
            while options.len() < 4.min(values.len()) {
                let j = rng.below(values.len());
                if !options.contains(&j) {
                    options.push(j);
                }
            }
            // shuffle
            for k in (1..options.len()).rev() {
                let j = rng.below(k + 1);
                options.swap(k, j);
            }
            let correct = options.iter().position(|&o| o == imax).unwrap_or(0);
            let opts: Vec<String> =
                options.iter().enumerate().map(|(k, &o)| format!("({}) {}", letters[k], labels[o])).collect();
            Problem {
                question: format!("Which bar has the largest value? {}", opts.join(" ")),
                answer: Answer::Letter(letters[correct]),
                readings,
                steps: vec![
                    format!("Comparing the bars, {} is the largest at {}.", labels[imax], values[imax]),
                    format!("{} is option ({}).", labels[imax], letters[correct]),
                ],
                check: format!("No other bar exceeds {}.", values[imax]),
            }
        }
    }
}

fn shapes_problem(items: &[(Shape, Colour, u32)], rng: &mut Rng) -> Problem {
    let readings: Vec<String> = items
        .iter()
        .map(|(s, c, n)| format!("I count {n} {} {}{}.", c.name(), s.name(), if *n == 1 { "" } else { "s" }))
        .collect();
    let total: i64 = items.iter().map(|(_, _, n)| *n as i64).sum();
    let by_shape = |s: Shape| -> i64 { items.iter().filter(|(x, _, _)| *x == s).map(|(_, _, n)| *n as i64).sum() };
    match rng.below(3) {
        0 => {
            let shape = items[rng.below(items.len())].0;
            let parts: Vec<i64> = items.iter().filter(|(x, _, _)| *x == shape).map(|(_, _, n)| *n as i64).collect();
            let n = by_shape(shape);
            let mut steps =
                vec![format!("The {}s come in {} colour group(s): {}.", shape.name(), parts.len(), join_sum(&parts))];
            if parts.len() > 1 {
                steps.extend(running_sum_steps(&parts));
            }
            Problem {
                question: format!("How many {}s are there in total?", shape.name()),
                answer: Answer::Int(n),
                readings,
                steps,
                check: format!("Counting the {}s one by one again gives {n}.", shape.name()),
            }
        }
        1 => {
            let (c1, c2) = (items[0].1, items[items.len() - 1].1);
            let count =
                |c: Colour| -> i64 { items.iter().filter(|(_, x, _)| *x == c).map(|(_, _, n)| *n as i64).sum() };
            let (a, b) = (count(c1), if c1 == c2 { 0 } else { count(c2) });
            Problem {
                question: format!("How many {} shapes and {} shapes are there together?", c1.name(), c2.name()),
                answer: Answer::Int(a + b),
                readings,
                steps: vec![
                    format!("{} shapes: {a}.", c1.name()),
                    format!("{} shapes: {b}.", c2.name()),
                    format!("{a} + {b} = {}.", a + b),
                ],
                check: format!("{} - {b} = {a}, consistent.", a + b),
            }
        }
        _ => {
            let shape = items[rng.below(items.len())].0;
            let n = by_shape(shape);
            Problem {
                question: format!(
                    "What fraction of all the shapes are {}s? Give the fraction in lowest terms.",
                    shape.name()
                ),
                answer: frac(n, total),
                readings,
                steps: vec![
                    format!("There are {total} shapes in all and {n} of them are {}s.", shape.name()),
                    format!("The fraction is {n}/{total}, which reduces to {}.", frac(n, total).plain()),
                ],
                check: format!("{n} out of {total} is about {:.3}.", n as f64 / total as f64),
            }
        }
    }
}

fn table_problem(headers: &[String], rows: &[Vec<i64>], rng: &mut Rng) -> Problem {
    let readings: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            format!("Row {} reads {}.", i + 1, r.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", "))
        })
        .collect();
    if rng.chance(0.5) {
        let c = rng.below(headers.len());
        let col: Vec<i64> = rows.iter().map(|r| r[c]).collect();
        let total: i64 = col.iter().sum();
        Problem {
            question: format!("What is the sum of the column \"{}\" in the table?", headers[c]),
            answer: Answer::Int(total),
            readings,
            steps: {
                let mut s = vec![format!("The column {} holds {}.", headers[c], join_sum(&col))];
                if col.len() > 1 {
                    s.extend(running_sum_steps(&col));
                }
                s
            },
            check: format!("Summing bottom-up also gives {total}."),
        }
    } else {
        let r = rng.below(rows.len());
        let total: i64 = rows[r].iter().sum();
        let mean = total as f64 / rows[r].len() as f64;
        let mut steps = running_sum_steps(&rows[r]);
        steps.push(format!("Dividing by {} gives {mean:.2}.", rows[r].len()));
        Problem {
            question: format!("What is the mean of row {} of the table? Round to two decimal places.", r + 1),
            answer: Answer::Decimal(mean, 2),
            readings,
            steps,
            check: format!("{mean:.2} x {} = {:.2}, close to {total}.", rows[r].len(), mean * rows[r].len() as f64),
        }
    }
}

fn clock_problem(hour: u32, minute: u32, rng: &mut Rng) -> Problem {
    let readings = vec![
        format!("The short hand points just past {hour}, the long hand at minute {minute}."),
        format!("So the clock shows {hour}:{minute:02}."),
    ];
    if rng.chance(0.5) {
        let add = [15u32, 20, 25, 35, 40, 45, 50, 70, 95][rng.below(9)];
        let total = hour * 60 + minute + add;
        let (h, m) = (((total / 60) + 11) % 12 + 1, total % 60);
        Problem {
            question: format!("What time will the clock show {add} minutes later? Answer as h:mm."),
            answer: Answer::Time(h, m),
            readings,
            steps: vec![
                format!("{minute} + {add} = {} minutes past {hour}.", minute + add),
                format!("That is {h}:{m:02} on a 12-hour clock."),
            ],
            check: format!("From {h}:{m:02} going back {add} minutes returns {hour}:{minute:02}."),
        }
    } else {
        let target = hour % 12 + 1;
        let mins = (target * 60 + if target <= hour { 720 } else { 0 }) - (hour * 60 + minute);
        Problem {
            question: format!("How many minutes are left until {target}:00?"),
            answer: Answer::Units(mins as i64, "minutes"),
            readings,
            steps: vec![format!("From {hour}:{minute:02} to {target}:00 is {} - {minute} = {mins} minutes.", 60)],
            check: format!("{hour}:{minute:02} plus {mins} minutes is {target}:00."),
        }
    }
}

fn geometry_problem(kind: GeoKind, sides: &[u32], rng: &mut Rng) -> Problem {
    let s: Vec<i64> = sides.iter().map(|&x| x as i64).collect();
    let readings = vec![format!(
        "The side lengths written on the figure are {} cm.",
        s.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
    )];
    match kind {
        GeoKind::Rectangle if rng.chance(0.5) && s.len() >= 2 => Problem {
            question: "What is the area of the rectangle?".into(),
            answer: Answer::Units(s[0] * s[1], "cm^2"),
            readings,
            steps: vec![format!("Area = {} x {} = {}.", s[0], s[1], s[0] * s[1])],
            check: format!("{} / {} = {}, consistent.", s[0] * s[1], s[1], s[0]),
        },
        GeoKind::Rectangle => {
            let p = 2 * s.iter().take(2).sum::<i64>();
            Problem {
                question: "What is the perimeter of the rectangle?".into(),
                answer: Answer::Units(p, "cm"),
                readings,
                steps: vec![format!("Perimeter = 2 x ({} + {}) = {p}.", s[0], s.get(1).unwrap_or(&s[0]))],
                check: format!("Going round the four sides also gives {p}."),
            }
        }
        _ => {
            let p: i64 = s.iter().sum();
            let mut steps = vec![format!("The perimeter is the sum of the sides: {}.", join_sum(&s))];
            steps.extend(running_sum_steps(&s));
            Problem {
                question: "What is the perimeter of the triangle?".into(),
                answer: Answer::Units(p, "cm"),
                readings,
                steps,
                check: format!(
                    "Each side is shorter than the sum of the other two, so the figure is valid and the perimeter is {p}."
                ),
            }
        }
    }
}

/// The arithmetic question over boxed digits: (first + second) x third, with one reading line
/// and the two steps (no check: the trace is the readings and the steps).
pub fn arith_problem(numbers: &[(Colour, i64)]) -> Problem {
    if numbers.len() < 3 {
        return Problem {
            question: "How many boxes are there?".into(),
            answer: Answer::Int(numbers.len() as i64),
            readings: vec![format!("There are {} boxes.", numbers.len())],
            steps: vec![],
            check: String::new(),
        };
    }
    let ((ci, a), (cj, b), (ck, c)) = (numbers[0], numbers[1], numbers[2]);
    let listed: Vec<String> = numbers.iter().map(|(col, v)| format!("the {} box shows {v}", col.name())).collect();
    let (last, rest) = listed.split_last().expect("at least three boxes");
    let mut reading = format!("{} and {last}.", rest.join(", "));
    reading[..1].make_ascii_uppercase();
    Problem {
        question: format!(
            "What is the sum of the {} and {} numbers times the {} number?",
            ci.name(),
            cj.name(),
            ck.name()
        ),
        answer: Answer::Int((a + b) * c),
        readings: vec![reading],
        steps: vec![format!("{a} + {b} = {}.", a + b), format!("{} x {c} = {}.", a + b, (a + b) * c)],
        check: String::new(),
    }
}

/// The arithmetic task's long-CoT response: the readings and the steps (and the check, when
/// the problem has one), then about `filler_words` words of deliberation, then
/// `\boxed{answer}` after the think block.
pub fn arith_trace(p: &Problem, filler_words: usize, rng: &mut Rng) -> String {
    let mut s = String::from("<think>\n");
    for line in p.readings.iter().chain(&p.steps) {
        s.push_str(line);
        s.push('\n');
    }
    if !p.check.is_empty() {
        s.push_str(&format!("Check: {}\n", p.check));
    }
    let mut words = 0;
    while words < filler_words {
        let sent = filler_sentence(rng);
        words += sent.split_whitespace().count();
        s.push_str(&sent);
        s.push(if words < filler_words { ' ' } else { '\n' });
    }
    s.push_str(&format!("</think>\n\n\\boxed{{{}}}", p.answer.boxed()));
    s
}

/// A question over one scene.
pub fn problem_for(scene: &Scene, rng: &mut Rng) -> Problem {
    match scene {
        Scene::BarChart { title, labels, values } => bar_problem(title, labels, values, rng),
        Scene::Shapes { items } => shapes_problem(items, rng),
        Scene::Table { headers, rows } => table_problem(headers, rows, rng),
        Scene::Clock { hour, minute } => clock_problem(*hour, *minute, rng),
        Scene::Geometry { kind, sides } => geometry_problem(*kind, sides, rng),
        Scene::ArithBoxes { numbers } => arith_problem(numbers),
    }
}

const OPENERS: &[&str] = &[
    "Let me work through this carefully.",
    "I need to read the values from the image first and then compute.",
    "Okay, let me start by understanding what is being asked.",
    "First, I will look closely at the figure.",
    "Let me break this problem into steps.",
];
const VERBS: &[&str] = &["check", "verify", "confirm", "recompute", "re-derive", "cross-check", "double-check"];
const THINGS: &[&str] = &[
    "the label",
    "the axis",
    "the legend",
    "the scale",
    "the gridline",
    "the units",
    "the caption",
    "the colour",
    "the position",
    "the tick mark",
    "the border",
    "the header",
];
const HEDGES: &[&str] =
    &["Hmm,", "Actually,", "Wait,", "Thinking again,", "Alternatively,", "On reflection,", "To be safe,"];

/// A filler sentence with fresh numbers: re-verification, commentary, alternative routes.
fn filler_sentence(rng: &mut Rng) -> String {
    let a = rng.range(2, 999);
    let b = rng.range(2, 99);
    match rng.below(8) {
        0 => format!("Let me {} an intermediate value: {a} + {b} = {}.", rng.pick(VERBS), a + b),
        1 => format!(
            "As a sanity check on magnitudes, {a} x {b} = {} would be far too large here, so the sum is the right operation.",
            a * b
        ),
        2 => format!(
            "I should not confuse {} with {} when reading the value near {a}.",
            rng.pick(THINGS),
            rng.pick(THINGS)
        ),
        3 => format!(
            "{} splitting {a} as {} + {} makes the arithmetic easier to {}.",
            rng.pick(HEDGES),
            a - b.min(a - 1),
            b.min(a - 1),
            rng.pick(VERBS)
        ),
        4 => {
            format!("If I had misread a value by {b}, the result would change by {b} as well, so each reading matters.")
        }
        5 => format!("Rounding {a}.{b:02} to the nearest whole number gives {}.", if b >= 50 { a + 1 } else { a }),
        6 => format!(
            "{} the difference {a} - {b} = {} is not what is asked; I keep the original plan.",
            rng.pick(HEDGES),
            a - b
        ),
        _ => format!("Note that {} confirms the reading at about {a} units, give or take {b}.", rng.pick(THINGS)),
    }
}

/// Words of a trace drawn from a long-tailed distribution: log-normal with median 1,500 and
/// p95 about 5,000 words (sigma 0.732), clamped to [60, 16,000].
pub fn trace_words(rng: &mut Rng) -> usize {
    let w = (1500f64.ln() + 0.732 * rng.normal()).exp();
    w.clamp(60.0, 16_000.0) as usize
}

/// Build a full long-CoT response of about `target_words` words for a problem, ending in
/// `\boxed{answer}` (the given answer, which may deliberately differ from the problem's).
pub fn long_trace(p: &Problem, answer: &Answer, target_words: usize, rng: &mut Rng) -> String {
    let mut s = String::with_capacity(target_words * 7);
    s.push_str("<think>\n");
    let opener = *rng.pick(OPENERS);
    s.push_str(opener);
    s.push_str(&format!(" The question asks: {}\n\n", p.question));
    for r in &p.readings {
        s.push_str(r);
        s.push(' ');
    }
    s.push_str("\n\n");
    let backtrack = rng.chance(0.25);
    for (i, step) in p.steps.iter().enumerate() {
        if backtrack && i == 0 {
            s.push_str("At first glance I want to combine the values differently, but that would answer a different question. Let me redo this properly.\n");
        }
        s.push_str(step);
        s.push('\n');
    }
    s.push('\n');
    let mut words = s.split_whitespace().count();
    let closing = format!(
        "\n{}\nSo the answer is {}.\n</think>\n\nFrom the image: {} The final answer is \\boxed{{{}}}.",
        p.check,
        answer.plain(),
        p.steps.last().map(|x| x.as_str()).unwrap_or(""),
        answer.boxed()
    );
    let closing_words = closing.split_whitespace().count();
    let mut para = 0;
    while words + closing_words < target_words {
        let sent = filler_sentence(rng);
        words += sent.split_whitespace().count();
        s.push_str(&sent);
        para += 1;
        if para % 6 == 0 {
            s.push_str("\n\n");
        } else {
            s.push(' ');
        }
    }
    s.push_str(&closing);
    s
}

/// A short (non-CoT) response: the answer alone.
pub fn short_response(answer: &Answer) -> String {
    format!("\\boxed{{{}}}", answer.boxed())
}
