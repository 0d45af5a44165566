//! Curation commands: `run` (one process or a task of a split run), `plan`, `check`,
//! `report`, `export`, `inspect`, `synth` and `verify`.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::pipeline::{self, RunOptions, RunStats};
use crate::spec;
use crate::synth::corpus::{self, DefectRates, SynthLayout, SynthOptions};

/// Run a pipeline spec: ingest its inputs, apply its stages, write the run directory
/// (curated/, ledger/, images/, stats.json, stats/, and report.html unless --no-report).
#[derive(clap::Args)]
pub struct RunArgs {
    /// Pipeline spec (YAML), e.g. pipelines/demo.yaml.
    pub spec: PathBuf,
    /// Run directory (default: the spec's output.dir).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep the completed stages of an interrupted run of the same spec and continue.
    #[arg(long)]
    pub resume: bool,
    /// Worker threads (default: all cores). Outputs do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// Do not write report.html at the end (`cotforge report` writes it later).
    #[arg(long)]
    pub no_report: bool,
    /// Split run: this task's rank (default: SLURM_ARRAY_TASK_ID, else JOB_COMPLETION_INDEX).
    #[arg(long)]
    pub rank: Option<usize>,
    /// Split run: the number of tasks (default: SLURM_ARRAY_TASK_COUNT). Input files are
    /// assigned to tasks in order; see `cotforge plan` for the steps.
    #[arg(long)]
    pub world_size: Option<usize>,
    /// Split run: run only this step (ingest, NN-stage.map, NN-stage.reduce, NN-stage,
    /// finalize) for this task; without it the task runs every step, waiting for the
    /// other tasks where a step needs them.
    #[arg(long)]
    pub step: Option<String>,
}

pub fn run(a: RunArgs) -> Result<()> {
    let RunArgs { spec: path, out, resume, threads, quiet, no_report, rank, world_size, step } = a;
    let spec = spec::load(&path)?;
    let opts = RunOptions { out, resume, threads, progress: !quiet };
    let dir = pipeline::run_dir(&spec, &opts);
    let started = std::time::Instant::now();
    let stats = match pipeline::split::Task::resolve(rank, world_size)? {
        None if step.is_some() => {
            return Err(Error::Spec(
                "--step is a step of a split run: give --world-size (or run in a Slurm array)".into(),
            ));
        }
        None => pipeline::run(&spec, &opts)?,
        Some(task) => match pipeline::run_task(&spec, &opts, task, step.as_deref())? {
            Some(stats) => stats,
            None => {
                let what = step.as_deref().unwrap_or("its steps");
                println!("task {} of {}: {what} done -> {}", task.rank, task.world, dir.display());
                return Ok(());
            }
        },
    };
    print_stats(&stats, &dir, started.elapsed().as_secs_f64());
    if !no_report {
        let page = crate::report::write(&dir, &crate::report::ReportOptions::default())?;
        println!("report: {}", page.display());
    }
    Ok(())
}

/// The run's summary on stdout: rows per stage with drops by reason, totals, wall times and
/// throughput.
fn print_stats(stats: &RunStats, dir: &std::path::Path, secs: f64) {
    println!("{:<4} {:<16} {:>9} {:>9}  drops", "#", "stage", "rows_in", "rows_out");
    for s in &stats.stages {
        let drops: Vec<String> = s.dropped.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{:<4} {:<16} {:>9} {:>9}  {}", s.index, s.stage, s.rows_in, s.rows_out, drops.join(" "));
    }
    println!(
        "{} rows in, {} kept, {} in the ledger -> {}",
        stats.rows_in,
        stats.rows_out,
        stats.ledger_rows,
        dir.display()
    );
    for (what, secs) in &stats.wall_seconds {
        println!("  {secs:>8.2} s  {what}");
    }
    let rss = crate::progress::peak_rss_bytes().map(|b| format!("{:.0} MiB", b as f64 / 1048576.0));
    println!(
        "{secs:.2} s, {:.0} rows/s, peak RSS {}",
        stats.rows_in as f64 / secs.max(1e-9),
        rss.unwrap_or_else(|| "unknown".into())
    );
}

/// Print the scheduler jobs of a split run, one per step, chained so each starts when the
/// previous one succeeded: Slurm sbatch scripts (arrays, --dependency=afterok) or
/// Kubernetes Indexed Jobs (with the kubectl commands that chain them).
#[derive(clap::Args)]
pub struct PlanArgs {
    /// Pipeline spec (YAML).
    pub spec: PathBuf,
    /// Number of tasks of each array step.
    #[arg(long)]
    pub world_size: usize,
    /// Slurm sbatch scripts.
    #[arg(long, conflicts_with = "k8s", required_unless_present = "k8s")]
    pub slurm: bool,
    /// Kubernetes Indexed Job manifests.
    #[arg(long)]
    k8s: bool,
    /// Run directory on the shared storage (default: the spec's output.dir).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The cotforge command as the jobs call it.
    #[arg(long, default_value = "cotforge")]
    pub bin: String,
    /// Kubernetes: container image with cotforge.
    #[arg(long, default_value = "cotforge:latest")]
    pub image: String,
    /// Kubernetes: PersistentVolumeClaim holding the inputs and the run directory.
    #[arg(long, default_value = "cotforge-data")]
    pub pvc: String,
    /// Kubernetes: where the claim is mounted, the jobs' working directory (relative paths
    /// of the spec resolve against it).
    #[arg(long, default_value = "/data")]
    pub mount: String,
    /// Write the scripts/manifests as files here instead of printing them.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

pub fn plan(a: PlanArgs) -> Result<()> {
    let PlanArgs { spec: path, world_size, slurm: _, k8s, out, bin, image, pvc, mount, write } = a;
    let spec = spec::load(&path)?;
    let dir = out.unwrap_or_else(|| spec.out_dir.clone());
    let workdir = std::env::current_dir().map_err(|e| Error::Run(format!("reading the working directory: {e}")))?;
    let opts = pipeline::plan::PlanOptions {
        world: world_size,
        run_dir: dir,
        spec_path: path.clone(),
        bin,
        image,
        pvc,
        mount,
        workdir,
    };
    let files = if k8s { pipeline::plan::k8s(&spec, &opts)? } else { pipeline::plan::slurm(&spec, &opts)? };
    match write {
        Some(d) => {
            for (name, text) in &files {
                crate::io::atomic_write(&d.join(name), text.as_bytes(), 0)?;
            }
            println!(
                "{} files in {}; submit with {}",
                files.len(),
                d.display(),
                d.join(&files.last().expect("files").0).display()
            );
        }
        None => {
            for (name, text) in &files {
                println!("# ===== {name} =====\n{text}");
            }
        }
    }
    Ok(())
}

/// Check a spec without running it.
#[derive(clap::Args)]
pub struct CheckArgs {
    /// Pipeline spec (YAML).
    pub spec: PathBuf,
}

pub fn check(a: CheckArgs) -> Result<()> {
    let CheckArgs { spec: path } = a;
    let s = spec::load(&path)?;
    let files: usize = s.inputs.iter().map(|i| i.files.len()).sum();
    for i in &s.inputs {
        crate::ingest::preflight(i)?;
    }
    println!("{}: ok ({} inputs, {files} files, {} stages)", path.display(), s.inputs.len(), s.stages.len());
    Ok(())
}

/// Write RUN_DIR/report.html: a self-contained page (no script, nothing fetched) with the
/// rows after each stage, drop reasons, histograms of measured values, length buckets,
/// pack fill, dropped samples per reason with their text and thumbnails, and the spec.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// Run directory of a finished `cotforge run`.
    pub run_dir: PathBuf,
    /// Dropped rows shown per stage and reason.
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Characters shown of each text field of a dropped row.
    #[arg(long, default_value_t = 2000)]
    pub max_chars: usize,
    /// Write the page here instead of RUN_DIR/report.html.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn report(a: ReportArgs) -> Result<()> {
    let ReportArgs { run_dir, samples, max_chars, out } = a;
    let opts =
        crate::report::ReportOptions { samples_per_reason: samples, max_text_chars: max_chars, ..Default::default() };
    let page = match out {
        None => crate::report::write(&run_dir, &opts)?,
        Some(dest) => {
            let html = crate::report::render(&run_dir, &opts)?;
            crate::io::atomic_write(&dest, html.as_bytes(), 0)?;
            dest
        }
    };
    println!("{}", page.display());
    Ok(())
}

/// Export a run's curated traces in a public layout: `columns` (one column per field,
/// images as HF {bytes, path} in Parquet) or `sharegpt` (conversations, image files under
/// OUT/images/), as Parquet or JSONL. OUT/export.json records what was exported.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// Run directory of a finished `cotforge run`.
    pub run_dir: PathBuf,
    #[arg(long, value_enum, default_value = "columns")]
    pub layout: crate::export::ExportLayout,
    #[arg(long, value_enum, default_value = "parquet")]
    pub format: crate::export::ExportFormat,
    /// Output directory (created; an earlier export there is replaced).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn export(a: ExportArgs) -> Result<()> {
    let ExportArgs { run_dir, layout, format, out } = a;
    let s = crate::export::export(&run_dir, &out, layout, format)?;
    println!("{} rows, {} image files -> {}", s.rows, s.image_files, out.display());
    Ok(())
}

/// Show schema, row count and first rows of a Parquet/JSONL/JSON file, a directory of
/// Parquet files, or a run directory; for a shard directory, the manifest and packs decoded
/// to text (segment boundaries as rules, loss spans in ⟦ ⟧).
#[derive(clap::Args)]
pub struct InspectArgs {
    /// File or directory: a Parquet/JSONL/JSON file, a directory of parts, a run directory,
    /// or a shard directory (with manifest.json), whose packs are decoded to text.
    pub path: PathBuf,
    /// Rows (packs, for a shard directory) to show.
    #[arg(long, default_value_t = 5)]
    pub rows: usize,
    /// Shard directories: the tokenizer directory to decode with (default: the one the
    /// manifest names; either way its sha256 must match the manifest's).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
}

pub fn inspect(a: InspectArgs) -> Result<()> {
    let InspectArgs { path, rows, tokenizer } = a;
    if path.join("manifest.json").is_file() {
        // the manifest's tokenizer unless one is given; either is checked against the manifest
        let tok = tokenizer.or_else(|| crate::shards::Manifest::read(&path).ok().map(|m| PathBuf::from(m.tokenizer)));
        print!("{}", crate::shards::inspect(&path, rows, tok.as_deref())?);
        return Ok(());
    }
    print!("{}", crate::inspect::inspect(&path, rows)?);
    Ok(())
}

/// Generate a synthetic multimodal long-CoT corpus with planted, labelled defects
/// (DIR/data, DIR/labels.parquet, DIR/bench/benchmark.parquet), or with `--task arith` a
/// clean learnable train/test task (DIR/train.parquet, DIR/test.parquet).
#[derive(clap::Args)]
pub struct SynthArgs {
    /// Rows to generate (train rows with --task).
    #[arg(long)]
    pub rows: usize,
    /// Random seed; the same seed gives identical bytes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Raw layout to write.
    #[arg(long, value_enum, default_value = "columns")]
    pub layout: SynthLayout,
    /// Defect rates: `default`, `none`, or `kind=rate,...` with kinds exact_duplicate,
    /// near_duplicate, truncated, wrong_answer, loop, overlong, corrupt_image, shared_image,
    /// invalid_utf8 (sharegpt layout only), contamination, language_drift.
    #[arg(long, default_value = "default")]
    pub defects: String,
    /// Benchmark items written to DIR/bench (default: rows / 10, between 20 and 500).
    #[arg(long)]
    pub bench_items: Option<usize>,
    /// Write a clean learnable task instead of a defect corpus.
    #[arg(long, value_enum)]
    pub task: Option<Task>,
    /// Test rows for --task (default: rows / 5).
    #[arg(long)]
    pub test_rows: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn synth(a: SynthArgs) -> Result<()> {
    let SynthArgs { rows, seed, out, layout, defects, bench_items, task, test_rows, quiet } = a;
    let started = std::time::Instant::now();
    if let Some(Task::Arith) = task {
        let files = corpus::arith_task(seed, rows, test_rows.unwrap_or(rows / 5), &out)?;
        for f in files {
            println!("wrote {}", f.display());
        }
        return Ok(());
    }
    let defects = DefectRates::parse(&defects).map_err(|e| Error::Spec(format!("--defects: {e}")))?;
    let pb = crate::progress::bar(!quiet, Some(rows as u64), "synth", "rows");
    let opts = SynthOptions { rows, seed, out, layout, defects, batch_rows: 256, bench_items };
    let sum = corpus::synth(&opts, &pb)?;
    pb.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    for f in &sum.data_files {
        println!("wrote {}", f.display());
    }
    println!("wrote {} and {}", sum.labels.display(), sum.bench.display());
    let planted: Vec<String> =
        sum.defect_counts.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k}={n}")).collect();
    println!(
        "{} rows in {secs:.2} s ({:.0} rows/s); planted: {}",
        sum.rows,
        sum.rows as f64 / secs.max(1e-9),
        planted.join(" ")
    );
    Ok(())
}

/// What `synth --task` writes.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Task {
    /// Four digits in coloured boxes: (red + blue) x green, with short and long-CoT answers.
    Arith,
}

/// Compare final answers: reads JSONL lines {"id", "gold", "prediction"} and writes one
/// line per case to stdout: {"id", "equal", "gold_extracted", "pred_extracted"}.
#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Cases file (JSONL).
    pub cases: PathBuf,
}

pub fn verify(a: VerifyArgs) -> Result<()> {
    let VerifyArgs { cases } = a;
    let started = std::time::Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (n, equal) = crate::verify::run_cases(&cases, &mut out).map_err(Error::Input)?;
    std::io::Write::flush(&mut out).map_err(|e| Error::io("writing stdout", e))?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!("{n} cases, {equal} equal, {secs:.3} s ({:.0} cases/s)", n as f64 / secs.max(1e-9));
    Ok(())
}
