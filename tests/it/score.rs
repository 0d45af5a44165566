//! Difficulty scoring: `score` records a model's pass rate per prompt, `filter.pass_rate` keeps
//! a band of it, and a pass rate computed elsewhere can be mapped in from the input.

use crate::common::{curated, curated_df, ledger, run, run_outputs, write_spec};
use crate::train::{random_model, shards_of};
use cotforge::train::TrainConfig;
use cotforge::train::optim::Schedule;

fn reasons(out: &std::path::Path) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = ledger(out)
        .into_iter()
        .map(|e| (e.stage, e.reason, e.origin.rsplit(':').next().unwrap().to_string()))
        .collect();
    v.sort();
    v
}

#[test]
fn a_mapped_pass_rate_column_is_filtered_by_band() {
    let tmp = tempfile::tempdir().unwrap();
    let rates = ["0", "0.25", "0.5", "1.0", "null", "\"high\"", "1.5", "1", "0.4"];
    let jsonl: String = rates
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{{\"prompt\": \"q{i}\", \"response\": \"<think>\\nr\\n</think>\\n\\\\boxed{{1}}\", \"reference\": \"1\", \"p\": {p}}}\n"))
        .collect();
    std::fs::write(tmp.path().join("in.jsonl"), jsonl).unwrap();
    let spec = format!(
        "name: band\ninputs:\n  - path: {}\n    format: jsonl\n    columns: {{prompt: prompt, response: response, reference: reference, pass_rate: p}}\n    source: s\nstages:\n  - filter.pass_rate: {{gt: 0, le: 0.5}}\noutput:\n  dir: o\n",
        tmp.path().join("in.jsonl").display()
    );
    let spec = write_spec(tmp.path(), &spec);
    let out = tmp.path().join("run");
    run(&spec, &out, Some(2));
    let kept: Vec<(String, Option<f64>)> = curated(&out).into_iter().map(|t| (t.prompt, t.pass_rate)).collect();
    assert_eq!(kept, vec![("q1".into(), Some(0.25)), ("q2".into(), Some(0.5)), ("q8".into(), Some(0.4))]);
    // lines are 1-based in JSONL origins
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        reasons(&out),
        vec![
            s("filter.pass_rate", "no_pass_rate", "5"),
            s("filter.pass_rate", "too_easy", "4"),
            s("filter.pass_rate", "too_easy", "8"),
            s("filter.pass_rate", "too_hard", "1"),
            s("ingest", "bad_field_type", "6"),
            s("ingest", "bad_pass_rate", "7"),
        ]
    );
    // the column is a nullable float64 in the curated Parquet (pandas reads it as float64)
    let df = curated_df(&out);
    assert_eq!(df.column("pass_rate").unwrap().dtype(), &polars::prelude::DataType::Float64);
    // a band that keeps nothing is refused before the run
    let bad = write_spec(
        tmp.path(),
        &std::fs::read_to_string(&spec).unwrap().replace("{gt: 0, le: 0.5}", "{gt: 0.5, lt: 0.5}"),
    );
    let e = cotforge::spec::load(&bad).unwrap_err().to_string();
    assert!(e.contains("keeps no pass rate"), "{e}");
}

/// A small model that answers every question with "\boxed{7}".
fn sevens(dir: &std::path::Path) -> std::path::PathBuf {
    let rows: Vec<(String, String, String)> = (0..8)
        .map(|i| {
            (
                format!("What is the answer to question {i}?"),
                "<think>\nIt is 7.\n</think>\n\\boxed{7}".to_string(),
                "7".to_string(),
            )
        })
        .collect();
    let shards = shards_of(&dir.join("data"), &rows, 256);
    let model = random_model(&dir.join("model"));
    let cfg = TrainConfig {
        lr: 1e-2,
        schedule: Schedule::Constant,
        warmup_ratio: 0.0,
        max_steps: Some(40),
        packs_per_step: 1,
        ..TrainConfig::default()
    };
    let args = cotforge::train::SftArgs {
        shards,
        model,
        tokenizer: None,
        out: dir.join("sft"),
        config: cfg,
        resume: false,
        progress: false,
        device: "cpu".into(),
    };
    cotforge::train::sft::run(&args).unwrap().checkpoint
}

#[test]
fn score_records_the_models_pass_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let model = sevens(tmp.path());
    let refs = ["7", "7", "3", "7", "", "12"];
    let jsonl: String = refs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let reference = if r.is_empty() { "null".to_string() } else { format!("\"{r}\"") };
            format!("{{\"prompt\": \"What is the answer to question {}?\", \"response\": \"x\", \"reference\": {reference}}}\n", i + 20)
        })
        .collect();
    std::fs::write(tmp.path().join("q.jsonl"), jsonl).unwrap();
    let spec = |batch: usize| {
        format!(
            "name: score\nbatch_rows: {batch}\ninputs:\n  - path: {}\n    format: jsonl\n    columns: {{prompt: prompt, response: response, reference: reference}}\n    source: s\nstages:\n  - score: {{model: {}, samples: 4, temperature: 0.05, max_new_tokens: 24, system: Think step by step.}}\n  - filter.pass_rate: {{gt: 0}}\noutput:\n  dir: o\n",
            tmp.path().join("q.jsonl").display(),
            model.display()
        )
    };
    let out = tmp.path().join("run");
    run(&write_spec(tmp.path(), &spec(512)), &out, Some(2));
    // near-greedy sampling of a model that always says 7: right exactly where the reference is 7
    let kept: Vec<(String, Option<f64>)> =
        curated(&out).into_iter().map(|t| (t.reference.unwrap(), t.pass_rate)).collect();
    assert_eq!(kept, vec![("7".into(), Some(1.0)); 3]);
    let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
    assert_eq!(
        reasons(&out),
        vec![
            s("filter.pass_rate", "no_pass_rate", "5"),
            s("filter.pass_rate", "too_hard", "3"),
            s("filter.pass_rate", "too_hard", "6")
        ]
    );
    let stats: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("stats.json")).unwrap()).unwrap();
    let score = stats["stages"].as_array().unwrap().iter().find(|st| st["stage"] == "score").unwrap().clone();
    assert_eq!(score["summary"]["scored"], 5, "{score}");
    assert_eq!(score["summary"]["no_reference"], 1);
    assert_eq!(score["summary"]["never_solved"], 2);
    assert!((score["summary"]["mean_pass_rate"].as_f64().unwrap() - 0.6).abs() < 1e-12);
    // the same run in batches of 2 rows scores the same (sampling is seeded per row), and a
    // rerun gives the same bytes
    let again = tmp.path().join("again");
    run(&write_spec(tmp.path(), &spec(2)), &again, Some(1));
    assert_eq!(curated(&again), curated(&out));
    assert_eq!(reasons(&again), reasons(&out));
    let third = tmp.path().join("third");
    run(&write_spec(tmp.path(), &spec(512)), &third, Some(2));
    let (a, b) = (run_outputs(&out), run_outputs(&third));
    for name in a.keys().filter(|k| k.starts_with("curated/") || k.starts_with("ledger/")) {
        assert_eq!(a[name], b[name], "{name}");
    }
}
