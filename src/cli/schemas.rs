//! `cotforge schemas`: the JSON Schemas of every file and config cotforge reads or writes,
//! generated from the types themselves (the committed `schemas/` directory and its sync test).

use std::path::PathBuf;

use crate::error::Result;
use crate::schema::{
    CURATED_EXTRA_COLUMNS, LEDGER_COLUMNS, LEDGER_SCHEMA_VERSION, TRACE_COLUMNS, TRACE_SCHEMA_VERSION, columns_json,
};

/// Write the JSON Schemas (trace, ledger, shard, pipeline spec, train config) into a directory.
#[derive(clap::Args)]
pub struct SchemasArgs {
    /// Output directory.
    #[arg(default_value = "schemas")]
    dir: PathBuf,
}

/// The committed schema files and their generated contents, for `schemas/` and its sync test.
pub fn schema_files() -> Vec<(&'static str, String)> {
    vec![
        (
            "trace.schema.json",
            columns_json("cotforge canonical trace", TRACE_SCHEMA_VERSION, TRACE_COLUMNS, CURATED_EXTRA_COLUMNS),
        ),
        ("ledger.schema.json", columns_json("cotforge ledger", LEDGER_SCHEMA_VERSION, LEDGER_COLUMNS, &[])),
        ("pipeline-spec.schema.json", crate::spec::json_schema()),
        ("shard.schema.json", crate::shards::schema_json()),
        ("train-config.schema.json", crate::train::config::json_schema()),
        ("rl-config.schema.json", crate::train::rl::json_schema()),
        ("repro-config.schema.json", crate::repro::json_schema()),
    ]
}

pub fn schemas(a: SchemasArgs) -> Result<()> {
    for (name, text) in schema_files() {
        let p = a.dir.join(name);
        crate::io::atomic_write(&p, text.as_bytes(), 0)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}
