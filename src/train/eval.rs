//! Generation accuracy on a prompt set: the prompts of a curated run (its `curated/` traces and
//! `images/` store) are rendered with the chat template up to the assistant header, continued
//! greedily by the model with the KV cache (in batches), and the continuations' final answers
//! are compared with the traces' references by the verifier.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::{CausalLm, GenerateOptions, Prompt};
use crate::tokenize::encode::{ChatEncoder, EncodeOptions};

/// One prompt ready to generate from.
pub struct EvalPrompt {
    pub id: String,
    pub prompt: Prompt,
    pub reference: String,
    /// The prompt's encoded image files, in order (for training on the prompt, as GRPO does).
    pub images: Vec<Vec<u8>>,
}

/// The curated traces of a run directory, in order.
pub fn curated_traces(run: &Path) -> Result<Vec<crate::schema::Trace>> {
    let mut traces = Vec::new();
    crate::io::PartReader::open(&run.join("curated"))?.for_each_batch(4096, |df| {
        traces.extend(crate::schema::traces_from_df(&df)?);
        Ok(())
    })?;
    Ok(traces)
}

/// Read up to `limit` prompts with references from a run directory, encoded with the chat
/// template of `tokenizer` and `system` as the system prompt where a trace has none. Returns
/// them with the tokenizer (to decode the continuations).
pub fn load_prompts(
    run: &Path,
    tokenizer: &Path,
    system: Option<String>,
    model: &CausalLm,
    limit: Option<usize>,
) -> Result<(Vec<EvalPrompt>, tokenizers::Tokenizer)> {
    let enc = ChatEncoder::from_dir(tokenizer, EncodeOptions { system, ..EncodeOptions::default() })?;
    let store = crate::store::ImageStore::open(&run.join("images"))?;
    let mut out = Vec::new();
    for t in curated_traces(run)?.into_iter().filter(|t| t.reference.is_some()).take(limit.unwrap_or(usize::MAX)) {
        let images = t.images.iter().map(|im| store.get(&im.id)).collect::<Result<Vec<_>>>()?;
        let prompt = crate::rollout::trace_prompt(&enc, model, &t, &images)?
            .map_err(|r| Error::Input(format!("{}: trace {}: {}: {}", run.display(), t.id, r.reason, r.detail)))?;
        out.push(EvalPrompt { id: t.id.clone(), prompt, reference: t.reference.clone().unwrap_or_default(), images });
    }
    Ok((out, enc.tokenizer))
}

/// What an evaluation found.
#[derive(Debug, Clone, Serialize)]
pub struct GenReport {
    pub prompts: usize,
    pub correct: usize,
    pub accuracy: f64,
    /// Continuations that hit `max_new_tokens` without a stop token.
    pub truncated: usize,
    pub mean_new_tokens: f64,
    /// Per prompt, in order.
    pub results: Vec<GenResult>,
}

impl GenReport {
    /// The per-prompt results, a JSON line each.
    pub fn results_jsonl(&self) -> String {
        self.results.iter().map(|x| format!("{}\n", serde_json::json!(x))).collect()
    }
}

/// One prompt's continuation and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct GenResult {
    pub id: String,
    pub reference: String,
    /// The final answer found in the continuation.
    pub extracted: Option<String>,
    pub correct: bool,
    pub new_tokens: usize,
    pub truncated: bool,
    pub text: String,
}

/// Greedy continuations of the prompts, `batch` at a time, stopped at the tokenizer's end of
/// turn, verified against the references.
pub fn accuracy(
    model: &CausalLm,
    tokenizer: &tokenizers::Tokenizer,
    prompts: &[EvalPrompt],
    max_new_tokens: usize,
    batch: usize,
) -> Result<GenReport> {
    let stop = crate::tokenize::stop_tokens(tokenizer);
    let opts = GenerateOptions { max_new_tokens, stop: stop.clone(), ..GenerateOptions::default() };
    let mut report = GenReport {
        prompts: prompts.len(),
        correct: 0,
        accuracy: 0.0,
        truncated: 0,
        mean_new_tokens: 0.0,
        results: Vec::new(),
    };
    let mut total_new = 0usize;
    for chunk in prompts.chunks(batch.max(1)) {
        let ps: Vec<Prompt> = chunk.iter().map(|p| p.prompt.clone()).collect();
        let outs = model.generate(&ps, &opts)?;
        for (p, out) in chunk.iter().zip(outs) {
            total_new += out.len();
            let a = crate::rollout::judge(tokenizer, &stop, &p.reference, &out)?;
            report.truncated += a.truncated as usize;
            report.correct += a.correct as usize;
            report.results.push(GenResult {
                id: p.id.clone(),
                reference: p.reference.clone(),
                extracted: a.extracted,
                correct: a.correct,
                new_tokens: out.len(),
                truncated: a.truncated,
                text: a.text,
            });
        }
    }
    report.accuracy = if prompts.is_empty() { 0.0 } else { report.correct as f64 / prompts.len() as f64 };
    report.mean_new_tokens = if prompts.is_empty() { 0.0 } else { total_new as f64 / prompts.len() as f64 };
    Ok(report)
}

/// What `cotforge eval` is told.
#[derive(Debug, Clone)]
pub struct EvalArgs {
    pub model: PathBuf,
    /// A curated run directory with the prompts and references.
    pub prompts: PathBuf,
    /// Tokenizer directory (default: the model directory).
    pub tokenizer: Option<PathBuf>,
    pub system: Option<String>,
    /// Shards the model was trained on: their manifest's system prompt when `system` is None.
    pub shards: Option<PathBuf>,
    pub limit: Option<usize>,
    pub max_new_tokens: usize,
    pub batch: usize,
    pub device: String,
}

/// Load a model and measure its generation accuracy on a run's prompts.
pub fn evaluate(args: &EvalArgs) -> Result<GenReport> {
    let device = crate::model::device(&args.device)?;
    let tok_dir = args.tokenizer.clone().unwrap_or_else(|| args.model.clone());
    let system = match (&args.system, &args.shards) {
        (Some(s), _) => Some(s.clone()),
        (None, Some(dir)) => crate::shards::ShardSet::open(dir, &tok_dir)?.manifest.system.clone(),
        (None, None) => None,
    };
    let model = CausalLm::load(&args.model, candle_core::DType::F32, &device)?;
    let (prompts, tokenizer) = load_prompts(&args.prompts, &tok_dir, system, &model, args.limit)?;
    accuracy(&model, &tokenizer, &prompts, args.max_new_tokens, args.batch)
}

/// Settings of a generation evaluation (in `eval:` of train.yaml).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenEvalConfig {
    /// A run directory (from `cotforge run`) whose curated traces have references.
    pub run: PathBuf,
    /// At most this many prompts (the first ones).
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default = "default_new_tokens")]
    pub max_new_tokens: usize,
    /// System prompt for traces without one (default: the one the shards were tokenized
    /// with, from their manifest).
    #[serde(default)]
    pub system: Option<String>,
    /// Prompts decoded together.
    #[serde(default = "default_batch")]
    pub batch: usize,
}

fn default_new_tokens() -> usize {
    1024
}
fn default_batch() -> usize {
    8
}
