//! The canonical trace record, the ledger record, and their Parquet columns.
//!
//! Every stage reads and writes [`Trace`]s; on disk they are Parquet files with the columns of
//! [`TRACE_COLUMNS`] (see `schemas/trace.schema.json`). Curated output adds the HF-datasets image
//! column `images: list<struct{bytes: binary, path: string}>`, which notebooks decode directly.

use polars::prelude::*;

use crate::error::{Context, Error, Result};

/// Version of the canonical trace columns; bump on any change to them.
pub const TRACE_SCHEMA_VERSION: u32 = 3;
/// Version of the ledger columns.
pub const LEDGER_SCHEMA_VERSION: u32 = 1;

/// Canonical trace columns, in file order, with their types as written.
pub const TRACE_COLUMNS: &[(&str, &str, &str)] = &[
    ("id", "string", "stable id: 32 hex chars of blake3 over source and content; repeats get -2, -3, ..."),
    ("source", "string", "the input's `source` name"),
    ("origin", "string", "input file and 0-based record number, `file#row`"),
    ("system", "string?", "system message, if the source has one"),
    ("prompt", "string", "user prompt; `<image>` marks where images go"),
    ("response", "string", "assistant response: reasoning trace and final answer"),
    ("reference", "string?", "reference answer, if known"),
    (
        "image_ids",
        "list<string>",
        "blake3 content ids (32 hex) into the image store; empty string if the file was missing",
    ),
    ("image_paths", "list<string>", "the path or file name the source gave for each image (empty if none)"),
    ("image_widths", "list<u32>", "width in pixels read at ingest (0 if unreadable)"),
    ("image_heights", "list<u32>", "height in pixels read at ingest (0 if unreadable)"),
    ("num_tokens", "u32?", "set by `tokenize`: tokens of the rendered conversation, image tokens included"),
    (
        "input_ids",
        "list<u32>?",
        "set by `tokenize`: token ids, each image expanded to its <|image_pad|> tokens (not in curated output)",
    ),
    (
        "assistant_spans",
        "list<u32>?",
        "set by `tokenize`: token ranges of the assistant turns as flat [start, end) pairs (not in curated output)",
    ),
    ("image_grid_thw", "list<u32>?", "set by `tokenize`: each image's patch grid as flat (t, h, w) triples"),
    ("bucket", "string?", "set by `bucket`: the token-length bucket, e.g. `2048-4096`"),
    (
        "pass_rate",
        "f64?",
        "set by `score` (or read from the input's mapped `pass_rate` column): share of a model's sampled answers the verifier accepted",
    ),
];

/// Ledger columns, in file order.
pub const LEDGER_COLUMNS: &[(&str, &str, &str)] = &[
    ("id", "string?", "trace id (null when the record could not be parsed into a trace)"),
    ("source", "string", "the input's `source` name"),
    ("origin", "string", "input file and record number, `file#row`"),
    (
        "stage",
        "string",
        "stage that dropped the row, as named in the spec (`ingest` for records that could not be read)",
    ),
    ("reason", "string", "machine-readable reason, e.g. `corrupt_image`, `duplicate`"),
    ("detail", "string", "human-readable detail"),
    ("kept_id", "string?", "for duplicates: the id of the row that was kept"),
];

/// One image of a trace, as carried between stages (bytes stay in the image store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Content id in the image store; empty when the source file was missing.
    pub id: String,
    /// Path or file name given by the source.
    pub path: String,
    pub width: u32,
    pub height: u32,
}

/// The canonical trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub id: String,
    pub source: String,
    pub origin: String,
    pub system: Option<String>,
    pub prompt: String,
    pub response: String,
    pub reference: Option<String>,
    pub images: Vec<ImageRef>,
    /// Set by the `tokenize` stage.
    pub tokens: Option<Tokens>,
    /// Length of `tokens` (kept apart so projected reads get it without the ids).
    pub num_tokens: Option<u32>,
    /// Set by the `bucket` stage.
    pub bucket: Option<String>,
    /// Set by the `score` stage, or mapped from the input.
    pub pass_rate: Option<f64>,
}

/// A trace rendered with the chat template and tokenized.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tokens {
    /// Token ids, images expanded to their pad tokens.
    pub ids: Vec<u32>,
    /// Assistant turns as `[start, end)` token ranges, in order.
    pub assistant: Vec<(u32, u32)>,
    /// Patch grid `(t, h, w)` of each image.
    pub grids: Vec<[u32; 3]>,
}

impl Tokens {
    /// Tokens inside assistant spans.
    pub fn assistant_tokens(&self) -> u64 {
        self.assistant.iter().map(|&(a, b)| (b - a) as u64).sum()
    }
}

/// A dropped row, as written to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub id: Option<String>,
    pub source: String,
    pub origin: String,
    pub stage: String,
    pub reason: String,
    pub detail: String,
    pub kept_id: Option<String>,
}

fn str_col(name: &str, vals: impl Iterator<Item = Option<String>>) -> Column {
    let ca: StringChunked = vals.collect();
    ca.with_name(name.into()).into_series().into()
}

fn list_col<T, F>(name: &str, rows: &[T], dtype: DataType, f: F) -> Result<Column>
where
    F: Fn(&T) -> Series,
{
    let ca: ListChunked = rows.iter().map(|r| Some(f(r))).collect();
    let s = ca.with_name(name.into()).into_series();
    let s = s.cast(&DataType::List(Box::new(dtype))).ctx(|| format!("building column {name}"))?;
    Ok(s.into())
}

/// Canonical trace columns for a batch.
pub fn trace_columns(traces: &[Trace]) -> Result<Vec<Column>> {
    let s = |f: fn(&Trace) -> Option<String>| traces.iter().map(f);
    Ok(vec![
        str_col("id", s(|t| Some(t.id.clone()))),
        str_col("source", s(|t| Some(t.source.clone()))),
        str_col("origin", s(|t| Some(t.origin.clone()))),
        str_col("system", s(|t| t.system.clone())),
        str_col("prompt", s(|t| Some(t.prompt.clone()))),
        str_col("response", s(|t| Some(t.response.clone()))),
        str_col("reference", s(|t| t.reference.clone())),
        list_col("image_ids", traces, DataType::String, |t| {
            Series::new("".into(), t.images.iter().map(|i| i.id.as_str()).collect::<Vec<_>>())
        })?,
        list_col("image_paths", traces, DataType::String, |t| {
            Series::new("".into(), t.images.iter().map(|i| i.path.as_str()).collect::<Vec<_>>())
        })?,
        list_col("image_widths", traces, DataType::UInt32, |t| {
            Series::new("".into(), t.images.iter().map(|i| i.width).collect::<Vec<u32>>())
        })?,
        list_col("image_heights", traces, DataType::UInt32, |t| {
            Series::new("".into(), t.images.iter().map(|i| i.height).collect::<Vec<u32>>())
        })?,
        {
            let ca: UInt32Chunked = traces.iter().map(|t| t.num_tokens).collect();
            ca.with_name("num_tokens".into()).into_series().into()
        },
        u32_list_col("input_ids", traces, |k, out| out.extend_from_slice(&k.ids)),
        u32_list_col("assistant_spans", traces, |k, out| out.extend(k.assistant.iter().flat_map(|&(a, b)| [a, b]))),
        u32_list_col("image_grid_thw", traces, |k, out| out.extend(k.grids.iter().flatten())),
        str_col("bucket", s(|t| t.bucket.clone())),
        {
            let ca: Float64Chunked = traces.iter().map(|t| t.pass_rate).collect();
            ca.with_name("pass_rate".into()).into_series().into()
        },
    ])
}

/// Columns of trace batches that curated output leaves out (token-level data for packing).
pub const NOT_CURATED: &[&str] = &["input_ids", "assistant_spans"];

/// A nullable `list<u32>` column from the traces' tokens (null where a trace has none).
fn u32_list_col(name: &str, traces: &[Trace], f: impl Fn(&Tokens, &mut Vec<u32>)) -> Column {
    let values: usize = traces.iter().filter_map(|t| t.tokens.as_ref()).map(|k| k.ids.len()).sum();
    let mut b = ListPrimitiveChunkedBuilder::<UInt32Type>::new(name.into(), traces.len(), values, DataType::UInt32);
    let mut buf = Vec::new();
    for t in traces {
        match &t.tokens {
            Some(k) => {
                buf.clear();
                f(k, &mut buf);
                b.append_slice(&buf);
            }
            None => b.append_null(),
        }
    }
    b.finish().into_series().into()
}

/// The rows of a nullable `list<u32>` column, read straight from its Arrow chunks.
fn u32_lists(ca: &ListChunked, name: &str) -> Result<Vec<Option<Vec<u32>>>> {
    use polars_arrow::array::{Array, PrimitiveArray};
    let mut out = Vec::with_capacity(ca.len());
    for arr in ca.downcast_iter() {
        let values = arr.values().as_any().downcast_ref::<PrimitiveArray<u32>>().ok_or_else(|| {
            Error::Run(format!("trace batch column `{name}`: expected list<u32>, found {:?}", arr.dtype()))
        })?;
        let offsets = arr.offsets();
        for i in 0..arr.len() {
            if arr.is_null(i) {
                out.push(None);
            } else {
                let (a, b) = offsets.start_end(i);
                out.push(Some(values.values()[a..b].to_vec()));
            }
        }
    }
    Ok(out)
}

/// A DataFrame of canonical traces.
pub fn traces_to_df(traces: &[Trace]) -> Result<DataFrame> {
    DataFrame::new_infer_height(trace_columns(traces)?).ctx(|| "building trace batch")
}

/// The HF-datasets image column: `list<struct{bytes: binary, path: string}>`.
/// `images[row][k]` is `(bytes, path)`; `None` bytes become nulls (missing files).
/// Per row, each image as (bytes, path): the rows of an HF `{bytes, path}` images column.
pub type HfImages = Vec<Vec<(Option<Vec<u8>>, Option<String>)>>;

pub fn hf_images_column(name: &str, images: &HfImages) -> Result<Column> {
    let struct_dtype = DataType::Struct(vec![
        Field::new("bytes".into(), DataType::Binary),
        Field::new("path".into(), DataType::String),
    ]);
    let list: ListChunked = images
        .iter()
        .map(|row| {
            let bytes: BinaryChunked = row.iter().map(|(b, _)| b.as_deref()).collect();
            let paths: StringChunked = row.iter().map(|(_, p)| p.as_deref()).collect();
            let fields = [bytes.with_name("bytes".into()).into_series(), paths.with_name("path".into()).into_series()];
            StructChunked::from_series("".into(), row.len(), fields.iter())
                .map(|s| Some(s.into_series()))
                .unwrap_or(None)
        })
        .collect();
    let s = list
        .with_name(name.into())
        .into_series()
        .cast(&DataType::List(Box::new(struct_dtype)))
        .ctx(|| format!("building column {name}"))?;
    Ok(s.into())
}

/// A DataFrame of ledger entries.
pub fn ledger_to_df(entries: &[LedgerEntry]) -> Result<DataFrame> {
    let s = |f: fn(&LedgerEntry) -> Option<String>| entries.iter().map(f);
    DataFrame::new_infer_height(vec![
        str_col("id", s(|e| e.id.clone())),
        str_col("source", s(|e| Some(e.source.clone()))),
        str_col("origin", s(|e| Some(e.origin.clone()))),
        str_col("stage", s(|e| Some(e.stage.clone()))),
        str_col("reason", s(|e| Some(e.reason.clone()))),
        str_col("detail", s(|e| Some(e.detail.clone()))),
        str_col("kept_id", s(|e| e.kept_id.clone())),
    ])
    .ctx(|| "building ledger batch")
}

fn get_str<'a>(df: &'a DataFrame, name: &str) -> Result<&'a StringChunked> {
    df.column(name).and_then(|c| c.str()).map_err(|e| Error::Run(format!("trace batch column `{name}`: {e}")))
}

fn get_list<'a>(df: &'a DataFrame, name: &str) -> Result<&'a ListChunked> {
    df.column(name).and_then(|c| c.list()).map_err(|e| Error::Run(format!("trace batch column `{name}`: {e}")))
}

fn list_values<T>(
    ca: &ListChunked,
    n: usize,
    mut f: impl FnMut(&Series) -> PolarsResult<Vec<T>>,
) -> Result<Vec<Vec<T>>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(match ca.get_as_series(i) {
            Some(s) => f(&s).map_err(|e| Error::Run(format!("reading list column: {e}")))?,
            None => Vec::new(),
        });
    }
    Ok(out)
}

/// Read canonical traces back from a DataFrame with the trace columns.
pub fn traces_from_df(df: &DataFrame) -> Result<Vec<Trace>> {
    traces_from(df, false)
}

/// Read traces from a DataFrame with some of the trace columns (a projected read): the
/// fields of missing columns are empty.
pub fn traces_from_partial_df(df: &DataFrame) -> Result<Vec<Trace>> {
    traces_from(df, true)
}

fn traces_from(df: &DataFrame, partial: bool) -> Result<Vec<Trace>> {
    let n = df.height();
    let empty_str = StringChunked::full_null(PlSmallStr::EMPTY, n);
    let empty_list = ListChunked::full_null_with_dtype(PlSmallStr::EMPTY, n, &DataType::String);
    let get_str = |name: &str| -> Result<&StringChunked> {
        if partial && df.column(name).is_err() { Ok(&empty_str) } else { get_str(df, name) }
    };
    let get_list = |name: &str| -> Result<&ListChunked> {
        if partial && df.column(name).is_err() { Ok(&empty_list) } else { get_list(df, name) }
    };
    let (id, source, origin) = (get_str("id")?, get_str("source")?, get_str("origin")?);
    let (system, prompt) = (get_str("system")?, get_str("prompt")?);
    let (response, reference) = (get_str("response")?, get_str("reference")?);
    let strs = |s: &Series| -> PolarsResult<Vec<String>> {
        Ok(s.str()?.iter().map(|v| v.unwrap_or("").to_string()).collect())
    };
    let u32s = |s: &Series| -> PolarsResult<Vec<u32>> { Ok(s.u32()?.iter().map(|v| v.unwrap_or(0)).collect()) };
    let ids = list_values(get_list("image_ids")?, n, strs)?;
    // token columns: absent in a projected read, null before `tokenize`
    let tok_list = |name: &str| -> Result<Vec<Option<Vec<u32>>>> {
        match df.column(name) {
            Ok(c) => u32_lists(c.list().map_err(|e| Error::Run(format!("trace batch column `{name}`: {e}")))?, name),
            Err(_) => Ok(vec![None; n]),
        }
    };
    let mut input_ids = tok_list("input_ids")?;
    let spans = tok_list("assistant_spans")?;
    let grids = tok_list("image_grid_thw")?;
    let num_tokens: Option<&UInt32Chunked> = match df.column("num_tokens") {
        Ok(c) => Some(c.u32().map_err(|e| Error::Run(format!("trace batch column `num_tokens`: {e}")))?),
        Err(_) => None,
    };
    let bucket = match df.column("bucket") {
        Ok(_) => Some(get_str("bucket")?),
        Err(_) => None,
    };
    let pass_rate: Option<&Float64Chunked> = match df.column("pass_rate") {
        Ok(c) => Some(c.f64().map_err(|e| Error::Run(format!("trace batch column `pass_rate`: {e}")))?),
        Err(_) => None,
    };
    let paths = list_values(get_list("image_paths")?, n, strs)?;
    let widths = list_values(get_list("image_widths")?, n, u32s)?;
    let heights = list_values(get_list("image_heights")?, n, u32s)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let images = ids[i]
            .iter()
            .enumerate()
            .map(|(k, id)| ImageRef {
                id: id.clone(),
                path: paths[i].get(k).cloned().unwrap_or_default(),
                width: widths[i].get(k).copied().unwrap_or(0),
                height: heights[i].get(k).copied().unwrap_or(0),
            })
            .collect();
        out.push(Trace {
            id: id.get(i).unwrap_or("").to_string(),
            source: source.get(i).unwrap_or("").to_string(),
            origin: origin.get(i).unwrap_or("").to_string(),
            system: system.get(i).map(str::to_string),
            prompt: prompt.get(i).unwrap_or("").to_string(),
            response: response.get(i).unwrap_or("").to_string(),
            reference: reference.get(i).map(str::to_string),
            images,
            tokens: input_ids[i].take().map(|ids| Tokens {
                ids,
                assistant: spans[i].as_deref().unwrap_or(&[]).chunks_exact(2).map(|p| (p[0], p[1])).collect(),
                grids: grids[i].as_deref().unwrap_or(&[]).chunks_exact(3).map(|g| [g[0], g[1], g[2]]).collect(),
            }),
            num_tokens: num_tokens.and_then(|c| c.get(i)),
            bucket: bucket.and_then(|b| b.get(i)).map(str::to_string),
            pass_rate: pass_rate.and_then(|c| c.get(i)),
        });
    }
    Ok(out)
}

/// Machine-readable description of the trace and ledger columns (`schemas/*.schema.json`).
pub fn columns_json(title: &str, version: u32, cols: &[(&str, &str, &str)], extra: &[(&str, &str, &str)]) -> String {
    let col = |(n, t, d): &(&str, &str, &str)| serde_json::json!({"name": n, "type": t, "description": d});
    let v = serde_json::json!({
        "title": title,
        "version": version,
        "columns": cols.iter().map(col).collect::<Vec<_>>(),
        "curated_extra_columns": extra.iter().map(col).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&v).expect("json");
    s.push('\n');
    s
}

/// Columns the curated output adds to the trace columns.
pub const CURATED_EXTRA_COLUMNS: &[(&str, &str, &str)] = &[(
    "images",
    "list<struct{bytes: binary, path: string}>",
    "image bytes and paths in the Hugging Face `datasets` Image layout",
)];
