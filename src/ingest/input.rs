//! What an input is: its files, format, record layout, column mapping and image root, as a
//! validated spec gives it (see `crate::spec`, which parses and checks it).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

/// Input file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Apache Parquet (as written by HF datasets, pandas, polars).
    Parquet,
    /// One JSON object per line.
    Jsonl,
    /// One JSON array of objects.
    Json,
    /// Arrow IPC, as `datasets.save_to_disk` and the `datasets` cache write (stream format), or
    /// an Arrow IPC file.
    Arrow,
}

/// Record layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Prompt, response and reference in their own columns.
    #[default]
    Columns,
    /// `conversations: [{from: human|gpt|system, value}]`.
    Sharegpt,
    /// `messages: [{role: user|assistant|system, content}]`; content is a string or a list
    /// of `{type: text, text}` / `{type: image}` parts.
    Messages,
}

/// How image values are stored in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageEncoding {
    /// Per value: `{bytes, path}` structs, binary, `data:` URLs, base64 strings of an image
    /// (PNG, JPEG, GIF, WebP, BMP), and other strings as paths.
    #[default]
    Auto,
    /// Strings are file paths (relative to `images_root`).
    Path,
    /// Strings (and binary cells) are base64 text or `data:` URLs.
    Base64,
    /// Cells are the encoded image bytes.
    Bytes,
}

/// Source column names for the canonical fields. Fields left out are absent in the source.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ColumnMap {
    /// Column with the prompt text (layout `columns`).
    pub prompt: Option<String>,
    /// Column with the response, i.e. the reasoning trace and final answer (layout `columns`).
    pub response: Option<String>,
    /// Column with the reference answer, if known.
    pub reference: Option<String>,
    /// Column with the images: HF `{bytes, path}` structs, raw bytes, or paths; one or a list.
    pub images: Option<String>,
    /// Column with a pass rate in [0, 1] computed elsewhere (what the `score` stage would
    /// record; `filter.pass_rate` reads it).
    pub pass_rate: Option<String>,
    /// Column with the ShareGPT turns (layout `sharegpt`; default `conversations`).
    pub conversations: Option<String>,
    /// Column with the chat messages (layout `messages`; default `messages`).
    pub messages: Option<String>,
}

/// A validated input with its files resolved (sorted, so runs are deterministic).
#[derive(Debug, Clone)]
pub struct Input {
    pub files: Vec<PathBuf>,
    pub format: Format,
    pub layout: Layout,
    pub columns: ColumnMap,
    pub images_root: Option<PathBuf>,
    pub image_encoding: ImageEncoding,
    pub source: String,
}

impl Layout {
    /// The name as written in specs.
    pub fn name(&self) -> &'static str {
        match self {
            Layout::Columns => "columns",
            Layout::Sharegpt => "sharegpt",
            Layout::Messages => "messages",
        }
    }
}

impl ColumnMap {
    /// The column holding ShareGPT turns.
    pub fn conversations_col(&self) -> &str {
        self.conversations.as_deref().unwrap_or("conversations")
    }
    /// The column holding chat messages.
    pub fn messages_col(&self) -> &str {
        self.messages.as_deref().unwrap_or("messages")
    }
}
