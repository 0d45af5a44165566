//! Runs split into tasks over shared storage: Slurm job arrays, Kubernetes Indexed Jobs, or
//! local processes.
//!
//! A split run is a chain of steps. Each step is either an array of `world` tasks or a single
//! task, and steps meet through files in the run directory:
//!
//! ```text
//! ingest            array   task r ingests its share of the input (Parquet by row group, in order)
//! NN-stage.map      array   global stage NN: task r indexes its rows (hashes, keys, lengths)
//! NN-stage.reduce   single  merges the map outputs in rank order and decides
//! NN-stage          array   task r judges its rows through the segment of stages from NN
//! finalize          single  curated/, ledger/, shards/, stats.json from the tasks' outputs
//! ```
//! A segment is the run of stages from one global stage (or ingest) to the next. Task r's rows
//! keep their global positions (the rows of tasks before r come first), files are assigned to
//! tasks in order, and `finalize` writes with batches and row groups that depend only on the
//! row sequence, so the curated output, the ledger and the shards are byte-identical to a
//! one-process run of the same spec, whatever the number of tasks.
//!
//! ```text
//! DIR/work/NN-stage/task-RRRRR/part-*.parquet   rows task r kept (last stage of a segment)
//! DIR/work/NN-stage/task-RRRRR/ledger/          rows task r dropped
//! DIR/work/NN-stage/task-RRRRR/_DONE.json       task r's marker and statistics
//! DIR/work/NN-stage/map/task-RRRRR/map.bin      global stages: task r's index
//! DIR/work/NN-stage/reduce.bin, _REDUCE_DONE    global stages: the decisions
//! DIR/work/00-ingest/task-RRRRR/cids.bin        content ids of task r's rows (16 bytes each)
//! DIR/work/_FINAL_DONE                          finalize's marker
//! ```
//! Every step leaves a completion marker, and a step that finds its marker does nothing, so a
//! rerun repeats only what did not finish.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::rundir::{read_marker, stage_dir_name};
use super::segment::{
    LEDGER_ROW_GROUP, StageOutput, WORK_ROWS_PER_FILE, finish_segment, judge_through, segments, write_curated,
    write_shards, write_stats,
};
use super::{RunStats, StageStats, stats};
use crate::error::{Context, Error, Result};
use crate::ingest::{self, ImageStore};
use crate::io::{PartReader, PipedWriter, atomic_write};
use crate::progress::bar;
use crate::schema::{self, Trace};
use crate::spec::Spec;
use crate::stages::{IndexContext, StageContext};

/// This process's place in a split run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub rank: usize,
    pub world: usize,
}

impl Task {
    /// The task from the flags, else from the scheduler's environment: Slurm's
    /// `SLURM_ARRAY_TASK_ID` / `SLURM_ARRAY_TASK_COUNT`, or Kubernetes' `JOB_COMPLETION_INDEX`
    /// (with `--world-size`). None when neither names a split run.
    pub fn resolve(rank: Option<usize>, world: Option<usize>) -> Result<Option<Task>> {
        let env = |k: &str| -> Result<Option<usize>> {
            match std::env::var(k) {
                Ok(v) => v.trim().parse().map(Some).map_err(|_| Error::Spec(format!("{k}={v} is not a task number"))),
                Err(_) => Ok(None),
            }
        };
        let world = match world {
            Some(w) => Some(w),
            None => env("SLURM_ARRAY_TASK_COUNT")?,
        };
        let rank = match rank {
            Some(r) => Some(r),
            None => match env("SLURM_ARRAY_TASK_ID")? {
                Some(r) => Some(r),
                None => env("JOB_COMPLETION_INDEX")?,
            },
        };
        match (rank, world) {
            (_, None) => Ok(None),
            (_, Some(0)) => Err(Error::Spec("--world-size must be at least 1".into())),
            (None, Some(w)) if w > 1 => Err(Error::Spec(format!(
                "a split run of {w} tasks needs --rank (or SLURM_ARRAY_TASK_ID, or JOB_COMPLETION_INDEX)"
            ))),
            (r, Some(w)) => {
                let r = r.unwrap_or(0);
                if r >= w {
                    return Err(Error::Spec(format!("rank {r} is outside a world of {w} tasks (ranks 0..{})", w - 1)));
                }
                Ok(Some(Task { rank: r, world: w }))
            }
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepKind {
    Ingest,
    /// Index one task's rows for the global stage at this spec index.
    Map(usize),
    /// Merge the map outputs of the global stage at this spec index.
    Reduce(usize),
    /// Judge one task's rows through the segment at this index of [`segments`].
    Apply(usize),
    Finalize,
}

/// One step of a split run.
#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub kind: StepKind,
    /// An array of `world` tasks (else a single task).
    pub array: bool,
}

fn stage_work(dir: &Path, spec: &Spec, i: usize) -> PathBuf {
    dir.join("work").join(stage_dir_name(i + 1, spec.stages[i].name()))
}

fn task_dir(stage_work: &Path, rank: usize) -> PathBuf {
    stage_work.join(format!("task-{rank:05}"))
}

fn ingest_work(dir: &Path) -> PathBuf {
    dir.join("work").join(stage_dir_name(0, "ingest"))
}

/// The steps of a spec, in order.
pub fn steps(spec: &Spec) -> Result<Vec<Step>> {
    if let Some(st) = spec.stages.iter().find(|s| !s.splittable()) {
        return Err(Error::Spec(format!(
            "{}: stage `{}` cannot run split into tasks yet (splittable global stages: dedup.exact, dedup.minhash, dedup.image, bucket, mix); run this spec in one process",
            spec.file.display(),
            st.name()
        )));
    }
    let mut out = vec![Step { name: "ingest".into(), kind: StepKind::Ingest, array: true }];
    for (k, seg) in segments(spec).iter().enumerate() {
        let i = seg[0];
        let dn = stage_dir_name(i + 1, spec.stages[i].name());
        if spec.stages[i].needs_index() {
            out.push(Step { name: format!("{dn}.map"), kind: StepKind::Map(i), array: true });
            out.push(Step { name: format!("{dn}.reduce"), kind: StepKind::Reduce(i), array: false });
        }
        out.push(Step { name: dn, kind: StepKind::Apply(k), array: true });
    }
    out.push(Step { name: "finalize".into(), kind: StepKind::Finalize, array: false });
    Ok(out)
}

/// A piece of input one task ingests: a whole file, or rows `start..end` of a Parquet file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    /// Index of the input in the spec.
    pub input: usize,
    pub file: PathBuf,
    pub rows: Option<(usize, usize)>,
}

/// The input assigned to each task: the spec's files in order (inputs in spec order, files
/// sorted within an input), Parquet files by row group, cut into `world` consecutive runs of
/// about equal bytes. JSON and JSONL files are never split.
pub fn assign_inputs(spec: &Spec, world: usize) -> Result<Vec<Vec<Piece>>> {
    // units: (piece, bytes)
    let mut units: Vec<(Piece, u64)> = Vec::new();
    for (k, inp) in spec.inputs.iter().enumerate() {
        for f in &inp.files {
            if inp.format == crate::spec::Format::Parquet {
                let mut start = 0;
                for (rows, bytes) in crate::io::parquet_row_groups(f)? {
                    units.push((Piece { input: k, file: f.clone(), rows: Some((start, start + rows)) }, bytes as u64));
                    start += rows;
                }
            } else {
                let bytes = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
                units.push((Piece { input: k, file: f.clone(), rows: None }, bytes));
            }
        }
    }
    let total: u64 = units.iter().map(|u| u.1.max(1)).sum();
    let mut out: Vec<Vec<Piece>> = vec![Vec::new(); world];
    let mut acc = 0u64;
    for (piece, bytes) in units {
        // the task whose share of the bytes holds this unit's midpoint
        let mid = acc + bytes.max(1) / 2;
        let r = (((mid as u128) * world as u128) / total.max(1) as u128).min(world as u128 - 1) as usize;
        acc += bytes.max(1);
        match out[r].last_mut() {
            // consecutive row groups of one file in one task: one range
            Some(Piece { input, file, rows: Some((_, end)) }) if *input == piece.input && *file == piece.file => {
                *end = piece.rows.expect("Parquet units have rows").1;
            }
            _ => out[r].push(piece),
        }
    }
    Ok(out)
}

/// The run directory of a split run: created if needed; never cleared (other tasks share it).
fn prepare(dir: &Path, spec: &Spec) -> Result<String> {
    let hash = blake3::hash(spec.text.as_bytes()).to_hex().to_string();
    let copy = dir.join("spec.yaml");
    match std::fs::read(&copy) {
        Ok(old) if blake3::hash(&old).to_hex().to_string() != hash => Err(Error::Spec(format!(
            "{}: the spec differs from the one this run started with ({}); use another --out",
            spec.file.display(),
            copy.display()
        ))),
        Ok(_) => Ok(hash),
        Err(_) => {
            std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
            atomic_write(&copy, spec.text.as_bytes(), std::process::id() as u64)?;
            Ok(hash)
        }
    }
}

fn remove_dir(p: &Path) -> Result<()> {
    if p.exists() {
        std::fs::remove_dir_all(p).ctx(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

/// Statistics of a finished task step, or an error naming what is missing.
fn need_marker(work: &Path, what: &str) -> Result<StageStats> {
    read_marker(work).ok_or_else(|| {
        Error::Run(format!(
            "{what} has not finished ({} is missing); run that step first",
            work.join("_DONE.json").display()
        ))
    })
}

/// Where the rows of segment `k` come from, per task, and how many each task has.
fn segment_input(dir: &Path, spec: &Spec, k: usize, world: usize) -> Result<(Vec<PathBuf>, Vec<u64>, bool)> {
    let (work, what) = if k == 0 {
        (ingest_work(dir), "ingest".to_string())
    } else {
        let prev = *segments(spec)[k - 1].last().expect("segments are non-empty");
        (stage_work(dir, spec, prev), format!("step {}", stage_dir_name(prev + 1, spec.stages[prev].name())))
    };
    let dirs: Vec<PathBuf> = (0..world).map(|r| task_dir(&work, r)).collect();
    let rows = dirs
        .iter()
        .enumerate()
        .map(|(r, d)| need_marker(d, &format!("{what} of task {r}")).map(|s| s.rows_out))
        .collect::<Result<_>>()?;
    Ok((dirs, rows, k == 0))
}

/// Numbers repeated rows the way one process does: the k-th row with the same content id
/// gets the id `HEX-k`. Built from the content ids of the tasks before this one.
struct IdFix {
    seen: HashMap<[u8; 16], u32>,
}

impl IdFix {
    fn new(dir: &Path, rank: usize) -> Result<Self> {
        let mut seen: HashMap<[u8; 16], u32> = HashMap::new();
        for r in 0..rank {
            let p = task_dir(&ingest_work(dir), r).join("cids.bin");
            let bytes = std::fs::read(&p).ctx(|| format!("reading {}", p.display()))?;
            for c in bytes.chunks_exact(16) {
                *seen.entry(c.try_into().expect("16 bytes")).or_insert(0) += 1;
            }
        }
        Ok(Self { seen })
    }

    fn fix(&mut self, batch: &mut [Trace]) -> Result<()> {
        for t in batch {
            let cid = parse_cid(&t.id)
                .ok_or_else(|| Error::Run(format!("internal: ingested row id {} is not a content id", t.id)))?;
            let n = self.seen.entry(cid).or_insert(0);
            *n += 1;
            if *n > 1 {
                t.id = format!("{}-{n}", t.id);
            }
        }
        Ok(())
    }
}

fn parse_cid(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (k, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * k..2 * k + 2], 16).ok()?;
    }
    Some(out)
}

/// Wait until `path` exists (another task's step), saying once what is awaited (unless quiet).
fn wait_for(path: &Path, what: &str, say: bool) {
    let mut said = !say;
    while !path.exists() {
        if !said {
            eprintln!("cotforge: waiting for {what} ({})", path.display());
            said = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The marker file that says a step finished (for one task, or the single task).
fn step_marker(dir: &Path, spec: &Spec, step: &Step, rank: usize) -> PathBuf {
    match step.kind {
        StepKind::Ingest => task_dir(&ingest_work(dir), rank).join("_DONE.json"),
        StepKind::Map(i) => task_dir(&stage_work(dir, spec, i).join("map"), rank).join("_MAP_DONE"),
        StepKind::Reduce(i) => stage_work(dir, spec, i).join("_REDUCE_DONE"),
        StepKind::Apply(k) => {
            let last = *segments(spec)[k].last().expect("segments are non-empty");
            task_dir(&stage_work(dir, spec, last), rank).join("_DONE.json")
        }
        StepKind::Finalize => dir.join("work").join("_FINAL_DONE"),
    }
}

/// Run every step of this task in order: array steps for its rank, single steps on rank 0;
/// waits for the other tasks where a step needs them.
pub fn run_task(spec: &Spec, dir: &Path, task: Task, progress: bool) -> Result<Option<RunStats>> {
    let all = steps(spec)?;
    let mut stats = None;
    for (k, step) in all.iter().enumerate() {
        if k > 0 {
            let prev = &all[k - 1];
            let ranks: Vec<usize> = if prev.array { (0..task.world).collect() } else { vec![0] };
            for r in ranks {
                wait_for(&step_marker(dir, spec, prev, r), &format!("step {} of task {r}", prev.name), progress);
            }
        }
        if step.array || task.rank == 0 {
            stats = run_step(spec, dir, task, &step.name, progress)?.or(stats);
        }
    }
    Ok(stats)
}

/// Run one step (by name) of a split run for this task. Returns the run statistics after
/// `finalize`.
pub fn run_step(spec: &Spec, dir: &Path, task: Task, name: &str, progress: bool) -> Result<Option<RunStats>> {
    let all = steps(spec)?;
    let step = all.iter().find(|s| s.name == name).ok_or_else(|| {
        Error::Spec(format!(
            "no step `{name}` in this spec; its steps are {}",
            all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let hash = prepare(dir, spec)?;
    if step_marker(dir, spec, step, if step.array { task.rank } else { 0 }).exists() {
        return Ok(None);
    }
    let store = ImageStore::open(&dir.join("images"))?;
    match step.kind {
        StepKind::Ingest => ingest_task(spec, dir, task, &store, progress).map(|_| None),
        StepKind::Map(i) => map_task(spec, dir, task, i, &store, progress).map(|_| None),
        StepKind::Reduce(i) => reduce(spec, dir, task.world, i, &store).map(|_| None),
        StepKind::Apply(k) => apply_task(spec, dir, task, k, &store, progress).map(|_| None),
        StepKind::Finalize => finalize(spec, dir, task.world, &hash, &store, progress).map(Some),
    }
}

fn ingest_task(spec: &Spec, dir: &Path, task: Task, store: &ImageStore, progress: bool) -> Result<()> {
    let started = Instant::now();
    let td = task_dir(&ingest_work(dir), task.rank);
    remove_dir(&td)?;
    let pieces = assign_inputs(spec, task.world)?.swap_remove(task.rank);
    let pb = bar(progress, None, &format!("ingest (task {})", task.rank), "rows");
    let mut out = StageOutput::at(0, "ingest", Some(&td), &td.join("ledger"), "part")?;
    let cids_path = td.join("cids.bin");
    let mut cids =
        std::io::BufWriter::new(std::fs::File::create(&cids_path).ctx(|| format!("creating {}", cids_path.display()))?);
    for Piece { input: k, file, rows } in pieces {
        let input = &spec.inputs[k];
        let root = ingest::images_root(input, &file);
        ingest::read_batches_in(input, &file, rows, spec.batch_rows, |rows| {
            let n = rows.len();
            // repeats are numbered when the rows are read (IdFix)
            let (kept, dropped) = ingest::trace::to_traces(rows, input, root, store, |cid| {
                cids.write_all(&cid).ctx(|| format!("writing {}", cids_path.display()))?;
                Ok(ingest::hex(&cid))
            })?;
            out.write(n, &kept, &dropped)?;
            pb.inc(n as u64);
            Ok(())
        })?;
    }
    cids.flush().ctx(|| format!("writing {}", cids_path.display()))?;
    drop(cids);
    pb.finish_and_clear();
    out.finish(&td, started)?;
    Ok(())
}

/// Call `f` on task `rank`'s segment-`k` rows in batches, with the global position of each
/// batch's first row; rows straight from ingest get their final ids.
fn for_each_task_batch(
    spec: &Spec,
    dir: &Path,
    task: Task,
    k: usize,
    columns: Option<Vec<&'static str>>,
    mut f: impl FnMut(u64, Vec<Trace>) -> Result<()>,
) -> Result<u64> {
    let (dirs, rows, from_ingest) = segment_input(dir, spec, k, task.world)?;
    let offset: u64 = rows[..task.rank].iter().sum();
    let mut fix = if from_ingest { Some(IdFix::new(dir, task.rank)?) } else { None };
    let mut columns = columns;
    if let (true, Some(c)) = (from_ingest, columns.as_mut())
        && !c.contains(&"id")
    {
        c.push("id");
    }
    let input = PartReader::open(&dirs[task.rank])?;
    let mut pos = offset;
    input.for_each_batch_of(spec.batch_rows, columns.as_deref(), |df| {
        let mut batch =
            if columns.is_some() { schema::traces_from_partial_df(&df)? } else { schema::traces_from_df(&df)? };
        if let Some(fx) = &mut fix {
            fx.fix(&mut batch)?;
        }
        let n = batch.len() as u64;
        f(pos, batch)?;
        pos += n;
        Ok(())
    })?;
    Ok(rows[task.rank])
}

fn map_task(spec: &Spec, dir: &Path, task: Task, i: usize, store: &ImageStore, progress: bool) -> Result<()> {
    let k = segments(spec).iter().position(|s| s[0] == i).ok_or_else(|| Error::Run("internal: no segment".into()))?;
    let td = task_dir(&stage_work(dir, spec, i).join("map"), task.rank);
    remove_dir(&td)?;
    let index_dir = td.join("index");
    std::fs::create_dir_all(&index_dir).ctx(|| format!("creating {}", index_dir.display()))?;
    let mut stage = spec.stages[i].build(&StageContext { images: store })?;
    let ictx = IndexContext { images: store, dir: &index_dir, partial: true };
    let columns = stage.index_columns();
    let pb = bar(progress, None, &format!("{} map (task {})", stage.name(), task.rank), "rows");
    let rows = for_each_task_batch(spec, dir, task, k, columns, |pos, batch| {
        stage.index(pos, &batch, &ictx)?;
        pb.inc(batch.len() as u64);
        Ok(())
    })?;
    pb.finish_and_clear();
    atomic_write(&td.join("map.bin"), &stage.save_partial()?, 0)?;
    atomic_write(&td.join("_MAP_DONE"), format!("{{\"rows\": {rows}}}").as_bytes(), 0)
}

fn reduce(spec: &Spec, dir: &Path, world: usize, i: usize, store: &ImageStore) -> Result<()> {
    let work = stage_work(dir, spec, i);
    let mut stage = spec.stages[i].build(&StageContext { images: store })?;
    for r in 0..world {
        let td = task_dir(&work.join("map"), r);
        if !td.join("_MAP_DONE").exists() {
            return Err(Error::Run(format!(
                "the map step of {} has not finished for task {r}; run it first",
                stage.name()
            )));
        }
        let p = td.join("map.bin");
        stage.load_partial(&std::fs::read(&p).ctx(|| format!("reading {}", p.display()))?)?;
    }
    let index_dir = work.join("index");
    std::fs::create_dir_all(&index_dir).ctx(|| format!("creating {}", index_dir.display()))?;
    stage.finish_index(&IndexContext { images: store, dir: &index_dir, partial: false })?;
    atomic_write(&work.join("reduce.bin"), &stage.save_decisions()?, 0)?;
    atomic_write(&work.join("_REDUCE_DONE"), b"", 0)
}

fn apply_task(spec: &Spec, dir: &Path, task: Task, k: usize, store: &ImageStore, progress: bool) -> Result<()> {
    let started = Instant::now();
    let seg = segments(spec)[k].clone();
    let ctx = StageContext { images: store };
    let mut stages = Vec::with_capacity(seg.len());
    for &i in &seg {
        let mut st = spec.stages[i].build(&ctx)?;
        if st.needs_index() {
            let p = stage_work(dir, spec, i).join("reduce.bin");
            let bytes = std::fs::read(&p).map_err(|e| {
                Error::Run(format!("{}: {e}; the reduce step of {} has not finished", p.display(), st.name()))
            })?;
            st.load_decisions(&bytes)?;
        }
        stages.push(st);
    }
    let tds: Vec<PathBuf> = seg.iter().map(|&i| task_dir(&stage_work(dir, spec, i), task.rank)).collect();
    for td in &tds {
        remove_dir(td)?;
    }
    let last = seg.len() - 1;
    let mut outs = seg
        .iter()
        .enumerate()
        .map(|(j, &i)| {
            StageOutput::at(
                i + 1,
                spec.stages[i].name(),
                (j == last).then_some(tds[j].as_path()),
                &tds[j].join("ledger"),
                "part",
            )
        })
        .collect::<Result<Vec<_>>>()?;
    let names: Vec<&str> = stages.iter().map(|s| s.name()).collect();
    let pb = bar(progress, None, &format!("{} (task {})", names.join(" > "), task.rank), "rows");
    let judges: Vec<&dyn crate::stages::Stage> = stages.iter().map(|s| s.as_ref()).collect();
    // the first stage sees global positions; later (row-local) stages count their own
    let mut positions = vec![0u64; seg.len()];
    for_each_task_batch(spec, dir, task, k, None, |pos, batch| {
        let n = batch.len() as u64;
        positions[0] = pos;
        judge_through(&judges, &mut outs, &mut positions, batch, &ctx)?;
        pb.inc(n);
        Ok(())
    })?;
    pb.finish_and_clear();
    finish_segment(&judges, outs, &tds, started, None)?;
    Ok(())
}

/// Rewrite the tasks' ledger parts of one stage as `DIR/ledger/PREFIX-*.parquet`, in rank
/// order, with the row groups a one-process run writes.
fn gather_ledger(dir: &Path, task_ledgers: &[PathBuf], prefix: &str) -> Result<()> {
    let existing: Vec<PathBuf> = task_ledgers.iter().filter(|d| d.is_dir()).cloned().collect();
    let input = PartReader::open_dirs(&existing)?;
    if input.rows() == 0 {
        return Ok(());
    }
    let mut w = PipedWriter::new(&dir.join("ledger"), prefix, WORK_ROWS_PER_FILE)?;
    input.for_each_rebatched(LEDGER_ROW_GROUP, |df| w.write(df))?;
    w.finish(&schema::ledger_to_df(&[])?)?;
    Ok(())
}

fn finalize(spec: &Spec, dir: &Path, world: usize, hash: &str, store: &ImageStore, progress: bool) -> Result<RunStats> {
    let started = Instant::now();
    let segs = segments(spec);
    let last = *segs.last().and_then(|s| s.last()).ok_or_else(|| Error::Spec("the spec has no stages".into()))?;
    // every stage's tasks, ingest first
    let mut works = vec![(ingest_work(dir), stage_dir_name(0, "ingest"))];
    works.extend(
        (0..spec.stages.len()).map(|i| (stage_work(dir, spec, i), stage_dir_name(i + 1, spec.stages[i].name()))),
    );
    let mut stats = Vec::with_capacity(works.len());
    for (work, dn) in &works {
        let parts = (0..world)
            .map(|r| need_marker(&task_dir(work, r), &format!("step {dn} of task {r}")))
            .collect::<Result<Vec<_>>>()?;
        stats.push(stats::merge(parts));
    }
    remove_dir(&dir.join("ledger"))?;
    std::fs::create_dir_all(dir.join("ledger")).ctx(|| format!("creating {}", dir.join("ledger").display()))?;
    for (work, dn) in &works {
        let ledgers: Vec<PathBuf> = (0..world).map(|r| task_dir(work, r).join("ledger")).collect();
        gather_ledger(dir, &ledgers, dn)?;
    }
    let kept: Vec<PathBuf> = (0..world).map(|r| task_dir(&stage_work(dir, spec, last), r)).collect();
    write_curated(spec, dir, &kept, store, progress)?;
    let shards = write_shards(spec, dir, &kept, store, hash, progress)?;
    let wall = vec![("finalize".to_string(), started.elapsed().as_secs_f64())];
    let run = write_stats(spec, dir, hash, stats, wall, shards.as_ref())?;
    atomic_write(&dir.join("work").join("_FINAL_DONE"), b"", 0)?;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ids_parse_back_from_their_hex() {
        let cid = [0xabu8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff];
        assert_eq!(parse_cid(&ingest::hex(&cid)), Some(cid));
        assert_eq!(parse_cid("abc"), None);
        assert_eq!(parse_cid(&format!("{}-2", ingest::hex(&cid))), None);
    }
}
