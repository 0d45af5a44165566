//! The committed schemas in `schemas/` match the code.

use crate::common::repo;

#[test]
fn committed_schemas_match_the_code() {
    for (name, text) in cotforge::cli::schemas::schema_files() {
        let path = repo().join("schemas").join(name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(committed == text, "{} is out of date; regenerate with `cargo run -- schemas`", path.display());
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
        "score",
        "filter.pass_rate",
    ] {
        assert!(schema.contains(&format!("\"{stage}\"")), "{stage} missing from the spec schema");
    }
    // the demo spec is valid against the code that generated the schema
    let demo = repo().join("pipelines/demo.yaml");
    let text = std::fs::read_to_string(&demo).unwrap();
    cotforge::spec::parse(&demo, &text).expect("demo spec is valid");
}

#[test]
fn the_train_config_schema_lists_every_setting_and_the_bundled_config_parses() {
    let schema: serde_json::Value = serde_json::from_str(&cotforge::train::config::json_schema()).unwrap();
    let props = schema["properties"].as_object().unwrap();
    let default = serde_json::to_value(cotforge::train::TrainConfig::default()).unwrap();
    for key in default.as_object().unwrap().keys() {
        assert!(props.contains_key(key), "{key} missing from the train config schema");
    }
    let text = std::fs::read_to_string(repo().join("pipelines/sft-demo.yaml")).unwrap();
    let cfg = cotforge::train::TrainConfig::parse(&text).expect("pipelines/sft-demo.yaml is valid");
    assert_eq!(cfg.max_steps, Some(2));
}
