//! `cotforge repro-mini`: the long-CoT claim in miniature, end to end with cotforge alone.
//!
//! From one config (`pipelines/repro-mini.yaml`; every key defaults to the recipe) it runs:
//! `synth --task arith` (train and held-out test splits, each row with a short answer and a
//! long-CoT trace) -> a task tokenizer -> three curation specs (long-CoT train, short-answer
//! train, test) -> for each seed a fresh tiny Qwen2.5-VL and four arms from it:
//!
//! - A: SFT on the short answers;
//! - B: SFT on the long-CoT traces;
//! - C: GRPO from B's final checkpoint;
//! - D: GRPO from A's final checkpoint;
//!
//! -> greedy generation on the held-out split checked by the verifier -> `results.json` and
//! `results.md` (accuracy, mean response length and training tokens per arm; mean and spread
//! over the seeds). Wall times go to `timings.json`, so that the results are byte-identical
//! across reruns.
//!
//! The training and evaluation jobs run as `cotforge train sft|rl` and `cotforge eval`
//! subprocesses, `jobs` at a time with one thread each: at this model size a step is bound by
//! per-op overhead and one thread is as fast as two, so two jobs on two cores double the
//! throughput. Each job leaves a marker holding the hash of its inputs; a rerun of the same
//! config skips the jobs that finished and redoes the rest.

mod config;
mod jobs;
mod results;

pub use config::{DataConfig, ReproConfig, ReproEval, TinyModel, json_schema};
pub use results::{ArmRun, ArmSummary, ReproResults, markdown};

use crate::error::{Context, Error, Result};
use crate::io::atomic_write;
use crate::train::TrainConfig;
use crate::train::rl::RlConfig;
use jobs::{Job, run_jobs};
use results::{arm_run, summarise};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The four arms.
pub const ARMS: [(&str, &str); 4] =
    [("A", "SFT on short answers"), ("B", "SFT on long-CoT traces"), ("C", "B, then GRPO"), ("D", "A, then GRPO")];

/// What `cotforge repro-mini` is told.
#[derive(Debug, Clone)]
pub struct ReproArgs {
    pub out: PathBuf,
    pub config: ReproConfig,
    /// The cotforge executable the jobs run.
    pub exe: PathBuf,
    pub progress: bool,
}

/// Run everything under `args.out`; returns the results and the wall seconds.
pub fn run(args: &ReproArgs) -> Result<(ReproResults, f64)> {
    let started = Instant::now();
    let cfg = &args.config;
    cfg.check().map_err(|e| Error::Input(format!("repro-mini config: {e}")))?;
    if !args.exe.is_file() {
        return Err(Error::Input(format!("repro-mini: the cotforge executable {} does not exist", args.exe.display())));
    }
    let template = &cfg.template_tokenizer;
    if !template.join("tokenizer.json").is_file() {
        return Err(Error::Input(format!(
            "repro-mini: template_tokenizer {} has no tokenizer.json (run from the repository root or give an absolute path)",
            template.display()
        )));
    }
    let out = absolute(&args.out)?;
    std::fs::create_dir_all(&out).ctx(|| format!("creating {}", out.display()))?;
    let config_json = serde_json::to_string_pretty(cfg).map_err(|e| Error::Run(format!("config: {e}")))?;
    let config_hash = blake3::hash(config_json.as_bytes()).to_hex().to_string();
    atomic_write(&out.join("config.json"), format!("{config_json}\n").as_bytes(), 0)?;
    let say = |msg: &str| {
        if args.progress {
            eprintln!("{msg}");
        }
    };

    // data, tokenizer, curation: fast, in process, deterministic (a rerun rewrites the same bytes)
    say("repro-mini: synth, task tokenizer, curation");
    let files =
        crate::synth::corpus::arith_task(cfg.data.seed, cfg.data.train_rows, cfg.data.test_rows, &out.join("data"))?;
    let tok = out.join("tokenizer");
    crate::tokenize::train_tokenizer::train_tokenizer(&crate::tokenize::train_tokenizer::TrainTokenizerArgs {
        inputs: vec![files[0].clone()],
        columns: vec!["problem".into(), "answer".into(), "short_answer".into()],
        vocab_size: cfg.tokenizer_vocab,
        min_frequency: 2,
        like: absolute(template)?,
        out: tok.clone(),
    })?;
    let curated = out.join("curated");
    for (name, input, response) in
        [("long", &files[0], "answer"), ("short", &files[0], "short_answer"), ("test", &files[1], "answer")]
    {
        let text = spec_text(name, input, response, &tok, cfg)?;
        let spec_path = out.join("specs").join(format!("{name}.yaml"));
        atomic_write(&spec_path, text.as_bytes(), 0)?;
        let spec = crate::spec::load(&spec_path)?;
        let opts = crate::pipeline::RunOptions {
            out: Some(curated.join(name)),
            resume: false,
            threads: None,
            progress: false,
        };
        crate::pipeline::run(&spec, &opts)?;
    }
    let test_run = curated.join("test");
    let majority = majority_share(&test_run)?;

    // one fresh model per seed, the config files of the jobs
    let mut model_cfg = cfg.model_config()?;
    crate::tokenize::train_tokenizer::fit_config(&mut model_cfg, &tok)?;
    let mut jobs: Vec<Job> = Vec::new();
    for &seed in &cfg.seeds {
        let dir = out.join(format!("seed-{seed}"));
        let init = dir.join("init");
        crate::model::init::write_random(&init, &model_cfg, Some(&tok), seed)?;
        let sft_cfg = TrainConfig { seed, ..cfg.sft.clone() };
        let sft_file = dir.join("sft-config.json");
        atomic_write(&sft_file, config_file(&sft_cfg)?.as_bytes(), 0)?;
        let rl_cfg = RlConfig { seed, system: Some(cfg.system.clone()), ..cfg.rl.clone() };
        let rl_file = dir.join("rl-config.json");
        atomic_write(&rl_file, config_file(&rl_cfg)?.as_bytes(), 0)?;
        let key = |arm: &str| format!("{config_hash}/{seed}/{arm}");
        let mut sft_job = |arm: &str, shards: &str| {
            let o = dir.join(arm);
            jobs.push(Job {
                name: format!("seed {seed} {arm}: sft"),
                args: args_of(
                    &["train", "sft", "--quiet", "--shards"],
                    &[
                        curated.join(shards).join("shards"),
                        "--model".into(),
                        init.clone(),
                        "--out".into(),
                        o.clone(),
                        "--config".into(),
                        sft_file.clone(),
                    ],
                ),
                out: o,
                key: key(arm),
                deps: vec![],
            });
            jobs.len() - 1
        };
        let a = sft_job("A", "short");
        let b = sft_job("B", "long");
        let mut rl_job = |arm: &str, from: usize| {
            let o = dir.join(arm);
            let base = jobs[from].out.join("checkpoints").join("last");
            jobs.push(Job {
                name: format!("seed {seed} {arm}: grpo"),
                args: args_of(
                    &["train", "rl", "--quiet", "--prompts"],
                    &[
                        curated.join("long"),
                        "--model".into(),
                        base,
                        "--out".into(),
                        o.clone(),
                        "--config".into(),
                        rl_file.clone(),
                    ],
                ),
                out: o,
                key: key(arm),
                deps: vec![from],
            });
            jobs.len() - 1
        };
        let c = rl_job("C", b);
        let d = rl_job("D", a);
        for (arm, from) in [("A", a), ("B", b), ("C", c), ("D", d)] {
            let o = dir.join(format!("eval-{arm}"));
            let model = jobs[from].out.join("checkpoints").join("last");
            let max_new = cfg.eval.max_new_tokens.to_string();
            let batch = cfg.eval.batch.to_string();
            jobs.push(Job {
                name: format!("seed {seed} {arm}: eval"),
                args: args_of(
                    &["eval", "--system", &cfg.system, "--max-new-tokens", &max_new, "--batch", &batch, "--prompts"],
                    &[test_run.clone(), "--model".into(), model, "--out".into(), o.join("results.jsonl")],
                ),
                out: o,
                key: key(&format!("eval-{arm}")),
                deps: vec![from],
            });
        }
    }
    let total = jobs.len();
    say(&format!("repro-mini: {total} jobs, {} at a time", parallelism(cfg.jobs)));
    let timings = run_jobs(&args.exe, &mut jobs, parallelism(cfg.jobs), args.progress)?;

    // results
    let mut arms = Vec::new();
    for (arm, what) in ARMS {
        let mut runs = Vec::new();
        for &seed in &cfg.seeds {
            let dir = out.join(format!("seed-{seed}"));
            runs.push(arm_run(&dir, arm, seed)?);
        }
        arms.push(summarise(arm, what, runs));
    }
    let mean = |a: &str| arms.iter().find(|s| s.arm == a).map_or(0.0, |s| s.accuracy_mean);
    let results = ReproResults {
        format: "cotforge-repro-mini-v1".into(),
        config_blake3: config_hash,
        seeds: cfg.seeds.clone(),
        test_prompts: arms[0].runs[0].prompts,
        majority_baseline: majority,
        b_minus_a: 100.0 * (mean("B") - mean("A")),
        c_minus_b: 100.0 * (mean("C") - mean("B")),
        d_minus_a: 100.0 * (mean("D") - mean("A")),
        arms,
    };
    let json = serde_json::to_string_pretty(&results).map_err(|e| Error::Run(format!("results: {e}")))?;
    atomic_write(&out.join("results.json"), format!("{json}\n").as_bytes(), 0)?;
    atomic_write(&out.join("results.md"), markdown(&results).as_bytes(), 0)?;
    let seconds = started.elapsed().as_secs_f64();
    let timing = serde_json::json!({
        "total_seconds": seconds,
        "jobs": timings.iter().map(|(n, s)| serde_json::json!({"job": n, "seconds": s})).collect::<Vec<_>>(),
    });
    atomic_write(&out.join("timings.json"), format!("{:#}\n", timing).as_bytes(), 0)?;
    Ok((results, seconds))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).ctx(|| format!("resolving {}", p.display()))
}

/// A config file the trainers read (YAML): written as JSON, which YAML reads.
fn config_file<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v).map(|s| s + "\n").map_err(|e| Error::Run(format!("writing a config: {e}")))
}

fn args_of(head: &[&str], tail: &[PathBuf]) -> Vec<OsString> {
    head.iter().map(OsString::from).chain(tail.iter().map(|p| p.clone().into_os_string())).collect()
}

fn parallelism(jobs: usize) -> usize {
    if jobs > 0 { jobs } else { std::thread::available_parallelism().map_or(1, |n| n.get()) }
}

/// The curation spec of one split: the checks a long-CoT dataset gets (validate, format,
/// repetition, correctness, length, exact dedup), then tokenize and pack. Short answers have
/// no think block, so their spec skips the format and repetition filters. Built as data and
/// written as JSON, which is YAML.
fn spec_text(name: &str, input: &Path, response: &str, tok: &Path, cfg: &ReproConfig) -> Result<String> {
    use serde_json::json;
    let long = response == "answer";
    let mut stages = vec![json!({"validate": {}})];
    if long {
        stages.push(json!({"filter.truncated": {}}));
        stages.push(json!({"filter.format": {}}));
        stages.push(json!({"filter.repetition": {"window_words": 8, "min_repeats": 3}}));
    }
    stages.push(json!({"filter.correct": {}}));
    stages.push(json!({"filter.length": {"field": "response", "max_words": 200}}));
    stages.push(json!({"dedup.exact": {"on": ["prompt", "images"]}}));
    stages.push(json!({"tokenize": {"tokenizer": tok.display().to_string(), "system": cfg.system}}));
    stages.push(json!({"pack": {"max_length": cfg.pack_length, "row_group_packs": 8}}));
    let spec = json!({
        "name": format!("repro-mini-{name}"),
        "inputs": [{
            "path": input.display().to_string(),
            "format": "parquet",
            "columns": {"prompt": "problem", "response": response, "reference": "solution", "images": "images"},
            "source": "arith",
        }],
        "stages": stages,
        "output": {"dir": name},
    });
    let text = serde_json::to_string_pretty(&spec).ctx(|| "writing a curation spec")?;
    Ok(format!("# written by `cotforge repro-mini`: the {name} split\n{text}\n"))
}

/// The share of the most common reference among a run's curated traces.
fn majority_share(run: &Path) -> Result<f64> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let traces = crate::train::eval::curated_traces(run)?;
    for t in &traces {
        *counts.entry(t.reference.clone().unwrap_or_default()).or_default() += 1;
    }
    Ok(counts.values().max().map_or(0.0, |&m| m as f64 / traces.len().max(1) as f64))
}
