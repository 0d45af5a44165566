//! The statistics of a run: per stage rows in and out, drops by reason, seconds and histograms
//! of measured values ([`StageStats`]), the run's totals ([`RunStats`], `DIR/stats.json`) and
//! the same numbers as Parquet tables under `DIR/stats/` ([`tables`]).

pub mod histogram;
pub mod tables;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};
use crate::io::atomic_write;
use crate::spec::Spec;

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
    pub(crate) fn of(m: &crate::shards::Manifest) -> Self {
        Self {
            packs: m.packs,
            samples: m.samples,
            tokens: m.tokens,
            loss_tokens: m.loss_tokens,
            fill: m.fill,
            files: m.files.len() as u64,
        }
    }
}

impl RunStats {
    /// `DIR/stats.json` of a finished run; the error says when DIR is not one.
    pub fn read(dir: &Path) -> Result<Self> {
        let p = dir.join("stats.json");
        let bytes = std::fs::read(&p).map_err(|e| {
            Error::Input(format!("{}: {e}; is {} a finished cotforge run directory?", p.display(), dir.display()))
        })?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Input(format!("{}: not a cotforge stats file: {e}", p.display())))
    }

    /// The statistics of a run from its stages' (ingest first): totals are derived.
    pub(crate) fn new(
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

/// Merge the statistics of the tasks of one stage (a split run).
pub(crate) fn merge(parts: Vec<StageStats>) -> StageStats {
    let mut it = parts.into_iter();
    let mut acc = it.next().expect("at least one task");
    for s in it {
        acc.rows_in += s.rows_in;
        acc.rows_out += s.rows_out;
        for (k, v) in s.dropped {
            *acc.dropped.entry(k).or_default() += v;
        }
        acc.seconds += s.seconds;
        for (k, h) in s.measured {
            acc.measured.entry(k).or_default().merge(&h);
        }
    }
    acc.seconds = (acc.seconds * 1000.0).round() / 1000.0;
    acc
}

/// Write `DIR/stats.json` and the tables under `DIR/stats/`.
pub(crate) fn write(dir: &Path, run: &RunStats) -> Result<()> {
    let json = serde_json::to_vec_pretty(run).ctx(|| "serialising stats")?;
    atomic_write(&dir.join("stats.json"), &json, 0)?;
    tables::write(dir, run)
}
