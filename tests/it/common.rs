//! Helpers shared by the integration tests.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cotforge::io::{PartReader, parquet_files};
use cotforge::pipeline::{self, RunOptions, RunStats};
use cotforge::schema::{self, LedgerEntry, Trace};
use polars::prelude::*;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Write a spec whose relative paths are resolved from the repository root.
pub fn write_spec(dir: &Path, yaml: &str) -> PathBuf {
    let p = dir.join("spec.yaml");
    std::fs::write(&p, yaml).unwrap();
    p
}

/// Absolute path of a fixture.
pub fn fixture(rel: &str) -> String {
    repo().join("fixtures").join(rel).display().to_string()
}

pub fn run(spec: &Path, out: &Path, threads: Option<usize>) -> RunStats {
    let spec = cotforge::spec::load(spec).expect("spec loads");
    let opts = RunOptions { out: Some(out.to_path_buf()), resume: false, threads, progress: false };
    pipeline::run(&spec, &opts).expect("run succeeds")
}

pub fn cli(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cotforge"));
    c.args(args).current_dir(repo());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("cotforge starts")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// All curated traces of a run, in file order.
pub fn curated(out: &Path) -> Vec<Trace> {
    let mut v = Vec::new();
    PartReader::open(&out.join("curated"))
        .unwrap()
        .for_each_batch(1 << 20, |df| {
            v.extend(schema::traces_from_df(&df)?);
            Ok(())
        })
        .unwrap();
    v
}

/// All curated rows as a DataFrame.
pub fn curated_df(out: &Path) -> DataFrame {
    let mut dfs = Vec::new();
    for p in parquet_files(&out.join("curated")).unwrap() {
        dfs.push(ParquetReader::new(std::fs::File::open(p).unwrap()).finish().unwrap());
    }
    let mut df = dfs.remove(0);
    for d in dfs {
        df.vstack_mut(&d).unwrap();
    }
    df
}

/// All ledger rows of a run.
pub fn ledger(out: &Path) -> Vec<LedgerEntry> {
    let mut v = Vec::new();
    for p in parquet_files(&out.join("ledger")).unwrap() {
        let df = ParquetReader::new(std::fs::File::open(p).unwrap()).finish().unwrap();
        let col = |n: &str| -> Vec<Option<String>> {
            df.column(n).unwrap().str().unwrap().iter().map(|s| s.map(str::to_string)).collect()
        };
        let (id, source, origin, stage) = (col("id"), col("source"), col("origin"), col("stage"));
        let (reason, detail, kept) = (col("reason"), col("detail"), col("kept_id"));
        for i in 0..df.height() {
            v.push(LedgerEntry {
                id: id[i].clone(),
                source: source[i].clone().unwrap(),
                origin: origin[i].clone().unwrap(),
                stage: stage[i].clone().unwrap(),
                reason: reason[i].clone().unwrap(),
                detail: detail[i].clone().unwrap(),
                kept_id: kept[i].clone(),
            });
        }
    }
    v
}

/// The files of a run directory that are outputs: all but the fingerprint logs of the image
/// store, a cache whose record order follows the threads and whose names the processes.
pub fn run_outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut t = tree(dir);
    t.retain(|k, _| !k.starts_with("images/fingerprints/"));
    t
}

/// Every file under `dir` (relative path -> bytes).
pub fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.insert(p.strip_prefix(base).unwrap().display().to_string(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The demo spec with absolute fixture paths.
pub fn demo_yaml(extra_top: &str) -> String {
    let text = std::fs::read_to_string(repo().join("pipelines/demo.yaml")).unwrap();
    let text = text.replace("fixtures/", &format!("{}/", repo().join("fixtures").display()));
    format!("{text}{extra_top}")
}

/// Planted defects of a synth corpus directory: row -> (kind, source row).
pub fn synth_labels(dir: &Path) -> BTreeMap<u64, (String, Option<i64>)> {
    let f = std::fs::File::open(dir.join("labels.parquet")).unwrap();
    let df = ParquetReader::new(f).finish().unwrap();
    let rows: Vec<u64> = df.column("row").unwrap().u64().unwrap().iter().map(|v| v.unwrap()).collect();
    let src: Vec<Option<i64>> = df.column("source_row").unwrap().i64().unwrap().iter().collect();
    let kinds = df.column("defects").unwrap().list().unwrap().clone();
    (0..rows.len())
        .map(|i| {
            let k = kinds.get_as_series(i).unwrap();
            (rows[i], (k.str().unwrap().get(0).unwrap().to_string(), src[i]))
        })
        .collect()
}
