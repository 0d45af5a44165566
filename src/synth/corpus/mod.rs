//! Corpus generation: rows, planted defects with labels, the benchmark set, the arith task.
//!
//! Row `i` is a pure function of `(seed, i)`: its clean content comes from its own random
//! stream, and its defect from another. Rows that copy an earlier row (duplicates, shared
//! images) regenerate that row from its index, so rows are produced in parallel and the output
//! is byte-identical for a seed whatever the thread count.

mod arith;
pub use arith::*;

mod defects;
pub use defects::*;

use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;

use crate::error::{Context, Result};
use crate::io::{PartWriter, atomic_write, write_parquet};
use crate::rng::Rng;
use crate::schema::hf_images_column;
use crate::synth::render::{self, Scene, SceneKind};
use crate::synth::text::{self, Answer, Problem};

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
                    format!(
                        "The first chart's bars are {}.",
                        a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                    format!(
                        "The second chart's bars are {}.",
                        b.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
                    ),
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
            let p = Problem {
                question: q.clone(),
                answer: a.clone(),
                readings: vec![],
                steps: vec![],
                check: "The computation is consistent.".into(),
            };
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
            let words =
                if kind == "overlong" { rng.range(20_000, 30_000) as usize } else { text::trace_words(&mut crng) };
            let answer =
                if kind == "wrong_answer" { b.problem.answer.perturbed(&mut rng) } else { b.problem.answer.clone() };
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
            Row {
                problem: b.prompt,
                response,
                solution: b.problem.answer.plain(),
                images,
                defect: None,
                source_row: None,
            }
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
        .map(|(q, a, images)| Row {
            problem: q,
            response: a.plain(),
            solution: a.boxed(),
            images,
            defect: None,
            source_row: None,
        })
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
