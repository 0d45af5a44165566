//! cotforge: curate multimodal long chain-of-thought traces into clean training data.
//!
//! The data flows one way (see `DESIGN` in the repository docs):
//! raw Parquet/JSONL -> [`ingest`] (column mapping, image store) -> [`stages`] chosen by the
//! pipeline [`spec`] -> curated Parquet, with every dropped row recorded in the ledger by the
//! [`pipeline`] executor.

pub mod error;
pub mod export;
pub mod hf;
pub mod imagehash;
pub mod ingest;
pub mod inspect;
pub mod model;
pub mod pack;
pub mod pipeline;
pub mod repro;
pub mod report;
pub mod schema;
pub mod shards;
pub mod spec;
pub mod stages;
pub mod synth;
pub mod text;
pub mod train;
pub mod verify;

pub use error::{Error, Result};
