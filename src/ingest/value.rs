//! A small dynamic value that Parquet cells and JSON values both convert into, so that the
//! layout mapping in [`super::layout`] is written once for every file format.

use polars::prelude::*;

/// A cell of a raw record.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Val>),
    Map(Vec<(String, Val)>),
}

impl Val {
    /// Look a key up in a map value.
    pub fn get(&self, key: &str) -> Option<&Val> {
        match self {
            Val::Map(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Val::Null => "null",
            Val::Bool(_) => "boolean",
            Val::Int(_) => "integer",
            Val::Float(_) => "float",
            Val::Str(_) => "string",
            Val::Bytes(_) => "binary",
            Val::List(_) => "list",
            Val::Map(_) => "object",
        }
    }
}

impl From<serde_json::Value> for Val {
    fn from(v: serde_json::Value) -> Self {
        use serde_json::Value as J;
        match v {
            J::Null => Val::Null,
            J::Bool(b) => Val::Bool(b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Val::Str(s),
            J::Array(a) => Val::List(a.into_iter().map(Val::from).collect()),
            J::Object(o) => Val::Map(o.into_iter().map(|(k, v)| (k, Val::from(v))).collect()),
        }
    }
}

/// Convert one Parquet cell.
pub fn from_any(v: AnyValue<'_>) -> Val {
    match v {
        AnyValue::Null => Val::Null,
        AnyValue::Boolean(b) => Val::Bool(b),
        AnyValue::String(s) => Val::Str(s.to_string()),
        AnyValue::StringOwned(s) => Val::Str(s.to_string()),
        AnyValue::Binary(b) => Val::Bytes(b.to_vec()),
        AnyValue::BinaryOwned(b) => Val::Bytes(b),
        AnyValue::UInt8(x) => Val::Int(x as i64),
        AnyValue::UInt16(x) => Val::Int(x as i64),
        AnyValue::UInt32(x) => Val::Int(x as i64),
        AnyValue::UInt64(x) => Val::Int(x as i64),
        AnyValue::Int8(x) => Val::Int(x as i64),
        AnyValue::Int16(x) => Val::Int(x as i64),
        AnyValue::Int32(x) => Val::Int(x as i64),
        AnyValue::Int64(x) => Val::Int(x),
        AnyValue::Float32(x) => Val::Float(x as f64),
        AnyValue::Float64(x) => Val::Float(x),
        AnyValue::List(s) => Val::List(s.iter().map(from_any).collect()),
        AnyValue::Struct(idx, arr, fields) => {
            let av = AnyValue::Struct(idx, arr, fields);
            let vals: Vec<AnyValue> = av._iter_struct_av().collect();
            Val::Map(fields.iter().zip(vals).map(|(f, v)| (f.name().to_string(), from_any(v))).collect())
        }
        AnyValue::StructOwned(b) => {
            let (vals, fields) = *b;
            Val::Map(fields.iter().zip(vals).map(|(f, v)| (f.name().to_string(), from_any(v))).collect())
        }
        other => Val::Str(other.to_string()),
    }
}

/// Convert a whole column (Parquet batch) into cells.
pub fn column_values(c: &Column) -> Vec<Val> {
    c.as_materialized_series().iter().map(from_any).collect()
}
