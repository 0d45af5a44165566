//! The `cotforge` command line: parses arguments, calls the library, maps errors to exit codes
//! (0 success, 1 the run failed, 2 usage or spec error).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cotforge::pipeline::{self, RunOptions};
use cotforge::synth::corpus::{self, DefectRates, SynthLayout, SynthOptions};
use cotforge::{Error, Result, spec};

// Tokenization and row batches allocate many small buffers from several threads at once;
// glibc's allocator spent over 40% of the tokenize stage in malloc/free.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's option setter (in the library the `mimalloc` crate links).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// Keep freed pages for reuse instead of returning them to the OS. A training step allocates
/// and frees the same large tensors over and over; returned pages come back zeroed by the
/// kernel, which took 11% of a qwen2-small SFT step (mimalloc's `purge_delay`, option 15, -1 =
/// never purge). Peak memory is unchanged: only what was in use at once stays mapped.
fn keep_freed_pages() {
    const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
    // SAFETY: setting an option is thread-safe in mimalloc and takes effect on later frees.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

#[derive(Parser)]
#[command(name = "cotforge", version, about = "Curate multimodal long chain-of-thought traces into clean training data.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline spec: ingest its inputs, apply its stages, write the run directory
    /// (curated/, ledger/, images/, stats.json, stats/, and report.html unless --no-report).
    Run {
        /// Pipeline spec (YAML), e.g. pipelines/demo.yaml.
        spec: PathBuf,
        /// Run directory (default: the spec's output.dir).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Keep the completed stages of an interrupted run of the same spec and continue.
        #[arg(long)]
        resume: bool,
        /// Worker threads (default: all cores). Outputs do not depend on it.
        #[arg(long)]
        threads: Option<usize>,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
        /// Do not write report.html at the end (`cotforge report` writes it later).
        #[arg(long)]
        no_report: bool,
        /// Split run: this task's rank (default: SLURM_ARRAY_TASK_ID, else JOB_COMPLETION_INDEX).
        #[arg(long)]
        rank: Option<usize>,
        /// Split run: the number of tasks (default: SLURM_ARRAY_TASK_COUNT). Input files are
        /// assigned to tasks in order; see `cotforge plan` for the steps.
        #[arg(long)]
        world_size: Option<usize>,
        /// Split run: run only this step (ingest, NN-stage.map, NN-stage.reduce, NN-stage,
        /// finalize) for this task; without it the task runs every step, waiting for the
        /// other tasks where a step needs them.
        #[arg(long)]
        step: Option<String>,
    },
    /// Print the scheduler jobs of a split run, one per step, chained so each starts when the
    /// previous one succeeded: Slurm sbatch scripts (arrays, --dependency=afterok) or
    /// Kubernetes Indexed Jobs (with the kubectl commands that chain them).
    Plan {
        /// Pipeline spec (YAML).
        spec: PathBuf,
        /// Number of tasks of each array step.
        #[arg(long)]
        world_size: usize,
        /// Slurm sbatch scripts.
        #[arg(long, conflicts_with = "k8s", required_unless_present = "k8s")]
        slurm: bool,
        /// Kubernetes Indexed Job manifests.
        #[arg(long)]
        k8s: bool,
        /// Run directory on the shared storage (default: the spec's output.dir).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The cotforge command as the jobs call it.
        #[arg(long, default_value = "cotforge")]
        bin: String,
        /// Kubernetes: container image with cotforge.
        #[arg(long, default_value = "cotforge:latest")]
        image: String,
        /// Kubernetes: PersistentVolumeClaim holding the inputs and the run directory.
        #[arg(long, default_value = "cotforge-data")]
        pvc: String,
        /// Kubernetes: where the claim is mounted, the jobs' working directory (relative paths
        /// of the spec resolve against it).
        #[arg(long, default_value = "/data")]
        mount: String,
        /// Write the scripts/manifests as files here instead of printing them.
        #[arg(long)]
        write: Option<PathBuf>,
    },
    /// Write RUN_DIR/report.html: a self-contained page (no script, nothing fetched) with the
    /// rows after each stage, drop reasons, histograms of measured values, length buckets,
    /// pack fill, dropped samples per reason with their text and thumbnails, and the spec.
    Report {
        /// Run directory of a finished `cotforge run`.
        run_dir: PathBuf,
        /// Dropped rows shown per stage and reason.
        #[arg(long, default_value_t = 5)]
        samples: usize,
        /// Characters shown of each text field of a dropped row.
        #[arg(long, default_value_t = 2000)]
        max_chars: usize,
        /// Write the page here instead of RUN_DIR/report.html.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Export a run's curated traces in a public layout: `columns` (one column per field,
    /// images as HF {bytes, path} in Parquet) or `sharegpt` (conversations, image files under
    /// OUT/images/), as Parquet or JSONL. OUT/export.json records what was exported.
    Export {
        /// Run directory of a finished `cotforge run`.
        run_dir: PathBuf,
        #[arg(long, value_enum, default_value = "columns")]
        layout: cotforge::export::ExportLayout,
        #[arg(long, value_enum, default_value = "parquet")]
        format: cotforge::export::ExportFormat,
        /// Output directory (created; an earlier export there is replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a freshly initialised model directory (config.json, model.safetensors, tokenizer
    /// files) that cotforge and `transformers` load: for training small models from scratch,
    /// tests and benchmarks.
    InitModel {
        /// A named config (tiny, small, qwen2-tiny, qwen2-small, qwen2.5-vl-tiny) or a
        /// config.json file.
        #[arg(long)]
        config: String,
        /// Tokenizer directory whose files are copied in (tokenizer.json, tokenizer_config.json, ...).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Set the config's vocabulary size and special token ids from --tokenizer (for a task
        /// tokenizer from `cotforge train-tokenizer`).
        #[arg(long, requires = "tokenizer")]
        fit_tokenizer: bool,
    },
    /// Generation accuracy of a model on the prompts of a curated run: greedy continuations
    /// (KV cache, batched) checked against the references by the verifier. Prints a summary
    /// line (JSON) and writes every continuation with its verdict to --out (JSONL).
    Eval {
        #[arg(long)]
        model: PathBuf,
        /// Curated run directory (from `cotforge run`) whose traces have references.
        #[arg(long)]
        prompts: PathBuf,
        /// Per-prompt results (JSONL).
        #[arg(long)]
        out: PathBuf,
        /// Tokenizer directory (default: the model directory).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// System prompt for traces without one.
        #[arg(long)]
        system: Option<String>,
        /// Shards the model was trained on: the system prompt they were rendered with is used
        /// unless --system is given.
        #[arg(long)]
        shards: Option<PathBuf>,
        /// At most this many prompts (the first ones).
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, default_value_t = 1024)]
        max_new_tokens: usize,
        /// Prompts decoded together.
        #[arg(long, default_value_t = 8)]
        batch: usize,
        #[arg(long, default_value = "cpu")]
        device: String,
    },
    /// Train a small byte-level BPE tokenizer on text columns of Parquet files, shaped like a
    /// template tokenizer (pre-tokenizer, special tokens, chat template): writes
    /// OUT/tokenizer.json and OUT/tokenizer_config.json.
    TrainTokenizer {
        /// Parquet files with the texts.
        #[arg(long, required = true, num_args = 1..)]
        input: Vec<PathBuf>,
        /// Text columns to learn from (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "problem,answer")]
        columns: Vec<String>,
        /// Learned tokens, the 256 byte symbols included (the template's special tokens follow).
        #[arg(long, default_value_t = 512)]
        vocab_size: usize,
        /// Merges need pairs seen at least this often.
        #[arg(long, default_value_t = 2)]
        min_frequency: u64,
        /// Template tokenizer directory.
        #[arg(long)]
        like: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Logits of a model on token ids (and images) written to a safetensors file: for checking
    /// a model or checkpoint against another implementation.
    Logits {
        /// Model directory (config.json and safetensors).
        #[arg(long)]
        model: PathBuf,
        /// Comma-separated token ids; each image's pad tokens must be there in full.
        #[arg(long)]
        ids: String,
        /// Images in order (each is resized with the Qwen2-VL processor's smart_resize).
        #[arg(long)]
        image: Vec<PathBuf>,
        #[arg(long, default_value_t = 56 * 56)]
        min_pixels: u64,
        #[arg(long, default_value_t = 28 * 28 * 1280)]
        max_pixels: u64,
        /// Output safetensors file with `logits` (L, vocab) in f32.
        #[arg(long)]
        out: PathBuf,
    },
    /// Train a model on packed shards (`cotforge train sft --help`).
    #[command(subcommand)]
    Train(TrainCommand),
    /// Show schema, row count and first rows of a Parquet/JSONL/JSON file, a directory of
    /// Parquet files, or a run directory; for a shard directory, the manifest and packs decoded
    /// to text (segment boundaries as rules, loss spans in ⟦ ⟧).
    Inspect {
        /// File or directory: a Parquet/JSONL/JSON file, a directory of parts, a run directory,
        /// or a shard directory (with manifest.json), whose packs are decoded to text.
        path: PathBuf,
        /// Rows (packs, for a shard directory) to show.
        #[arg(long, default_value_t = 5)]
        rows: usize,
        /// Shard directories: the tokenizer directory to decode with (default: the one the
        /// manifest names; either way its sha256 must match the manifest's).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
    },
    /// Generate a synthetic multimodal long-CoT corpus with planted, labelled defects
    /// (DIR/data, DIR/labels.parquet, DIR/bench/benchmark.parquet), or with `--task arith` a
    /// clean learnable train/test task (DIR/train.parquet, DIR/test.parquet).
    Synth {
        /// Rows to generate (train rows with --task).
        #[arg(long)]
        rows: usize,
        /// Random seed; the same seed gives identical bytes.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Raw layout to write.
        #[arg(long, value_enum, default_value = "columns")]
        layout: SynthLayout,
        /// Defect rates: `default`, `none`, or `kind=rate,...` with kinds exact_duplicate,
        /// near_duplicate, truncated, wrong_answer, loop, overlong, corrupt_image, shared_image,
        /// invalid_utf8 (sharegpt layout only), contamination, language_drift.
        #[arg(long, default_value = "default")]
        defects: String,
        /// Benchmark items written to DIR/bench (default: rows / 10, between 20 and 500).
        #[arg(long)]
        bench_items: Option<usize>,
        /// Write a clean learnable task instead of a defect corpus.
        #[arg(long, value_enum)]
        task: Option<Task>,
        /// Test rows for --task (default: rows / 5).
        #[arg(long)]
        test_rows: Option<usize>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Compare final answers: reads JSONL lines {"id", "gold", "prediction"} and writes one
    /// line per case to stdout: {"id", "equal", "gold_extracted", "pred_extracted"}.
    Verify {
        /// Cases file (JSONL).
        cases: PathBuf,
    },
    /// Benchmark token counting on a text column of a Parquet file: raw `tokenizers` batch
    /// encoding against cotforge's per-row counting (what filter.length does).
    BenchTokens {
        /// Parquet file.
        parquet: PathBuf,
        /// Text column.
        #[arg(long, default_value = "answer")]
        column: String,
        /// Rows to read.
        #[arg(long, default_value_t = 2000)]
        rows: usize,
    },
    /// Benchmark a finished packing run (first stage `tokenize`, e.g. benches/pack100k.yaml):
    /// raw `tokenizers` batch encoding of the same rendered conversations against the run's
    /// tokenize-and-pack wall time.
    BenchTokenize {
        /// Run directory.
        run: PathBuf,
        /// Conversations per `encode_batch_fast` call.
        #[arg(long, default_value_t = 1024)]
        chunk: usize,
    },
    /// Benchmark the candle model on CPU with random weights: forward tokens/s on a packed row
    /// and KV-cache generation tokens/s.
    BenchModel {
        /// `tiny` (the test fixtures' size) or `small` (8 layers, hidden 512, vocab 32k).
        #[arg(long, default_value = "tiny")]
        config: String,
        /// Tokens in the packed row of the forward pass.
        #[arg(long, default_value_t = 1024)]
        tokens: usize,
        /// Tokens to generate.
        #[arg(long, default_value_t = 64)]
        new_tokens: usize,
        /// Run in bf16 instead of f32.
        #[arg(long)]
        bf16: bool,
    },
    /// Benchmark one SFT step (forward, backward, AdamW) on CPU with a random model: tokens/s
    /// and peak RSS, on one packed row (a quarter prompt, three quarters loss per segment).
    BenchSft {
        /// qwen2-tiny (hidden 256, 4 layers, vocab 151,936) or qwen2-small (hidden 512, 8
        /// layers), or any `init-model` config name.
        #[arg(long, default_value = "qwen2-tiny")]
        config: String,
        #[arg(long, default_value_t = 2048)]
        tokens: usize,
        #[arg(long, default_value_t = 4)]
        segments: usize,
        /// Timed steps after one warm-up step.
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Output-layer chunk size (MiB of f32 logits), as `head_chunk_mib` in train.yaml.
        #[arg(long, default_value_t = 256)]
        head_chunk_mib: usize,
        /// Keep the decoder's whole graph when its estimate fits this many MiB, else recompute
        /// layers in the backward pass (`graph_budget_mib` in train.yaml).
        #[arg(long, default_value_t = 1024)]
        graph_budget_mib: usize,
    },
    /// Benchmark best-fit-decreasing packing on log-normal long-CoT lengths (median 2k
    /// tokens, p95 7k).
    BenchPack {
        /// Number of samples.
        #[arg(long, default_value_t = 1_000_000)]
        n: usize,
        /// Pack capacities (tokens).
        #[arg(long, value_delimiter = ',', default_value = "8192,16384")]
        max_len: Vec<u32>,
        /// Also write the lengths, one per line, to this file (for benches/trl_pack_compare.py).
        #[arg(long)]
        lengths_out: Option<PathBuf>,
    },
    /// The long-CoT claim in miniature: synth the arith task (short and long-CoT answers),
    /// curate and pack it, train four arms from one tiny Qwen2.5-VL per seed ((A) SFT on short
    /// answers, (B) SFT on long-CoT traces, (C) B then GRPO, (D) A then GRPO), evaluate them on
    /// held-out questions with the verifier, and write OUT/results.md and OUT/results.json
    /// (OUT/timings.json holds the wall times). Training jobs run as subprocesses, `jobs` at a
    /// time with one thread each; a rerun of the same config skips the jobs that finished.
    ReproMini {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Config (YAML; its keys override the recipe's, see pipelines/repro-mini.yaml): seeds,
        /// jobs, data, tokenizer_vocab, template_tokenizer, model, system, pack_length, sft, rl,
        /// eval.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Seeds, comma-separated (overrides the config's).
        #[arg(long, value_delimiter = ',')]
        seeds: Option<Vec<u64>>,
        /// Jobs at once (overrides the config's; 0: one per core).
        #[arg(long)]
        jobs: Option<usize>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Check a spec without running it.
    Check {
        /// Pipeline spec (YAML).
        spec: PathBuf,
    },
    /// Write the JSON Schemas (trace, ledger, shard, pipeline spec, train config) into a directory.
    Schemas {
        /// Output directory.
        #[arg(default_value = "schemas")]
        dir: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Task {
    /// Four digits in coloured boxes: (red + blue) x green, with short and long-CoT answers.
    Arith,
}

#[derive(Subcommand)]
enum TrainCommand {
    /// Supervised fine-tuning on packed shards (from a pipeline's `pack` stage): the loss is
    /// the mean NLL over the loss tokens of each optimizer step. Writes OUT/metrics.jsonl (a
    /// line per step and evaluation) and OUT/checkpoints/step-N (Hugging Face layout plus the
    /// optimizer and data position).
    Sft {
        /// Shard directory (with manifest.json).
        #[arg(long)]
        shards: PathBuf,
        /// Hugging Face model directory (config.json, safetensors, tokenizer files).
        #[arg(long)]
        model: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Train config (YAML; every key has a default: lr, schedule, warmup_ratio, epochs,
        /// max_steps, packs_per_step, packs_per_forward, max_grad_norm, adamw, seed, dtype,
        /// freeze, lr_scale, lora, save_every, keep_last, head_chunk_mib, eval).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Tokenizer directory the shards were packed with (default: the model directory).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Continue from the newest checkpoint in OUT (same shards and config).
        #[arg(long)]
        resume: bool,
        /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// GRPO with a verifiable reward on the prompts of a curated run: each step samples
    /// group_size responses to prompts_per_step prompts, rewards them with the verifier
    /// (optionally a format reward and a soft overlong penalty), normalises the rewards per
    /// group, drops groups without signal, and updates with the clipped ratio (clip_low /
    /// clip_high), optionally a k3 KL to the starting model. Writes OUT/metrics.jsonl (reward,
    /// accuracy, response length, clip fraction, KL, entropy per step) and OUT/checkpoints.
    Rl {
        /// A curated run directory (from `cotforge run`): prompts, images, references.
        #[arg(long)]
        prompts: PathBuf,
        /// Hugging Face model directory (usually an SFT checkpoint).
        #[arg(long)]
        model: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// RL config (YAML; every key has a default: steps, prompts_per_step, group_size,
        /// temperature, top_p, max_new_tokens, system, reward {accuracy, format, overlong:
        /// keep|filter|penalty, overlong_window}, std_normalize, clip_low, clip_high,
        /// aggregation: token_mean|seq_mean_token_mean|seq_mean_token_sum, beta,
        /// dynamic_sampling, updates_per_batch, pack_length, lr, schedule, warmup_ratio,
        /// max_grad_norm, adamw, seed, dtype, freeze, lr_scale, lora, save_every, keep_last).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Tokenizer directory (default: the model directory).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Use only the first N prompts of the run.
        #[arg(long)]
        limit: Option<usize>,
        /// Continue from the newest checkpoint in OUT (same prompts and config).
        #[arg(long)]
        resume: bool,
        /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
        #[arg(long, default_value = "cpu")]
        device: String,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Train(_) | Command::Eval { .. } | Command::BenchSft { .. } | Command::BenchModel { .. } | Command::Logits { .. }) {
        keep_freed_pages();
    }
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

fn dispatch(cmd: Command) -> Result<()> {
    match cmd {
        Command::Run { spec: path, out, resume, threads, quiet, no_report, rank, world_size, step } => {
            let spec = spec::load(&path)?;
            let opts = RunOptions { out, resume, threads, progress: !quiet };
            let dir = pipeline::run_dir(&spec, &opts);
            let started = std::time::Instant::now();
            let stats = match pipeline::split::Task::resolve(rank, world_size)? {
                None if step.is_some() => {
                    return Err(Error::Spec("--step is a step of a split run: give --world-size (or run in a Slurm array)".into()));
                }
                None => pipeline::run(&spec, &opts)?,
                Some(task) => {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads.unwrap_or(0))
                        .build()
                        .map_err(|e| Error::Run(format!("starting worker threads: {e}")))?;
                    let done = pool.install(|| match &step {
                        Some(s) => pipeline::split::run_step(&spec, &dir, task, s, !quiet),
                        None => pipeline::split::run_task(&spec, &dir, task, !quiet),
                    })?;
                    match done {
                        Some(stats) => stats,
                        None => {
                            let what = step.as_deref().unwrap_or("its steps");
                            println!("task {} of {}: {what} done -> {}", task.rank, task.world, dir.display());
                            return Ok(());
                        }
                    }
                }
            };
            let secs = started.elapsed().as_secs_f64();
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
            let rss = pipeline::peak_rss_bytes().map(|b| format!("{:.0} MiB", b as f64 / 1048576.0));
            println!(
                "{secs:.2} s, {:.0} rows/s, peak RSS {}",
                stats.rows_in as f64 / secs.max(1e-9),
                rss.unwrap_or_else(|| "unknown".into())
            );
            if !no_report {
                let page = cotforge::report::write(&dir, &cotforge::report::ReportOptions::default())?;
                println!("report: {}", page.display());
            }
            Ok(())
        }
        Command::Plan { spec: path, world_size, slurm: _, k8s, out, bin, image, pvc, mount, write } => {
            let spec = spec::load(&path)?;
            let dir = out.unwrap_or_else(|| spec.out_dir.clone());
            let workdir = std::env::current_dir().map_err(|e| Error::Run(format!("reading the working directory: {e}")))?;
            let opts = pipeline::plan::PlanOptions { world: world_size, run_dir: dir, spec_path: path.clone(), bin, image, pvc, mount, workdir };
            let files = if k8s { pipeline::plan::k8s(&spec, &opts)? } else { pipeline::plan::slurm(&spec, &opts)? };
            match write {
                Some(d) => {
                    for (name, text) in &files {
                        cotforge::pipeline::io::atomic_write(&d.join(name), text.as_bytes(), 0)?;
                    }
                    println!("{} files in {}; submit with {}", files.len(), d.display(), d.join(&files.last().expect("files").0).display());
                }
                None => {
                    for (name, text) in &files {
                        println!("# ===== {name} =====\n{text}");
                    }
                }
            }
            Ok(())
        }
        Command::Report { run_dir, samples, max_chars, out } => {
            let opts = cotforge::report::ReportOptions { samples_per_reason: samples, max_text_chars: max_chars, ..Default::default() };
            let page = match out {
                None => cotforge::report::write(&run_dir, &opts)?,
                Some(dest) => {
                    let html = cotforge::report::render(&run_dir, &opts)?;
                    cotforge::pipeline::io::atomic_write(&dest, html.as_bytes(), 0)?;
                    dest
                }
            };
            println!("{}", page.display());
            Ok(())
        }
        Command::Export { run_dir, layout, format, out } => {
            let s = cotforge::export::export(&run_dir, &out, layout, format)?;
            println!("{} rows, {} image files -> {}", s.rows, s.image_files, out.display());
            Ok(())
        }
        Command::Inspect { path, rows, tokenizer } => {
            if path.join("manifest.json").is_file() {
                let tok = tokenizer.or_else(|| {
                    // the manifest's tokenizer, checked like any other
                    let m = std::fs::read(path.join("manifest.json")).ok()?;
                    let m: serde_json::Value = serde_json::from_slice(&m).ok()?;
                    Some(PathBuf::from(m["tokenizer"].as_str()?))
                });
                print!("{}", cotforge::shards::inspect(&path, rows, tok.as_deref())?);
                return Ok(());
            }
            print!("{}", cotforge::inspect::inspect(&path, rows)?);
            Ok(())
        }
        Command::Synth { rows, seed, out, layout, defects, bench_items, task, test_rows, quiet } => {
            let started = std::time::Instant::now();
            if let Some(Task::Arith) = task {
                let files = corpus::arith_task(seed, rows, test_rows.unwrap_or(rows / 5), &out)?;
                for f in files {
                    println!("wrote {}", f.display());
                }
                return Ok(());
            }
            let defects = DefectRates::parse(&defects).map_err(|e| Error::Spec(format!("--defects: {e}")))?;
            let pb = if quiet {
                indicatif::ProgressBar::hidden()
            } else {
                indicatif::ProgressBar::new(rows as u64).with_style(
                    indicatif::ProgressStyle::with_template("synth [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}")
                        .expect("template"),
                )
            };
            let opts = SynthOptions { rows, seed, out, layout, defects, batch_rows: 256, bench_items };
            let sum = corpus::synth(&opts, &pb)?;
            pb.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
            for f in &sum.data_files {
                println!("wrote {}", f.display());
            }
            println!("wrote {} and {}", sum.labels.display(), sum.bench.display());
            let planted: Vec<String> = sum.defect_counts.iter().filter(|(_, n)| *n > 0).map(|(k, n)| format!("{k}={n}")).collect();
            println!("{} rows in {secs:.2} s ({:.0} rows/s); planted: {}", sum.rows, sum.rows as f64 / secs.max(1e-9), planted.join(" "));
            Ok(())
        }
        Command::Verify { cases } => {
            let started = std::time::Instant::now();
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let (n, equal) = cotforge::verify::run_cases(&cases, &mut out).map_err(Error::Input)?;
            std::io::Write::flush(&mut out).map_err(|e| Error::io("writing stdout", e))?;
            let secs = started.elapsed().as_secs_f64();
            eprintln!("{n} cases, {equal} equal, {secs:.3} s ({:.0} cases/s)", n as f64 / secs.max(1e-9));
            Ok(())
        }
        Command::BenchPack { n, max_len, lengths_out } => {
            let lengths = cotforge::pack::bfd::lognormal_lengths(n, 2000.0, 7000.0, 32_768, 1);
            if let Some(path) = lengths_out {
                let text: String = lengths.iter().map(|l| format!("{l}\n")).collect();
                cotforge::pipeline::io::atomic_write(&path, text.as_bytes(), 0)?;
            }
            for cap in max_len {
                let t = std::time::Instant::now();
                let p = cotforge::pack::bfd::best_fit_decreasing(&lengths, cap, None);
                let secs = t.elapsed().as_secs_f64();
                let lost: u64 = p.over.iter().map(|&i| lengths[i as usize] as u64).sum();
                println!(
                    "{n} samples, capacity {cap}: {} packs, fill {:.4}%, {} over-length samples ({lost} tokens) left out, {secs:.3} s",
                    p.packs.len(),
                    100.0 * p.fill(),
                    p.over.len()
                );
            }
            Ok(())
        }
        Command::Logits { model, ids, image, min_pixels, max_pixels, out } => {
            let ids: Vec<u32> = ids
                .split(',')
                .map(|t| t.trim().parse().map_err(|_| cotforge::Error::Spec(format!("--ids: `{t}` is not a token id"))))
                .collect::<Result<_>>()?;
            let m = cotforge::model::CausalLm::load(&model, candle_core::DType::F32, &candle_core::Device::Cpu)?.detached();
            // each image at the processor's smart_resize of its size, as patch grids
            let patch = m.config.vision.as_ref().map_or(14, |v| v.patch_size) as u32;
            let (mut images, mut grids) = (Vec::new(), Vec::new());
            for p in &image {
                let bytes = std::fs::read(p).map_err(|e| cotforge::Error::io(format!("reading {}", p.display()), e))?;
                let (w, h) = cotforge::ingest::images::measure(&bytes).ok_or_else(|| cotforge::Error::Input(format!("{}: not a readable image", p.display())))?;
                let (nh, nw) = cotforge::text::tokens::smart_resize(h, w, min_pixels, max_pixels);
                grids.push([1, nh / patch, nw / patch]);
                images.push(bytes);
            }
            let px = m.pixel_values_for(&images, &grids, "--image")?;
            let err = |e: candle_core::Error| cotforge::Error::Run(format!("logits: {e}"));
            let logits = m.logits_multimodal(&ids, px.as_ref(), &grids, &[ids.len()])?.to_dtype(candle_core::DType::F32).map_err(err)?;
            let map = std::collections::HashMap::from([("logits".to_string(), logits)]);
            candle_core::safetensors::save(&map, &out).map_err(|e| cotforge::Error::Run(format!("writing {}: {e}", out.display())))?;
            println!("{} tokens, {} images -> {}", ids.len(), grids.len(), out.display());
            Ok(())
        }
        Command::InitModel { config, tokenizer, out, seed, fit_tokenizer } => {
            let mut value = if std::path::Path::new(&config).is_file() {
                let text = std::fs::read_to_string(&config).map_err(|e| cotforge::Error::io(format!("reading {config}"), e))?;
                serde_json::from_str(&text).map_err(|e| cotforge::Error::Input(format!("{config}: not JSON: {e}")))?
            } else {
                cotforge::model::init::preset(&config)?
            };
            if let (true, Some(dir)) = (fit_tokenizer, tokenizer.as_deref()) {
                cotforge::pack::train_tokenizer::fit_config(&mut value, dir)?;
            }
            let m = cotforge::model::init::write_random(&out, &value, tokenizer.as_deref(), seed)?;
            let params: usize = m.vars.values().map(|v| v.as_tensor().elem_count()).sum();
            println!("{} parameters -> {}", params, out.display());
            Ok(())
        }
        Command::Eval { model, prompts, out, tokenizer, system, shards, limit, max_new_tokens, batch, device } => {
            let args = cotforge::train::eval::EvalArgs { model, prompts, tokenizer, system, shards, limit, max_new_tokens, batch, device };
            let r = cotforge::train::eval::evaluate(&args)?;
            cotforge::pipeline::io::atomic_write(&out, r.results_jsonl().as_bytes(), 0)?;
            let summary = serde_json::json!({"prompts": r.prompts, "correct": r.correct, "accuracy": r.accuracy, "truncated": r.truncated, "mean_new_tokens": r.mean_new_tokens});
            println!("{summary}");
            Ok(())
        }
        Command::TrainTokenizer { input, columns, vocab_size, min_frequency, like, out } => {
            let args = cotforge::pack::train_tokenizer::TrainTokenizerArgs { inputs: input, columns, vocab_size, min_frequency, like, out: out.clone() };
            let n = cotforge::pack::train_tokenizer::train_tokenizer(&args)?;
            println!("{n} tokens -> {}", out.display());
            Ok(())
        }
        Command::Train(TrainCommand::Sft { shards, model, out, config, tokenizer, resume, device, quiet }) => {
            let config = match config {
                Some(p) => cotforge::train::TrainConfig::load(&p)?,
                None => cotforge::train::TrainConfig::default(),
            };
            let args = cotforge::train::SftArgs { shards, model, tokenizer, out: out.clone(), config, resume, progress: !quiet, device };
            let s = cotforge::train::sft::run(&args)?;
            println!(
                "{} steps, {} tokens in {:.1} s ({:.0} tokens/s); last loss {:.4}{}",
                s.steps,
                s.tokens,
                s.seconds,
                s.tokens as f64 / s.seconds.max(1e-9),
                s.final_loss,
                s.eval_loss.map(|l| format!(", eval loss {l:.4}")).unwrap_or_default()
                    + &s.eval_accuracy.map(|a| format!(", generation accuracy {:.1}%", 100.0 * a)).unwrap_or_default()
            );
            println!("checkpoint: {}\nmetrics: {}", s.checkpoint.display(), out.join("metrics.jsonl").display());
            Ok(())
        }
        Command::Train(TrainCommand::Rl { prompts, model, out, config, tokenizer, limit, resume, device, quiet }) => {
            let config = match config {
                Some(p) => cotforge::train::rl::RlConfig::load(&p)?,
                None => cotforge::train::rl::RlConfig::default(),
            };
            let args = cotforge::train::rl::RlArgs { prompts, model, tokenizer, out: out.clone(), config, resume, progress: !quiet, device, limit };
            let s = cotforge::train::rl::run(&args)?;
            println!(
                "{} steps; last step: reward {:.3}, accuracy {:.3}, response length {:.1}",
                s.steps, s.last.reward, s.last.accuracy, s.last.response_length
            );
            println!("checkpoint: {}\nmetrics: {}", s.checkpoint.display(), out.join("metrics.jsonl").display());
            Ok(())
        }
        Command::BenchSft { config, tokens, segments, steps, head_chunk_mib, graph_budget_mib } => {
            print!("{}", cotforge::train::bench::bench_sft(&config, tokens, segments, steps, head_chunk_mib, graph_budget_mib)?);
            Ok(())
        }
        Command::BenchModel { config, tokens, new_tokens, bf16 } => {
            let dtype = if bf16 { candle_core::DType::BF16 } else { candle_core::DType::F32 };
            print!("{}", cotforge::model::bench::bench_model(&config, tokens, new_tokens, dtype)?);
            Ok(())
        }
        Command::BenchTokenize { run, chunk } => {
            print!("{}", cotforge::pack::bench::bench_tokenize(&run, chunk)?);
            Ok(())
        }
        Command::BenchTokens { parquet, column, rows } => {
            let df = cotforge::pipeline::io::read_parquet_slice(&parquet, Some(vec![column.clone()]), 0, rows)?;
            let texts: Vec<String> = df
                .column(&column)
                .and_then(|c| c.str().map(|s| s.iter().map(|v| v.unwrap_or("").to_string()).collect()))
                .map_err(|e| Error::Input(format!("{}: column `{column}`: {e}", parquet.display())))?;
            let tk = cotforge::text::tokens::TokenCounter::bundled()?;
            let (raw, ours, total) = cotforge::text::tokens::bench_counting(&tk, &texts)?;
            println!("{} texts, {total} tokens", texts.len());
            println!("tokenizers encode_batch_fast: {raw:.0} tokens/s");
            println!("cotforge per-row counting:    {ours:.0} tokens/s ({:.0}% of batch)", 100.0 * ours / raw);
            Ok(())
        }
        Command::ReproMini { out, config, seeds, jobs, quiet } => {
            let mut config = match config {
                Some(p) => cotforge::repro::ReproConfig::load(&p)?,
                None => cotforge::repro::ReproConfig::default(),
            };
            if let Some(s) = seeds {
                config.seeds = s;
            }
            if let Some(j) = jobs {
                config.jobs = j;
            }
            let exe = std::env::current_exe().map_err(|e| Error::Run(format!("locating the cotforge executable: {e}")))?;
            let args = cotforge::repro::ReproArgs { out: out.clone(), config, exe, progress: !quiet };
            let (results, secs) = cotforge::repro::run(&args)?;
            print!("{}", cotforge::repro::markdown(&results));
            println!("\n{:.1} min; {} (results.json, timings.json)", secs / 60.0, out.join("results.md").display());
            Ok(())
        }
        Command::Check { spec: path } => {
            let s = spec::load(&path)?;
            let files: usize = s.inputs.iter().map(|i| i.files.len()).sum();
            for i in &s.inputs {
                cotforge::ingest::preflight(i)?;
            }
            println!("{}: ok ({} inputs, {files} files, {} stages)", path.display(), s.inputs.len(), s.stages.len());
            Ok(())
        }
        Command::Schemas { dir } => {
            for (name, text) in cotforge::schema::schema_files() {
                let p = dir.join(name);
                cotforge::pipeline::io::atomic_write(&p, text.as_bytes(), 0)?;
                println!("wrote {}", p.display());
            }
            Ok(())
        }
    }
}
