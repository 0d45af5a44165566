//! The run report (report.html), the stats tables and `cotforge export`.

use std::collections::BTreeMap;
use std::path::Path;

use cotforge::pipeline::RunStats;
use polars::prelude::*;

use crate::common::{self, cli, demo_yaml, stderr, write_spec};

fn stats_of(dir: &Path) -> RunStats {
    serde_json::from_slice(&std::fs::read(dir.join("stats.json")).unwrap()).unwrap()
}

/// Run the demo through the command line into `out`.
fn demo_run(tmp: &Path, out: &Path, extra: &[&str]) {
    let spec = write_spec(tmp, &demo_yaml(""));
    let mut args = vec!["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q"];
    args.extend_from_slice(extra);
    let o = cli(&args, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The value of attribute `name` in each element of `html` whose opening tag starts `prefix`.
fn attr_values(html: &str, prefix: &str, name: &str) -> Vec<String> {
    let key = format!(r#" {name}=""#);
    html.match_indices(prefix)
        .filter_map(|(i, _)| {
            let tag = &html[i..i + html[i..].find('>').unwrap()];
            let at = tag.find(&key)? + key.len();
            Some(tag[at..at + tag[at..].find('"').unwrap()].to_string())
        })
        .collect()
}

#[test]
fn the_demo_report_shows_the_run_numbers_and_loads_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    demo_run(tmp.path(), &out, &[]);
    let stats = stats_of(&out);
    let html = std::fs::read_to_string(out.join("report.html")).expect("run writes report.html by default");
    for id in ["overview", "funnel", "drops", "measured", "buckets", "packing", "samples", "summaries", "spec"] {
        assert!(html.contains(&format!(r#"id="{id}""#)), "section {id}");
    }
    // self-contained: no script, no fetched resource, images inline
    assert!(!html.contains("<script"), "no script");
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("url("), "nothing to fetch");
    let srcs = attr_values(&html, "<img ", "src");
    assert!(!srcs.is_empty(), "dropped samples have thumbnails");
    assert!(srcs.iter().all(|s| s.starts_with("data:image/png;base64,")));

    // funnel: raw rows, then every stage's rows_out
    let funnel = &html[html.find(r#"id="funnel""#).unwrap()..html.find(r#"id="drops""#).unwrap()];
    let values: Vec<u64> =
        attr_values(funnel, r#"<g class="bar""#, "data-value").iter().map(|v| v.parse().unwrap()).collect();
    let mut want = vec![stats.rows_in];
    want.extend(stats.stages.iter().map(|s| s.rows_out));
    assert_eq!(values, want);
    // drop table and sample browser: one row / one reason block per (stage, reason)
    let reasons: Vec<(String, String)> = stats
        .stages
        .iter()
        .flat_map(|s| s.dropped.iter().map(move |(r, n)| (format!("{}:{r}", s.index), n.to_string())))
        .collect();
    let table: Vec<(String, String)> = attr_values(&html, "<tr data-stage-index", "data-stage-index")
        .into_iter()
        .zip(attr_values(&html, "<tr data-stage-index", "data-reason"))
        .zip(attr_values(&html, "<tr data-stage-index", "data-rows"))
        .map(|((i, r), n)| (format!("{i}:{r}"), n))
        .collect();
    assert_eq!(table, reasons);
    assert_eq!(
        attr_values(&html, r#"<details class="reason""#, "data-rows"),
        reasons.iter().map(|r| r.1.clone()).collect::<Vec<_>>()
    );
    let shown: usize = stats.stages.iter().flat_map(|s| s.dropped.values()).map(|&n| (n as usize).min(5)).sum();
    assert_eq!(html.matches(r#"<article class="sample""#).count(), shown);
    // every shown sample is a ledger row of its stage and reason
    let ledger: std::collections::HashSet<String> = common::ledger(&out).into_iter().filter_map(|e| e.id).collect();
    for id in attr_values(&html, r#"<article class="sample""#, "data-id").into_iter().filter(|i| !i.is_empty()) {
        assert!(ledger.contains(&id), "{id} is in the ledger");
    }
    // a looping trace is clipped, with the rest counted
    assert!(html.contains("more characters</p>"));
    // histograms: one per measured value, with its count
    let hist_counts: Vec<String> = attr_values(&html, r#"<figure class="hist""#, "data-count");
    let want: Vec<String> =
        stats.stages.iter().flat_map(|s| s.measured.values().map(|h| h.count.to_string())).collect();
    assert_eq!(hist_counts, want);
    assert!(attr_values(&html, r#"<figure class="hist""#, "data-metric").contains(&"image_width".to_string()));
    // packing
    let shards = stats.shards.as_ref().unwrap();
    assert_eq!(attr_values(&html, r#"<dd id="packs""#, "data-value"), vec![shards.packs.to_string()]);
    assert_eq!(attr_values(&html, r#"<figure class="fill""#, "data-packs"), vec![shards.packs.to_string()]);
    // the spec and its hash
    let spec = std::fs::read_to_string(out.join("spec.yaml")).unwrap();
    assert!(html.contains(&stats.spec_blake3));
    assert!(html.contains(&cotforge::report::svg::esc(&spec)));

    // `cotforge report` writes the same bytes again
    let again = tmp.path().join("again.html");
    let o = cli(&["report", out.to_str().unwrap(), "--out", again.to_str().unwrap()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&again).unwrap(), html.as_bytes());
    // fewer samples on request
    let o = cli(&["report", out.to_str().unwrap(), "--out", again.to_str().unwrap(), "--samples", "1"], &[]);
    assert!(o.status.success());
    let one = std::fs::read_to_string(&again).unwrap();
    assert_eq!(one.matches(r#"<article class="sample""#).count(), reasons.len());
}

#[test]
fn stats_tables_hold_the_stats_json_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    demo_run(tmp.path(), &out, &["--no-report"]);
    assert!(!out.join("report.html").exists(), "--no-report");
    let stats = stats_of(&out);
    let read =
        |name: &str| ParquetReader::new(std::fs::File::open(out.join("stats").join(name)).unwrap()).finish().unwrap();
    let stages = read("stages.parquet");
    let rows_out: Vec<u64> = stages.column("rows_out").unwrap().u64().unwrap().iter().map(|v| v.unwrap()).collect();
    assert_eq!(rows_out, stats.stages.iter().map(|s| s.rows_out).collect::<Vec<_>>());
    let dropped: Vec<u64> = stages.column("rows_dropped").unwrap().u64().unwrap().iter().map(|v| v.unwrap()).collect();
    assert_eq!(dropped, stats.stages.iter().map(|s| s.rows_in - s.rows_out).collect::<Vec<_>>());
    let drops = read("drops.parquet");
    let total: u64 = drops.column("rows").unwrap().u64().unwrap().iter().map(|v| v.unwrap()).sum();
    assert_eq!(total, stats.ledger_rows);
    let hist = read("histograms.parquet");
    let metric = hist.column("metric").unwrap().str().unwrap().clone();
    let rows = hist.column("rows").unwrap().u64().unwrap().clone();
    let lower = hist.column("lower").unwrap().f64().unwrap().clone();
    let upper = hist.column("upper").unwrap().f64().unwrap().clone();
    let mut per_metric: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..hist.height() {
        *per_metric.entry(metric.get(i).unwrap().to_string()).or_default() += rows.get(i).unwrap();
        if let Some(u) = upper.get(i) {
            assert!(u > lower.get(i).unwrap());
        }
    }
    let tokenize = stats.stages.iter().find(|s| s.stage == "tokenize").unwrap();
    assert_eq!(per_metric["assistant_tokens"], tokenize.measured["assistant_tokens"].count);
}

#[test]
fn report_of_a_directory_that_is_not_a_run_names_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let o = cli(&["report", tmp.path().to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("stats.json") && err.contains("run directory"), "{err}");
    let o = cli(&["export", tmp.path().to_str().unwrap(), "--out", tmp.path().join("x").to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("stats.json"));
}

/// (system, prompt, response, reference, image ids) of a run's curated traces, sorted.
type Content = (Option<String>, String, String, Option<String>, Vec<String>);
fn content(out: &Path, keep_system: bool) -> Vec<Content> {
    let mut v: Vec<Content> = common::curated(out)
        .into_iter()
        .map(|t| {
            let sys = if keep_system { t.system } else { None };
            (sys, t.prompt, t.response, t.reference, t.images.into_iter().map(|i| i.id).collect())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn exports_in_every_layout_and_format_read_back_to_the_same_traces() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    demo_run(tmp.path(), &run, &["--no-report"]);
    let n = common::curated(&run).len() as u64;
    for (layout, format) in
        [("columns", "parquet"), ("columns", "jsonl"), ("sharegpt", "parquet"), ("sharegpt", "jsonl")]
    {
        let exp = tmp.path().join(format!("export-{layout}-{format}"));
        let o = cli(
            &["export", run.to_str().unwrap(), "--layout", layout, "--format", format, "--out", exp.to_str().unwrap()],
            &[],
        );
        assert!(o.status.success(), "{layout}/{format}: {}", stderr(&o));
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(exp.join("_export.json")).unwrap()).unwrap();
        assert_eq!(summary["rows"], n, "{layout}/{format}");
        let embedded = layout == "columns" && format == "parquet";
        assert_eq!(exp.join("images").exists(), !embedded, "{layout}/{format}: image files on disk");
        let (path, fmt) =
            if format == "parquet" { ("data/part-*.parquet", "parquet") } else { ("data.jsonl", "jsonl") };
        let columns = if layout == "columns" {
            "{prompt: prompt, response: response, reference: reference, images: images}"
        } else {
            "{conversations: conversations, reference: answer, images: images}"
        };
        let spec = format!(
            "name: back\ninputs:\n  - path: {e}/{path}\n    format: {fmt}\n    layout: {layout}\n    columns: {columns}\n    images_root: {e}\n    source: back\nstages:\n  - validate: {{}}\noutput:\n  dir: unused\n",
            e = exp.display()
        );
        let sdir = tmp.path().join(format!("spec-{layout}-{format}"));
        std::fs::create_dir_all(&sdir).unwrap();
        let back = tmp.path().join(format!("back-{layout}-{format}"));
        let stats = common::run(&write_spec(&sdir, &spec), &back, Some(1));
        assert_eq!(stats.ledger_rows, 0, "{layout}/{format}: nothing lost on the way back");
        assert_eq!(content(&back, layout == "sharegpt"), content(&run, layout == "sharegpt"), "{layout}/{format}");
    }
    // an export replaces an earlier export, but never another directory's files
    let exp = tmp.path().join("export-columns-parquet");
    let o = cli(&["export", run.to_str().unwrap(), "--out", exp.to_str().unwrap()], &[]);
    assert!(o.status.success());
    let other = tmp.path().join("notes");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "x").unwrap();
    let o = cli(&["export", run.to_str().unwrap(), "--out", other.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a cotforge export"), "{}", stderr(&o));
    assert!(other.join("keep.txt").exists());
}

#[test]
fn near_duplicate_similarities_and_image_distances_get_histograms() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = format!(
        "name: sims\ninputs:\n  - path: {}\n    format: parquet\n    columns: {{prompt: problem, response: answer, reference: solution, images: images}}\n    source: synth\nstages:\n  - validate: {{}}\n  - dedup.minhash: {{}}\n  - dedup.image: {{}}\noutput:\n  dir: unused\n",
        common::fixture("synth/data/*.parquet")
    );
    let out = tmp.path().join("run");
    let stats = common::run(&write_spec(tmp.path(), &spec), &out, Some(1));
    let html = cotforge::report::render(&out, &cotforge::report::ReportOptions::default()).unwrap();
    for (stage, metric) in [("dedup.minhash", "jaccard"), ("dedup.image", "image_distance")] {
        let s = stats.stages.iter().find(|s| s.stage == stage).unwrap();
        let h =
            s.measured.get(metric).unwrap_or_else(|| panic!("{stage} measured no {metric}: {:?}", s.measured.keys()));
        assert!(h.count > 0);
        let tag = format!(
            r#"<figure class="hist" data-stage-index="{}" data-stage="{stage}" data-metric="{metric}" data-count="{}""#,
            s.index, h.count
        );
        assert!(html.contains(&tag), "{tag}");
    }
    // no bucket or pack stage: those sections say so
    assert!(html.contains("This run has no length buckets.") && html.contains("This run wrote no shards."));
}
