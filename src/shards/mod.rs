//! Packed training shards: the best-fit-decreasing packer ([`bfd`]), the writer the `pack`
//! stage ends with, the reader the trainer uses, `cotforge inspect` of a shard directory, and
//! [`Manifest::read`], the one reader of `manifest.json`.
//!
//! ```text
//! DIR/shards/manifest.json          schema version, tokenizer and template sha256, max length,
//!                                   counts, fill, per-file sha256, spec hash
//! DIR/shards/shard-00000.parquet    one row per pack (columns: [`SHARD_COLUMNS`])
//! ```
//! Packs hold whole samples, longest first as best-fit-decreasing placed them, and are not
//! padded: a pack has `num_tokens <= max_length` tokens. Row groups of `row_group_packs` packs
//! are the unit of random access.

pub mod bfd;
mod reader;
mod writer;

pub use reader::{Loader, Pack, ShardSet, inspect};
pub use writer::write_shards;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::stages::tokenize::LossOn;

/// Version of the shard columns and manifest; bump on any change to them.
pub const SHARD_SCHEMA_VERSION: u32 = 1;
/// The manifest's `format` value.
pub const SHARD_FORMAT: &str = "cotforge.packed-shards";

/// Shard columns, in file order, with their types as written.
pub const SHARD_COLUMNS: &[(&str, &str, &str)] = &[
    ("pack_index", "u64", "0-based index of the pack in the shard directory (over all files)"),
    ("num_tokens", "u32", "tokens in the pack (at most max_length; packs are not padded)"),
    ("num_loss_tokens", "u32", "tokens with loss_mask true"),
    ("input_ids", "list<u32>", "token ids of the segments, one after another; images expanded to their pad tokens"),
    (
        "loss_mask",
        "list<bool>",
        "per token: whether the loss is computed on it (assistant turns, or all tokens with `loss: all`)",
    ),
    ("segment_lengths", "list<u32>", "tokens per segment (sample), in order; they sum to num_tokens"),
    ("sample_ids", "list<string>", "trace id of each segment"),
    (
        "images",
        "list<struct{bytes: binary, path: string}>",
        "the images of the segments in token order, in the Hugging Face `datasets` Image layout",
    ),
    (
        "image_grid_thw",
        "list<fixed_size_list<u32, 3>>",
        "patch grid (t, h, w) of each image, in 14-pixel patches; an image has t*h*w/4 pad tokens",
    ),
];

/// One shard file in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardFile {
    /// File name inside the shard directory.
    pub path: String,
    pub sha256: String,
    pub bytes: u64,
    pub packs: u64,
    pub row_groups: u64,
    /// `pack_index` of the file's first pack.
    pub first_pack: u64,
}

/// `manifest.json` of a shard directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub schema_version: u32,
    /// Tokens per pack at most.
    pub max_length: u32,
    pub max_segments: Option<usize>,
    /// Which tokens carry loss.
    pub loss: LossOn,
    /// The tokenizer directory as the spec named it, and the hashes the reader checks.
    pub tokenizer: String,
    pub tokenizer_sha256: String,
    pub template_sha256: String,
    pub image_token: String,
    /// The tokenize stage's system prompt for traces without one (what generation prompts
    /// for evaluation need to match training).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub min_pixels: u64,
    pub max_pixels: u64,
    /// blake3 of the pipeline spec that made the shards.
    pub spec_blake3: String,
    pub packs: u64,
    pub samples: u64,
    pub tokens: u64,
    pub loss_tokens: u64,
    pub images: u64,
    /// tokens / (packs * max_length).
    pub fill: f64,
    pub row_group_packs: usize,
    pub files: Vec<ShardFile>,
}

impl Manifest {
    /// Read `DIR/manifest.json`, checking its format and version: the one reader of shard
    /// manifests.
    pub fn read(dir: &Path) -> Result<Self> {
        Ok(Self::read_with_sha256(dir)?.0)
    }

    /// [`Manifest::read`], with the sha256 of the bytes read.
    pub fn read_with_sha256(dir: &Path) -> Result<(Self, String)> {
        let path = dir.join("manifest.json");
        let bytes = std::fs::read(&path)
            .ctx(|| format!("reading {} (is {} a shard directory?)", path.display(), dir.display()))?;
        let m: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Input(format!("{}: not a cotforge shard manifest: {e}", path.display())))?;
        if m.format != SHARD_FORMAT || m.schema_version != SHARD_SCHEMA_VERSION {
            return Err(Error::Input(format!(
                "{}: format {} version {}; this cotforge reads {SHARD_FORMAT} version {SHARD_SCHEMA_VERSION}",
                path.display(),
                m.format,
                m.schema_version
            )));
        }
        Ok((m, crate::tokenize::encode::sha256_hex(&bytes)))
    }

    /// [`Manifest::read`] where `DIR/manifest.json` may be absent (a run without `pack`).
    pub fn read_if_present(dir: &Path) -> Result<Option<Self>> {
        if dir.join("manifest.json").exists() { Self::read(dir).map(Some) } else { Ok(None) }
    }
}

/// Machine-readable description of the shard columns and manifest (`schemas/shard.schema.json`).
pub fn schema_json() -> String {
    let col = |(n, t, d): &(&str, &str, &str)| serde_json::json!({"name": n, "type": t, "description": d});
    let manifest = serde_json::json!({
        "format": format!("always \"{SHARD_FORMAT}\""),
        "schema_version": "this version",
        "max_length": "tokens per pack at most",
        "max_segments": "samples per pack at most (null: no limit)",
        "loss": "`assistant` or `all`: which tokens loss_mask marks",
        "tokenizer": "the tokenizer directory the spec named",
        "tokenizer_sha256": "sha256 of its tokenizer.json; readers refuse another tokenizer",
        "template_sha256": "sha256 of the chat template source; readers refuse another template",
        "image_token": "the pad token images were expanded to",
        "system": "the tokenize stage's system prompt for traces without one (absent: none)",
        "min_pixels": "Qwen2-VL image policy lower bound",
        "max_pixels": "Qwen2-VL image policy upper bound",
        "spec_blake3": "blake3 of the pipeline spec",
        "packs": "packs in all files", "samples": "segments in all packs", "tokens": "tokens in all packs",
        "loss_tokens": "tokens with loss", "images": "images in all packs",
        "fill": "tokens / (packs * max_length)",
        "row_group_packs": "packs per Parquet row group",
        "files": "per file: path, sha256, bytes, packs, row_groups, first_pack",
    });
    let v = serde_json::json!({
        "title": "cotforge packed shards",
        "version": SHARD_SCHEMA_VERSION,
        "columns": SHARD_COLUMNS.iter().map(col).collect::<Vec<_>>(),
        "manifest": manifest,
    });
    let mut s = serde_json::to_string_pretty(&v).expect("json");
    s.push('\n');
    s
}
