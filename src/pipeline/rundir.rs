//! The run directory: preparing it (fresh, or resumed with the same spec), the names of the
//! stages' work directories, clearing what an interrupted stage left, and the completion
//! markers (`_DONE.json`, with the stage's statistics) that `--resume` and split runs read.

use std::path::{Path, PathBuf};

use super::StageStats;
use crate::error::{Context, Error, Result};
use crate::io::atomic_write;
use crate::spec::Spec;

pub(super) fn stage_dir_name(index: usize, name: &str) -> String {
    format!("{index:02}-{name}")
}

/// Prepare the run directory: fresh (clearing an earlier cotforge run) or resumed.
pub(super) fn prepare_dir(dir: &Path, spec: &Spec, resume: bool) -> Result<String> {
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
            for sub in
                ["work", "ledger", "curated", "shards", "images", "stats", "stats.json", "spec.yaml", "report.html"]
            {
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
pub(super) fn clear_stage(dir: &Path, work: &Path, ledger_prefix: &str) -> Result<()> {
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

pub(super) fn marker(work: &Path) -> PathBuf {
    work.join("_DONE.json")
}

pub(super) fn read_marker(work: &Path) -> Option<StageStats> {
    let bytes = std::fs::read(marker(work)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub(super) fn write_marker(work: &Path, stats: &StageStats) -> Result<()> {
    let json = serde_json::to_vec_pretty(stats).ctx(|| "serialising stage stats")?;
    atomic_write(&marker(work), &json, 0)
}
