//! The engine one-process and split runs share: the spec's stages in segments, the writers of
//! one stage (kept rows, ledger rows in fixed row groups, statistics, marker), judging a batch
//! through a segment's stages, and the run's outputs (curated Parquet, shards, statistics).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use super::rundir::{stage_dir_name, write_marker};
use super::{RunStats, ShardSummary, StageStats, stats};
use crate::error::{Context, Result};
use crate::ingest::ImageStore;
use crate::io::{PartReader, PipedWriter};
use crate::progress::bar;
use crate::schema::{self, LedgerEntry, Trace};
use crate::spec::Spec;
use crate::stages::{Measured, Stage, StageContext, Verdict};

/// Rows per part file of intermediate (work) outputs.
pub(super) const WORK_ROWS_PER_FILE: usize = 100_000;

/// Rows per row group of ledger files: fixed, so a ledger's bytes depend only on its rows,
/// not on the batches (or tasks) that dropped them.
pub const LEDGER_ROW_GROUP: usize = 4096;

/// The fault-injection hook used by the resume tests: `COTFORGE_FAULT_EXIT=stage:N` makes the
/// process exit abruptly after writing N batches of that stage, as a crash would.
fn fault_point(stage: &str, batches: usize) {
    if let Ok(v) = std::env::var("COTFORGE_FAULT_EXIT") {
        if let Some((s, n)) = v.rsplit_once(':') {
            if s == stage && n.parse::<usize>().ok() == Some(batches) {
                eprintln!("cotforge: COTFORGE_FAULT_EXIT reached at {stage}:{batches}; exiting");
                std::process::exit(99);
            }
        }
    }
}

/// The spec's stages (by index) in segments: runs of stages where only the first may need an
/// index pass.
pub(super) fn segments(spec: &Spec) -> Vec<Vec<usize>> {
    let mut segments: Vec<Vec<usize>> = Vec::new();
    for (i, st) in spec.stages.iter().enumerate() {
        match segments.last_mut() {
            Some(seg) if !st.needs_index() => seg.push(i),
            _ => segments.push(vec![i]),
        }
    }
    segments
}

/// Writers for one stage: kept rows and ledger rows.
pub(super) struct StageOutput {
    /// Kept rows are written by the last stage of a segment only.
    pub(super) kept: Option<PipedWriter>,
    pub(super) ledger: PipedWriter,
    /// Ledger rows not yet written (fewer than [`LEDGER_ROW_GROUP`]).
    pub(super) pending: Vec<LedgerEntry>,
    pub(super) stats: StageStats,
    pub(super) batches: usize,
    /// Seconds spent judging and writing (stages of a segment share the reading).
    pub(super) busy: f64,
}

impl StageOutput {
    pub(super) fn new(dir: &Path, index: usize, name: &str, writes_rows: bool) -> Result<Self> {
        let dn = stage_dir_name(index, name);
        let work = dir.join("work").join(&dn);
        Self::at(index, name, writes_rows.then_some(work.as_path()), &dir.join("ledger"), &dn)
    }

    /// Kept rows (if any) as parts in `kept_dir`, ledger rows as `ledger_dir/PREFIX-*.parquet`.
    pub(super) fn at(
        index: usize,
        name: &str,
        kept_dir: Option<&Path>,
        ledger_dir: &Path,
        ledger_prefix: &str,
    ) -> Result<Self> {
        if let Some(d) = kept_dir {
            std::fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
        }
        Ok(Self {
            kept: match kept_dir {
                Some(d) => Some(PipedWriter::new(d, "part", WORK_ROWS_PER_FILE)?),
                None => None,
            },
            ledger: PipedWriter::new(ledger_dir, ledger_prefix, WORK_ROWS_PER_FILE)?,
            pending: Vec::new(),
            stats: StageStats {
                index,
                stage: name.to_string(),
                rows_in: 0,
                rows_out: 0,
                dropped: BTreeMap::new(),
                seconds: 0.0,
                index_seconds: None,
                measured: BTreeMap::new(),
                summary: None,
            },
            batches: 0,
            busy: 0.0,
        })
    }

    pub(super) fn write(&mut self, rows_in: usize, kept: &[Trace], dropped: &[LedgerEntry]) -> Result<()> {
        self.stats.rows_in += rows_in as u64;
        self.stats.rows_out += kept.len() as u64;
        for d in dropped {
            *self.stats.dropped.entry(d.reason.clone()).or_default() += 1;
        }
        debug_assert_eq!(rows_in, kept.len() + dropped.len());
        if let (Some(w), false) = (&mut self.kept, kept.is_empty()) {
            w.write(schema::traces_to_df(kept)?)?;
        }
        self.pending.extend_from_slice(dropped);
        while self.pending.len() >= LEDGER_ROW_GROUP {
            let rest = self.pending.split_off(LEDGER_ROW_GROUP);
            self.ledger.write(schema::ledger_to_df(&std::mem::replace(&mut self.pending, rest))?)?;
        }
        self.batches += 1;
        fault_point(&self.stats.stage, self.batches);
        Ok(())
    }

    /// Close the writers and write the stage's marker (with its statistics) into `work`.
    pub(super) fn finish(mut self, work: &Path, started: Instant) -> Result<StageStats> {
        if let Some(w) = self.kept {
            w.finish(&schema::traces_to_df(&[])?)?;
        }
        if !self.pending.is_empty() {
            self.ledger.write(schema::ledger_to_df(&std::mem::take(&mut self.pending))?)?;
        }
        if self.ledger.rows() > 0 {
            self.ledger.finish(&schema::ledger_to_df(&[])?)?;
        } else {
            drop(self.ledger);
        }
        // ingest and lone stages: wall time; fused stages: their own judging and writing time
        let secs = if self.busy > 0.0 { self.busy } else { started.elapsed().as_secs_f64() };
        self.stats.seconds = (secs * 1000.0).round() / 1000.0;
        write_marker(work, &self.stats)?;
        Ok(self.stats)
    }
}

/// Judge one batch with one stage; returns the kept rows and writes the ledger rows.
pub(super) fn judge_batch(
    stage: &dyn Stage,
    out: &mut StageOutput,
    pos: u64,
    batch: Vec<Trace>,
    ctx: &StageContext,
) -> Result<Vec<Trace>> {
    let name = stage.name();
    let started = Instant::now();
    let mut batch = batch;
    let judged: Vec<Measured> =
        batch.par_iter_mut().enumerate().map(|(i, t)| stage.apply(pos + i as u64, t, ctx)).collect::<Result<_>>()?;
    let n = batch.len();
    let mut kept = Vec::with_capacity(n);
    let mut dropped = Vec::new();
    for (t, m) in batch.into_iter().zip(judged) {
        for (k, v) in m.values {
            out.stats.measured.entry(k.to_string()).or_default().add(v);
        }
        match m.verdict {
            Verdict::Keep => kept.push(t),
            Verdict::Drop { reason, detail, kept_id } => dropped.push(LedgerEntry {
                id: Some(t.id),
                source: t.source,
                origin: t.origin,
                stage: name.to_string(),
                reason: reason.to_string(),
                detail,
                kept_id,
            }),
        }
    }
    out.write(n, &kept, &dropped)?;
    out.busy += started.elapsed().as_secs_f64();
    Ok(kept)
}

/// Judge one batch through a segment's stages in order, each stage's kept rows feeding the
/// next; `positions[k]` is stage k's position of the batch's first row, advanced past it.
pub(super) fn judge_through(
    stages: &[&dyn Stage],
    outs: &mut [StageOutput],
    positions: &mut [u64],
    batch: Vec<Trace>,
    ctx: &StageContext,
) -> Result<()> {
    let mut batch = batch;
    for (k, stage) in stages.iter().enumerate() {
        let rows = batch.len() as u64;
        batch = judge_batch(*stage, &mut outs[k], positions[k], batch, ctx)?;
        positions[k] += rows;
    }
    Ok(())
}

/// Close a segment's outputs in stage order (the last stage's marker says the segment is
/// complete), each with the stage's summary; the first stage carries the index pass's seconds.
pub(super) fn finish_segment(
    stages: &[&dyn Stage],
    outs: Vec<StageOutput>,
    works: &[PathBuf],
    started: Instant,
    index_seconds: Option<f64>,
) -> Result<Vec<StageStats>> {
    let mut stats = Vec::with_capacity(stages.len());
    for (k, ((st, mut out), work)) in stages.iter().zip(outs).zip(works).enumerate() {
        if k == 0 {
            out.stats.index_seconds = index_seconds;
        }
        out.stats.summary = st.summary();
        stats.push(out.finish(work, started)?);
    }
    Ok(stats)
}

/// Write the curated output: the last stage's rows with their image bytes.
pub(super) fn write_curated(
    spec: &Spec,
    dir: &Path,
    last: &[PathBuf],
    store: &ImageStore,
    progress: bool,
) -> Result<u64> {
    let curated = dir.join("curated");
    if curated.exists() {
        std::fs::remove_dir_all(&curated).ctx(|| format!("removing {}", curated.display()))?;
    }
    let input = PartReader::open_dirs(last)?;
    let pb = bar(progress, Some(input.rows() as u64), "write curated", "rows");
    let mut w = PipedWriter::new(&curated, "part", spec.rows_per_file)?;
    let with_images = |traces: &[Trace]| -> Result<polars::prelude::DataFrame> {
        let imgs: schema::HfImages = traces
            .par_iter()
            .map(|t| {
                t.images
                    .iter()
                    .map(|i| {
                        let bytes = if i.id.is_empty() { None } else { Some(store.get(&i.id)?) };
                        let path = if i.path.is_empty() { None } else { Some(i.path.clone()) };
                        Ok((bytes, path))
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<_>>()?;
        let mut cols = schema::trace_columns(traces)?;
        cols.retain(|c| !schema::NOT_CURATED.contains(&c.name().as_str()));
        cols.insert(7, schema::hf_images_column("images", &imgs)?);
        polars::prelude::DataFrame::new_infer_height(cols).ctx(|| "building curated batch")
    };
    input.for_each_rebatched(spec.batch_rows, |df| {
        let traces = schema::traces_from_df(&df)?;
        w.write(with_images(&traces)?)?;
        pb.inc(traces.len() as u64);
        Ok(())
    })?;
    let n = w.rows() as u64;
    w.finish(&with_images(&[])?)?;
    pb.finish_and_clear();
    Ok(n)
}

/// For specs ending in `pack`: pack the rows in `kept` into `DIR/shards`.
pub(super) fn write_shards(
    spec: &Spec,
    dir: &Path,
    kept: &[PathBuf],
    store: &ImageStore,
    spec_blake3: &str,
    progress: bool,
) -> Result<Option<crate::shards::Manifest>> {
    let Some(crate::stages::StageSpec::Pack(cfg)) = spec.stages.last() else {
        return Ok(None);
    };
    let rows = PartReader::open_dirs(kept)?.rows() as u64;
    let pb = bar(progress, Some(rows), "write shards", "rows");
    let m = crate::shards::write_shards(&dir.join("shards"), kept, store, cfg, spec_blake3, spec.batch_rows, &pb)?;
    pb.finish_and_clear();
    Ok(Some(m))
}

/// The run's statistics from its stages', written to `DIR/stats.json` and `DIR/stats/`.
pub(super) fn write_stats(
    spec: &Spec,
    dir: &Path,
    spec_blake3: &str,
    stages: Vec<StageStats>,
    wall: Vec<(String, f64)>,
    shards: Option<&crate::shards::Manifest>,
) -> Result<RunStats> {
    let wall_seconds = wall.into_iter().map(|(k, v)| (k, (v * 1000.0).round() / 1000.0)).collect();
    let run = RunStats::new(spec, spec_blake3.to_string(), stages, wall_seconds, shards.map(ShardSummary::of));
    stats::write(dir, &run)?;
    Ok(run)
}
