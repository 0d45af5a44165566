//! Ingest: read raw Parquet / JSONL / JSON / Arrow files in batches and map each record onto the
//! canonical trace by configuration: what an input is ([`input`]), record layouts ([`layout`]),
//! values of any file format ([`value`]), Arrow IPC files ([`arrow_ipc`]), image values in
//! every form ([`image_value`]), and a raw row to a trace with its images stored ([`trace`]).
//!
//! [`preflight`] checks every input file before the run starts (readable, mapped columns
//! present with usable types) so that a wrong mapping fails fast with the file and column named.
//! Records that are individually broken (invalid UTF-8, invalid JSON, a field of the wrong type)
//! do not stop the run; they become [`RawRow`]s carrying a [`Reject`] and end in the ledger.

pub mod arrow_ipc;
pub mod image_value;
pub mod input;
pub mod layout;
pub mod trace;
pub mod value;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use polars::prelude::*;

pub use crate::store::{ImageSource, ImageStore};
pub use layout::{RawTrace, Reject, map_record};
use value::Val;

use crate::error::{Context, Error, Result};
use crate::io::{parquet_rows, read_parquet_slice};
pub use input::{ColumnMap, Format, ImageEncoding, Input, Layout};

/// One raw record: where it came from, and its mapped columns or why it could not be read.
#[derive(Debug, Clone)]
pub struct RawRow {
    /// `file#row` (Parquet, JSON array; 0-based) or `file:line` (JSONL; 1-based).
    pub origin: String,
    pub record: std::result::Result<Val, Reject>,
}

fn type_ok(dtype: &DataType, field: &str) -> bool {
    let texty = |d: &DataType| matches!(d, DataType::String | DataType::Binary | DataType::Null);
    let imagey = |d: &DataType| texty(d) || matches!(d, DataType::Struct(_));
    match field {
        "prompt" | "response" => texty(dtype),
        "reference" => texty(dtype) || dtype.is_primitive_numeric() || matches!(dtype, DataType::Boolean),
        "pass_rate" => dtype.is_primitive_numeric() || matches!(dtype, DataType::Null),
        "images" => match dtype {
            DataType::List(inner) => imagey(inner),
            d => imagey(d),
        },
        _ => matches!(dtype, DataType::List(inner) if matches!(**inner, DataType::Struct(_))),
    }
}

fn expected(field: &str) -> &'static str {
    match field {
        "prompt" | "response" => "a string (or binary holding UTF-8)",
        "reference" => "a string or a number",
        "pass_rate" => "a number in [0, 1]",
        "images" => "paths, bytes or {bytes, path} structs, one or a list",
        _ => "a list of structs (turns)",
    }
}

/// Check one input before the run: files readable, mapped columns present with usable types.
/// Returns the number of records per file where it is cheap to know.
pub fn preflight(input: &Input) -> Result<Vec<Option<usize>>> {
    let cols = layout::mapped_columns(input);
    let mut counts = Vec::new();
    for file in &input.files {
        match input.format {
            Format::Parquet => {
                let n = parquet_rows(file)?;
                let df = read_parquet_slice(file, None, 0, 0)?;
                let schema = df.schema();
                for (col, field) in &cols {
                    match schema.get(col.as_str()) {
                        None => {
                            let have: Vec<_> = schema.iter_names().map(|s| s.to_string()).collect();
                            return Err(Error::Input(format!(
                                "{}: column `{col}` (mapped to {field}) not found; the file has columns: {}",
                                file.display(),
                                have.join(", ")
                            )));
                        }
                        Some(dt) if !type_ok(dt, field) => {
                            return Err(Error::Input(format!(
                                "{}: column `{col}` (mapped to {field}) has type {dt}; expected {}",
                                file.display(),
                                expected(field)
                            )));
                        }
                        _ => {}
                    }
                }
                counts.push(Some(n));
            }
            Format::Arrow => {
                let schema = arrow_ipc::columns(file)?;
                for (col, field) in &cols {
                    if schema.field_with_name(col).is_err() {
                        let have: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                        return Err(Error::Input(format!(
                            "{}: column `{col}` (mapped to {field}) not found; the file has columns: {}",
                            file.display(),
                            have.join(", ")
                        )));
                    }
                }
                // counting would read the whole stream once more: the progress bar counts up
                counts.push(None);
            }
            Format::Jsonl | Format::Json => {
                let (first, n) = if input.format == Format::Jsonl {
                    first_jsonl_record(file)?
                } else {
                    let all = read_json_array(file)?;
                    (all.first().cloned(), Some(all.len()))
                };
                if let Some(Val::Map(kv)) = &first {
                    for (col, field) in &cols {
                        if !kv.iter().any(|(k, _)| k == col) {
                            let have: Vec<_> = kv.iter().map(|(k, _)| k.as_str()).collect();
                            return Err(Error::Input(format!(
                                "{}: the first record has no key `{col}` (mapped to {field}); its keys are: {}",
                                file.display(),
                                have.join(", ")
                            )));
                        }
                    }
                }
                counts.push(n);
            }
        }
    }
    Ok(counts)
}

fn first_jsonl_record(file: &Path) -> Result<(Option<Val>, Option<usize>)> {
    let f = File::open(file).ctx(|| format!("opening {}", file.display()))?;
    let mut first = None;
    let mut n = 0usize;
    for line in BufReader::new(f).split(b'\n') {
        let line = line.ctx(|| format!("reading {}", file.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        n += 1;
        if first.is_none() {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
                first = Some(Val::from(v));
            }
        }
    }
    Ok((first, Some(n)))
}

fn read_json_array(file: &Path) -> Result<Vec<Val>> {
    let bytes = std::fs::read(file).ctx(|| format!("reading {}", file.display()))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Input(format!("{}:{}:{}: invalid JSON: {e}", file.display(), e.line(), e.column())))?;
    match v {
        serde_json::Value::Array(items) => Ok(items.into_iter().map(Val::from).collect()),
        other => Err(Error::Input(format!(
            "{}: expected a JSON array of records, found {}; use `format: jsonl` for one record per line",
            file.display(),
            Val::from(other).kind()
        ))),
    }
}

fn jsonl_row(file: &Path, lineno: usize, line: &[u8]) -> RawRow {
    let origin = format!("{}:{lineno}", file.display());
    let record = match std::str::from_utf8(line) {
        Err(e) => Err(Reject::new(
            "invalid_utf8",
            format!("line {lineno} is not valid UTF-8 (bad byte at offset {})", e.valid_up_to()),
        )),
        Ok(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Err(e) => Err(Reject::new("invalid_json", format!("line {lineno}: {e}"))),
            Ok(v @ serde_json::Value::Object(_)) => Ok(Val::from(v)),
            Ok(v) => Err(Reject::new("bad_record", format!("line {lineno} is {}, not an object", Val::from(v).kind()))),
        },
    };
    RawRow { origin, record }
}

/// Read every record of one input file in batches of at most `batch_rows`, in file order.
pub fn read_batches(
    input: &Input,
    file: &Path,
    batch_rows: usize,
    f: impl FnMut(Vec<RawRow>) -> Result<()>,
) -> Result<()> {
    read_batches_in(input, file, None, batch_rows, f)
}

/// [`read_batches`] over rows `start..end` of a Parquet file only (None: all rows; other
/// formats are always read whole). Origins keep the row numbers of the whole file.
pub fn read_batches_in(
    input: &Input,
    file: &Path,
    rows: Option<(usize, usize)>,
    batch_rows: usize,
    mut f: impl FnMut(Vec<RawRow>) -> Result<()>,
) -> Result<()> {
    if rows.is_some() && input.format != Format::Parquet {
        return Err(Error::Run(format!("internal: a row range of {}, which is not Parquet", file.display())));
    }
    match input.format {
        Format::Parquet => {
            let cols: Vec<String> = {
                let mut c: Vec<String> = layout::mapped_columns(input).into_iter().map(|(c, _)| c).collect();
                c.dedup();
                c
            };
            let total = parquet_rows(file)?;
            let (mut off, n) = match rows {
                Some((a, b)) => (a.min(total), b.min(total)),
                None => (0, total),
            };
            while off < n {
                let len = batch_rows.min(n - off);
                let df = read_parquet_slice(file, Some(cols.clone()), off, len)?;
                let columns: Vec<(String, Vec<Val>)> =
                    df.columns().iter().map(|c| (c.name().to_string(), value::column_values(c))).collect();
                let mut rows = Vec::with_capacity(len);
                for i in 0..df.height() {
                    let rec = Val::Map(columns.iter().map(|(k, v)| (k.clone(), v[i].clone())).collect());
                    rows.push(RawRow { origin: format!("{}#{}", file.display(), off + i), record: Ok(rec) });
                }
                f(rows)?;
                off += len;
            }
            Ok(())
        }
        Format::Arrow => {
            let cols: Vec<String> = layout::mapped_columns(input).into_iter().map(|(c, _)| c).collect();
            let mut batches = arrow_ipc::Batches::open(file)?;
            let schema = batches.schema();
            let idx: Vec<(String, usize)> =
                cols.iter().filter_map(|c| schema.index_of(c).ok().map(|i| (c.clone(), i))).collect();
            let mut at = 0usize;
            let mut rows = Vec::with_capacity(batch_rows);
            while let Some(batch) = batches.next_batch(file)? {
                for i in 0..batch.num_rows() {
                    let rec =
                        Val::Map(idx.iter().map(|(c, k)| (c.clone(), arrow_ipc::cell(batch.column(*k), i))).collect());
                    rows.push(RawRow { origin: format!("{}#{}", file.display(), at + i), record: Ok(rec) });
                    if rows.len() == batch_rows {
                        f(std::mem::take(&mut rows))?;
                    }
                }
                at += batch.num_rows();
            }
            if !rows.is_empty() {
                f(rows)?;
            }
            Ok(())
        }
        Format::Jsonl => {
            let fh = File::open(file).ctx(|| format!("opening {}", file.display()))?;
            let mut rows = Vec::with_capacity(batch_rows);
            for (i, line) in BufReader::new(fh).split(b'\n').enumerate() {
                let mut line = line.ctx(|| format!("reading {}", file.display()))?;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                rows.push(jsonl_row(file, i + 1, &line));
                if rows.len() == batch_rows {
                    f(std::mem::take(&mut rows))?;
                }
            }
            if !rows.is_empty() {
                f(rows)?;
            }
            Ok(())
        }
        Format::Json => {
            let all = read_json_array(file)?;
            let mut rows = Vec::with_capacity(batch_rows);
            for (i, v) in all.into_iter().enumerate() {
                let origin = format!("{}#{i}", file.display());
                let record = match v {
                    m @ Val::Map(_) => Ok(m),
                    other => Err(Reject::new("bad_record", format!("element {i} is {}, not an object", other.kind()))),
                };
                rows.push(RawRow { origin, record });
                if rows.len() == batch_rows {
                    f(std::mem::take(&mut rows))?;
                }
            }
            if !rows.is_empty() {
                f(rows)?;
            }
            Ok(())
        }
    }
}

/// The directory relative image paths of `file` resolve against.
pub fn images_root<'a>(input: &'a Input, file: &'a Path) -> &'a Path {
    input.images_root.as_deref().unwrap_or_else(|| file.parent().unwrap_or(Path::new(".")))
}

/// Content part of a trace id: blake3 over source and canonical fields.
pub fn content_id(source: &str, t: &RawTrace, image_ids: &[String]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    let mut field = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    field(source);
    field(t.system.as_deref().unwrap_or("\u{0}none"));
    field(&t.prompt);
    field(&t.response);
    field(t.reference.as_deref().unwrap_or("\u{0}none"));
    for id in image_ids {
        field(id);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// Hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
