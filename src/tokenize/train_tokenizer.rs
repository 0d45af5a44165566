//! A small task tokenizer: byte-level BPE trained with the `tokenizers` trainer on the text
//! columns of Parquet files, shaped like a template tokenizer (its normalizer, pre-tokenizer,
//! decoder and post-processor; its added tokens, such as `<|im_start|>` and `<|image_pad|>`,
//! appended after the learned vocabulary; its `tokenizer_config.json` with the chat template).
//! A model with a vocabulary of a few hundred tokens instead of 151,936 trains far faster on
//! CPU, where the output layer dominates the cost of small models.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde_json::Value;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{
    DecoderWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer, TokenizerBuilder,
};

use crate::error::{Context, Error, Result};

/// What `cotforge train-tokenizer` is told.
#[derive(Debug, Clone)]
pub struct TrainTokenizerArgs {
    pub inputs: Vec<PathBuf>,
    pub columns: Vec<String>,
    /// Learned tokens (the 256 byte symbols included), before the template's added tokens.
    pub vocab_size: usize,
    pub min_frequency: u64,
    /// Template tokenizer directory (tokenizer.json, tokenizer_config.json).
    pub like: PathBuf,
    pub out: PathBuf,
}

fn te(what: impl std::fmt::Display) -> impl FnOnce(tokenizers::Error) -> Error {
    move |e| Error::Run(format!("{what}: {e}"))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).ctx(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: not JSON: {e}", path.display())))
}

/// The texts of `columns` in all inputs (string columns; nulls skipped).
fn texts(inputs: &[PathBuf], columns: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in inputs {
        let f = std::fs::File::open(p).ctx(|| format!("opening {}", p.display()))?;
        let df = ParquetReader::new(f)
            .with_columns(Some(columns.to_vec()))
            .finish()
            .map_err(|e| Error::Input(format!("{}: cannot read columns {columns:?}: {e}", p.display())))?;
        for c in columns {
            let col = df.column(c).map_err(|e| Error::Input(format!("{}: {e}", p.display())))?;
            let s = col
                .str()
                .map_err(|_| Error::Input(format!("{}: column `{c}` is {}, not text", p.display(), col.dtype())))?;
            out.extend(s.iter().flatten().map(str::to_string));
        }
    }
    Ok(out)
}

/// Train the tokenizer and write `tokenizer.json` and `tokenizer_config.json` to `out`;
/// returns the full vocabulary size (learned plus added tokens).
pub fn train_tokenizer(args: &TrainTokenizerArgs) -> Result<usize> {
    let like_path = args.like.join("tokenizer.json");
    let like = Tokenizer::from_file(&like_path).map_err(te(like_path.display()))?;
    let like_json = read_json(&like_path)?;
    let corpus = texts(&args.inputs, &args.columns)?;
    if corpus.is_empty() {
        return Err(Error::Input(format!("no text in columns {:?} of {:?}", args.columns, args.inputs)));
    }
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(args.vocab_size)
        .min_frequency(args.min_frequency)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tok =
        TokenizerBuilder::<BPE, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>::new()
            .with_model(BPE::default())
            .with_normalizer(like.get_normalizer().cloned())
            .with_pre_tokenizer(like.get_pre_tokenizer().cloned())
            .with_decoder(like.get_decoder().cloned())
            .build()
            .map_err(te("building the tokenizer"))?;
    tok.train(&mut trainer, corpus.iter()).map_err(te("training BPE"))?;
    let learned = tok.get_vocab_size(false);
    let mut json: Value = serde_json::from_str(&tok.to_string(false).map_err(te("serialising"))?)
        .map_err(|e| Error::Run(e.to_string()))?;
    // the template's added tokens, renumbered after the learned vocabulary
    let mut renumber = std::collections::BTreeMap::new();
    let mut added = Vec::new();
    for (i, t) in like_json["added_tokens"].as_array().cloned().unwrap_or_default().into_iter().enumerate() {
        let mut t = t;
        let new_id = learned + i;
        renumber.insert(t["id"].as_u64().unwrap_or_default().to_string(), new_id);
        t["id"] = new_id.into();
        added.push(t);
    }
    json["added_tokens"] = Value::Array(added);
    json["post_processor"] = like_json["post_processor"].clone();
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Run(e.to_string()))?;
    let check = Tokenizer::from_bytes(text.as_bytes()).map_err(te("the trained tokenizer"))?;
    std::fs::create_dir_all(&args.out).ctx(|| format!("creating {}", args.out.display()))?;
    crate::io::atomic_write(&args.out.join("tokenizer.json"), text.as_bytes(), 0)?;
    let mut cfg = read_json(&args.like.join("tokenizer_config.json"))?;
    if let Some(dec) = cfg.get_mut("added_tokens_decoder").and_then(|d| d.as_object_mut()) {
        let renamed: serde_json::Map<String, Value> = dec
            .iter()
            .map(|(k, v)| (renumber.get(k).map(|n| n.to_string()).unwrap_or_else(|| k.clone()), v.clone()))
            .collect();
        *dec = renamed;
    }
    let cfg_text = serde_json::to_string_pretty(&cfg).map_err(|e| Error::Run(e.to_string()))?;
    crate::io::atomic_write(&args.out.join("tokenizer_config.json"), cfg_text.as_bytes(), 0)?;
    Ok(check.get_vocab_size(true))
}

/// Fit a model `config.json` value to a tokenizer directory: vocabulary size (rounded up to a
/// multiple of 64) and the ids of the special tokens a Qwen-family model names.
pub fn fit_config(config: &mut Value, tokenizer_dir: &Path) -> Result<()> {
    let path = tokenizer_dir.join("tokenizer.json");
    let tok = Tokenizer::from_file(&path).map_err(te(path.display()))?;
    let vocab = tok.get_vocab_size(true).div_ceil(64) * 64;
    let id = |t: &str| tok.token_to_id(t);
    let set = |v: &mut Value| {
        v["vocab_size"] = vocab.into();
        for (key, token) in [
            ("bos_token_id", "<|endoftext|>"),
            ("eos_token_id", "<|im_end|>"),
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ] {
            if v.get(key).is_some() {
                let i =
                    id(token).ok_or_else(|| Error::Input(format!("{}: no token {token} for {key}", path.display())))?;
                v[key] = i.into();
            }
        }
        Ok::<(), Error>(())
    };
    set(config)?;
    if let Some(text) = config.get_mut("text_config") {
        set(text)?;
    }
    Ok(())
}
