//! Files: atomic writes, Parquet parts and Hugging Face `datasets` interop.
//!
//! Every file appears under its final name only when complete: it is written to a temporary
//! name in the same directory and renamed. A crash leaves at most `*.tmp-*` files, which the
//! executor removes before it redoes an unfinished stage.

pub mod hf;
mod parquet;

use std::path::{Path, PathBuf};

pub use self::parquet::*;

use crate::error::{Context, Result};

/// The temporary name `dest` is written under before the rename.
pub(crate) fn tmp_name(dest: &Path, n: u64) -> PathBuf {
    let name = dest.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    dest.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Write `bytes` to `dest` atomically; `n` makes the temporary name unique among writers.
pub fn atomic_write(dest: &Path, bytes: &[u8], n: u64) -> Result<()> {
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    let tmp = tmp_name(dest, n);
    std::fs::write(&tmp, bytes).ctx(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dest).ctx(|| format!("renaming {} to {}", tmp.display(), dest.display()))
}
