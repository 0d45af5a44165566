//! `cotforge inspect`: schema, row count and first rows of a Parquet/JSONL/JSON file, a
//! directory of Parquet parts (e.g. `DIR/curated`), or a run directory.

use std::fmt::Write as _;
use std::io::Cursor;
use std::path::Path;

use polars::prelude::*;

use crate::error::{Context, Error, Result};
use crate::io::{parquet_files, parquet_rows, read_parquet_slice};

fn describe(out: &mut String, title: &str, rows: Option<usize>, df: &DataFrame) {
    let _ = writeln!(out, "{title}");
    match rows {
        Some(n) => {
            let _ = writeln!(out, "rows: {n}");
        }
        None => {
            let _ = writeln!(out, "rows: (not counted)");
        }
    }
    let _ = writeln!(out, "schema:");
    for (name, dt) in df.schema().iter() {
        let _ = writeln!(out, "  {name}: {dt}");
    }
    let _ = writeln!(out, "first {} rows:\n{df}", df.height());
}

fn inspect_parquet(out: &mut String, p: &Path, head: usize) -> Result<()> {
    let n = parquet_rows(p)?;
    let df = read_parquet_slice(p, None, 0, head.min(n))?;
    describe(out, &p.display().to_string(), Some(n), &df);
    Ok(())
}

fn inspect_json(out: &mut String, p: &Path, head: usize, lines: bool) -> Result<()> {
    let (body, count) = if lines {
        // Stream: keep the first `head` records, count the rest.
        use std::io::BufRead;
        let f = std::fs::File::open(p).ctx(|| format!("opening {}", p.display()))?;
        let mut first: Vec<Vec<u8>> = Vec::new();
        let mut n = 0;
        for line in std::io::BufReader::new(f).split(b'\n') {
            let line = line.ctx(|| format!("reading {}", p.display()))?;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            n += 1;
            if first.len() < head {
                first.push(line);
            }
        }
        (first.join(&b'\n'), n)
    } else {
        let bytes = std::fs::read(p).ctx(|| format!("reading {}", p.display()))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ctx(|| format!("parsing {}", p.display()))?;
        let arr = v.as_array().cloned().unwrap_or_default();
        let n = arr.len();
        let first: Vec<_> = arr.into_iter().take(head).collect();
        (serde_json::to_vec(&first).ctx(|| "json")?, n)
    };
    let fmt = if lines { JsonFormat::JsonLines } else { JsonFormat::Json };
    let df = JsonReader::new(Cursor::new(body))
        .with_json_format(fmt)
        .finish()
        .map_err(|e| Error::Input(format!("{}: cannot read the first {head} records: {e}", p.display())))?;
    describe(out, &p.display().to_string(), Some(count), &df);
    Ok(())
}

/// Describe `path` for humans.
pub fn inspect(path: &Path, head: usize) -> Result<String> {
    let mut out = String::new();
    if path.is_dir() {
        let stats = path.join("stats.json");
        if stats.exists() {
            let s = std::fs::read_to_string(&stats).ctx(|| format!("reading {}", stats.display()))?;
            let _ = writeln!(out, "run directory {}\nstats.json:\n{s}", path.display());
            let curated = path.join("curated");
            if curated.is_dir() {
                return inspect(&curated, head).map(|s| out + "\n" + &s);
            }
            return Ok(out);
        }
        let files = parquet_files(path)?;
        if files.is_empty() {
            return Err(Error::Input(format!("{}: no Parquet files in this directory", path.display())));
        }
        let total: usize = files.iter().map(|f| parquet_rows(f)).sum::<Result<usize>>()?;
        let _ = writeln!(out, "{}: {} Parquet files, {total} rows in all\n", path.display(), files.len());
        inspect_parquet(&mut out, &files[0], head)?;
        return Ok(out);
    }
    if !path.exists() {
        return Err(Error::Input(format!("{}: no such file or directory", path.display())));
    }
    let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "parquet" => inspect_parquet(&mut out, path, head)?,
        "jsonl" | "ndjson" => inspect_json(&mut out, path, head, true)?,
        "json" => inspect_json(&mut out, path, head, false)?,
        _ => {
            return Err(Error::Input(format!(
                "{}: unknown file type; inspect reads .parquet, .jsonl/.ndjson, .json or a directory",
                path.display()
            )));
        }
    }
    Ok(out)
}
