//! `cotforge export`: a run's curated traces in a public layout, for tools that expect one.
//!
//! ```text
//! --layout columns   id, source, system, prompt, response, reference, pass_rate, images
//! --layout sharegpt  id, source, conversations [{from: system|human|gpt, value}], answer,
//!                    pass_rate, images
//! --format parquet   OUT/data/part-00000.parquet, ...  (columns: images as HF {bytes, path}
//!                    structs; sharegpt: image paths, files under OUT/images/)
//! --format jsonl     OUT/data.jsonl  (images as paths, files under OUT/images/)
//! OUT/_export.json   what was exported from where (the `_` keeps it out of directory reads
//!                    by pyarrow, pandas and Spark)
//! ```
//! Image paths are relative to OUT: `cotforge run` reads an export back with the same layout
//! (for Parquet with `images_root: OUT`), and `pd.read_parquet(OUT/data)` reads the rows.

use std::io::Write;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::Serialize;

use crate::error::{Context, Error, Result};
use crate::io::{PartReader, PartWriter, atomic_write, tmp_name};
use crate::schema::{self, Trace};

/// Public layouts an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportLayout {
    /// One column per field (prompt, response, reference, images, ...).
    Columns,
    /// ShareGPT conversations with image paths (MMR1, Vision-R1, LLaMA-Factory).
    Sharegpt,
}

/// File formats an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Parquet,
    Jsonl,
}

/// `OUT/export.json`.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    pub run: String,
    pub spec_blake3: String,
    pub layout: ExportLayout,
    pub format: ExportFormat,
    pub rows: u64,
    /// Image files written under OUT/images/ (0 when images are embedded).
    pub image_files: u64,
    pub files: Vec<String>,
}

/// The export's description, which also marks a directory as an export.
pub const EXPORT_MARKER: &str = "_export.json";

/// Rows per Parquet file of an export.
const ROWS_PER_FILE: usize = 50_000;
const BATCH_ROWS: usize = 2_048;

/// Entries of OUT that an earlier export wrote (and a new one replaces).
fn clear_out(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    let entries: Vec<PathBuf> = std::fs::read_dir(out)
        .ctx(|| format!("listing {}", out.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    if !out.join(EXPORT_MARKER).exists() {
        return Err(Error::Run(format!(
            "{} exists and is not a cotforge export (no {EXPORT_MARKER}); choose another --out",
            out.display()
        )));
    }
    for p in entries {
        let r = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        r.ctx(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

/// Stored image bytes of a run.
fn stored_image(run: &Path, id: &str) -> Result<Vec<u8>> {
    let p = crate::store::stored_path(&run.join("images"), id);
    std::fs::read(&p).ctx(|| format!("reading stored image {}", p.display()))
}

/// Copy a run's image to OUT/images/ab/ID.EXT (once); returns the path relative to OUT.
fn image_file(run: &Path, out: &Path, id: &str, written: &mut u64) -> Result<String> {
    let bytes = stored_image(run, id)?;
    let ext = image::guess_format(&bytes).ok().and_then(|f| f.extensions_str().first().copied()).unwrap_or("bin");
    let rel = format!("images/{}/{id}.{ext}", &id[..2.min(id.len())]);
    let dest = out.join(&rel);
    if !dest.exists() {
        atomic_write(&dest, &bytes, 0)?;
        *written += 1;
    }
    Ok(rel)
}

fn str_col(name: &str, v: Vec<Option<String>>) -> Column {
    StringChunked::from_iter(v).with_name(name.into()).into_series().into()
}

fn pass_rate_col(traces: &[Trace]) -> Column {
    Float64Chunked::from_iter(traces.iter().map(|t| t.pass_rate)).with_name("pass_rate".into()).into_series().into()
}

/// ShareGPT turns of a trace.
fn turns(t: &Trace) -> Vec<(&'static str, String)> {
    let mut v = Vec::with_capacity(3);
    if let Some(s) = &t.system {
        v.push(("system", s.clone()));
    }
    v.push(("human", t.prompt.clone()));
    v.push(("gpt", t.response.clone()));
    v
}

/// `list<struct{from, value}>` of every trace's turns.
fn conversations_col(traces: &[Trace]) -> Result<Column> {
    let dtype = DataType::List(Box::new(DataType::Struct(vec![
        Field::new("from".into(), DataType::String),
        Field::new("value".into(), DataType::String),
    ])));
    let list: ListChunked = traces
        .iter()
        .map(|t| {
            let tv = turns(t);
            let from: StringChunked = tv.iter().map(|(f, _)| Some(*f)).collect();
            let value: StringChunked = tv.iter().map(|(_, v)| Some(v.as_str())).collect();
            let fields = [from.with_name("from".into()).into_series(), value.with_name("value".into()).into_series()];
            StructChunked::from_series("".into(), tv.len(), fields.iter()).ok().map(|s| s.into_series())
        })
        .collect();
    Ok(list.with_name("conversations".into()).into_series().cast(&dtype).ctx(|| "building conversations")?.into())
}

/// `list<string>` of image paths.
fn paths_col(paths: &[Vec<String>]) -> Result<Column> {
    let list: ListChunked = paths
        .iter()
        .map(|p| Some(StringChunked::from_iter(p.iter().map(|s| Some(s.as_str()))).into_series()))
        .collect();
    Ok(list
        .with_name("images".into())
        .into_series()
        .cast(&DataType::List(Box::new(DataType::String)))
        .ctx(|| "building images")?
        .into())
}

/// One batch of traces as an export DataFrame (Parquet).
fn batch_df(run: &Path, out: &Path, traces: &[Trace], layout: ExportLayout, written: &mut u64) -> Result<DataFrame> {
    let ids = str_col("id", traces.iter().map(|t| Some(t.id.clone())).collect());
    let source = str_col("source", traces.iter().map(|t| Some(t.source.clone())).collect());
    let cols = match layout {
        ExportLayout::Columns => {
            let imgs: schema::HfImages = traces
                .iter()
                .map(|t| t.images.iter().map(|i| Ok((Some(stored_image(run, &i.id)?), Some(i.path.clone())))).collect())
                .collect::<Result<_>>()?;
            vec![
                ids,
                source,
                str_col("system", traces.iter().map(|t| t.system.clone()).collect()),
                str_col("prompt", traces.iter().map(|t| Some(t.prompt.clone())).collect()),
                str_col("response", traces.iter().map(|t| Some(t.response.clone())).collect()),
                str_col("reference", traces.iter().map(|t| t.reference.clone()).collect()),
                pass_rate_col(traces),
                schema::hf_images_column("images", &imgs)?,
            ]
        }
        ExportLayout::Sharegpt => {
            let paths: Vec<Vec<String>> = traces
                .iter()
                .map(|t| t.images.iter().map(|i| image_file(run, out, &i.id, written)).collect())
                .collect::<Result<_>>()?;
            vec![
                ids,
                source,
                conversations_col(traces)?,
                str_col("answer", traces.iter().map(|t| t.reference.clone()).collect()),
                pass_rate_col(traces),
                paths_col(&paths)?,
            ]
        }
    };
    DataFrame::new_infer_height(cols).ctx(|| "building an export batch")
}

/// One trace as a JSON line.
fn json_line(run: &Path, out: &Path, t: &Trace, layout: ExportLayout, written: &mut u64) -> Result<String> {
    let images: Vec<String> = t.images.iter().map(|i| image_file(run, out, &i.id, written)).collect::<Result<_>>()?;
    let v = match layout {
        ExportLayout::Columns => serde_json::json!({
            "id": t.id, "source": t.source, "system": t.system, "prompt": t.prompt,
            "response": t.response, "reference": t.reference, "pass_rate": t.pass_rate, "images": images,
        }),
        ExportLayout::Sharegpt => {
            let conv: Vec<serde_json::Value> =
                turns(t).into_iter().map(|(f, v)| serde_json::json!({"from": f, "value": v})).collect();
            serde_json::json!({
                "id": t.id, "source": t.source, "conversations": conv, "answer": t.reference,
                "pass_rate": t.pass_rate, "images": images,
            })
        }
    };
    Ok(v.to_string())
}

/// Export the curated traces of `run` to `out`.
pub fn export(run: &Path, out: &Path, layout: ExportLayout, format: ExportFormat) -> Result<ExportSummary> {
    let stats = crate::pipeline::RunStats::read(run)?;
    let curated = PartReader::open(&run.join("curated"))?;
    clear_out(out)?;
    std::fs::create_dir_all(out).ctx(|| format!("creating {}", out.display()))?;
    let cols = [
        "id",
        "source",
        "origin",
        "system",
        "prompt",
        "response",
        "reference",
        "image_ids",
        "image_paths",
        "image_widths",
        "image_heights",
        "pass_rate",
    ];
    let mut written = 0u64;
    let mut rows = 0u64;
    let files = match format {
        ExportFormat::Parquet => {
            let mut w = PartWriter::new(&out.join("data"), "part", ROWS_PER_FILE)?;
            curated.for_each_batch_of(BATCH_ROWS, Some(&cols), |df| {
                let traces = schema::traces_from_partial_df(&df)?;
                rows += traces.len() as u64;
                w.write(&batch_df(run, out, &traces, layout, &mut written)?)
            })?;
            let empty = batch_df(run, out, &[], layout, &mut written)?;
            w.finish(&empty)?
        }
        ExportFormat::Jsonl => {
            let dest = out.join("data.jsonl");
            let tmp = tmp_name(&dest, 0);
            let f = std::fs::File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
            let mut bw = std::io::BufWriter::new(f);
            curated.for_each_batch_of(BATCH_ROWS, Some(&cols), |df| {
                for t in schema::traces_from_partial_df(&df)? {
                    let line = json_line(run, out, &t, layout, &mut written)?;
                    writeln!(bw, "{line}").ctx(|| format!("writing {}", tmp.display()))?;
                    rows += 1;
                }
                Ok(())
            })?;
            bw.flush().ctx(|| format!("writing {}", tmp.display()))?;
            drop(bw);
            std::fs::rename(&tmp, &dest).ctx(|| format!("renaming {}", tmp.display()))?;
            vec![dest]
        }
    };
    let summary = ExportSummary {
        run: run.display().to_string(),
        spec_blake3: stats.spec_blake3,
        layout,
        format,
        rows,
        image_files: written,
        files: files.iter().filter_map(|p| p.strip_prefix(out).ok().map(|n| n.display().to_string())).collect(),
    };
    let json = serde_json::to_vec_pretty(&summary).ctx(|| format!("serialising {EXPORT_MARKER}"))?;
    atomic_write(&out.join(EXPORT_MARKER), &json, 0)?;
    Ok(summary)
}
