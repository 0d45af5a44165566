//! Hugging Face `datasets` interop for the Parquet files cotforge writes.
//!
//! `datasets` decodes a column as images only when the file says so: the Arrow schema carries a
//! `huggingface` metadata entry with the dataset features, and each feature's Arrow type must be
//! exactly the type `datasets` gives it (an `Image` is `struct<bytes: binary, path: string>`,
//! nullable). [`for_datasets`] brings a record batch into that form: image columns (lists of
//! `{bytes, path}` structs) are cast to the exact `Image` struct and marked nullable, and the
//! features of every column go into the schema metadata. `load_dataset("parquet", ...)` then
//! returns PIL images; pandas, polars and pyarrow read the same file as before.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, FieldRef, Schema};

use crate::error::{Error, Result};

/// Image bytes at most in one piece after the cast to 32-bit offsets (`binary`).
const MAX_PIECE_IMAGE_BYTES: i64 = 1 << 30;

/// The exact Arrow type of a `datasets.Image` feature.
fn image_struct() -> DataType {
    DataType::Struct(vec![Field::new("bytes", DataType::Binary, true), Field::new("path", DataType::Utf8, true)].into())
}

/// `struct{bytes, path}` in any string/binary width: the HF image layout.
fn is_image_struct(t: &DataType) -> bool {
    match t {
        DataType::Struct(f) => {
            f.len() == 2
                && f[0].name() == "bytes"
                && matches!(f[0].data_type(), DataType::Binary | DataType::LargeBinary | DataType::BinaryView)
                && f[1].name() == "path"
                && matches!(f[1].data_type(), DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
        }
        _ => false,
    }
}

/// A column holding images: a struct{bytes, path} or a list of them.
fn image_column(t: &DataType) -> bool {
    match t {
        DataType::List(f) | DataType::LargeList(f) => is_image_struct(f.data_type()),
        t => is_image_struct(t),
    }
}

/// The type an image column is cast to (list kind kept; struct children narrowed).
fn hf_image_type(t: &DataType) -> DataType {
    match t {
        DataType::List(f) => DataType::List(Arc::new(Field::new(f.name(), image_struct(), true))),
        DataType::LargeList(f) => DataType::LargeList(Arc::new(Field::new(f.name(), image_struct(), true))),
        _ => image_struct(),
    }
}

/// The `datasets` feature of an Arrow type, or None where `datasets` should infer it.
pub fn feature(t: &DataType) -> Option<serde_json::Value> {
    use serde_json::json;
    let value = |dtype: &str| Some(json!({"_type": "Value", "dtype": dtype}));
    match t {
        DataType::Boolean => value("bool"),
        DataType::Int8 => value("int8"),
        DataType::Int16 => value("int16"),
        DataType::Int32 => value("int32"),
        DataType::Int64 => value("int64"),
        DataType::UInt8 => value("uint8"),
        DataType::UInt16 => value("uint16"),
        DataType::UInt32 => value("uint32"),
        DataType::UInt64 => value("uint64"),
        DataType::Float32 => value("float32"),
        DataType::Float64 => value("float64"),
        DataType::Utf8 => value("string"),
        DataType::LargeUtf8 => value("large_string"),
        DataType::Binary => value("binary"),
        DataType::LargeBinary => value("large_binary"),
        t if is_image_struct(t) => Some(json!({"_type": "Image"})),
        DataType::List(f) => Some(json!({"_type": "List", "feature": feature(f.data_type())?})),
        DataType::LargeList(f) => Some(json!({"_type": "LargeList", "feature": feature(f.data_type())?})),
        DataType::FixedSizeList(f, n) => {
            Some(json!({"_type": "List", "feature": feature(f.data_type())?, "length": n}))
        }
        DataType::Struct(fields) => {
            let mut m = serde_json::Map::new();
            for f in fields {
                m.insert(f.name().clone(), feature(f.data_type())?);
            }
            Some(serde_json::Value::Object(m))
        }
        _ => None,
    }
}

/// The `huggingface` schema metadata value naming the features of `schema`'s columns.
pub fn features_metadata(schema: &Schema) -> String {
    let mut features = serde_json::Map::new();
    for f in schema.fields() {
        if let Some(v) = feature(f.data_type()) {
            features.insert(f.name().clone(), v);
        }
    }
    serde_json::json!({"info": {"features": features}}).to_string()
}

/// Image bytes of each row of an image column.
fn image_bytes_per_row(col: &ArrayRef) -> Vec<i64> {
    let row_bytes = |s: &arrow::array::StructArray, lo: usize, hi: usize| -> i64 {
        let b = s.column(0);
        match b.data_type() {
            DataType::Binary => {
                let o = b.as_binary::<i32>().value_offsets();
                (o[hi] - o[lo]) as i64
            }
            DataType::LargeBinary => {
                let o = b.as_binary::<i64>().value_offsets();
                o[hi] - o[lo]
            }
            _ => 0,
        }
    };
    match col.data_type() {
        DataType::List(_) => {
            let l = col.as_list::<i32>();
            let s = l.values().as_struct();
            l.value_offsets().windows(2).map(|w| row_bytes(s, w[0] as usize, w[1] as usize)).collect()
        }
        DataType::LargeList(_) => {
            let l = col.as_list::<i64>();
            let s = l.values().as_struct();
            l.value_offsets().windows(2).map(|w| row_bytes(s, w[0] as usize, w[1] as usize)).collect()
        }
        _ => {
            let s = col.as_struct();
            (0..s.len()).map(|i| row_bytes(s, s.offset() + i, s.offset() + i + 1)).collect()
        }
    }
}

/// Consecutive row ranges `(offset, len)` whose summed sizes stay within `max` (a row larger
/// than `max` gets a range of its own).
fn split_rows(per_row: &[i64], max: i64) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0i64);
    for (r, &b) in per_row.iter().enumerate() {
        if r > start && bytes + b > max {
            out.push((start, r - start));
            start = r;
            bytes = 0;
        }
        bytes += b;
    }
    out.push((start, per_row.len() - start));
    out
}

/// `batch` in the form `datasets` reads with typed features (see the module docs), split into
/// pieces where the image bytes would overflow 32-bit offsets. Batches without image columns
/// are only given the metadata.
pub fn for_datasets(batch: &RecordBatch) -> Result<Vec<RecordBatch>> {
    let schema = batch.schema();
    let images: Vec<usize> =
        schema.fields().iter().enumerate().filter(|(_, f)| image_column(f.data_type())).map(|(i, _)| i).collect();
    // row ranges whose image bytes fit one piece
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    if images.is_empty() || batch.num_rows() == 0 {
        pieces.push((0, batch.num_rows()));
    } else {
        let mut per_row = vec![0i64; batch.num_rows()];
        for &i in &images {
            for (acc, b) in per_row.iter_mut().zip(image_bytes_per_row(batch.column(i))) {
                *acc += b;
            }
        }
        pieces = split_rows(&per_row, MAX_PIECE_IMAGE_BYTES);
    }
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|f| {
            if image_column(f.data_type()) {
                Arc::new(Field::new(f.name(), hf_image_type(f.data_type()), true))
            } else {
                f.clone()
            }
        })
        .collect();
    let mut meta = schema.metadata().clone();
    let bare = Schema::new(fields.clone());
    meta.insert("huggingface".to_string(), features_metadata(&bare));
    let out_schema = Arc::new(Schema::new_with_metadata(fields, meta));
    pieces
        .into_iter()
        .map(|(off, len)| {
            let piece = batch.slice(off, len);
            let cols = piece
                .columns()
                .iter()
                .zip(out_schema.fields())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        Ok(c.clone())
                    } else {
                        arrow::compute::cast(c, f.data_type())
                            .map_err(|e| Error::Run(format!("converting column {} for datasets: {e}", f.name())))
                    }
                })
                .collect::<Result<Vec<ArrayRef>>>()?;
            RecordBatch::try_new(out_schema.clone(), cols)
                .map_err(|e| Error::Run(format!("building a batch for datasets: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{LargeBinaryBuilder, LargeListBuilder, LargeStringBuilder, StructBuilder, UInt32Array};

    fn image_batch(rows: &[&[&[u8]]]) -> RecordBatch {
        let fields =
            vec![Field::new("bytes", DataType::LargeBinary, true), Field::new("path", DataType::LargeUtf8, true)];
        let sb =
            StructBuilder::new(fields, vec![Box::new(LargeBinaryBuilder::new()), Box::new(LargeStringBuilder::new())]);
        let mut lb = LargeListBuilder::new(sb);
        for row in rows {
            for img in *row {
                let s = lb.values();
                s.field_builder::<LargeBinaryBuilder>(0).unwrap().append_value(img);
                s.field_builder::<LargeStringBuilder>(1).unwrap().append_null();
                s.append(true);
            }
            lb.append(true);
        }
        let n = UInt32Array::from_iter_values(0..rows.len() as u32);
        RecordBatch::try_from_iter(vec![("n", Arc::new(n) as ArrayRef), ("images", Arc::new(lb.finish()) as ArrayRef)])
            .unwrap()
    }

    #[test]
    fn image_columns_take_the_exact_image_type_and_every_column_has_a_feature() {
        let b = image_batch(&[&[b"ab", b"c"], &[], &[b"def"]]);
        let out = for_datasets(&b).unwrap();
        assert_eq!(out.len(), 1);
        let s = out[0].schema();
        assert_eq!(s.field(1).data_type(), &DataType::LargeList(Arc::new(Field::new("item", image_struct(), true))));
        assert!(s.field(1).is_nullable());
        let meta: serde_json::Value = serde_json::from_str(s.metadata().get("huggingface").unwrap()).unwrap();
        assert_eq!(
            meta["info"]["features"]["images"],
            serde_json::json!({"_type": "LargeList", "feature": {"_type": "Image"}})
        );
        assert_eq!(meta["info"]["features"]["n"], serde_json::json!({"_type": "Value", "dtype": "uint32"}));
        let imgs = out[0].column(1).as_list::<i64>();
        assert_eq!(imgs.value_length(0), 2);
        assert_eq!(imgs.value(2).as_struct().column(0).as_binary::<i32>().value(0), b"def");
    }

    #[test]
    fn rows_past_the_offset_limit_go_to_the_next_piece() {
        assert_eq!(image_bytes_per_row(image_batch(&[&[b"ab", b"c"], &[], &[b"def"]]).column(1)), vec![3, 0, 3]);
        let b = image_batch(&[&[b"ab"], &[b"c"], &[b"def"]]).slice(1, 2);
        assert_eq!(image_bytes_per_row(b.column(1)), vec![1, 3]);
        assert_eq!(split_rows(&[3, 0, 3], 4), vec![(0, 2), (2, 1)]);
        assert_eq!(split_rows(&[5, 1, 1, 1], 2), vec![(0, 1), (1, 2), (3, 1)]);
        assert_eq!(split_rows(&[1, 1], 10), vec![(0, 2)]);
    }

    #[test]
    fn unknown_types_are_left_to_datasets() {
        assert_eq!(feature(&DataType::Date32), None);
        let list = DataType::FixedSizeList(Arc::new(Field::new("item", DataType::UInt32, true)), 3);
        assert_eq!(feature(&list).unwrap()["length"], 3);
    }
}
