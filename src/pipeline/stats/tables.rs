//! `DIR/stats/*.parquet`: the numbers of stats.json as tables, for notebooks.
//!
//! ```text
//! stats/stages.parquet      stage_index, stage, rows_in, rows_out, rows_dropped
//! stats/drops.parquet       stage_index, stage, reason, rows
//! stats/histograms.parquet  stage_index, stage, metric, lower, upper, rows
//! ```
//! Wall times stay in stats.json only, so the tables are byte-identical across reruns.

use std::path::Path;

use polars::prelude::*;

use super::{RunStats, histogram};
use crate::error::{Context, Result};
use crate::io::write_parquet;

/// Write the three tables of `stats` under `dir/stats/`.
pub fn write(dir: &Path, stats: &RunStats) -> Result<()> {
    let out = dir.join("stats");
    std::fs::create_dir_all(&out).ctx(|| format!("creating {}", out.display()))?;
    let st = &stats.stages;
    let stages = df! {
        "stage_index" => st.iter().map(|s| s.index as u32).collect::<Vec<_>>(),
        "stage" => st.iter().map(|s| s.stage.clone()).collect::<Vec<_>>(),
        "rows_in" => st.iter().map(|s| s.rows_in).collect::<Vec<_>>(),
        "rows_out" => st.iter().map(|s| s.rows_out).collect::<Vec<_>>(),
        "rows_dropped" => st.iter().map(|s| s.dropped.values().sum::<u64>()).collect::<Vec<_>>(),
    }
    .ctx(|| "building stats/stages")?;
    write_parquet(&out.join("stages.parquet"), &stages)?;

    let (mut idx, mut name, mut reason, mut rows) = (vec![], vec![], vec![], vec![]);
    for s in st {
        for (r, n) in &s.dropped {
            idx.push(s.index as u32);
            name.push(s.stage.clone());
            reason.push(r.clone());
            rows.push(*n);
        }
    }
    let drops = df! { "stage_index" => idx, "stage" => name, "reason" => reason, "rows" => rows }
        .ctx(|| "building stats/drops")?;
    write_parquet(&out.join("drops.parquet"), &drops)?;

    let edges = histogram::edges();
    let (mut idx, mut name, mut metric, mut lower, mut upper, mut rows) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for s in st {
        for (m, h) in &s.measured {
            for &(lo, n) in &h.buckets {
                idx.push(s.index as u32);
                name.push(s.stage.clone());
                metric.push(m.clone());
                lower.push(lo);
                upper.push(histogram::upper_edge(&edges, lo));
                rows.push(n);
            }
        }
    }
    let hist = df! {
        "stage_index" => idx, "stage" => name, "metric" => metric,
        "lower" => lower, "upper" => upper, "rows" => rows,
    }
    .ctx(|| "building stats/histograms")?;
    write_parquet(&out.join("histograms.parquet"), &hist)
}
