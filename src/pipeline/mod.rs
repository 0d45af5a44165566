//! The executor: runs a validated [`Spec`] into a run directory.
//!
//! ```text
//! DIR/spec.yaml                 copy of the spec (its blake3 is in stats.json)
//! DIR/images/ab/abcdef...       content-addressed image store
//! DIR/work/NN-stage/_DONE.json  completion marker (and stats) of stage NN
//! DIR/work/NN-stage/part-*.parquet  rows kept by stage NN, where NN ends a segment
//! DIR/ledger/NN-stage-*.parquet every row stage NN dropped, with reason and detail
//! DIR/curated/part-*.parquet    final traces with image bytes (HF datasets layout)
//! DIR/shards/                   packed training shards and manifest.json (specs ending in `pack`)
//! DIR/stats.json                per stage: rows_in, rows_out, drops by reason, seconds
//! DIR/stats/*.parquet           the same numbers as tables (see [`tables`])
//! DIR/report.html               the run report (`cotforge report`), unless --no-report
//! ```
//! Stage 00 is ingest. The other stages run in segments: a run of consecutive stages of which
//! only the first needs an index pass (a global stage such as dedup starts a new segment). A
//! segment reads its input once and streams it in batches (memory is bounded by `batch_rows`);
//! each batch flows through the segment's stages in memory, every stage judging rows in
//! parallel on a rayon pool and writing its ledger rows in input order, and the last stage
//! writes the kept rows. Outputs are byte-identical for any thread count. A segment is complete
//! when all its markers exist; `--resume` skips complete segments and redoes the first
//! incomplete one.

pub mod histogram;
pub mod io;
pub mod plan;
pub mod split;
pub mod tables;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::ingest::{self, ImageStore, RawRow};
use crate::schema::{self, LedgerEntry, Trace};
use crate::spec::Spec;
use crate::stages::{IndexContext, Measured, Stage, StageContext, Verdict};
use io::{PartReader, PipedWriter, atomic_write};

/// Rows per part file of intermediate (work) outputs.
const WORK_ROWS_PER_FILE: usize = 100_000;

/// Rows per row group of ledger files: fixed, so a ledger's bytes depend only on its rows,
/// not on the batches (or tasks) that dropped them.
pub const LEDGER_ROW_GROUP: usize = 4096;

/// How to run a spec.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Run directory; overrides the spec's `output.dir`.
    pub out: Option<PathBuf>,
    /// Keep completed stages of an earlier run of the same spec in `out`.
    pub resume: bool,
    /// Worker threads for row-local work (default: all cores).
    pub threads: Option<usize>,
    /// Draw progress bars on stderr (when it is a terminal).
    pub progress: bool,
}

/// Statistics of one stage.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageStats {
    pub index: usize,
    pub stage: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub dropped: BTreeMap<String, u64>,
    pub seconds: f64,
    /// Global stages: seconds of the index pass (reading, indexing, clustering) before any
    /// row was judged; `seconds` is the judging pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_seconds: Option<f64>,
    /// Histograms of the values the stage measured, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub measured: BTreeMap<String, histogram::Histogram>,
    /// What the stage itself reports (e.g. rows and tokens per bucket or source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
}

/// The contents of `stats.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunStats {
    pub name: String,
    pub spec_blake3: String,
    pub rows_in: u64,
    pub rows_out: u64,
    pub ledger_rows: u64,
    pub stages: Vec<StageStats>,
    /// Wall-clock seconds of what this invocation ran: ingest, each segment (fused stages, by
    /// name), and the curated output. Segments skipped by --resume are not listed.
    pub wall_seconds: Vec<(String, f64)>,
    /// Specs ending with `pack`: what `DIR/shards` holds (details in its manifest.json).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardSummary>,
}

/// The shard output in stats.json.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShardSummary {
    pub packs: u64,
    pub samples: u64,
    pub tokens: u64,
    pub loss_tokens: u64,
    pub fill: f64,
    pub files: u64,
}

impl ShardSummary {
    fn of(m: &crate::shards::Manifest) -> Self {
        Self { packs: m.packs, samples: m.samples, tokens: m.tokens, loss_tokens: m.loss_tokens, fill: m.fill, files: m.files.len() as u64 }
    }
}

impl RunStats {
    /// `DIR/stats.json` of a finished run; the error says when DIR is not one.
    pub fn read(dir: &Path) -> Result<Self> {
        let p = dir.join("stats.json");
        let bytes = std::fs::read(&p).map_err(|e| {
            Error::Input(format!("{}: {e}; is {} a finished cotforge run directory?", p.display(), dir.display()))
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Input(format!("{}: not a cotforge stats file: {e}", p.display())))
    }

    /// The statistics of a run from its stages' (ingest first): totals are derived.
    fn new(
        spec: &Spec,
        spec_blake3: String,
        stages: Vec<StageStats>,
        wall_seconds: Vec<(String, f64)>,
        shards: Option<ShardSummary>,
    ) -> Self {
        Self {
            name: spec.name.clone(),
            spec_blake3,
            rows_in: stages.first().map(|s| s.rows_in).unwrap_or(0),
            rows_out: stages.last().map(|s| s.rows_out).unwrap_or(0),
            ledger_rows: stages.iter().map(|s| s.dropped.values().sum::<u64>()).sum(),
            stages,
            wall_seconds,
            shards,
        }
    }
}

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
fn segments(spec: &Spec) -> Vec<Vec<usize>> {
    let mut segments: Vec<Vec<usize>> = Vec::new();
    for (i, st) in spec.stages.iter().enumerate() {
        match segments.last_mut() {
            Some(seg) if !st.needs_index() => seg.push(i),
            _ => segments.push(vec![i]),
        }
    }
    segments
}

fn stage_dir_name(index: usize, name: &str) -> String {
    format!("{index:02}-{name}")
}

fn bar(progress: bool, total: Option<u64>, label: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let pb = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{prefix:>18} [{bar:30}] {pos}/{len} rows {per_sec} eta {eta}")
                .expect("template")
                .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{prefix:>18} {spinner} {pos} rows {per_sec}").expect("template"),
        ),
    };
    pb.set_prefix(label.to_string());
    pb
}

/// The run directory of a spec under the given options.
pub fn run_dir(spec: &Spec, opts: &RunOptions) -> PathBuf {
    opts.out.clone().unwrap_or_else(|| spec.out_dir.clone())
}

/// Prepare the run directory: fresh (clearing an earlier cotforge run) or resumed.
fn prepare_dir(dir: &Path, spec: &Spec, resume: bool) -> Result<String> {
    let hash = blake3::hash(spec.text.as_bytes()).to_hex().to_string();
    let spec_copy = dir.join("spec.yaml");
    if dir.exists() {
        let is_run = spec_copy.exists();
        let empty = std::fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))?.next().is_none();
        if !is_run && !empty {
            return Err(Error::Run(format!(
                "{} exists and is not a cotforge run directory (no spec.yaml); choose another --out",
                dir.display()
            )));
        }
        if is_run && resume {
            let old = std::fs::read(&spec_copy).ctx(|| format!("reading {}", spec_copy.display()))?;
            if blake3::hash(&old).to_hex().to_string() != hash {
                return Err(Error::Spec(format!(
                    "{}: the spec differs from the one this run started with ({}); \
                     rerun without --resume to start over, or use another --out",
                    spec.file.display(),
                    spec_copy.display()
                )));
            }
        }
        if !resume {
            for sub in ["work", "ledger", "curated", "shards", "images", "stats", "stats.json", "spec.yaml", "report.html"] {
                let p = dir.join(sub);
                if p.is_dir() {
                    std::fs::remove_dir_all(&p).ctx(|| format!("removing {}", p.display()))?;
                } else if p.exists() {
                    std::fs::remove_file(&p).ctx(|| format!("removing {}", p.display()))?;
                }
            }
        }
    }
    std::fs::create_dir_all(dir.join("ledger")).ctx(|| format!("creating {}", dir.display()))?;
    atomic_write(&spec_copy, spec.text.as_bytes(), 0)?;
    Ok(hash)
}

/// Remove what an interrupted attempt at a stage left behind.
fn clear_stage(dir: &Path, work: &Path, ledger_prefix: &str) -> Result<()> {
    if work.exists() {
        std::fs::remove_dir_all(work).ctx(|| format!("removing {}", work.display()))?;
    }
    let ledger = dir.join("ledger");
    for e in std::fs::read_dir(&ledger).ctx(|| format!("listing {}", ledger.display()))? {
        let p = e.ctx(|| "listing ledger")?.path();
        let name = p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if name.starts_with(ledger_prefix) || name.starts_with(&format!(".{ledger_prefix}")) {
            std::fs::remove_file(&p).ctx(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(())
}

fn marker(work: &Path) -> PathBuf {
    work.join("_DONE.json")
}

fn read_marker(work: &Path) -> Option<StageStats> {
    let bytes = std::fs::read(marker(work)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn write_marker(work: &Path, stats: &StageStats) -> Result<()> {
    let json = serde_json::to_vec_pretty(stats).ctx(|| "serialising stage stats")?;
    atomic_write(&marker(work), &json, 0)
}

/// Writers for one stage: kept rows and ledger rows.
struct StageOutput {
    /// Kept rows are written by the last stage of a segment only.
    kept: Option<PipedWriter>,
    ledger: PipedWriter,
    /// Ledger rows not yet written (fewer than [`LEDGER_ROW_GROUP`]).
    pending: Vec<LedgerEntry>,
    stats: StageStats,
    batches: usize,
    /// Seconds spent judging and writing (stages of a segment share the reading).
    busy: f64,
}

impl StageOutput {
    fn new(dir: &Path, index: usize, name: &str, writes_rows: bool) -> Result<Self> {
        let dn = stage_dir_name(index, name);
        let work = dir.join("work").join(&dn);
        Self::at(index, name, writes_rows.then_some(work.as_path()), &dir.join("ledger"), &dn)
    }

    /// Kept rows (if any) as parts in `kept_dir`, ledger rows as `ledger_dir/PREFIX-*.parquet`.
    fn at(index: usize, name: &str, kept_dir: Option<&Path>, ledger_dir: &Path, ledger_prefix: &str) -> Result<Self> {
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

    fn write(&mut self, rows_in: usize, kept: &[Trace], dropped: &[LedgerEntry]) -> Result<()> {
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
    fn finish(mut self, work: &Path, started: Instant) -> Result<StageStats> {
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

/// Outcome of ingesting one raw row.
enum Ingested {
    Trace(ingest::RawTrace, Vec<schema::ImageRef>, [u8; 16], String),
    Rejected(LedgerEntry),
}

fn ingest_row(row: RawRow, input: &crate::spec::Input, root: &Path, store: &ImageStore) -> Result<Ingested> {
    let rejected = |reason: &str, detail: String| {
        Ingested::Rejected(LedgerEntry {
            id: None,
            source: input.source.clone(),
            origin: row.origin.clone(),
            stage: "ingest".into(),
            reason: reason.to_string(),
            detail,
            kept_id: None,
        })
    };
    let rec = match &row.record {
        Ok(r) => r,
        Err(rej) => return Ok(rejected(rej.reason, rej.detail.clone())),
    };
    let raw = match ingest::map_record(rec, input) {
        Ok(r) => r,
        Err(rej) => return Ok(rejected(rej.reason, rej.detail)),
    };
    let mut refs = Vec::with_capacity(raw.images.len());
    for src in raw.images.iter().cloned() {
        refs.push(store.ingest(src, root)?);
    }
    let ids: Vec<String> = refs.iter().map(|r| r.id.clone()).collect();
    let cid = ingest::content_id(&input.source, &raw, &ids);
    Ok(Ingested::Trace(raw, refs, cid, row.origin))
}

fn run_ingest(spec: &Spec, dir: &Path, store: &ImageStore, progress: bool) -> Result<StageStats> {
    let started = Instant::now();
    let work = dir.join("work").join(stage_dir_name(0, "ingest"));
    let mut totals = Vec::new();
    for input in &spec.inputs {
        totals.extend(ingest::preflight(input)?);
    }
    let total = totals.iter().copied().sum::<Option<usize>>().map(|n| n as u64);
    let pb = bar(progress, total, "ingest");
    let mut out = StageOutput::new(dir, 0, "ingest", true)?;
    let mut seen: HashMap<[u8; 16], u32> = HashMap::new();
    for input in &spec.inputs {
        for file in &input.files {
            let root = ingest::images_root(input, file);
            ingest::read_batches(input, file, spec.batch_rows, |rows| {
                let n = rows.len();
                let done: Vec<Ingested> = rows
                    .into_par_iter()
                    .map(|r| ingest_row(r, input, root, store))
                    .collect::<Result<_>>()?;
                let (kept, dropped) = split_ingested(done, &input.source, |cid| {
                    let count = seen.entry(cid).or_insert(0);
                    *count += 1;
                    let id = ingest::hex(&cid);
                    Ok(if *count > 1 { format!("{id}-{count}") } else { id })
                })?;
                out.write(n, &kept, &dropped)?;
                pb.inc(n as u64);
                Ok(())
            })?;
        }
    }
    pb.finish_and_clear();
    out.finish(&work, started)
}

/// The traces and the ledger rows of an ingested batch; `id_of` names each trace from its
/// content id, in order.
fn split_ingested(
    done: Vec<Ingested>,
    source: &str,
    mut id_of: impl FnMut([u8; 16]) -> Result<String>,
) -> Result<(Vec<Trace>, Vec<LedgerEntry>)> {
    let mut kept = Vec::with_capacity(done.len());
    let mut dropped = Vec::new();
    for d in done {
        match d {
            Ingested::Rejected(e) => dropped.push(e),
            Ingested::Trace(raw, images, cid, origin) => kept.push(Trace {
                id: id_of(cid)?,
                source: source.to_string(),
                origin,
                system: raw.system,
                prompt: raw.prompt,
                response: raw.response,
                reference: raw.reference,
                images,
                tokens: None,
                num_tokens: None,
                bucket: None,
                pass_rate: raw.pass_rate,
            }),
        }
    }
    Ok((kept, dropped))
}

/// Judge one batch with one stage; returns the kept rows and writes the ledger rows.
fn judge_batch(
    stage: &dyn Stage,
    out: &mut StageOutput,
    pos: u64,
    batch: Vec<Trace>,
    ctx: &StageContext,
) -> Result<Vec<Trace>> {
    let name = stage.name();
    let started = Instant::now();
    let mut batch = batch;
    let judged: Vec<Measured> = batch
        .par_iter_mut()
        .enumerate()
        .map(|(i, t)| stage.apply(pos + i as u64, t, ctx))
        .collect::<Result<_>>()?;
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

/// Run a segment: consecutive stages of which only the first may need an index pass. The
/// input is read once; each batch flows through the stages in memory, every stage writes its
/// own ledger and statistics, and only the last stage writes its kept rows.
fn run_segment(
    segment: &mut [(usize, Box<dyn Stage>)],
    spec: &Spec,
    dir: &Path,
    prev: &Path,
    store: &ImageStore,
    progress: bool,
) -> Result<Vec<StageStats>> {
    let started = Instant::now();
    let input = PartReader::open(prev)?;
    let total = input.rows() as u64;
    let mut index_seconds = None;
    if let Some((first_index, first)) = segment.first_mut() {
        if first.needs_index() {
            let pb = bar(progress, Some(total), &format!("{} (index)", first.name()));
            let index_dir = dir.join("work").join(stage_dir_name(*first_index, first.name())).join("index");
            std::fs::create_dir_all(&index_dir).ctx(|| format!("creating {}", index_dir.display()))?;
            let ictx = IndexContext { images: store, dir: &index_dir, partial: false };
            let mut pos = 0u64;
            let columns = first.index_columns();
            input.for_each_batch_of(spec.batch_rows, columns.as_deref(), |df| {
                let batch = if columns.is_some() { schema::traces_from_partial_df(&df)? } else { schema::traces_from_df(&df)? };
                first.index(pos, &batch, &ictx)?;
                pos += batch.len() as u64;
                pb.inc(batch.len() as u64);
                Ok(())
            })?;
            pb.finish_and_clear();
            first.finish_index(&ictx)?;
            index_seconds = Some((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        }
    }
    let names: Vec<&str> = segment.iter().map(|(_, s)| s.name()).collect();
    if segment.iter().skip(1).any(|(_, s)| s.needs_index()) {
        return Err(Error::Run(format!("internal: a global stage inside segment {}", names.join(" > "))));
    }
    let ctx = StageContext { images: store };
    let pb = bar(progress, Some(total), &names.join(" > "));
    let last = segment.len() - 1;
    let mut outs = segment
        .iter()
        .enumerate()
        .map(|(k, (index, st))| StageOutput::new(dir, *index, st.name(), k == last))
        .collect::<Result<Vec<_>>>()?;
    let mut positions = vec![0u64; segment.len()];
    input.for_each_batch(spec.batch_rows, |df| {
        let mut batch = schema::traces_from_df(&df)?;
        let n = batch.len() as u64;
        for (k, (_, stage)) in segment.iter().enumerate() {
            let rows = batch.len() as u64;
            batch = judge_batch(stage.as_ref(), &mut outs[k], positions[k], batch, &ctx)?;
            positions[k] += rows;
        }
        pb.inc(n);
        Ok(())
    })?;
    pb.finish_and_clear();
    let mut stats = Vec::with_capacity(segment.len());
    for (k, ((index, st), mut out)) in segment.iter().zip(outs).enumerate() {
        let work = dir.join("work").join(stage_dir_name(*index, st.name()));
        if k == 0 {
            out.stats.index_seconds = index_seconds;
        }
        out.stats.summary = st.summary();
        stats.push(out.finish(&work, started)?);
    }
    Ok(stats)
}

/// Write the curated output: the last stage's rows with their image bytes.
fn write_curated(spec: &Spec, dir: &Path, last: &[PathBuf], store: &ImageStore, progress: bool) -> Result<u64> {
    let curated = dir.join("curated");
    if curated.exists() {
        std::fs::remove_dir_all(&curated).ctx(|| format!("removing {}", curated.display()))?;
    }
    let input = PartReader::open_dirs(last)?;
    let pb = bar(progress, Some(input.rows() as u64), "write curated");
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

/// Peak resident set size of this process so far (Linux `VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Run a spec. Returns the run statistics (also written to `DIR/stats.json`).
pub fn run(spec: &Spec, opts: &RunOptions) -> Result<RunStats> {
    let pool = {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(n) = opts.threads {
            b = b.num_threads(n.max(1));
        }
        b.build().map_err(|e| Error::Run(format!("starting worker threads: {e}")))?
    };
    pool.install(|| run_in_pool(spec, opts))
}

fn run_in_pool(spec: &Spec, opts: &RunOptions) -> Result<RunStats> {
    let dir = run_dir(spec, opts);
    let spec_blake3 = prepare_dir(&dir, spec, opts.resume)?;
    let store = ImageStore::open(&dir.join("images"))?;
    let mut stats = Vec::new();
    let mut wall: Vec<(String, f64)> = Vec::new();
    let mut changed = false;
    let ingest_work = dir.join("work").join(stage_dir_name(0, "ingest"));
    match read_marker(&ingest_work).filter(|_| opts.resume) {
        Some(s) => stats.push(s),
        None => {
            clear_stage(&dir, &ingest_work, &stage_dir_name(0, "ingest"))?;
            let t = Instant::now();
            stats.push(run_ingest(spec, &dir, &store, opts.progress)?);
            wall.push(("ingest".to_string(), t.elapsed().as_secs_f64()));
            changed = true;
        }
    }
    let mut prev = ingest_work;
    for seg in segments(spec) {
        let works: Vec<PathBuf> =
            seg.iter().map(|&i| dir.join("work").join(stage_dir_name(i + 1, spec.stages[i].name()))).collect();
        let done: Option<Vec<StageStats>> = if opts.resume && !changed {
            works.iter().map(|w| read_marker(w)).collect()
        } else {
            None
        };
        match done {
            Some(s) => stats.extend(s),
            None => {
                for (&i, w) in seg.iter().zip(&works) {
                    clear_stage(&dir, w, &stage_dir_name(i + 1, spec.stages[i].name()))?;
                }
                let mut stages: Vec<(usize, Box<dyn Stage>)> = seg.iter().map(|&i| Ok((i + 1, spec.stages[i].build(&StageContext { images: &store })?))).collect::<Result<_>>()?;
                let t = Instant::now();
                stats.extend(run_segment(&mut stages, spec, &dir, &prev, &store, opts.progress)?);
                let names: Vec<&str> = stages.iter().map(|(_, s)| s.name()).collect();
                wall.push((names.join(" > "), t.elapsed().as_secs_f64()));
                changed = true;
            }
        }
        prev = works.last().expect("segments are non-empty").clone();
    }
    let done = dir.join("work").join("_CURATED_DONE");
    if changed || !done.exists() || !opts.resume {
        let t = Instant::now();
        write_curated(spec, &dir, std::slice::from_ref(&prev), &store, opts.progress)?;
        atomic_write(&done, b"", 0)?;
        wall.push(("write curated".to_string(), t.elapsed().as_secs_f64()));
    }
    let mut shards = None;
    if let Some(crate::stages::StageSpec::Pack(cfg)) = spec.stages.last() {
        let out = dir.join("shards");
        let manifest = out.join("manifest.json");
        if changed || !manifest.exists() || !opts.resume {
            let t = Instant::now();
            let rows = PartReader::open(&prev)?.rows() as u64;
            let pb = bar(opts.progress, Some(rows), "write shards");
            let m = crate::shards::write_shards(&out, std::slice::from_ref(&prev), &store, cfg, &spec_blake3, spec.batch_rows, &pb)?;
            pb.finish_and_clear();
            wall.push(("write shards".to_string(), t.elapsed().as_secs_f64()));
            shards = Some(m);
        } else {
            let bytes = std::fs::read(&manifest).ctx(|| format!("reading {}", manifest.display()))?;
            shards = Some(serde_json::from_slice(&bytes).ctx(|| format!("reading {}", manifest.display()))?);
        }
    }
    let shards = shards.as_ref().map(ShardSummary::of);
    let wall_seconds = wall.into_iter().map(|(k, v)| (k, (v * 1000.0).round() / 1000.0)).collect();
    let run = RunStats::new(spec, spec_blake3, stats, wall_seconds, shards);
    let json = serde_json::to_vec_pretty(&run).ctx(|| "serialising stats")?;
    atomic_write(&dir.join("stats.json"), &json, 0)?;
    tables::write(&dir, &run)?;
    Ok(run)
}
