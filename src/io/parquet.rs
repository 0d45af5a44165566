//! Parquet files: the writer settings of every file cotforge writes, the part files that
//! stages read and write (written atomically, see [`super::atomic_write`]), and crossing from
//! polars to arrow-rs at the Arrow C Data Interface.

use std::fs::File;
use std::path::{Path, PathBuf};

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, make_array};
use arrow::datatypes::{Field as ArrowField, Schema as ArrowSchemaRs};
use arrow::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use polars::io::parquet::metadata::FileMetadataRef;
use polars::prelude::*;

use super::tmp_name;
use crate::error::{Context, Error, Result};

/// Parquet writer settings of every file cotforge writes: zstd, row groups of at most
/// `row_group_rows`, and no dictionary for binary leaves (image bytes are unique per row).
pub fn writer_properties(schema: &arrow::datatypes::Schema, row_group_rows: usize) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(row_group_rows));
    if let Ok(descr) = parquet::arrow::ArrowSchemaConverter::new().convert(schema) {
        for col in descr.columns() {
            let binary = col.physical_type() == parquet::basic::Type::BYTE_ARRAY
                && col.logical_type_ref().is_none()
                && col.converted_type() == parquet::basic::ConvertedType::NONE;
            if binary {
                props = props.set_column_dictionary_enabled(col.path().clone(), false);
            }
        }
    }
    props.build()
}

/// Cross from polars to arrow-rs through the Arrow C Data Interface (zero-copy). Columns are
/// exported at polars' oldest compatibility level, i.e. plain `large_string` / `large_binary`
/// / `large_list`, which every Parquet reader (pyarrow, pandas, HF datasets) understands.
pub fn to_record_batch(df: &DataFrame) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(df.width());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(df.width());
    for c in df.columns() {
        let s = c.as_materialized_series().rechunk();
        let arr = if s.chunks().is_empty() {
            polars_arrow::array::new_empty_array(s.dtype().to_arrow(CompatLevel::oldest()))
        } else {
            s.to_arrow(0, CompatLevel::oldest())
        };
        let field = polars_arrow::datatypes::Field::new(s.name().clone(), arr.dtype().clone(), true);
        let c_array = polars_arrow::ffi::export_array_to_c(arr);
        let c_schema = polars_arrow::ffi::export_field_to_c(&field);
        // SAFETY: both libraries define these structs as the #[repr(C)] `ArrowArray` and
        // `ArrowSchema` of the Arrow C Data Interface, so the bits are the same struct; the
        // exported release callbacks travel with them and free polars' buffers when arrow-rs
        // drops the imported array.
        let (ffi_array, ffi_schema): (FFI_ArrowArray, FFI_ArrowSchema) = unsafe {
            (
                std::mem::transmute::<polars_arrow::ffi::ArrowArray, FFI_ArrowArray>(c_array),
                std::mem::transmute::<polars_arrow::ffi::ArrowSchema, FFI_ArrowSchema>(c_schema),
            )
        };
        let data = unsafe { arrow::ffi::from_ffi(ffi_array, &ffi_schema) }
            .map_err(|e| Error::Run(format!("exporting column {}: {e}", s.name())))?;
        let f =
            ArrowField::try_from(&ffi_schema).map_err(|e| Error::Run(format!("exporting column {}: {e}", s.name())))?;
        fields.push(f);
        arrays.push(make_array(data));
    }
    RecordBatch::try_new(Arc::new(ArrowSchemaRs::new(fields)), arrays)
        .map_err(|e| Error::Run(format!("building record batch: {e}")))
}

/// Writes a stream of DataFrame batches as Parquet files `PREFIX-00000.parquet`, ... of at
/// most `rows_per_file` rows each, one row group per batch. File boundaries depend only on row
/// counts, so output is independent of thread count and timing.
pub struct PartWriter {
    dir: PathBuf,
    prefix: String,
    rows_per_file: usize,
    current: Option<(ArrowWriter<File>, PathBuf, PathBuf, usize)>,
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
            current: None,
            files: Vec::new(),
            rows: 0,
        })
    }

    fn open_next(&mut self, batch: &RecordBatch) -> Result<()> {
        let dest = self.dir.join(format!("{}-{:05}.parquet", self.prefix, self.files.len()));
        let tmp = tmp_name(&dest, 0);
        let f = File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
        let props = writer_properties(&batch.schema(), 1 << 30);
        let w = ArrowWriter::try_new(f, batch.schema(), Some(props))
            .map_err(|e| Error::Run(format!("starting {}: {e}", dest.display())))?;
        self.files.push(dest.clone());
        self.current = Some((w, tmp, dest, 0));
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some((w, tmp, dest, _)) = self.current.take() {
            w.close().map_err(|e| Error::Run(format!("finishing {}: {e}", dest.display())))?;
            std::fs::rename(&tmp, &dest).ctx(|| format!("renaming {}", tmp.display()))?;
        }
        Ok(())
    }

    fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        for piece in crate::io::hf::for_datasets(batch)? {
            self.write_piece(piece)?;
        }
        Ok(())
    }

    fn write_piece(&mut self, mut batch: RecordBatch) -> Result<()> {
        loop {
            if self.current.is_none() {
                self.open_next(&batch)?;
            }
            let (w, _, dest, rows) = self.current.as_mut().expect("open");
            let take = (self.rows_per_file - *rows).min(batch.num_rows());
            let err = |e| Error::Run(format!("writing {}: {e}", dest.display()));
            w.write(&batch.slice(0, take)).map_err(err)?;
            w.flush().map_err(|e| Error::Run(format!("writing {}: {e}", dest.display())))?;
            *rows += take;
            self.rows += take;
            batch = batch.slice(take, batch.num_rows() - take);
            if *rows >= self.rows_per_file {
                self.close_current()?;
            }
            if batch.num_rows() == 0 {
                return Ok(());
            }
        }
    }

    /// Append a batch (all batches must share one schema).
    pub fn write(&mut self, df: &DataFrame) -> Result<()> {
        if df.height() == 0 {
            return Ok(());
        }
        self.write_batch(&to_record_batch(df)?)
    }

    /// Close the last file. With no rows written, an empty file with the columns of `empty`
    /// is written so readers always find the schema. Returns the files written.
    pub fn finish(mut self, empty: &DataFrame) -> Result<Vec<PathBuf>> {
        if self.files.is_empty() {
            let batch = to_record_batch(empty)?;
            let batch = crate::io::hf::for_datasets(&batch)?.remove(0);
            self.open_next(&batch)?;
        }
        self.close_current()?;
        Ok(self.files)
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// A [`PartWriter`] on its own thread: `write` hands the batch over (at most two wait) and
/// returns, so encoding and compressing overlap the caller's next batch. Output is the same
/// as the plain writer's; an error surfaces at the next `write` or at `finish`.
pub struct PipedWriter {
    tx: Option<std::sync::mpsc::SyncSender<DataFrame>>,
    handle: Option<std::thread::JoinHandle<Result<PartWriter>>>,
    rows: usize,
}

impl PipedWriter {
    pub fn new(dir: &Path, prefix: &str, rows_per_file: usize) -> Result<Self> {
        let mut w = PartWriter::new(dir, prefix, rows_per_file)?;
        let (tx, rx) = std::sync::mpsc::sync_channel::<DataFrame>(2);
        let handle = std::thread::Builder::new()
            .name(format!("write {prefix}"))
            .spawn(move || {
                for df in rx {
                    w.write(&df)?;
                }
                Ok(w)
            })
            .ctx(|| format!("starting the writer of {}", dir.display()))?;
        Ok(Self { tx: Some(tx), handle: Some(handle), rows: 0 })
    }

    /// The writer thread's result, once it has stopped.
    fn join(&mut self) -> Result<PartWriter> {
        self.tx = None;
        match self.handle.take() {
            Some(h) => h.join().unwrap_or_else(|_| Err(Error::Run("a Parquet writer thread panicked".into()))),
            None => Err(Error::Run("internal: Parquet writer used after it stopped".into())),
        }
    }

    pub fn write(&mut self, df: DataFrame) -> Result<()> {
        if df.height() == 0 {
            return Ok(());
        }
        self.rows += df.height();
        let sent = self.tx.as_ref().map(|tx| tx.send(df).is_ok()).unwrap_or(false);
        if !sent {
            // the thread stopped on an error: report it
            self.join()?;
            return Err(Error::Run("internal: Parquet writer stopped".into()));
        }
        Ok(())
    }

    /// Wait for the writes and close the last file (see [`PartWriter::finish`]).
    pub fn finish(mut self, empty: &DataFrame) -> Result<Vec<PathBuf>> {
        self.join()?.finish(empty)
    }

    /// Rows handed over so far.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

/// Write one DataFrame as the single Parquet file `dest`, atomically.
pub fn write_parquet(dest: &Path, df: &DataFrame) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let name = dest.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut w = PartWriter::new(dir, &format!(".{name}"), usize::MAX)?;
    w.write(df)?;
    let files = w.finish(df)?;
    std::fs::rename(&files[0], dest).ctx(|| format!("writing {}", dest.display()))
}

/// The Parquet part files of a directory, read back in batches. Each file's footer is parsed
/// once and reused for every batch.
pub struct PartReader {
    files: Vec<(PathBuf, usize, FileMetadataRef)>,
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

/// The footer of a Parquet file.
fn parquet_footer(path: &Path) -> Result<FileMetadataRef> {
    let f = File::open(path).ctx(|| format!("opening {}", path.display()))?;
    let bad = |e| Error::Input(format!("{}: not a readable Parquet file ({e}); is it truncated?", path.display()));
    Ok(ParquetReader::new(f).get_metadata().map_err(bad)?.clone())
}

/// Rows and compressed bytes of each row group of a Parquet file.
pub fn parquet_row_groups(path: &Path) -> Result<Vec<(usize, usize)>> {
    Ok(parquet_footer(path)?.row_groups.iter().map(|g| (g.num_rows(), g.compressed_size())).collect())
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
        Self::open_dirs(&[dir.to_path_buf()])
    }

    /// The parts of several directories, one after the other (e.g. the tasks of a split run
    /// in rank order).
    pub fn open_dirs(dirs: &[PathBuf]) -> Result<Self> {
        let mut files = Vec::new();
        for p in dirs.iter().map(|d| parquet_files(d)).collect::<Result<Vec<_>>>()?.into_iter().flatten() {
            let meta = parquet_footer(&p)?;
            files.push((p, meta.num_rows, meta));
        }
        Ok(Self { files })
    }

    /// Total rows over all parts.
    pub fn rows(&self) -> usize {
        self.files.iter().map(|(_, n, _)| n).sum()
    }

    /// Call `f` on consecutive batches of at most `batch_rows` rows, in file order.
    pub fn for_each_batch(&self, batch_rows: usize, f: impl FnMut(DataFrame) -> Result<()>) -> Result<()> {
        self.for_each_batch_of(batch_rows, None, f)
    }

    /// [`Self::for_each_batch`] reading only `columns` (None: all). A reader thread decodes
    /// the next batches while `f` works on the current one.
    pub fn for_each_batch_of(
        &self,
        batch_rows: usize,
        columns: Option<&[&str]>,
        mut f: impl FnMut(DataFrame) -> Result<()>,
    ) -> Result<()> {
        let columns: Option<Vec<String>> = columns.map(|c| c.iter().map(|s| s.to_string()).collect());
        let batch_rows = batch_rows.max(1);
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<DataFrame>>(2);
            scope.spawn(move || {
                for (p, n, meta) in &self.files {
                    let mut off = 0;
                    while off < *n {
                        let len = batch_rows.min(n - off);
                        let df = read_batch(p, meta, columns.clone(), off, len);
                        let failed = df.is_err();
                        // a closed channel: the consumer stopped (its error is reported)
                        if tx.send(df).is_err() || failed {
                            return;
                        }
                        off += len;
                    }
                }
            });
            for df in rx {
                f(df?)?;
            }
            Ok(())
        })
    }
}

impl PartReader {
    /// Call `f` on consecutive batches of exactly `batch_rows` rows (the last may be shorter)
    /// in file order, batches running across file boundaries: the batches, and so the row
    /// groups of what is written from them, depend only on the sequence of rows, not on how the
    /// parts split it.
    pub fn for_each_rebatched(&self, batch_rows: usize, mut f: impl FnMut(DataFrame) -> Result<()>) -> Result<()> {
        let b = batch_rows.max(1);
        let mut pending: Option<DataFrame> = None;
        self.for_each_batch(b, |df| {
            let mut cur = match pending.take() {
                None => df,
                Some(mut p) => {
                    p.vstack_mut(&df).map_err(|e| Error::Run(format!("joining row batches: {e}")))?;
                    p
                }
            };
            while cur.height() >= b {
                f(cur.slice(0, b))?;
                cur = cur.slice(b as i64, cur.height() - b);
            }
            if cur.height() > 0 {
                pending = Some(cur);
            }
            Ok(())
        })?;
        match pending {
            Some(p) if p.height() > 0 => f(p),
            _ => Ok(()),
        }
    }
}

/// Rows `off..off+len` of a part whose footer is known.
fn read_batch(
    p: &Path,
    meta: &FileMetadataRef,
    columns: Option<Vec<String>>,
    off: usize,
    len: usize,
) -> Result<DataFrame> {
    let file = File::open(p).ctx(|| format!("opening {}", p.display()))?;
    let mut r = ParquetReader::new(file);
    r.set_metadata(meta.clone());
    r.with_columns(columns)
        .with_slice(Some((off, len)))
        .finish()
        .map_err(|e| Error::Input(format!("{}: cannot read rows {off}..{}: {e}", p.display(), off + len)))
}
