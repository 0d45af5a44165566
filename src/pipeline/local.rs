//! A run in one process: ingest, then each segment over the previous one's kept rows, then
//! the curated output and shards; `--resume` skips what completed markers cover.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::rundir::{clear_stage, prepare_dir, read_marker, stage_dir_name};
use super::segment::{StageOutput, finish_segment, judge_through, segments, write_curated, write_shards, write_stats};
use super::{RunOptions, RunStats, StageStats, run_dir};
use crate::error::{Context, Error, Result};
use crate::ingest::{self, ImageStore};
use crate::io::{PartReader, atomic_write};
use crate::progress::bar;
use crate::schema;
use crate::spec::Spec;
use crate::stages::{IndexContext, Stage, StageContext};

pub(super) fn run(spec: &Spec, opts: &RunOptions) -> Result<RunStats> {
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
        let done: Option<Vec<StageStats>> =
            if opts.resume && !changed { works.iter().map(|w| read_marker(w)).collect() } else { None };
        match done {
            Some(s) => stats.extend(s),
            None => {
                for (&i, w) in seg.iter().zip(&works) {
                    clear_stage(&dir, w, &stage_dir_name(i + 1, spec.stages[i].name()))?;
                }
                let mut stages: Vec<(usize, Box<dyn Stage>)> = seg
                    .iter()
                    .map(|&i| Ok((i + 1, spec.stages[i].build(&StageContext { images: &store })?)))
                    .collect::<Result<_>>()?;
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
    let shards = if spec.stages.last().is_some_and(|s| matches!(s, crate::stages::StageSpec::Pack(_))) {
        let out = dir.join("shards");
        if changed || !out.join("manifest.json").exists() || !opts.resume {
            let t = Instant::now();
            let m = write_shards(spec, &dir, std::slice::from_ref(&prev), &store, &spec_blake3, opts.progress)?;
            wall.push(("write shards".to_string(), t.elapsed().as_secs_f64()));
            m
        } else {
            Some(crate::shards::Manifest::read(&out)?)
        }
    } else {
        None
    };
    let run = write_stats(spec, &dir, &spec_blake3, stats, wall, shards.as_ref())?;
    Ok(run)
}

fn run_ingest(spec: &Spec, dir: &Path, store: &ImageStore, progress: bool) -> Result<StageStats> {
    let started = Instant::now();
    let work = dir.join("work").join(stage_dir_name(0, "ingest"));
    let mut totals = Vec::new();
    for input in &spec.inputs {
        totals.extend(ingest::preflight(input)?);
    }
    let total = totals.iter().copied().sum::<Option<usize>>().map(|n| n as u64);
    let pb = bar(progress, total, "ingest", "rows");
    let mut out = StageOutput::new(dir, 0, "ingest", true)?;
    let mut seen: HashMap<[u8; 16], u32> = HashMap::new();
    for input in &spec.inputs {
        for file in &input.files {
            let root = ingest::images_root(input, file);
            ingest::read_batches(input, file, spec.batch_rows, |rows| {
                let n = rows.len();
                let (kept, dropped) = ingest::trace::to_traces(rows, input, root, store, |cid| {
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
            let pb = bar(progress, Some(total), &format!("{} (index)", first.name()), "rows");
            let index_dir = dir.join("work").join(stage_dir_name(*first_index, first.name())).join("index");
            std::fs::create_dir_all(&index_dir).ctx(|| format!("creating {}", index_dir.display()))?;
            let ictx = IndexContext { images: store, dir: &index_dir, partial: false };
            let mut pos = 0u64;
            let columns = first.index_columns();
            input.for_each_batch_of(spec.batch_rows, columns.as_deref(), |df| {
                let batch =
                    if columns.is_some() { schema::traces_from_partial_df(&df)? } else { schema::traces_from_df(&df)? };
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
    let pb = bar(progress, Some(total), &names.join(" > "), "rows");
    let last = segment.len() - 1;
    let mut outs = segment
        .iter()
        .enumerate()
        .map(|(k, (index, st))| StageOutput::new(dir, *index, st.name(), k == last))
        .collect::<Result<Vec<_>>>()?;
    let mut positions = vec![0u64; segment.len()];
    let judges: Vec<&dyn Stage> = segment.iter().map(|(_, s)| s.as_ref()).collect();
    input.for_each_batch(spec.batch_rows, |df| {
        let batch = schema::traces_from_df(&df)?;
        let n = batch.len() as u64;
        judge_through(&judges, &mut outs, &mut positions, batch, &ctx)?;
        pb.inc(n);
        Ok(())
    })?;
    pb.finish_and_clear();
    let works: Vec<PathBuf> =
        segment.iter().map(|(index, st)| dir.join("work").join(stage_dir_name(*index, st.name()))).collect();
    let stats = finish_segment(&judges, outs, &works, started, index_seconds)?;
    Ok(stats)
}
