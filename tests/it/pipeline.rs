//! Executor contracts: row accounting, ledger contents, determinism, resume.

use std::collections::{BTreeMap, HashSet};

use cotforge::io::PartReader;

use crate::common::*;

/// Planted defects of the synthetic fixture (row -> (kind, source row)).
fn fixture_labels() -> BTreeMap<u64, (String, Option<i64>)> {
    synth_labels(&repo().join("fixtures/synth"))
}

#[test]
fn demo_rows_in_equal_kept_plus_ledger_for_every_stage() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &demo_yaml(""));
    let out = tmp.path().join("run");
    let stats = run(&spec, &out, None);
    let kept = curated(&out);
    let led = ledger(&out);
    let labels = fixture_labels();
    let count = |k: &str| labels.values().filter(|(kind, _)| kind == k).count();
    let synth_rows = 200;
    // 6 layout inputs x 4 traces + 8 defect lines + the synthetic corpus
    assert_eq!(stats.rows_in as usize, 32 + synth_rows);
    assert_eq!(stats.rows_in as usize, kept.len() + led.len());
    assert_eq!(stats.rows_out as usize, kept.len());
    assert_eq!(stats.ledger_rows as usize, led.len());
    let mut prev_out = None;
    for s in &stats.stages {
        let dropped: u64 = s.dropped.values().sum();
        assert_eq!(s.rows_in, s.rows_out + dropped, "{s:?}");
        if let Some(p) = prev_out {
            assert_eq!(s.rows_in, p, "{s:?}");
        }
        prev_out = Some(s.rows_out);
        let in_ledger = led.iter().filter(|e| e.stage == s.stage).count() as u64;
        assert_eq!(in_ledger, dropped, "ledger rows of {}", s.stage);
    }
    let reasons: BTreeMap<(String, String), usize> = led.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry((e.stage.clone(), e.reason.clone())).or_default() += 1;
        m
    });
    // rows the tokenize stage measured over the demo's max_length of 16384 (none today; the ledger must agree)
    let tokenized = PartReader::open(&out.join("work/09-tokenize")).unwrap();
    let mut over_length = 0;
    tokenized
        .for_each_batch_of(1000, Some(&["num_tokens"]), |df| {
            over_length +=
                df.column("num_tokens").unwrap().u32().unwrap().iter().filter(|n| n.unwrap() > 16384).count();
            Ok(())
        })
        .unwrap();
    // Contamination rows that copy the same benchmark item are exact duplicates of each other.
    let contaminated: Vec<i64> =
        labels.values().filter(|(k, _)| k == "contamination").filter_map(|(_, s)| *s).collect();
    let bench_repeats = contaminated.len() - contaminated.iter().collect::<HashSet<_>>().len();
    let want: BTreeMap<(String, String), usize> = [
        (("ingest", "invalid_utf8"), 1),
        (("ingest", "invalid_json"), 1),
        (("validate", "corrupt_image"), 1 + count("corrupt_image")),
        (("validate", "missing_image"), 1),
        (("validate", "empty_response"), 1),
        (("filter.truncated", "unclosed_reasoning"), count("truncated")),
        // the defects file's over-long trace is one phrase repeated: a loop
        (("filter.repetition", "repeated_passage"), 1 + count("loop")),
        (("filter.length", "too_long"), count("overlong")),
        (("filter.correct", "wrong_answer"), count("wrong_answer")),
        (("filter.language", "mixed_script"), count("language_drift")),
        (("dedup.exact", "duplicate"), 21 + count("exact_duplicate") + bench_repeats),
        (("pack", "over_length"), over_length),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|((a, b), n)| ((a.to_string(), b.to_string()), n))
    .collect();
    assert_eq!(reasons, want);
    // every planted defect these stages target is in the ledger, by row, with its reason
    for (row, (kind, src)) in &labels {
        let origin_suffix = format!("train-00000.parquet#{row}");
        let entry = led.iter().find(|e| e.source == "synth" && e.origin.ends_with(&origin_suffix));
        let want_reason = match kind.as_str() {
            "exact_duplicate" => Some("duplicate"),
            "corrupt_image" => Some("corrupt_image"),
            "overlong" => Some("too_long"),
            "truncated" => Some("unclosed_reasoning"),
            "loop" => Some("repeated_passage"),
            "wrong_answer" => Some("wrong_answer"),
            "language_drift" => Some("mixed_script"),
            _ => None,
        };
        match want_reason {
            Some(r) => {
                let e = entry.unwrap_or_else(|| panic!("row {row} ({kind}) is not in the ledger"));
                assert_eq!(e.reason, r, "row {row}");
                if kind == "exact_duplicate" {
                    let kept_row = kept.iter().find(|t| Some(&t.id) == e.kept_id.as_ref()).expect("kept row exists");
                    assert!(
                        kept_row.origin.ends_with(&format!("#{}", src.unwrap())),
                        "{} kept for {row}",
                        kept_row.origin
                    );
                }
            }
            // near duplicates and shared images are for later stages; contamination copies of one
            // benchmark item are exact duplicates of each other
            None if kind != "contamination" => assert!(entry.is_none(), "row {row} ({kind}) was dropped: {entry:?}"),
            None => {}
        }
    }
    // clean rows are all kept
    let n_labelled = labels.len();
    let synth_kept = kept.iter().filter(|t| t.source == "synth").count();
    let kept_labelled =
        labels.iter().filter(|(_, (k, _))| ["near_duplicate", "shared_image"].contains(&k.as_str())).count()
            + (count("contamination") - bench_repeats);
    assert_eq!(synth_kept, synth_rows - n_labelled + kept_labelled);
    // the layout copies: 4 distinct traces and the one clean defects row survive; hf first
    let layout_kept: Vec<_> = kept.iter().filter(|t| t.source != "synth").collect();
    assert_eq!(layout_kept.len(), 5);
    assert!(layout_kept[..4].iter().all(|t| t.source == "cold-start"));
    let kept_ids: HashSet<_> = kept.iter().map(|t| t.id.clone()).collect();
    for e in led.iter().filter(|e| e.reason == "duplicate") {
        let k = e.kept_id.as_ref().expect("duplicates name the kept row");
        assert!(kept_ids.contains(k), "kept_id {k} is in curated");
        assert_ne!(e.id.as_ref(), Some(k));
    }
    // the re-cased, re-spaced copy in the defects file is a duplicate too
    assert!(led.iter().any(|e| e.source == "defects" && e.reason == "duplicate"));
    // ingest rejects name the file and line
    let utf8 = led.iter().find(|e| e.reason == "invalid_utf8").unwrap();
    assert!(utf8.origin.ends_with("defects/data.jsonl:6"), "{}", utf8.origin);
    assert!(utf8.id.is_none());
    // every row has a distinct id
    let all_ids: Vec<_> = kept.iter().map(|t| t.id.clone()).chain(led.iter().filter_map(|e| e.id.clone())).collect();
    assert_eq!(all_ids.len(), all_ids.iter().collect::<HashSet<_>>().len());
}

#[test]
fn outputs_are_byte_identical_with_one_and_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &demo_yaml("batch_rows: 3\n"));
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let sa = run(&spec, &a, Some(1));
    let sb = run(&spec, &b, Some(2));
    let strip = |s: &cotforge::pipeline::RunStats| {
        let mut s = s.clone();
        s.stages.iter_mut().for_each(|x| {
            x.seconds = 0.0;
            x.index_seconds = None;
        });
        s.wall_seconds.clear();
        s
    };
    assert_eq!(strip(&sa), strip(&sb));
    let (ta, tb) = (run_outputs(&a), run_outputs(&b));
    assert_eq!(ta.keys().collect::<Vec<_>>(), tb.keys().collect::<Vec<_>>());
    for (k, v) in &ta {
        if k == "stats.json" || k.ends_with("_DONE.json") {
            continue; // these hold timings
        }
        assert!(v == &tb[k], "{k} differs between 1 and 2 threads");
    }
    assert!(ta.keys().any(|k| k.starts_with("curated/part-")));
}

#[test]
fn a_run_killed_mid_stage_and_resumed_equals_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &demo_yaml("batch_rows: 4\n"));
    let spec_s = spec.display().to_string();
    let clean = tmp.path().join("clean");
    run(&spec, &clean, Some(2));

    let out = tmp.path().join("killed");
    let out_s = out.display().to_string();
    let o = cli(&["run", &spec_s, "--out", &out_s, "-q"], &[("COTFORGE_FAULT_EXIT", "validate:2")]);
    assert_eq!(o.status.code(), Some(99), "{}", stderr(&o));
    assert!(out.join("work/00-ingest/_DONE.json").exists());
    assert!(!out.join("work/01-validate/_DONE.json").exists());
    assert!(!out.join("curated").exists());
    let ingest_marker = std::fs::read(out.join("work/00-ingest/_DONE.json")).unwrap();

    let o = cli(&["run", &spec_s, "--out", &out_s, "--resume", "-q", "--no-report"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // ingest was not redone
    assert_eq!(std::fs::read(out.join("work/00-ingest/_DONE.json")).unwrap(), ingest_marker);
    let (tc, tk) = (run_outputs(&clean), run_outputs(&out));
    assert_eq!(tc.keys().collect::<Vec<_>>(), tk.keys().collect::<Vec<_>>(), "no temporary files are left");
    for (k, v) in &tc {
        if k == "stats.json" || k.ends_with("_DONE.json") {
            continue;
        }
        assert!(v == &tk[k], "{k} differs after resume");
    }

    // a changed spec is refused on --resume
    std::fs::write(&spec, demo_yaml("batch_rows: 5\n")).unwrap();
    let o = cli(&["run", &spec_s, "--out", &out_s, "--resume", "-q"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("differs from the one this run started with"), "{}", stderr(&o));
}

#[test]
fn a_directory_that_is_not_a_run_is_never_cleared() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &demo_yaml(""));
    let out = tmp.path().join("precious");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "keep me").unwrap();
    let o = cli(&["run", &spec.display().to_string(), "--out", &out.display().to_string(), "-q"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a cotforge run directory"));
    assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "keep me");
}

#[test]
fn curated_images_are_hf_structs_with_the_original_bytes() {
    use polars::prelude::*;
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &demo_yaml(""));
    let out = tmp.path().join("run");
    run(&spec, &out, None);
    let df = curated_df(&out);
    let images = df.column("images").unwrap();
    assert_eq!(
        images.dtype(),
        &DataType::List(Box::new(DataType::Struct(vec![
            Field::new("bytes".into(), DataType::Binary),
            Field::new("path".into(), DataType::String),
        ])))
    );
    let first = images.list().unwrap().get_as_series(0).unwrap();
    let s = first.struct_().unwrap();
    let bytes = s.field_by_name("bytes").unwrap();
    let b = bytes.binary().unwrap().get(0).unwrap().to_vec();
    assert_eq!(b, std::fs::read(repo().join("fixtures/layouts/images/red.png")).unwrap());
    let paths = s.field_by_name("path").unwrap();
    assert_eq!(paths.str().unwrap().get(0), Some("red.png"));
}

#[test]
fn inspect_describes_files_and_run_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &demo_yaml(""));
    let out = tmp.path().join("run");
    run(&spec, &out, None);
    let o = cli(&["inspect", &out.join("curated").display().to_string()], &[]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains(&format!("{} rows in all", curated(&out).len())), "{s}");
    assert!(s.contains("images: list[struct[2]]"), "{s}");
    let o = cli(&["inspect", &fixture("layouts/sharegpt/data.jsonl")], &[]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(s.contains("rows: 4") && s.contains("conversations"), "{s}");
    let o = cli(&["inspect", "no/such/file.parquet"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no/such/file.parquet"));
}
