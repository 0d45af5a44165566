//! `cotforge synth`: determinism, defect rates, and labels that agree with the rows.

use std::collections::HashMap;
use std::path::Path;

use cotforge::synth::corpus::{self, DEFECT_KINDS, DefectRates, SynthLayout, SynthOptions};
use polars::prelude::*;

use crate::common::synth_labels;

fn make(out: &Path, rows: usize, seed: u64, layout: SynthLayout, defects: DefectRates) -> corpus::SynthSummary {
    let opts = SynthOptions { rows, seed, out: out.to_path_buf(), layout, defects, batch_rows: 64, bench_items: None };
    corpus::synth(&opts, &indicatif::ProgressBar::hidden()).unwrap()
}

struct HfRow {
    problem: String,
    answer: String,
    solution: String,
    images: Vec<Vec<u8>>,
}

fn read_hf(path: &Path, cols: [&str; 3]) -> Vec<HfRow> {
    let df = ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap();
    let s = |n: &str| -> Vec<String> {
        df.column(n).unwrap().str().unwrap().iter().map(|v| v.unwrap().to_string()).collect()
    };
    let (p, a, sol) = (s(cols[0]), s(cols[1]), s(cols[2]));
    let imgs = df.column("images").unwrap().list().unwrap().clone();
    (0..df.height())
        .map(|i| {
            let l = imgs.get_as_series(i).unwrap();
            let st = l.struct_().unwrap();
            let b = st.field_by_name("bytes").unwrap();
            let images = b.binary().unwrap().iter().map(|x| x.unwrap().to_vec()).collect();
            HfRow { problem: p[i].clone(), answer: a[i].clone(), solution: sol[i].clone(), images }
        })
        .collect()
}

fn words(s: &str) -> usize {
    s.split_whitespace().count()
}

/// A 50-word passage that occurs 3 or more times (the planted loop defect).
fn has_loop(s: &str) -> bool {
    let w: Vec<&str> = s.split_whitespace().collect();
    let mut seen: HashMap<&[&str], usize> = HashMap::new();
    for win in w.windows(50) {
        let c = seen.entry(win).or_default();
        *c += 1;
        if *c >= 3 {
            return true;
        }
    }
    false
}

fn decodes(b: &[u8]) -> bool {
    cotforge::image::decode_check(b).is_ok()
}

#[test]
fn bundled_synth_fixture_is_what_synth_writes() {
    // fixtures/synth is `cotforge synth --rows 200 --seed 42`; regenerate it when synth changes
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    let opts = SynthOptions {
        rows: 200,
        seed: 42,
        out: out.clone(),
        layout: SynthLayout::Columns,
        defects: DefectRates::default_rates(),
        batch_rows: 256,
        bench_items: None,
    };
    corpus::synth(&opts, &indicatif::ProgressBar::hidden()).unwrap();
    for f in ["data/train-00000.parquet", "labels.parquet", "bench/benchmark.parquet"] {
        let fixture = crate::common::repo().join("fixtures/synth").join(f);
        assert!(
            std::fs::read(out.join(f)).unwrap() == std::fs::read(&fixture).unwrap(),
            "{} is stale",
            fixture.display()
        );
    }
}

#[test]
fn same_seed_gives_identical_bytes_and_other_seeds_differ() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    for (dir, seed) in [(&a, 7), (&b, 7), (&c, 8)] {
        make(dir, 40, seed, SynthLayout::Columns, DefectRates::default_rates());
    }
    let (ta, tb, tc) = (crate::common::tree(&a), crate::common::tree(&b), crate::common::tree(&c));
    assert_eq!(ta, tb);
    assert_ne!(ta.get("data/train-00000.parquet"), tc.get("data/train-00000.parquet"));
    let sa = tmp.path().join("sa");
    let sb = tmp.path().join("sb");
    make(&sa, 30, 3, SynthLayout::Sharegpt, DefectRates::default_rates());
    make(&sb, 30, 3, SynthLayout::Sharegpt, DefectRates::default_rates());
    assert_eq!(crate::common::tree(&sa), crate::common::tree(&sb));
}

#[test]
fn planted_defects_match_their_rates_and_their_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("c");
    // 5% of each kind except overlong (costly to generate) and invalid_utf8 (JSONL only)
    let rates = DefectRates::parse(
        "exact_duplicate=0.06,near_duplicate=0.06,truncated=0.06,wrong_answer=0.06,loop=0.06,overlong=0.01,corrupt_image=0.06,shared_image=0.06,contamination=0.06,language_drift=0.05",
    )
    .unwrap();
    let n = 600;
    let sum = make(&out, n, 11, SynthLayout::Columns, rates.clone());
    let rows = read_hf(&sum.data_files[0], ["problem", "answer", "solution"]);
    let bench = read_hf(&sum.bench, ["question", "answer", "answer_latex"]);
    assert_eq!(rows.len(), n);
    let labels = synth_labels(&out);
    let mut count: HashMap<&str, usize> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let label = labels.get(&(i as u64));
        let kind = label.map(|l| l.0.as_str()).unwrap_or("clean");
        *count.entry(kind).or_default() += 1;
        let src = label.and_then(|l| l.1).map(|j| j as usize);
        let closed = r.answer.contains("</think>") && r.answer.contains("\\boxed{");
        match kind {
            "clean" => {
                assert!(closed, "row {i}");
                assert!(!has_loop(&r.answer), "row {i} loops");
                assert!(words(&r.answer) <= 16_500, "row {i}");
                assert!(r.images.iter().all(|b| decodes(b)), "row {i}");
                assert!(r.answer.contains("So the answer is"), "row {i}");
                assert!(r.answer.contains(&format!("So the answer is {}.", r.solution)), "row {i}: {}", r.solution);
            }
            "truncated" => assert!(!r.answer.contains("</think>") && !r.answer.contains("\\boxed"), "row {i}"),
            "wrong_answer" => {
                assert!(closed);
                assert!(!r.answer.contains(&format!("So the answer is {}.", r.solution)), "row {i}");
            }
            "loop" => assert!(has_loop(&r.answer), "row {i}"),
            "language_drift" => {
                assert!(closed, "row {i}");
                let reasoning = &r.answer[..r.answer.find("</think>").unwrap()];
                assert!(reasoning.chars().filter(|c| ('\u{4E00}'..='\u{9FFF}').contains(c)).count() >= 24, "row {i}");
                assert!(r.answer.contains(&format!("So the answer is {}.", r.solution)), "row {i}");
            }
            "overlong" => assert!(words(&r.answer) >= 20_000, "row {i}"),
            "corrupt_image" => assert!(r.images.iter().any(|b| !decodes(b)), "row {i}"),
            "exact_duplicate" => {
                let s = &rows[src.unwrap()];
                assert_eq!(
                    (&s.problem, &s.answer, &s.solution, &s.images),
                    (&r.problem, &r.answer, &r.solution, &r.images)
                );
            }
            "near_duplicate" => {
                let s = &rows[src.unwrap()];
                assert_eq!(s.images, r.images);
                assert_ne!(s.problem, r.problem);
                assert_ne!(s.answer, r.answer);
                let j = corpus::prompt_jaccard(&s.problem, &r.problem);
                assert!(j >= corpus::NEAR_DUP_MIN_JACCARD, "row {i}: {} -> {} (Jaccard {j:.3})", s.problem, r.problem);
                assert_eq!(s.problem.matches("<image>").count(), r.problem.matches("<image>").count(), "row {i}");
            }
            "shared_image" => {
                let s = &rows[src.unwrap()];
                assert_eq!(s.images, r.images);
                assert_ne!(s.problem, r.problem);
            }
            "contamination" => {
                let b = &bench[src.unwrap()];
                assert_eq!(b.problem, r.problem);
                assert_eq!(b.images, r.images);
            }
            other => panic!("unexpected label {other}"),
        }
    }
    for kind in DEFECT_KINDS {
        let want = rates.rate(kind) * n as f64;
        let got = *count.get(kind).unwrap_or(&0) as f64;
        let sd = (n as f64 * rates.rate(kind) * (1.0 - rates.rate(kind))).sqrt();
        assert!((got - want).abs() <= 4.0 * sd + 2.0, "{kind}: {got} planted, {want} expected");
    }
    let clean = count["clean"] as f64;
    assert!((clean - n as f64 * 0.44).abs() < 60.0, "{clean} clean rows");
}

#[test]
fn sharegpt_layout_plants_invalid_utf8_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s");
    make(&out, 200, 5, SynthLayout::Sharegpt, DefectRates::parse("invalid_utf8=0.1,corrupt_image=0.05").unwrap());
    let labels = synth_labels(&out);
    let body = std::fs::read(out.join("data.jsonl")).unwrap();
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 200);
    let mut bad = 0;
    for (i, l) in lines.iter().enumerate() {
        let is_bad = std::str::from_utf8(l).is_err();
        let labelled = labels.get(&(i as u64)).map(|x| x.0 == "invalid_utf8").unwrap_or(false);
        assert_eq!(is_bad, labelled, "line {i}");
        bad += is_bad as usize;
        if !is_bad {
            let v: serde_json::Value = serde_json::from_slice(l).unwrap();
            for p in v["images"].as_array().unwrap() {
                assert!(out.join(p.as_str().unwrap()).exists());
            }
        }
    }
    assert!((8..=35).contains(&bad), "{bad}");
}

#[test]
fn clean_trace_lengths_are_long_tailed() {
    use cotforge::rng::Rng;
    use cotforge::synth::text::trace_words;
    let mut rng = Rng::new(1);
    let mut w: Vec<usize> = (0..20_000).map(|_| trace_words(&mut rng)).collect();
    w.sort();
    let (median, p95, max) = (w[w.len() / 2], w[w.len() * 95 / 100], w[w.len() - 1]);
    assert!((1350..=1650).contains(&median), "median {median}");
    assert!((4300..=5800).contains(&p95), "p95 {p95}");
    assert!(max >= 12_000, "max {max}");
}

#[test]
fn generated_traces_hit_their_target_length() {
    use cotforge::rng::Rng;
    use cotforge::synth::text::{Answer, Problem, long_trace};
    let p = Problem {
        question: "What is 2 + 3?".into(),
        answer: Answer::Int(5),
        readings: vec!["Two and three.".into()],
        steps: vec!["2 + 3 = 5.".into()],
        check: "5 - 3 = 2.".into(),
    };
    let mut rng = Rng::new(3);
    for target in [200, 1500, 6000] {
        let t = long_trace(&p, &p.answer, target, &mut rng);
        let n = words(&t);
        assert!(n >= target && n <= target + 60, "{n} words for {target}");
        assert!(t.starts_with("<think>\n") && t.ends_with("\\boxed{5}."));
        assert!(!has_loop(&t));
    }
}

#[test]
fn arith_task_is_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let files = corpus::arith_task(4, 50, 10, tmp.path()).unwrap();
    assert_eq!(files.len(), 2);
    let df = ParquetReader::new(std::fs::File::open(&files[0]).unwrap()).finish().unwrap();
    assert_eq!(df.height(), 50);
    let s = |n: &str| -> Vec<String> {
        df.column(n).unwrap().str().unwrap().iter().map(|v| v.unwrap().to_string()).collect()
    };
    let (q, long, short, sol) = (s("problem"), s("answer"), s("short_answer"), s("solution"));
    for i in 0..50 {
        assert!(q[i].ends_with("\n<image>"));
        assert_eq!(short[i], format!("\\boxed{{{}}}", sol[i]));
        assert!(long[i].starts_with("<think>\n") && long[i].ends_with(&format!("</think>\n\n\\boxed{{{}}}", sol[i])));
        assert!(sol[i].parse::<i64>().is_ok());
    }
    let test = ParquetReader::new(std::fs::File::open(&files[1]).unwrap()).finish().unwrap();
    assert_eq!(test.height(), 10);
    // the splits ask disjoint questions: the (red, blue, green) digits read from the traces
    let triples = |df: &DataFrame| -> std::collections::HashSet<String> {
        let col = df.column("answer").unwrap().str().unwrap().clone();
        col.iter()
            .map(|t| {
                let line = t.unwrap().lines().nth(1).unwrap().to_string();
                let digits: Vec<&str> = line.split("shows ").skip(1).map(|w| &w[..1]).collect();
                assert_eq!(digits.len(), 4, "{line}");
                digits[..3].concat()
            })
            .collect()
    };
    let (a, b) = (triples(&df), triples(&test));
    assert!(a.len() > 30 && !b.is_empty());
    assert!(a.is_disjoint(&b), "{:?}", a.intersection(&b).collect::<Vec<_>>());
}
