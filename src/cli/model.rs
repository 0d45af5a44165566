//! Model commands: `init-model`, `eval`, `train-tokenizer` and `logits`.

use std::path::PathBuf;

use crate::error::Result;

/// Write a freshly initialised model directory (config.json, model.safetensors, tokenizer
/// files) that cotforge and `transformers` load: for training small models from scratch,
/// tests and benchmarks.
#[derive(clap::Args)]
pub struct InitModelArgs {
    /// A named config (tiny, small, qwen2-tiny, qwen2-small, qwen2.5-vl-tiny) or a
    /// config.json file.
    #[arg(long)]
    pub config: String,
    /// Tokenizer directory whose files are copied in (tokenizer.json, tokenizer_config.json, ...).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Set the config's vocabulary size and special token ids from --tokenizer (for a task
    /// tokenizer from `cotforge train-tokenizer`).
    #[arg(long, requires = "tokenizer")]
    pub fit_tokenizer: bool,
}

pub fn init_model(a: InitModelArgs) -> Result<()> {
    let InitModelArgs { config, tokenizer, out, seed, fit_tokenizer } = a;
    let mut value = if std::path::Path::new(&config).is_file() {
        let text = std::fs::read_to_string(&config).map_err(|e| crate::Error::io(format!("reading {config}"), e))?;
        serde_json::from_str(&text).map_err(|e| crate::Error::Input(format!("{config}: not JSON: {e}")))?
    } else {
        crate::model::init::preset(&config)?
    };
    if let (true, Some(dir)) = (fit_tokenizer, tokenizer.as_deref()) {
        crate::tokenize::train_tokenizer::fit_config(&mut value, dir)?;
    }
    let m = crate::model::init::write_random(&out, &value, tokenizer.as_deref(), seed)?;
    let params: usize = m.vars.values().map(|v| v.as_tensor().elem_count()).sum();
    println!("{} parameters -> {}", params, out.display());
    Ok(())
}

/// Generation accuracy of a model on the prompts of a curated run: greedy continuations
/// (KV cache, batched) checked against the references by the verifier. Prints a summary
/// line (JSON) and writes every continuation with its verdict to --out (JSONL).
#[derive(clap::Args)]
pub struct EvalArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Curated run directory (from `cotforge run`) whose traces have references.
    #[arg(long)]
    pub prompts: PathBuf,
    /// Per-prompt results (JSONL).
    #[arg(long)]
    pub out: PathBuf,
    /// Tokenizer directory (default: the model directory).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// System prompt for traces without one.
    #[arg(long)]
    pub system: Option<String>,
    /// Shards the model was trained on: the system prompt they were rendered with is used
    /// unless --system is given.
    #[arg(long)]
    pub shards: Option<PathBuf>,
    /// At most this many prompts (the first ones).
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 1024)]
    pub max_new_tokens: usize,
    /// Prompts decoded together.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn eval(a: EvalArgs) -> Result<()> {
    let EvalArgs { model, prompts, out, tokenizer, system, shards, limit, max_new_tokens, batch, device } = a;
    let args = crate::train::eval::EvalArgs {
        model,
        prompts,
        tokenizer,
        system,
        shards,
        limit,
        max_new_tokens,
        batch,
        device,
    };
    let r = crate::train::eval::evaluate(&args)?;
    crate::io::atomic_write(&out, r.results_jsonl().as_bytes(), 0)?;
    let summary = serde_json::json!({"prompts": r.prompts, "correct": r.correct, "accuracy": r.accuracy, "truncated": r.truncated, "mean_new_tokens": r.mean_new_tokens});
    println!("{summary}");
    Ok(())
}

/// Train a small byte-level BPE tokenizer on text columns of Parquet files, shaped like a
/// template tokenizer (pre-tokenizer, special tokens, chat template): writes
/// OUT/tokenizer.json and OUT/tokenizer_config.json.
#[derive(clap::Args)]
pub struct TrainTokenizerArgs {
    /// Parquet files with the texts.
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Text columns to learn from (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "problem,answer")]
    pub columns: Vec<String>,
    /// Learned tokens, the 256 byte symbols included (the template's special tokens follow).
    #[arg(long, default_value_t = 512)]
    pub vocab_size: usize,
    /// Merges need pairs seen at least this often.
    #[arg(long, default_value_t = 2)]
    pub min_frequency: u64,
    /// Template tokenizer directory.
    #[arg(long)]
    pub like: PathBuf,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn train_tokenizer(a: TrainTokenizerArgs) -> Result<()> {
    let TrainTokenizerArgs { input, columns, vocab_size, min_frequency, like, out } = a;
    let args = crate::tokenize::train_tokenizer::TrainTokenizerArgs {
        inputs: input,
        columns,
        vocab_size,
        min_frequency,
        like,
        out: out.clone(),
    };
    let n = crate::tokenize::train_tokenizer::train_tokenizer(&args)?;
    println!("{n} tokens -> {}", out.display());
    Ok(())
}

/// Logits of a model on token ids (and images) written to a safetensors file: for checking
/// a model or checkpoint against another implementation.
#[derive(clap::Args)]
pub struct LogitsArgs {
    /// Model directory (config.json and safetensors).
    #[arg(long)]
    pub model: PathBuf,
    /// Comma-separated token ids; each image's pad tokens must be there in full.
    #[arg(long)]
    pub ids: String,
    /// Images in order (each is resized with the Qwen2-VL processor's smart_resize).
    #[arg(long)]
    pub image: Vec<PathBuf>,
    #[arg(long, default_value_t = 56 * 56)]
    pub min_pixels: u64,
    #[arg(long, default_value_t = 28 * 28 * 1280)]
    pub max_pixels: u64,
    /// Output safetensors file with `logits` (L, vocab) in f32.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn logits(a: LogitsArgs) -> Result<()> {
    let LogitsArgs { model, ids, image, min_pixels, max_pixels, out } = a;
    let ids: Vec<u32> = ids
        .split(',')
        .map(|t| t.trim().parse().map_err(|_| crate::Error::Spec(format!("--ids: `{t}` is not a token id"))))
        .collect::<Result<_>>()?;
    let req = crate::model::logits::LogitsRequest { model: &model, ids: &ids, images: &image, min_pixels, max_pixels };
    let n_images = crate::model::logits::write_logits(&req, &out)?;
    println!("{} tokens, {n_images} images -> {}", ids.len(), out.display());
    Ok(())
}
