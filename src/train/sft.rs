//! Supervised fine-tuning on packed shards: the run loop over the [`super::trainer::Trainer`]
//! (schedule, metrics, evaluation, checkpoints, resume).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::checkpoint;
use super::config::TrainConfig;
use super::optim::lr_factor;
use super::trainer::{Nll, Row, STATE_FORMAT, TrainState, Trainer};
use crate::error::{Context, Error, Result};
use crate::model::CausalLm;
use crate::shards::ShardSet;

/// What `cotforge train sft` is told.
#[derive(Debug, Clone)]
pub struct SftArgs {
    pub shards: PathBuf,
    pub model: PathBuf,
    /// Tokenizer directory the shards were packed with (default: the model directory).
    pub tokenizer: Option<PathBuf>,
    pub out: PathBuf,
    pub config: TrainConfig,
    pub resume: bool,
    pub progress: bool,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
}

/// The end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct SftSummary {
    pub steps: usize,
    pub final_loss: f64,
    pub eval_loss: Option<f64>,
    /// Generation accuracy at the last evaluation.
    pub eval_accuracy: Option<f64>,
    pub checkpoint: PathBuf,
    pub tokens: u64,
    pub seconds: f64,
}

pub(crate) fn metrics_line(path: &Path, v: &serde_json::Value) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .ctx(|| format!("opening {}", path.display()))?;
    writeln!(f, "{v}").ctx(|| format!("writing {}", path.display()))
}

/// Keep the metrics lines of steps up to `step` (a resumed run rewrites what follows).
pub(crate) fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let Ok(text) = std::fs::read_to_string(path) else { return Ok(()) };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["step"].as_u64())
                .is_some_and(|s| s as usize <= step)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    crate::io::atomic_write(path, kept.as_bytes(), 0)
}

fn eval_loss(trainer: &Trainer, set: &ShardSet) -> Result<Nll> {
    let mut total = Nll::default();
    for g in 0..set.row_groups() {
        for pack in set.read_group(g)? {
            total += trainer.nll(&Row::of([&pack]))?;
        }
    }
    Ok(total)
}

/// Run SFT: `out/metrics.jsonl` (a line per step and per evaluation), `out/checkpoints/step-N`
/// (the model in Hugging Face layout plus the optimizer and data position for `resume`).
pub fn run(args: &SftArgs) -> Result<SftSummary> {
    let cfg = &args.config;
    let device = crate::model::device(&args.device)?;
    let tok_dir = args.tokenizer.clone().unwrap_or_else(|| args.model.clone());
    let shards = ShardSet::open(&args.shards, &tok_dir)?;
    if shards.is_empty() {
        return Err(Error::Input(format!("{}: no packs to train on", args.shards.display())));
    }
    let eval_set = match cfg.eval.as_ref().and_then(|e| e.shards.as_ref()) {
        Some(dir) => Some(ShardSet::open(dir, &tok_dir)?),
        None => None,
    };
    let manifest_sha = shards.manifest_sha256.clone();
    std::fs::create_dir_all(&args.out).ctx(|| format!("creating {}", args.out.display()))?;
    let metrics = args.out.join("metrics.jsonl");
    let ckpt_root = args.out.join("checkpoints");

    let resumed = if args.resume { checkpoint::latest(&ckpt_root)? } else { None };
    let base_fingerprint = if cfg.lora.is_some() { Some(checkpoint::model_fingerprint(&args.model)?) } else { None };
    let (model_dir, state) = match &resumed {
        Some(dir) => {
            let st = checkpoint::read_state_for(dir, &args.model, &base_fingerprint)?;
            if st.shards_manifest_sha256 != manifest_sha {
                return Err(Error::Input(format!(
                    "{}: the checkpoint was trained on other shards (manifest sha256 {}, now {manifest_sha})",
                    dir.display(),
                    st.shards_manifest_sha256
                )));
            }
            if &st.config != cfg {
                return Err(Error::Input(format!(
                    "{}: the checkpoint's train config differs from this one; resume with the same config",
                    dir.display()
                )));
            }
            // a LoRA run loads its base again, then the adapters
            (if cfg.lora.is_some() { args.model.clone() } else { dir.clone() }, Some(st))
        }
        None => {
            if args.resume {
                eprintln!("no checkpoint in {}: starting from {}", ckpt_root.display(), args.model.display());
            }
            if metrics.exists() {
                std::fs::remove_file(&metrics).ctx(|| format!("removing {}", metrics.display()))?;
            }
            (args.model.clone(), None)
        }
    };
    let model = CausalLm::load(&model_dir, cfg.candle_dtype(), &device)?;
    let mut trainer = Trainer::new(model, cfg.clone())?;
    let steps_per_epoch = shards.len().div_ceil(cfg.packs_per_step);
    let total_steps = cfg.max_steps.unwrap_or(cfg.epochs * steps_per_epoch);
    let warmup = (cfg.warmup_ratio * total_steps as f64).ceil() as usize;
    // the epoch of the step after `done` steps, and its first position in that epoch's order
    let at = |done: usize| (done / steps_per_epoch, (done % steps_per_epoch) * cfg.packs_per_step);
    let mut step = 0;
    if let (Some(st), Some(dir)) = (&state, &resumed) {
        if cfg.lora.is_some() {
            checkpoint::load_adapters(dir, &trainer)?;
        }
        checkpoint::load_optimizer(dir, &mut trainer.opt, st.step as u64)?;
        step = st.step;
        truncate_metrics(&metrics, step)?;
    }
    let bar = crate::progress::bar(args.progress, Some(total_steps as u64), "train sft", "steps");
    bar.set_position(step as u64);
    let started = Instant::now();
    let mut tokens_seen = 0u64;
    let mut last_loss = f64::NAN;
    let mut last_eval = None;
    let mut last_accuracy = None;
    let mut gen_prompts: Option<(Vec<super::eval::EvalPrompt>, tokenizers::Tokenizer)> = None;
    let max_len = shards.manifest.max_length as f64;
    let mut checkpoint_dir = resumed.clone();
    let mut loader: Option<(usize, crate::shards::Loader)> = None;
    while step < total_steps {
        let (epoch, position) = at(step);
        if loader.as_ref().is_none_or(|(e, _)| *e != epoch) {
            loader = Some((epoch, shards.loader(cfg.seed, epoch as u64, position, 2 * cfg.packs_per_step)));
        }
        let (_, it) = loader.as_mut().expect("loader set");
        let mut packs = Vec::with_capacity(cfg.packs_per_step);
        for item in it.by_ref().take(cfg.packs_per_step) {
            packs.push(item?.1);
        }
        let t = Instant::now();
        let lr = cfg.lr * lr_factor(cfg.schedule, step, warmup, total_steps);
        let (nll, norm) = trainer.step(&packs, lr)?;
        let secs = t.elapsed().as_secs_f64();
        let tokens: usize = packs.iter().map(|p| p.input_ids.len()).sum();
        tokens_seen += tokens as u64;
        step += 1;
        last_loss = nll.mean();
        metrics_line(
            &metrics,
            &serde_json::json!({
                "split": "train", "step": step, "epoch": epoch, "loss": nll.mean(), "lr": lr, "grad_norm": norm,
                "packs": packs.len(), "tokens": tokens, "loss_tokens": nll.tokens,
                "fill": tokens as f64 / (packs.len() as f64 * max_len), "tokens_per_s": tokens as f64 / secs,
            }),
        )?;
        bar.set_message(format!("loss {:.4} lr {lr:.2e}", nll.mean()));
        bar.inc(1);
        let last = step == total_steps;
        if let Some(ev) = &cfg.eval
            && (last || (ev.every > 0 && step % ev.every == 0))
        {
            if let Some(set) = &eval_set {
                let n = eval_loss(&trainer, set)?;
                last_eval = Some(n.mean());
                metrics_line(
                    &metrics,
                    &serde_json::json!({"split": "eval", "step": step, "loss": n.mean(), "loss_tokens": n.tokens}),
                )?;
            }
            if let Some(g) = &ev.generate {
                let (prompts, tokenizer) = match &gen_prompts {
                    Some(p) => p,
                    None => {
                        // as the shards were rendered, unless the config says otherwise
                        let system = g.system.clone().or_else(|| shards.manifest.system.clone());
                        gen_prompts.insert(super::eval::load_prompts(
                            &g.run,
                            &tok_dir,
                            system,
                            &trainer.model,
                            g.limit,
                        )?)
                    }
                };
                let r = super::eval::accuracy(&trainer.model, tokenizer, prompts, g.max_new_tokens, g.batch)?;
                last_accuracy = Some(r.accuracy);
                let lines = r.results_jsonl();
                let dir = args.out.join("eval");
                std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
                crate::io::atomic_write(&dir.join(format!("generate-step-{step:07}.jsonl")), lines.as_bytes(), 0)?;
                metrics_line(
                    &metrics,
                    &serde_json::json!({"split": "eval_generate", "step": step, "accuracy": r.accuracy, "correct": r.correct,
                        "prompts": r.prompts, "truncated": r.truncated, "mean_new_tokens": r.mean_new_tokens}),
                )?;
            }
        }
        if last || (cfg.save_every > 0 && step % cfg.save_every == 0) {
            let st = TrainState {
                format: STATE_FORMAT.into(),
                step,
                total_steps,
                epoch: at(step).0,
                position: at(step).1,
                seed: cfg.seed,
                config: cfg.clone(),
                shards_manifest_sha256: manifest_sha.clone(),
                base_model_blake3: base_fingerprint.clone(),
                rl: None,
            };
            checkpoint_dir = Some(checkpoint::save(&ckpt_root, &trainer, &st, &args.model, &tok_dir)?);
        }
    }
    bar.finish_and_clear();
    let checkpoint = checkpoint_dir.ok_or_else(|| Error::Run("train: no checkpoint written".into()))?;
    Ok(SftSummary {
        steps: step,
        final_loss: last_loss,
        eval_loss: last_eval,
        eval_accuracy: last_accuracy,
        checkpoint,
        tokens: tokens_seen,
        seconds: started.elapsed().as_secs_f64(),
    })
}
