//! The committed schemas in `schemas/` match the code.

use crate::common::repo;

#[test]
fn committed_schemas_match_the_code() {
    for (name, text) in cotforge::schema::schema_files() {
        let path = repo().join("schemas").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == text,
            "{} is out of date; regenerate with `cargo run -- schemas`",
            path.display()
        );
    }
}

#[test]
fn spec_schema_knows_every_stage() {
    let schema = cotforge::spec::json_schema();
    for stage in [
        "validate",
        "filter.length",
        "dedup.exact",
        "filter.format",
        "filter.truncated",
        "filter.repetition",
        "filter.image",
        "filter.correct",
        "filter.language",
    ] {
        assert!(schema.contains(&format!("\"{stage}\"")), "{stage} missing from the spec schema");
    }
    // the demo spec is valid against the code that generated the schema
    let demo = repo().join("pipelines/demo.yaml");
    let text = std::fs::read_to_string(&demo).unwrap();
    cotforge::spec::parse(&demo, &text).expect("demo spec is valid");
}
