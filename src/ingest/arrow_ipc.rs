//! Arrow IPC inputs (`format: arrow`): the files `datasets.save_to_disk` and the `datasets` cache
//! write (`data-00000-of-00001.arrow`, the IPC stream format), and Arrow IPC files (`ARROW1`).
//! Record batches are read one at a time and their cells converted to [`Val`]s, so that the
//! layout mapping is the same as for Parquet and JSON.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::ipc::reader::{FileReader, StreamReader};

use super::value::Val;
use crate::error::{Context, Error, Result};

/// The record batches of an Arrow file, stream or file format.
pub enum Batches {
    Stream(StreamReader<BufReader<File>>),
    File(FileReader<BufReader<File>>),
}

impl Batches {
    pub fn open(path: &Path) -> Result<Self> {
        let mut f = File::open(path).ctx(|| format!("opening {}", path.display()))?;
        let mut magic = [0u8; 6];
        let n = f.read(&mut magic).ctx(|| format!("reading {}", path.display()))?;
        f.seek(SeekFrom::Start(0)).ctx(|| format!("reading {}", path.display()))?;
        let bad =
            |e: arrow::error::ArrowError| Error::Input(format!("{}: not a readable Arrow file: {e}", path.display()));
        Ok(if n == 6 && &magic == b"ARROW1" {
            Batches::File(FileReader::try_new(BufReader::new(f), None).map_err(bad)?)
        } else {
            Batches::Stream(StreamReader::try_new(BufReader::new(f), None).map_err(bad)?)
        })
    }

    pub fn schema(&self) -> SchemaRef {
        match self {
            Batches::Stream(r) => r.schema(),
            Batches::File(r) => r.schema(),
        }
    }

    /// The next batch, None at the end; `path` names the file in errors.
    pub fn next_batch(&mut self, path: &Path) -> Result<Option<RecordBatch>> {
        let next = match self {
            Batches::Stream(r) => r.next(),
            Batches::File(r) => r.next(),
        };
        next.transpose().map_err(|e| Error::Input(format!("{}: damaged Arrow record batch: {e}", path.display())))
    }
}

/// The columns of a file's schema, for the pre-flight check.
pub fn columns(path: &Path) -> Result<Schema> {
    Ok(Batches::open(path)?.schema().as_ref().clone())
}

/// One cell of an Arrow array.
pub fn cell(a: &ArrayRef, i: usize) -> Val {
    if a.is_null(i) {
        return Val::Null;
    }
    match a.data_type() {
        DataType::Boolean => Val::Bool(a.as_boolean().value(i)),
        DataType::Int8 => Val::Int(a.as_primitive::<arrow::datatypes::Int8Type>().value(i) as i64),
        DataType::Int16 => Val::Int(a.as_primitive::<arrow::datatypes::Int16Type>().value(i) as i64),
        DataType::Int32 => Val::Int(a.as_primitive::<arrow::datatypes::Int32Type>().value(i) as i64),
        DataType::Int64 => Val::Int(a.as_primitive::<arrow::datatypes::Int64Type>().value(i)),
        DataType::UInt8 => Val::Int(a.as_primitive::<arrow::datatypes::UInt8Type>().value(i) as i64),
        DataType::UInt16 => Val::Int(a.as_primitive::<arrow::datatypes::UInt16Type>().value(i) as i64),
        DataType::UInt32 => Val::Int(a.as_primitive::<arrow::datatypes::UInt32Type>().value(i) as i64),
        DataType::UInt64 => Val::Int(a.as_primitive::<arrow::datatypes::UInt64Type>().value(i) as i64),
        DataType::Float32 => Val::Float(a.as_primitive::<arrow::datatypes::Float32Type>().value(i) as f64),
        DataType::Float64 => Val::Float(a.as_primitive::<arrow::datatypes::Float64Type>().value(i)),
        DataType::Utf8 => Val::Str(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Val::Str(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Val::Str(a.as_string_view().value(i).to_string()),
        DataType::Binary => Val::Bytes(a.as_binary::<i32>().value(i).to_vec()),
        DataType::LargeBinary => Val::Bytes(a.as_binary::<i64>().value(i).to_vec()),
        DataType::BinaryView => Val::Bytes(a.as_binary_view().value(i).to_vec()),
        DataType::List(_) => list(&a.as_list::<i32>().value(i)),
        DataType::LargeList(_) => list(&a.as_list::<i64>().value(i)),
        DataType::FixedSizeList(_, _) => list(&a.as_fixed_size_list().value(i)),
        DataType::Struct(fields) => {
            let s = a.as_struct();
            Val::Map(fields.iter().zip(s.columns()).map(|(f, c)| (f.name().clone(), cell(c, i))).collect())
        }
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            let key = d.normalized_keys()[i];
            cell(d.values(), key)
        }
        other => Val::Str(format!("<unsupported Arrow type {other}>")),
    }
}

fn list(values: &ArrayRef) -> Val {
    Val::List((0..values.len()).map(|j| cell(values, j)).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BinaryArray, Int64Array, ListArray, StringArray, StructArray};
    use arrow::datatypes::{Field, Fields};

    use super::*;

    #[test]
    fn cells_of_strings_numbers_lists_and_structs() {
        let fields =
            Fields::from(vec![Field::new("bytes", DataType::Binary, true), Field::new("path", DataType::Utf8, true)]);
        let st = StructArray::new(
            fields.clone(),
            vec![
                Arc::new(BinaryArray::from(vec![Some(b"ab".as_ref()), None])) as ArrayRef,
                Arc::new(StringArray::from(vec![Some("a.png"), Some("b.png")])) as ArrayRef,
            ],
            None,
        );
        let offsets = arrow::buffer::OffsetBuffer::new(vec![0i32, 2].into());
        let list: ArrayRef = Arc::new(ListArray::new(
            Arc::new(Field::new("item", DataType::Struct(fields), true)),
            offsets,
            Arc::new(st),
            None,
        ));
        let expect = Val::List(vec![
            Val::Map(vec![("bytes".into(), Val::Bytes(b"ab".to_vec())), ("path".into(), Val::Str("a.png".into()))]),
            Val::Map(vec![("bytes".into(), Val::Null), ("path".into(), Val::Str("b.png".into()))]),
        ]);
        assert_eq!(cell(&list, 0), expect);
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(3), None]));
        assert_eq!((cell(&ints, 0), cell(&ints, 1)), (Val::Int(3), Val::Null));
    }
}
