//! Training commands: `train sft`, `train rl` (their shared flags in one group) and
//! `repro-mini`.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// `cotforge train`: the trainers.
#[derive(clap::Subcommand)]
pub enum TrainCommand {
    /// Supervised fine-tuning on packed shards (from a pipeline's `pack` stage): the loss is
    /// the mean NLL over the loss tokens of each optimizer step. Writes OUT/metrics.jsonl (a
    /// line per step and evaluation) and OUT/checkpoints/step-N (Hugging Face layout plus the
    /// optimizer and data position).
    Sft(SftArgs),
    /// GRPO with a verifiable reward on the prompts of a curated run: each step samples
    /// group_size responses to prompts_per_step prompts, rewards them with the verifier
    /// (optionally a format reward and a soft overlong penalty), normalises the rewards per
    /// group, drops groups without signal, and updates with the clipped ratio (clip_low /
    /// clip_high), optionally a k3 KL to the starting model. Writes OUT/metrics.jsonl (reward,
    /// accuracy, response length, clip fraction, KL, entropy per step) and OUT/checkpoints.
    Rl(RlArgs),
}

/// The flags both trainers take.
#[derive(clap::Args)]
pub struct TrainFlags {
    /// Hugging Face model directory (config.json, safetensors, tokenizer files); for `rl`
    /// usually an SFT checkpoint.
    #[arg(long)]
    pub model: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Tokenizer directory (default: the model directory); for `sft` the one the shards were
    /// packed with.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Continue from the newest checkpoint in OUT (same data and config).
    #[arg(long)]
    pub resume: bool,
    /// cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(clap::Args)]
pub struct SftArgs {
    /// Shard directory (with manifest.json).
    #[arg(long)]
    pub shards: PathBuf,
    /// Train config (YAML; every key has a default: lr, schedule, warmup_ratio, epochs,
    /// max_steps, packs_per_step, packs_per_forward, max_grad_norm, adamw, seed, dtype,
    /// freeze, lr_scale, lora, save_every, keep_last, head_chunk_mib, eval).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub flags: TrainFlags,
}

#[derive(clap::Args)]
pub struct RlArgs {
    /// A curated run directory (from `cotforge run`): prompts, images, references.
    #[arg(long)]
    pub prompts: PathBuf,
    /// RL config (YAML; every key has a default: steps, prompts_per_step, group_size,
    /// temperature, top_p, max_new_tokens, system, reward {accuracy, format, overlong:
    /// keep|filter|penalty, overlong_window}, std_normalize, clip_low, clip_high,
    /// aggregation: token_mean|seq_mean_token_mean|seq_mean_token_sum, beta,
    /// dynamic_sampling, updates_per_batch, pack_length, lr, schedule, warmup_ratio,
    /// max_grad_norm, adamw, seed, dtype, freeze, lr_scale, lora, save_every, keep_last).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Use only the first N prompts of the run.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub flags: TrainFlags,
}

pub fn train(cmd: TrainCommand) -> Result<()> {
    match cmd {
        TrainCommand::Sft(a) => sft(a),
        TrainCommand::Rl(a) => rl(a),
    }
}

fn sft(a: SftArgs) -> Result<()> {
    let SftArgs { shards, config, flags: TrainFlags { model, out, tokenizer, resume, device, quiet } } = a;
    let config = match config {
        Some(p) => crate::train::TrainConfig::load(&p)?,
        None => crate::train::TrainConfig::default(),
    };
    let args =
        crate::train::SftArgs { shards, model, tokenizer, out: out.clone(), config, resume, progress: !quiet, device };
    let s = crate::train::sft::run(&args)?;
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

fn rl(a: RlArgs) -> Result<()> {
    let RlArgs { prompts, config, limit, flags: TrainFlags { model, out, tokenizer, resume, device, quiet } } = a;
    let config = match config {
        Some(p) => crate::train::rl::RlConfig::load(&p)?,
        None => crate::train::rl::RlConfig::default(),
    };
    let args = crate::train::rl::RlArgs {
        prompts,
        model,
        tokenizer,
        out: out.clone(),
        config,
        resume,
        progress: !quiet,
        device,
        limit,
    };
    let s = crate::train::rl::run(&args)?;
    println!(
        "{} steps; last step: reward {:.3}, accuracy {:.3}, response length {:.1}",
        s.steps, s.last.reward, s.last.accuracy, s.last.response_length
    );
    println!("checkpoint: {}\nmetrics: {}", s.checkpoint.display(), out.join("metrics.jsonl").display());
    Ok(())
}

/// The long-CoT claim in miniature: synth the arith task (short and long-CoT answers),
/// curate and pack it, train four arms from one tiny Qwen2.5-VL per seed ((A) SFT on short
/// answers, (B) SFT on long-CoT traces, (C) B then GRPO, (D) A then GRPO), evaluate them on
/// held-out questions with the verifier, and write OUT/results.md and OUT/results.json
/// (OUT/timings.json holds the wall times). Training jobs run as subprocesses, `jobs` at a
/// time with one thread each; a rerun of the same config skips the jobs that finished.
#[derive(clap::Args)]
pub struct ReproMiniArgs {
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Config (YAML; its keys override the recipe's, see pipelines/repro-mini.yaml): seeds,
    /// jobs, data, tokenizer_vocab, template_tokenizer, model, system, pack_length, sft, rl,
    /// eval.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seeds, comma-separated (overrides the config's).
    #[arg(long, value_delimiter = ',')]
    pub seeds: Option<Vec<u64>>,
    /// Jobs at once (overrides the config's; 0: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn repro_mini(a: ReproMiniArgs) -> Result<()> {
    let ReproMiniArgs { out, config, seeds, jobs, quiet } = a;
    let mut config = match config {
        Some(p) => crate::repro::ReproConfig::load(&p)?,
        None => crate::repro::ReproConfig::default(),
    };
    if let Some(s) = seeds {
        config.seeds = s;
    }
    if let Some(j) = jobs {
        config.jobs = j;
    }
    let exe = std::env::current_exe().map_err(|e| Error::Run(format!("locating the cotforge executable: {e}")))?;
    let args = crate::repro::ReproArgs { out: out.clone(), config, exe, progress: !quiet };
    let (results, secs) = crate::repro::run(&args)?;
    print!("{}", crate::repro::markdown(&results));
    println!("\n{:.1} min; {} (results.json, timings.json)", secs / 60.0, out.join("results.md").display());
    Ok(())
}
