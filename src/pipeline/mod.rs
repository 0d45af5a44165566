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
//! DIR/stats/*.parquet           the same numbers as tables (see [`stats::tables`])
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
//!
//! The rooms: [`rundir`] lays out and clears the run directory and its markers, [`segment`]
//! is the engine one-process and split runs share (stage outputs, judging a batch through a
//! segment, the curated and shard outputs), [`local`] runs a spec in one process, [`split`]
//! runs it as tasks and [`plan`] writes their scheduler jobs; [`stats`] is the statistics
//! model of `stats.json` and `stats/`.

mod local;
pub mod plan;
mod rundir;
mod segment;
pub mod split;
pub mod stats;

use std::path::PathBuf;

pub use stats::{RunStats, ShardSummary, StageStats, histogram};

use crate::error::{Error, Result};
use crate::spec::Spec;

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

/// The run directory of a spec under the given options.
pub fn run_dir(spec: &Spec, opts: &RunOptions) -> PathBuf {
    opts.out.clone().unwrap_or_else(|| spec.out_dir.clone())
}

/// A worker pool of `threads` threads (default: all cores). Outputs do not depend on it.
fn pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        b = b.num_threads(n.max(1));
    }
    b.build().map_err(|e| Error::Run(format!("starting worker threads: {e}")))
}

/// Run a spec. Returns the run statistics (also written to `DIR/stats.json`).
pub fn run(spec: &Spec, opts: &RunOptions) -> Result<RunStats> {
    pool(opts.threads)?.install(|| local::run(spec, opts))
}

/// Run one task of a split run: every step of it (waiting for the other tasks where a step
/// needs them), or only `step`. Returns the run statistics when the run is complete after it,
/// None when the task's part is done and the run is not.
pub fn run_task(spec: &Spec, opts: &RunOptions, task: split::Task, step: Option<&str>) -> Result<Option<RunStats>> {
    let dir = run_dir(spec, opts);
    pool(opts.threads)?.install(|| match step {
        Some(s) => split::run_step(spec, &dir, task, s, opts.progress),
        None => split::run_task(spec, &dir, task, opts.progress),
    })
}
