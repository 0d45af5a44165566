//! Every class of bad input gives a clear error (file, line/row, field) or a ledger reason,
//! and never a panic.

use std::path::Path;

use polars::prelude::*;

use crate::common::*;

fn hf_input(path: &str, columns: &str) -> String {
    format!(
        "name: bad\ninputs:\n  - path: {path}\n    format: parquet\n    columns: {columns}\n    source: s\nstages:\n  - validate: {{}}\noutput:\n  dir: unused\n"
    )
}

const HF_COLS: &str = "{prompt: problem, response: answer, reference: solution, images: images}";

/// Run the CLI on a spec text; return (exit code, stderr).
fn run_cli(dir: &Path, yaml: &str) -> (Option<i32>, String) {
    let spec = write_spec(dir, yaml);
    let out = dir.join("run");
    let o = cli(&["run", &spec.display().to_string(), "--out", &out.display().to_string(), "-q"], &[]);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    (o.status.code(), err)
}

#[test]
fn truncated_parquet_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(repo().join("fixtures/layouts/hf/train.parquet")).unwrap();
    let bad = tmp.path().join("cut.parquet");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let (code, err) = run_cli(tmp.path(), &hf_input(&bad.display().to_string(), HF_COLS));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cut.parquet") && err.contains("truncated"), "{err}");
}

#[test]
fn wrong_column_type_names_file_column_and_type() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("ints.parquet");
    let mut df = df!("problem" => [1i64, 2], "answer" => ["a", "b"]).unwrap();
    ParquetWriter::new(std::fs::File::create(&p).unwrap()).finish(&mut df).unwrap();
    let (code, err) = run_cli(tmp.path(), &hf_input(&p.display().to_string(), "{prompt: problem, response: answer}"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("ints.parquet") && err.contains("`problem` (mapped to prompt) has type i64"), "{err}");
}

#[test]
fn missing_mapped_column_lists_the_columns_there_are() {
    let tmp = tempfile::tempdir().unwrap();
    let (code, err) =
        run_cli(tmp.path(), &hf_input(&fixture("layouts/hf/train.parquet"), "{prompt: question, response: answer}"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("train.parquet") && err.contains("`question` (mapped to prompt) not found"), "{err}");
    assert!(err.contains("problem"), "lists the real columns: {err}");
    // the same for JSONL, checked on the first record
    let yaml = format!(
        "name: bad\ninputs:\n  - path: {}\n    format: jsonl\n    layout: sharegpt\n    columns: {{conversations: turns}}\n    source: s\noutput:\n  dir: x\n",
        fixture("layouts/sharegpt/data.jsonl")
    );
    let (code, err) = run_cli(tmp.path(), &yaml);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("data.jsonl") && err.contains("no key `turns`"), "{err}");
}

#[test]
fn corrupt_png_goes_to_the_ledger_with_its_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read(repo().join("fixtures/layouts/images/red.png")).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n - 20..n - 12].copy_from_slice(b"garbage!"); // damage the end of the compressed data
    let p = tmp.path().join("rows.parquet");
    let imgs = |b: &[u8], name: &str| {
        let bytes = Series::new("bytes".into(), [b]);
        let path = Series::new("path".into(), [name]);
        StructChunked::from_series("".into(), 1, [bytes, path].iter()).unwrap().into_series()
    };
    let list: ListChunked = [Some(imgs(&good, "good.png")), Some(imgs(&bad, "bad.png"))].into_iter().collect();
    let mut df = DataFrame::new_infer_height(vec![
        list.with_name("images".into()).into_series().into(),
        Series::new("problem".into(), ["<image>q1", "<image>q2"]).into(),
        Series::new("answer".into(), ["a1", "a2"]).into(),
    ])
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&p).unwrap()).finish(&mut df).unwrap();
    let spec = write_spec(
        tmp.path(),
        &hf_input(&p.display().to_string(), "{prompt: problem, response: answer, images: images}"),
    );
    let out = tmp.path().join("run");
    let stats = run(&spec, &out, None);
    assert_eq!(stats.rows_out, 1);
    let led = ledger(&out);
    assert_eq!(led.len(), 1);
    assert_eq!(led[0].reason, "corrupt_image");
    assert_eq!(led[0].stage, "validate");
    assert!(led[0].origin.ends_with("rows.parquet#1"), "{}", led[0].origin);
    assert!(led[0].detail.contains("bad.png"), "{}", led[0].detail);
}

#[test]
fn bad_rows_in_jsonl_are_quarantined_with_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("rows.jsonl");
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"q\": \"fine\", \"a\": \"ok\"}\n");
    body.extend_from_slice(b"{\"q\": 7, \"a\": \"number prompt\"}\n");
    body.extend_from_slice(b"\n");
    body.extend_from_slice(b"{\"q\": \"no answer key\"}\n");
    body.extend_from_slice(b"[1, 2]\n");
    body.extend_from_slice(b"{\"q\": \"bad \xff byte\", \"a\": \"x\"}\n");
    std::fs::write(&p, body).unwrap();
    let yaml = format!(
        "name: j\ninputs:\n  - path: {}\n    format: jsonl\n    columns: {{prompt: q, response: a}}\n    source: s\noutput:\n  dir: x\n",
        p.display()
    );
    let spec = write_spec(tmp.path(), &yaml);
    let out = tmp.path().join("run");
    let stats = run(&spec, &out, None);
    assert_eq!(stats.rows_in, 5);
    assert_eq!(stats.rows_out, 1);
    let led = ledger(&out);
    let got: Vec<(String, String)> =
        led.iter().map(|e| (e.origin.rsplit(':').next().unwrap().to_string(), e.reason.clone())).collect();
    assert_eq!(
        got,
        vec![
            ("2".into(), "bad_field_type".into()),
            ("4".into(), "missing_field".into()),
            ("5".into(), "bad_record".into()),
            ("6".into(), "invalid_utf8".into()),
        ]
    );
    assert!(led[0].detail.contains("column `q` (prompt) is integer"), "{}", led[0].detail);
    assert!(led[1].detail.contains("column `a` (mapped to response) is absent"), "{}", led[1].detail);
}

#[test]
fn spec_errors_name_file_line_and_column_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let good_path = fixture("layouts/hf/train.parquet");
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("name: [unclosed\n".into(), vec!["spec.yaml:"]),
        (
            format!("name: x\ninputs:\n  - path: {good_path}\n    format: parquet\n    columns: {{prompt: problem}}\n    source: s\nstages:\n  - dedup.fuzzy: {{}}\noutput:\n  dir: o\n"),
            vec!["spec.yaml:8:", "dedup.fuzzy", "dedup.exact"],
        ),
        (
            format!("name: x\ninputs:\n  - path: {good_path}\n    formt: parquet\n    source: s\noutput:\n  dir: o\n"),
            vec!["spec.yaml:4:", "formt"],
        ),
        (
            "name: x\ninputs:\n  - path: /nonexistent/*.parquet\n    format: parquet\n    columns: {prompt: p}\n    source: s\noutput:\n  dir: o\n".into(),
            vec!["spec.yaml:3:11", "no file matches"],
        ),
        (
            format!("name: x\ninputs:\n  - path: {good_path}\n    format: parquet\n    columns: {{prompt: problem}}\n    source: s\nstages:\n  - filter.length: {{max_words: many}}\noutput:\n  dir: o\n"),
            vec!["spec.yaml:8:", "max_words"],
        ),
        (
            format!("name: x\ninputs:\n  - path: {good_path}\n    format: parquet\n    layout: sharegpt\n    columns: {{prompt: problem}}\n    source: s\noutput:\n  dir: o\n"),
            vec!["spec.yaml:3:", "prompt and response come from the turns"],
        ),
        (
            format!("name: x\ninputs:\n  - path: {good_path}\n    format: parquet\n    columns: {{prompt: problem}}\n    source: s\nstages:\n  - filter.length: {{}}\noutput:\n  dir: o\n"),
            vec!["stages[0] (filter.length)", "at least one of"],
        ),
    ];
    for (yaml, wants) in cases {
        let (code, err) = run_cli(tmp.path(), &yaml);
        assert_eq!(code, Some(2), "{yaml}\n{err}");
        for w in wants {
            assert!(err.contains(w), "expected `{w}` in:\n{err}\nfor spec:\n{yaml}");
        }
    }
}

/// Image strings as R1-Onevision-style Parquet holds them: base64, `data:` URLs and paths side
/// by side; a value that is none of them, and a path that cannot be read, are ledgered rows
/// with short details, and the run goes on.
#[test]
fn images_as_base64_data_urls_and_paths_ingest_and_bad_values_are_ledgered() {
    use base64::Engine as _;
    let tmp = tempfile::tempdir().unwrap();
    let red = std::fs::read(repo().join("fixtures/layouts/images/red.png")).unwrap();
    let green = std::fs::read(repo().join("fixtures/layouts/images/green.png")).unwrap();
    std::fs::copy(repo().join("fixtures/layouts/images/blue.png"), tmp.path().join("blue.png")).unwrap();
    std::fs::create_dir(tmp.path().join("a_directory.png")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&red);
    let url = format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(&green));
    let garbage = format!("{}\n{}", "x".repeat(3000), "y".repeat(3000));
    let images = [b64.as_str(), url.as_str(), "blue.png", garbage.as_str(), "a_directory.png", ""];
    let p = tmp.path().join("rows.parquet");
    let n = images.len();
    let mut df = DataFrame::new_infer_height(vec![
        Series::new("image".into(), images).into(),
        Series::new("problem".into(), (0..n).map(|i| format!("<image>question {i}")).collect::<Vec<_>>()).into(),
        Series::new("answer".into(), (0..n).map(|i| format!("answer {i}")).collect::<Vec<_>>()).into(),
    ])
    .unwrap();
    ParquetWriter::new(std::fs::File::create(&p).unwrap()).finish(&mut df).unwrap();
    let spec = write_spec(
        tmp.path(),
        &hf_input(&p.display().to_string(), "{prompt: problem, response: answer, images: image}"),
    );
    let out = tmp.path().join("run");
    let stats = run(&spec, &out, None);
    assert_eq!(stats.rows_in, n as u64);
    let kept = curated(&out);
    let ids: Vec<Vec<String>> = kept.iter().map(|t| t.images.iter().map(|i| i.id.clone()).collect()).collect();
    let id = |b: &[u8]| cotforge::store::image_id(b);
    let blue = std::fs::read(tmp.path().join("blue.png")).unwrap();
    // the empty string is no image: a text-only row
    assert_eq!(ids, vec![vec![id(&red)], vec![id(&green)], vec![id(&blue)], vec![]]);
    let led = ledger(&out);
    let got: Vec<(&str, &str)> =
        led.iter().map(|e| (e.origin.rsplit('#').next().unwrap(), e.reason.as_str())).collect();
    assert_eq!(got, vec![("3", "bad_image_value"), ("4", "unreadable_image")]);
    for e in &led {
        assert!(e.detail.len() < 300, "a detail holds the payload: {} chars", e.detail.len());
        assert!(e.detail.contains("column `image`") || e.detail.contains("a_directory.png"), "{}", e.detail);
    }
    assert!(led[0].detail.contains("6001 chars"), "{}", led[0].detail);
    // the declared encoding overrides detection: as a path, the base64 string names no file
    // (or one too long to open), which is a ledgered row with a clipped detail, and the run goes on
    let yaml = hf_input(&p.display().to_string(), "{prompt: problem, response: answer, images: image}")
        .replace("    source: s\n", "    image_encoding: path\n    source: s\n");
    let spec = write_spec(tmp.path(), &yaml);
    let out = tmp.path().join("run-paths");
    run(&spec, &out, None);
    let led = ledger(&out);
    let first = led.iter().find(|e| e.origin.ends_with("#0")).expect("row 0 is ledgered");
    assert!(first.reason == "missing_image" || first.reason == "unreadable_image", "{first:?}");
    assert!(first.detail.len() < 300, "{}", first.detail);
}
