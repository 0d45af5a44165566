//! Atomic file writes and the Parquet part files that stages read and write.
//!
//! Every file appears under its final name only when complete: it is written to a temporary
//! name in the same directory and renamed. A crash leaves at most `*.tmp-*` files, which the
//! executor removes before it redoes an unfinished stage.

use std::fs::File;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use polars::io::parquet::write::BatchedWriter;

use crate::error::{Context, Error, Result};

fn tmp_name(dest: &Path, n: u64) -> PathBuf {
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

/// Writes a stream of DataFrame batches as Parquet files `PREFIX-00000.parquet`, ... of at
/// most `rows_per_file` rows each, one row group per batch. File boundaries depend only on row
/// counts, so output is independent of thread count and timing.
pub struct PartWriter {
    dir: PathBuf,
    prefix: String,
    rows_per_file: usize,
    schema: Option<Schema>,
    current: Option<(BatchedWriter<File>, PathBuf, PathBuf, usize)>,
    files: Vec<PathBuf>,
    rows: usize,
}

impl PartWriter {
    pub fn new(dir: &Path, prefix: &str, rows_per_file: usize) -> Result<Self> {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            rows_per_file: rows_per_file.max(1),
            schema: None,
            current: None,
            files: Vec::new(),
            rows: 0,
        })
    }

    fn open_next(&mut self, schema: &Schema) -> Result<()> {
        let dest = self.dir.join(format!("{}-{:05}.parquet", self.prefix, self.files.len()));
        let tmp = tmp_name(&dest, 0);
        let f = File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
        let w = ParquetWriter::new(f)
            .with_compression(ParquetCompression::Zstd(None))
            .with_statistics(StatisticsOptions::default())
            .batched(schema)
            .ctx(|| format!("starting {}", dest.display()))?;
        self.files.push(dest.clone());
        self.current = Some((w, tmp, dest, 0));
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some((w, tmp, dest, _)) = self.current.take() {
            w.finish().ctx(|| format!("finishing {}", dest.display()))?;
            std::fs::rename(&tmp, &dest).ctx(|| format!("renaming {}", tmp.display()))?;
        }
        Ok(())
    }

    /// Append a batch (all batches must share one schema).
    pub fn write(&mut self, df: &DataFrame) -> Result<()> {
        if self.schema.is_none() {
            self.schema = Some(df.schema().as_ref().clone());
        }
        let mut df = df.clone();
        while df.height() > 0 {
            if self.current.is_none() {
                let schema = self.schema.clone().expect("schema set");
                self.open_next(&schema)?;
            }
            let (w, _, dest, rows) = self.current.as_mut().expect("open");
            let room = self.rows_per_file - *rows;
            let take = room.min(df.height());
            let head = df.slice(0, take);
            w.write_batch(&head).ctx(|| format!("writing {}", dest.display()))?;
            *rows += take;
            self.rows += take;
            df = df.slice(take as i64, df.height() - take);
            if *rows >= self.rows_per_file {
                self.close_current()?;
            }
        }
        Ok(())
    }

    /// Close the last file. With no rows written, an empty file carrying `empty_schema` is
    /// written so readers always find the columns. Returns the files written.
    pub fn finish(mut self, empty: &DataFrame) -> Result<Vec<PathBuf>> {
        if self.files.is_empty() {
            self.schema = Some(empty.schema().as_ref().clone());
            let schema = self.schema.clone().expect("schema");
            self.open_next(&schema)?;
            let (w, _, dest, _) = self.current.as_mut().expect("open");
            w.write_batch(empty).ctx(|| format!("writing {}", dest.display()))?;
        }
        self.close_current()?;
        Ok(self.files)
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// The Parquet part files of a directory, read back in batches.
pub struct PartReader {
    files: Vec<(PathBuf, usize)>,
}

/// Sorted `*.parquet` files of a directory (hidden temporary files excluded).
pub fn parquet_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let rd = std::fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))?;
    for e in rd {
        let p = e.ctx(|| format!("listing {}", dir.display()))?.path();
        let name = p.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if name.ends_with(".parquet") && !name.starts_with('.') {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Number of rows of a Parquet file (from its footer).
pub fn parquet_rows(path: &Path) -> Result<usize> {
    let f = File::open(path).ctx(|| format!("opening {}", path.display()))?;
    ParquetReader::new(f)
        .num_rows()
        .map_err(|e| Error::Input(format!("{}: not a readable Parquet file ({e}); is it truncated?", path.display())))
}

/// Rows `offset..offset+len` of a Parquet file, optionally only some columns.
pub fn read_parquet_slice(path: &Path, columns: Option<Vec<String>>, offset: usize, len: usize) -> Result<DataFrame> {
    let f = File::open(path).ctx(|| format!("opening {}", path.display()))?;
    ParquetReader::new(f)
        .with_columns(columns)
        .with_slice(Some((offset, len)))
        .finish()
        .map_err(|e| Error::Input(format!("{}: cannot read rows {offset}..{}: {e}", path.display(), offset + len)))
}

impl PartReader {
    pub fn open(dir: &Path) -> Result<Self> {
        let mut files = Vec::new();
        for p in parquet_files(dir)? {
            let n = parquet_rows(&p)?;
            files.push((p, n));
        }
        Ok(Self { files })
    }

    /// Total rows over all parts.
    pub fn rows(&self) -> usize {
        self.files.iter().map(|(_, n)| n).sum()
    }

    /// Call `f` on consecutive batches of at most `batch_rows` rows, in file order.
    pub fn for_each_batch(&self, batch_rows: usize, mut f: impl FnMut(DataFrame) -> Result<()>) -> Result<()> {
        for (p, n) in &self.files {
            let mut off = 0;
            while off < *n {
                let len = batch_rows.min(n - off);
                f(read_parquet_slice(p, None, off, len)?)?;
                off += len;
            }
        }
        Ok(())
    }
}
