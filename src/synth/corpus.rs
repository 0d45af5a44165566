//! Corpus generation: rows, planted defects with labels, the benchmark set, the arith task.
//!
//! Row `i` is a pure function of `(seed, i)`: its clean content comes from its own random
//! stream, and its defect from another. Rows that copy an earlier row (duplicates, shared
//! images) regenerate that row from its index, so rows are produced in parallel and the output
//! is byte-identical for a seed whatever the thread count.

use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;

use super::render::{self, Scene, SceneKind};
use super::rng::Rng;
use super::text::{self, Answer, Problem};
use crate::error::{Context, Error, Result};
use crate::pipeline::io::{PartWriter, atomic_write, write_parquet};
use crate::schema::hf_images_column;

/// Kinds of planted defects, as written in `labels.parquet`.
pub const DEFECT_KINDS: &[&str] = &[
    "exact_duplicate",
    "near_duplicate",
    "truncated",
    "wrong_answer",
    "loop",
    "overlong",
    "corrupt_image",
    "shared_image",
    "invalid_utf8",
    "contamination",
    "language_drift",
];

/// Rate of each defect kind (fraction of rows), indexed like [`DEFECT_KINDS`].
#[derive(Debug, Clone, PartialEq)]
pub struct DefectRates(pub [f64; 11]);

impl DefectRates {
    /// No defects: a clean corpus.
    pub fn none() -> Self {
        Self([0.0; 11])
    }

    /// The default mix: about 25% of rows carry one defect.
    pub fn default_rates() -> Self {
        Self([0.04, 0.03, 0.03, 0.04, 0.03, 0.01, 0.01, 0.03, 0.01, 0.02, 0.01])
    }

    /// `default`, `none`, or `kind=rate,kind=rate` (kinds not named are 0).
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "default" => return Ok(Self::default_rates()),
            "none" => return Ok(Self::none()),
            _ => {}
        }
        let mut r = Self::none();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| format!("`{part}`: expected kind=rate"))?;
            let i = DEFECT_KINDS
                .iter()
                .position(|d| *d == k.trim())
                .ok_or_else(|| format!("unknown defect kind `{k}`; known: {}", DEFECT_KINDS.join(", ")))?;
            let v: f64 = v.trim().parse().map_err(|_| format!("`{part}`: rate must be a number"))?;
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("`{part}`: rate must be in [0, 1]"));
            }
            r.0[i] = v;
        }
        if r.0.iter().sum::<f64>() > 1.0 {
            return Err("defect rates add up to more than 1".into());
        }
        Ok(r)
    }

    pub fn rate(&self, kind: &str) -> f64 {
        DEFECT_KINDS.iter().position(|d| *d == kind).map(|i| self.0[i]).unwrap_or(0.0)
    }
}

/// Output layout of `synth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SynthLayout {
    /// HF Parquet: images list<struct{bytes, path}>, problem, answer, solution.
    Columns,
    /// ShareGPT JSONL with image files under DIR/images.
    Sharegpt,
    /// Like `columns`, prompts and reference answers only (no images, no traces): fast, for
    /// text near-duplicate benchmarks at millions of rows. Plants exact and near duplicates only.
    Prompts,
}

/// Options of `cotforge synth`.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub rows: usize,
    pub seed: u64,
    pub out: PathBuf,
    pub layout: SynthLayout,
    pub defects: DefectRates,
    /// Rows per generation batch (memory bound).
    pub batch_rows: usize,
    /// Benchmark items written to bench/ (default: rows / 10, between 20 and 500).
    pub bench_items: Option<usize>,
}

/// One image of a row.
#[derive(Debug, Clone, PartialEq)]
pub struct Img {
    pub bytes: Vec<u8>,
    pub name: String,
}

/// A generated row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub problem: String,
    pub response: String,
    pub solution: String,
    pub images: Vec<Img>,
    pub defect: Option<&'static str>,
    /// For copies: the row (or benchmark item) the content came from.
    pub source_row: Option<i64>,
}

const STREAM_CONTENT: u64 = 1;
const STREAM_DEFECT: u64 = 2;
const STREAM_BENCH: u64 = 3;
const STREAM_EXTRA: u64 = 4;

/// The defect kind of row `i` (at most one per row).
pub fn defect_of(seed: u64, i: u64, rates: &DefectRates) -> Option<&'static str> {
    let mut rng = Rng::for_item(seed, STREAM_DEFECT, i);
    let u = rng.f64();
    let mut acc = 0.0;
    for (k, r) in DEFECT_KINDS.iter().zip(rates.0) {
        acc += r;
        if u < acc {
            return Some(k);
        }
    }
    None
}

fn image_size(rng: &mut Rng) -> (u32, u32) {
    let (lo, hi) = (64f64.ln(), 1280f64.ln());
    let w = (lo + (hi - lo) * rng.f64()).exp().round() as u32;
    let aspect = 0.55 + 0.45 * rng.f64();
    let h = ((w as f64) * aspect).round() as u32;
    (w.clamp(64, 1280), h.clamp(64, 960))
}

fn encode(img: &image::RgbImage, rng: &mut Rng) -> (Vec<u8>, &'static str) {
    // A few mid-sized images as JPEG, as real sets have; JPEG encoding costs ~15x PNG here.
    if (400..=800).contains(&img.width()) && rng.chance(0.03) {
        (render::encode_jpeg(img, 85), "jpg")
    } else {
        (render::encode_png(img), "png")
    }
}

fn make_image(scene: &Scene, rng: &mut Rng) -> Img {
    let (w, h) = image_size(rng);
    let pix = render::render(scene, w, h, rng);
    let (bytes, ext) = encode(&pix, rng);
    let name = format!("{}.{ext}", &blake3::hash(&bytes).to_hex()[..16]);
    Img { bytes, name }
}

/// Clean content of a row: scenes, images, a problem over them.
struct Base {
    scenes: Vec<Scene>,
    images: Vec<Img>,
    problem: Problem,
    prompt: String,
}

fn prompt_for(n_images: usize, question: &str) -> String {
    format!("{}\n{question}", "<image>".repeat(n_images))
}

fn problem_over(scenes: &[Scene], rng: &mut Rng) -> Problem {
    if let [Scene::BarChart { values: a, .. }, Scene::BarChart { values: b, .. }] = scenes {
        if rng.chance(0.5) {
            let (ta, tb): (i64, i64) = (a.iter().sum(), b.iter().sum());
            return Problem {
                question: "What is the combined total of the two charts?".into(),
                answer: Answer::Int(ta + tb),
                readings: vec![
                    format!("The first chart's bars are {}.", a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")),
                    format!("The second chart's bars are {}.", b.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")),
                ],
                steps: vec![
                    format!("The first chart totals {ta}."),
                    format!("The second chart totals {tb}."),
                    format!("{ta} + {tb} = {}.", ta + tb),
                ],
                check: format!("{} - {tb} = {ta}.", ta + tb),
            };
        }
    }
    let mut p = text::problem_for(&scenes[0], rng);
    if scenes.len() > 1 {
        p.question = format!("Look at the first image. {}", p.question);
    }
    p
}

const CONTENT_KINDS: [SceneKind; 5] =
    [SceneKind::BarChart, SceneKind::Shapes, SceneKind::Table, SceneKind::Clock, SceneKind::Geometry];

/// The scenes of row `i` (one, or two in 20% of rows), and the generator to go on with.
fn scenes_of(seed: u64, i: u64) -> (Vec<Scene>, Rng) {
    let mut rng = Rng::for_item(seed, STREAM_CONTENT, i);
    let n = if rng.chance(0.2) { 2 } else { 1 };
    let kind = *rng.pick(&CONTENT_KINDS);
    let mut scenes = Vec::with_capacity(n);
    for k in 0..n {
        let kind_k = if k == 0 || rng.chance(0.6) { kind } else { *rng.pick(&CONTENT_KINDS) };
        scenes.push(render::random_scene(&mut rng, kind_k));
    }
    (scenes, rng)
}

fn base(seed: u64, i: u64) -> (Base, Rng) {
    let (scenes, mut rng) = scenes_of(seed, i);
    let n = scenes.len();
    let images = scenes.iter().map(|s| make_image(s, &mut rng)).collect();
    let problem = problem_over(&scenes, &mut rng);
    let prompt = prompt_for(n, &problem.question);
    (Base { scenes, images, problem, prompt }, rng)
}

/// The prompt and answer of row `i` in the `prompts` layout (scenes drawn, never rendered). With
/// no figure to look at, the prompt states what the figure shows, so prompts are as diverse as
/// the scenes.
fn base_prompt(seed: u64, i: u64) -> (String, Answer) {
    let (scenes, mut rng) = scenes_of(seed, i);
    let problem = problem_over(&scenes, &mut rng);
    (format!("{} {}", problem.readings.join(" "), problem.question), problem.answer)
}

/// Row `i` of the `prompts` layout: exact and near duplicates planted, other kinds clean.
pub fn prompt_row(seed: u64, i: u64, rates: &DefectRates) -> Row {
    let defect = defect_of(seed, i, rates).filter(|k| matches!(*k, "exact_duplicate" | "near_duplicate"));
    let mut rng = Rng::for_item(seed, STREAM_EXTRA, i);
    let source = defect.and_then(|_| clean_source(seed, i, rates, &mut rng));
    let (prompt, answer) = base_prompt(seed, source.unwrap_or(i));
    let problem = match (defect, source) {
        (Some("near_duplicate"), Some(_)) => near_edit(&prompt, &mut rng),
        _ => prompt,
    };
    Row {
        problem,
        response: String::new(),
        solution: answer.plain(),
        images: Vec::new(),
        defect: source.and(defect),
        source_row: source.map(|j| j as i64),
    }
}

fn clean_row(seed: u64, i: u64) -> Row {
    let (b, mut rng) = base(seed, i);
    let words = text::trace_words(&mut rng);
    Row {
        response: text::long_trace(&b.problem, &b.problem.answer, words, &mut rng),
        solution: b.problem.answer.plain(),
        problem: b.prompt,
        images: b.images,
        defect: None,
        source_row: None,
    }
}

/// An earlier clean row to copy from, or None.
fn clean_source(seed: u64, i: u64, rates: &DefectRates, rng: &mut Rng) -> Option<u64> {
    if i == 0 {
        return None;
    }
    (0..16).map(|_| rng.below(i as usize) as u64).find(|&j| defect_of(seed, j, rates).is_none())
}

const EDITS: &[(&str, &str)] = &[
    ("What is", "What's"),
    ("How many", "How many of the"),
    ("the total", "the overall total"),
    ("Give", "Please give"),
    ("Round", "Please round"),
    ("in total", "altogether"),
    ("the chart", "this chart"),
    ("the table", "this table"),
    ("the clock", "this clock"),
    ("shapes", "figures"),
];

/// Jaccard similarity of two prompts as `dedup.minhash` measures it by default (character
/// 5-grams of the normalised text).
pub fn prompt_jaccard(a: &str, b: &str) -> f64 {
    use crate::text::minhash::{ShingleKind, exact_jaccard, normalize_for_dedup, shingle_hashes};
    let (mut x, mut y) = (Vec::new(), Vec::new());
    shingle_hashes(&normalize_for_dedup(a), ShingleKind::Chars, 5, &mut x);
    shingle_hashes(&normalize_for_dedup(b), ShingleKind::Chars, 5, &mut y);
    exact_jaccard(&mut x, &mut y)
}

/// Similarity a planted near-duplicate prompt keeps with its source, comfortably above the
/// default threshold of 0.8 so that MinHash's estimation error does not decide.
pub const NEAR_DUP_MIN_JACCARD: f64 = 0.86;

/// A near-duplicate of a prompt, as merged sources reword it: one or two small word edits when
/// the prompt is long enough to keep [`NEAR_DUP_MIN_JACCARD`], otherwise changes of
/// punctuation (which `dedup.exact` does not see through). Always differs.
fn near_edit(prompt: &str, rng: &mut Rng) -> String {
    let mut p = prompt.to_string();
    let want = rng.range(1, 2);
    let mut done = 0;
    for _ in 0..12 {
        let (a, b) = *rng.pick(EDITS);
        if done < want && p.contains(a) {
            let q = p.replacen(a, b, 1);
            if prompt_jaccard(prompt, &q) >= NEAR_DUP_MIN_JACCARD {
                p = q;
                done += 1;
            }
        }
    }
    if done == 0 {
        // the question follows the `<image>` placeholders, which stay as they are
        let (head, q) = match p.rsplit_once('\n') {
            Some((h, q)) => (format!("{h}\n"), q.to_string()),
            None => (String::new(), p.clone()),
        };
        p = match rng.below(2) {
            0 => format!("{head}{}", q.replacen('?', " ?", 1).replacen(". ", ", ", 1)),
            _ => format!("{head}{}", q.replacen('?', "", 1).replacen('.', ";", 1)),
        };
        if p == prompt {
            p.push_str(" .");
        }
    }
    p
}

/// A 50-word passage of the trace repeated 3-5 times in a row (a degenerate loop).
fn plant_loop(response: &str, rng: &mut Rng) -> String {
    let end = response.find("</think>").unwrap_or(response.len());
    let words: Vec<&str> = response[..end].split_whitespace().collect();
    let start = if words.len() > 60 { rng.below(words.len() - 55) } else { 0 };
    let passage = words[start..(start + 50).min(words.len())].join(" ");
    let times = rng.range(3, 5) as usize;
    let mut out = response[..end].to_string();
    for _ in 0..times {
        out.push_str("\n");
        out.push_str(&passage);
    }
    out.push('\n');
    out.push_str(&response[end..]);
    out
}

/// Phrases of the planted language drift (Chinese, as Qwen-family teachers drift into).
const DRIFT_PHRASES: &[&str] = &[
    "我们需要", "计算", "这个图形", "图中的", "长度", "面积", "所以", "因此", "首先", "然后", "检查一下", "结果",
    "等于", "看起来", "是正确的", "让我们", "再想一想", "已知条件", "可以得到", "另外",
];

/// Switch the reasoning into Chinese for 3 to 6 sentences at a sentence boundary (the answer
/// after `</think>` stays as it was).
fn plant_drift(response: &str, rng: &mut Rng) -> String {
    let end = response.find("</think>").unwrap_or(response.len());
    let bounds: Vec<usize> = response[..end].match_indices(". ").map(|(i, _)| i + 2).collect();
    let at = if bounds.is_empty() { end } else { bounds[rng.below(bounds.len())] };
    let mut drift = String::new();
    for _ in 0..rng.range(3, 6) {
        for k in 0..rng.range(4, 8) {
            if k > 0 && rng.chance(0.3) {
                drift.push('，');
            }
            drift.push_str(DRIFT_PHRASES[rng.below(DRIFT_PHRASES.len())]);
        }
        drift.push('。');
    }
    drift.push(' ');
    format!("{}{drift}{}", &response[..at], &response[at..])
}

/// Cut a trace in its middle: no closing tag, no final answer.
fn truncate_trace(response: &str, rng: &mut Rng) -> String {
    let end = response.find("</think>").unwrap_or(response.len());
    let cut = ((end as f64) * (0.3 + 0.6 * rng.f64())) as usize;
    let mut cut = cut.min(end);
    while !response.is_char_boundary(cut) {
        cut -= 1;
    }
    response[..cut].trim_end().to_string()
}

/// Damage image bytes so that they no longer decode (checked: lenient decoders accept some
/// truncated files, so harsher damage is applied until decoding fails).
fn corrupt(bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = bytes.to_vec();
    if rng.chance(0.5) {
        let keep = (b.len() as f64 * (0.3 + 0.4 * rng.f64())) as usize;
        b.truncate(keep.max(24));
    } else {
        let mid = b.len() / 2;
        for k in mid..(mid + 64).min(b.len()) {
            b[k] = b[k].wrapping_mul(31).wrapping_add(7);
        }
        b.truncate(b.len() * 3 / 4);
    }
    if crate::stages::validate::decode_check(&b).is_ok() {
        b.truncate(b.len().min(40)); // the header alone
    }
    b
}

/// One benchmark item: an image, a question and its answer.
pub fn bench_item(seed: u64, k: u64) -> (String, Answer, Vec<Img>) {
    let mut rng = Rng::for_item(seed, STREAM_BENCH, k);
    let kind = *rng.pick(&CONTENT_KINDS);
    let scene = render::random_scene(&mut rng, kind);
    let img = make_image(&scene, &mut rng);
    let p = problem_over(std::slice::from_ref(&scene), &mut rng);
    (prompt_for(1, &p.question), p.answer, vec![img])
}

/// Number of benchmark items written with a corpus of `rows` rows.
pub fn bench_size(rows: usize) -> usize {
    (rows / 10).clamp(20, 500)
}

/// Row `i` of the corpus, defects applied.
pub fn row(seed: u64, i: u64, rates: &DefectRates, n_bench: usize) -> Row {
    let defect = defect_of(seed, i, rates);
    let mut rng = Rng::for_item(seed, STREAM_EXTRA, i);
    let Some(kind) = defect else { return clean_row(seed, i) };
    let mut r = match kind {
        "exact_duplicate" | "near_duplicate" | "shared_image" => {
            let Some(j) = clean_source(seed, i, rates, &mut rng) else { return clean_row(seed, i) };
            let src = clean_row(seed, j);
            match kind {
                "exact_duplicate" => Row { source_row: Some(j as i64), ..src },
                "near_duplicate" => {
                    let (b, _) = base(seed, j);
                    let words = text::trace_words(&mut rng);
                    Row {
                        problem: near_edit(&src.problem, &mut rng),
                        response: text::long_trace(&b.problem, &b.problem.answer, words, &mut rng),
                        source_row: Some(j as i64),
                        ..src
                    }
                }
                _ => {
                    let (b, _) = base(seed, j);
                    let mut p = problem_over(&b.scenes, &mut rng);
                    let mut tries = 0;
                    while p.question == b.problem.question && tries < 8 {
                        p = problem_over(&b.scenes, &mut rng);
                        tries += 1;
                    }
                    if p.question == b.problem.question {
                        return clean_row(seed, i);
                    }
                    let words = text::trace_words(&mut rng);
                    Row {
                        problem: prompt_for(b.scenes.len(), &p.question),
                        response: text::long_trace(&p, &p.answer, words, &mut rng),
                        solution: p.answer.plain(),
                        source_row: Some(j as i64),
                        ..src
                    }
                }
            }
        }
        "contamination" => {
            let k = rng.below(n_bench.max(1)) as u64;
            let (q, a, imgs) = bench_item(seed, k);
            let p = Problem { question: q.clone(), answer: a.clone(), readings: vec![], steps: vec![], check: "The computation is consistent.".into() };
            let words = text::trace_words(&mut rng);
            Row {
                problem: q,
                response: text::long_trace(&p, &a, words, &mut rng),
                solution: a.plain(),
                images: imgs,
                defect: None,
                source_row: Some(k as i64),
            }
        }
        _ => {
            let (b, mut crng) = base(seed, i);
            let words = if kind == "overlong" { rng.range(20_000, 30_000) as usize } else { text::trace_words(&mut crng) };
            let answer = if kind == "wrong_answer" { b.problem.answer.perturbed(&mut rng) } else { b.problem.answer.clone() };
            let mut response = text::long_trace(&b.problem, &answer, words, &mut crng);
            let mut images = b.images;
            match kind {
                "truncated" => response = truncate_trace(&response, &mut rng),
                "loop" => response = plant_loop(&response, &mut rng),
                "language_drift" => response = plant_drift(&response, &mut rng),
                "corrupt_image" => {
                    let k = rng.below(images.len());
                    images[k].bytes = corrupt(&images[k].bytes, &mut rng);
                }
                _ => {}
            }
            Row { problem: b.prompt, response, solution: b.problem.answer.plain(), images, defect: None, source_row: None }
        }
    };
    r.defect = Some(kind);
    r
}

/// What `synth` wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    pub rows: usize,
    pub data_files: Vec<PathBuf>,
    pub labels: PathBuf,
    pub bench: PathBuf,
    pub defect_counts: Vec<(String, usize)>,
}

fn hf_frame(rows: &[Row], text_cols: [&str; 3]) -> Result<DataFrame> {
    let imgs: Vec<Vec<(Option<Vec<u8>>, Option<String>)>> =
        rows.iter().map(|r| r.images.iter().map(|i| (Some(i.bytes.clone()), Some(i.name.clone()))).collect()).collect();
    DataFrame::new_infer_height(vec![
        hf_images_column("images", &imgs)?,
        Series::new(text_cols[0].into(), rows.iter().map(|r| r.problem.as_str()).collect::<Vec<_>>()).into(),
        Series::new(text_cols[1].into(), rows.iter().map(|r| r.response.as_str()).collect::<Vec<_>>()).into(),
        Series::new(text_cols[2].into(), rows.iter().map(|r| r.solution.as_str()).collect::<Vec<_>>()).into(),
    ])
    .ctx(|| "building synth batch")
}

fn sharegpt_line(r: &Row, bad_utf8: bool) -> Vec<u8> {
    let images: Vec<String> = r.images.iter().map(|i| format!("images/{}", i.name)).collect();
    let v = serde_json::json!({
        "conversations": [{"from": "human", "value": r.problem}, {"from": "gpt", "value": r.response}],
        "images": images,
        "answer": r.solution,
    });
    let mut line = serde_json::to_vec(&v).expect("json");
    if bad_utf8 {
        // Replace the first byte of the prompt text with an invalid UTF-8 byte.
        let key = b"\"value\":\"";
        if let Some(p) = line.windows(key.len()).position(|w| w == key) {
            line[p + key.len()] = 0xFF;
        }
    }
    line.push(b'\n');
    line
}

/// Write `DIR/bench/benchmark.parquet` (question, answer, images).
fn write_bench(seed: u64, n: usize, out: &Path) -> Result<PathBuf> {
    let items: Vec<_> = (0..n as u64).into_par_iter().map(|k| bench_item(seed, k)).collect();
    let rows: Vec<Row> = items
        .into_iter()
        .map(|(q, a, images)| Row { problem: q, response: a.plain(), solution: a.boxed(), images, defect: None, source_row: None })
        .collect();
    let df = hf_frame(&rows, ["question", "answer", "answer_latex"])?;
    let dest = out.join("bench").join("benchmark.parquet");
    write_parquet(&dest, &df)?;
    Ok(dest)
}

/// Generate a corpus into `opts.out`.
pub fn synth(opts: &SynthOptions, progress: &indicatif::ProgressBar) -> Result<SynthSummary> {
    let out = &opts.out;
    std::fs::create_dir_all(out).ctx(|| format!("creating {}", out.display()))?;
    let n_bench = opts.bench_items.unwrap_or_else(|| bench_size(opts.rows));
    let bench = write_bench(opts.seed, n_bench, out)?;
    let mut label_rows: Vec<(u64, &'static str, Option<i64>)> = Vec::new();
    let mut data_files = Vec::new();
    let mut counts = vec![0usize; DEFECT_KINDS.len()];
    let batch = opts.batch_rows.max(1);
    let mut hf = match opts.layout {
        SynthLayout::Columns | SynthLayout::Prompts => Some(PartWriter::new(&out.join("data"), "train", usize::MAX)?),
        SynthLayout::Sharegpt => None,
    };
    let mut jsonl = match opts.layout {
        SynthLayout::Sharegpt => {
            std::fs::create_dir_all(out.join("images")).ctx(|| "creating images dir")?;
            let p = out.join("data.jsonl");
            let tmp = out.join(".data.jsonl.tmp");
            let f = std::fs::File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
            Some((std::io::BufWriter::new(f), tmp, p))
        }
        SynthLayout::Columns | SynthLayout::Prompts => None,
    };
    let generate = |start: usize, end: usize| -> Vec<Row> {
        let range = start as u64..end as u64;
        match opts.layout {
            SynthLayout::Prompts => range.into_par_iter().map(|i| prompt_row(opts.seed, i, &opts.defects)).collect(),
            _ => range.into_par_iter().map(|i| row(opts.seed, i, &opts.defects, n_bench)).collect(),
        }
    };
    let mut write = |start: usize, rows: &[Row]| -> Result<()> {
        for (k, r) in rows.iter().enumerate() {
            let mut kind = r.defect;
            // invalid UTF-8 cannot be stored in a Parquet string column: such rows stay clean there
            if kind == Some("invalid_utf8") && opts.layout != SynthLayout::Sharegpt {
                kind = None;
            }
            if let Some(d) = kind {
                counts[DEFECT_KINDS.iter().position(|x| *x == d).expect("kind")] += 1;
                label_rows.push(((start + k) as u64, d, r.source_row));
            }
        }
        match (&mut hf, &mut jsonl) {
            (Some(w), _) => w.write(&hf_frame(rows, ["problem", "answer", "solution"])?)?,
            (_, Some((f, _, _))) => {
                for r in rows {
                    for img in &r.images {
                        let p = out.join("images").join(&img.name);
                        if !p.exists() {
                            atomic_write(&p, &img.bytes, 0)?;
                        }
                    }
                    f.write_all(&sharegpt_line(r, r.defect == Some("invalid_utf8"))).ctx(|| "writing data.jsonl")?;
                }
            }
            _ => unreachable!("one writer is open"),
        }
        progress.inc(rows.len() as u64);
        Ok(())
    };
    // Write batch k while batch k+1 is generated.
    let mut start = 0usize;
    let mut rows = generate(0, batch.min(opts.rows));
    while !rows.is_empty() {
        let end = start + rows.len();
        let (written, next) = rayon::join(|| write(start, &rows), || generate(end, (end + batch).min(opts.rows)));
        written?;
        rows = next;
        start = end;
    }
    if let Some(w) = hf {
        data_files = w.finish(&hf_frame(&[], ["problem", "answer", "solution"])?)?;
    }
    if let Some((mut f, tmp, p)) = jsonl {
        f.flush().ctx(|| "writing data.jsonl")?;
        drop(f);
        std::fs::rename(&tmp, &p).ctx(|| format!("renaming {}", tmp.display()))?;
        data_files.push(p);
    }
    let labels = out.join("labels.parquet");
    let df = DataFrame::new_infer_height(vec![
        Series::new("row".into(), label_rows.iter().map(|r| r.0).collect::<Vec<u64>>()).into(),
        {
            let ca: ListChunked = label_rows.iter().map(|r| Some(Series::new("".into(), [r.1]))).collect();
            let s = ca.with_name("defects".into()).into_series();
            s.cast(&DataType::List(Box::new(DataType::String))).ctx(|| "labels")?.into()
        },
        Series::new("source_row".into(), label_rows.iter().map(|r| r.2).collect::<Vec<Option<i64>>>()).into(),
    ])
    .ctx(|| "building labels")?;
    write_parquet(&labels, &df)?;
    Ok(SynthSummary {
        rows: opts.rows,
        data_files,
        labels,
        bench,
        defect_counts: DEFECT_KINDS.iter().zip(counts).map(|(k, n)| (k.to_string(), n)).collect(),
    })
}

/// Whether an arithmetic scene's question (its red, blue and green digits) belongs to the
/// held-out test split: a fixed share (about a sixth) of the triples, chosen by hash.
pub fn arith_held_out(numbers: &[(render::Colour, i64)]) -> bool {
    let key: Vec<u8> = numbers.iter().take(3).map(|&(_, v)| v as u8).collect();
    xxhash_rust::xxh3::xxh3_64(&key) % 6 == 0
}

/// `--task arith`: a clean, learnable train/test task. Each row's image holds four digits
/// 1-5 in coloured boxes (112 x 28 pixels: one merged vision token per box); the question asks
/// for (sum of the first two boxes) x (the third box), the fourth is read and left out. Each row has a short-answer and a
/// long-CoT version of the solution (the readings and the two steps, then the boxed answer).
/// The splits hold disjoint (red, blue, green) triples ([`arith_held_out`]): a test answer
/// needs the reading and the arithmetic, not recall of a question seen in training.
pub fn arith_task(seed: u64, train: usize, test: usize, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (split, n, stream) in [("train", train, 10u64), ("test", test, 11u64)] {
        let rows: Vec<(Row, String)> = (0..n as u64)
            .into_par_iter()
            .map(|i| {
                let mut rng = Rng::for_item(seed, stream, i);
                let scene = loop {
                    let scene = render::random_scene(&mut rng, SceneKind::ArithBoxes);
                    if let Scene::ArithBoxes { numbers } = &scene {
                        if arith_held_out(numbers) == (split == "test") {
                            break scene;
                        }
                    }
                };
                // one 28 x 28 cell per box: each box is one merged vision token
                let pix = render::render(&scene, 28 * render::ARITH_COLOURS.len() as u32, 28, &mut rng);
                let bytes = render::encode_png(&pix);
                let name = format!("{}.png", &blake3::hash(&bytes).to_hex()[..16]);
                let p = text::problem_for(&scene, &mut rng);
                let long = text::arith_trace(&p, 0, &mut rng);
                // the image last, right before the answer: the readings sit at a fixed, short
                // distance from its cells
                let row = Row {
                    problem: format!("{}\n<image>", p.question),
                    response: long,
                    solution: p.answer.plain(),
                    images: vec![Img { bytes, name }],
                    defect: None,
                    source_row: None,
                };
                (row, text::short_response(&p.answer))
            })
            .collect();
        let (rows, shorts): (Vec<Row>, Vec<String>) = rows.into_iter().unzip();
        let mut df = hf_frame(&rows, ["problem", "answer", "solution"])?;
        df.with_column(Series::new("short_answer".into(), shorts).into_column())
            .map_err(|e| Error::Run(format!("arith task: {e}")))?;
        let dest = out.join(format!("{split}.parquet"));
        write_parquet(&dest, &df)?;
        written.push(dest);
    }
    Ok(written)
}
