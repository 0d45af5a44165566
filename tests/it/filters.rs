//! Long-CoT filters: unit checks on crafted rows, and recall / false-drop rates against the
//! planted defects of a synthetic corpus.

use std::collections::HashMap;

use cotforge::ingest::ImageStore;
use cotforge::schema::{ImageRef, Trace};
use cotforge::spec::parse;
use cotforge::stages::{StageContext, StageSpec, Verdict};
use cotforge::synth::corpus::{self, DefectRates, SynthLayout, SynthOptions};

use crate::common::*;

fn trace(prompt: &str, response: &str, reference: Option<&str>) -> Trace {
    Trace {
        id: "t".into(),
        source: "s".into(),
        origin: "o".into(),
        system: None,
        prompt: prompt.into(),
        response: response.into(),
        reference: reference.map(str::to_string),
        images: vec![],
        tokens: None,
        num_tokens: None,
        bucket: None,
        pass_rate: None,
    }
}

/// Build one stage from its YAML and judge a row.
fn judge(stage_yaml: &str, t: &Trace) -> Verdict {
    let yaml = format!(
        "name: x\ninputs:\n  - path: {}\n    format: jsonl\n    layout: sharegpt\n    source: s\nstages:\n  - {stage_yaml}\noutput:\n  dir: o\n",
        fixture("layouts/sharegpt/data.jsonl")
    );
    let spec = parse(std::path::Path::new("t.yaml"), &yaml).unwrap();
    let stage: &StageSpec = &spec.stages[0];
    let tmp = tempfile::tempdir().unwrap();
    let store = ImageStore::open(tmp.path()).unwrap();
    let ctx = StageContext { images: &store };
    stage.build(&ctx).unwrap().judge_measured(0, t, &ctx).unwrap().verdict
}

fn reason(v: &Verdict) -> &str {
    match v {
        Verdict::Keep => "keep",
        Verdict::Drop { reason, .. } => reason,
    }
}

#[test]
fn format_filter_on_crafted_rows() {
    let f = "filter.format: {}";
    let ok = "<think>\nadd them\n</think>\nThe answer is \\boxed{5}.";
    assert_eq!(reason(&judge(f, &trace("q", ok, None))), "keep");
    assert_eq!(reason(&judge(f, &trace("q", "just \\boxed{5}", None))), "no_reasoning");
    assert_eq!(reason(&judge(f, &trace("q", "<think>a</think><think>b</think>\\boxed{1}", None))), "malformed_tags");
    assert_eq!(reason(&judge(f, &trace("q", "</think>a<think>\\boxed{1}", None))), "malformed_tags");
    assert_eq!(reason(&judge(f, &trace("q", "<think>  </think>\\boxed{1}", None))), "empty_reasoning");
    assert_eq!(reason(&judge(f, &trace("q", "<think>reasoning</think>\n", None))), "no_final_answer");
    let tagged = "filter.format: {answer_tag: answer}";
    assert_eq!(reason(&judge(tagged, &trace("q", ok, None))), "missing_answer_tag");
    assert_eq!(reason(&judge(tagged, &trace("q", "<think>x</think><answer>5</answer>", None))), "keep");
}

#[test]
fn truncated_filter_on_crafted_rows() {
    let f = "filter.truncated: {}";
    assert_eq!(reason(&judge(f, &trace("q", "<think>step 1, step 2, so far 12", None))), "unclosed_reasoning");
    assert_eq!(reason(&judge(f, &trace("q", "<think>done</think>\n", None))), "no_final_answer");
    assert_eq!(reason(&judge(f, &trace("q", "<think>done</think> The answer is \\boxed{3}.", None))), "keep");
}

#[test]
fn repetition_filter_finds_loops_and_gopher_ratios() {
    let passage: String = (0..50).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    let fresh: String = (0..400).map(|i| format!("x{i}")).collect::<Vec<_>>().join(" ");
    let looped = format!("<think>{fresh} {passage} {passage} {passage}</think>\\boxed{{1}}");
    let twice = format!("<think>{fresh} {passage} {passage}</think>\\boxed{{1}}");
    let f = "filter.repetition: {}";
    match judge(f, &trace("q", &looped, None)) {
        Verdict::Drop { reason, detail, .. } => {
            assert_eq!(reason, "repeated_passage");
            assert!(detail.contains("occurs 3 times") && detail.contains("first at word 400"), "{detail}");
        }
        v => panic!("{v:?}"),
    }
    assert_eq!(reason(&judge(f, &trace("q", &twice, None))), "keep");
    // the loop after </think> does not count: only the reasoning is measured
    let outside = format!("<think>{fresh}</think>{passage} {passage} {passage} \\boxed{{1}}");
    assert_eq!(reason(&judge(f, &trace("q", &outside, None))), "keep");
    let lines = format!("<think>{}</think>\\boxed{{1}}", "Let me check again.\n".repeat(10) + &fresh);
    // 9 repeated short lines are 7% of the characters
    assert_eq!(reason(&judge("filter.repetition: {max_dup_line_frac: 0.1}", &trace("q", &lines, None))), "keep");
    assert_eq!(
        reason(&judge("filter.repetition: {max_dup_line_frac: 0.05}", &trace("q", &lines, None))),
        "duplicate_lines"
    );
    let lines = format!(
        "<think>{}\n{}</think>\\boxed{{1}}",
        "Let me check again this long line of text.\n".repeat(40),
        "short tail"
    );
    assert_eq!(
        reason(&judge("filter.repetition: {window_words: 1000, max_dup_line_frac: 0.5}", &trace("q", &lines, None))),
        "duplicate_lines"
    );
    let grams = format!("<think>{}</think>", "the cat the cat the cat sat ".repeat(20));
    assert_eq!(
        reason(&judge("filter.repetition: {window_words: 500, max_top_2gram_frac: 0.2}", &trace("q", &grams, None))),
        "top_ngram"
    );
}

#[test]
fn image_filter_bounds() {
    let mut t = trace("<image>q", "r", None);
    let img = |w, h| ImageRef { id: "x".into(), path: "p".into(), width: w, height: h };
    t.images = vec![img(40, 300)];
    assert_eq!(reason(&judge("filter.image: {min_side: 56}", &t)), "image_too_small");
    assert_eq!(reason(&judge("filter.image: {max_aspect: 5}", &t)), "extreme_aspect");
    assert_eq!(reason(&judge("filter.image: {max_side: 200}", &t)), "image_too_large");
    assert_eq!(reason(&judge("filter.image: {max_pixels: 10000}", &t)), "too_many_pixels");
    assert_eq!(reason(&judge("filter.image: {max_images: 0}", &t)), "too_many_images");
    assert_eq!(reason(&judge("filter.image: {min_images: 2}", &t)), "too_few_images");
    assert_eq!(reason(&judge("filter.image: {min_side: 28, max_aspect: 8, max_images: 2}", &t)), "keep");
}

#[test]
fn correct_filter_uses_the_verifier() {
    let f = "filter.correct: {}";
    let r = "<think>half of it</think> So \\boxed{\\frac{1}{2}}.";
    assert_eq!(reason(&judge(f, &trace("q", r, Some("0.5")))), "keep");
    assert_eq!(reason(&judge(f, &trace("q", r, Some("2/3")))), "wrong_answer");
    assert_eq!(reason(&judge(f, &trace("q", "<think>hmm", Some("1")))), "no_final_answer");
    assert_eq!(reason(&judge(f, &trace("q", r, None))), "keep");
    assert_eq!(reason(&judge("filter.correct: {missing_reference: drop}", &trace("q", r, None))), "no_reference");
    let mc = "Which is largest? (A) Mon (B) Tue (C) Wed";
    assert_eq!(reason(&judge(f, &trace(mc, "<think>x</think> \\boxed{B}", Some("B")))), "keep");
    assert_eq!(reason(&judge(f, &trace(mc, "<think>x</think> \\boxed{C}", Some("B")))), "wrong_answer");
}

#[test]
fn language_filter_share_and_runs() {
    let f = "filter.language: {}";
    let en = "<think>We add the two lengths of the triangle sides, then check with π r squared.</think> \\boxed{5}";
    assert_eq!(reason(&judge(f, &trace("q", en, None))), "keep");
    // a few sentences of Chinese inside an English trace: share stays high, the run does not
    let english =
        "We add the two lengths of the triangle sides, then we check the area of the figure again carefully. "
            .repeat(4);
    let drift =
        format!("<think>{english}所以我们需要计算这个图形的面积，然后检查一下。 So it is 5.</think> \\boxed{{5}}");
    let v = judge(f, &trace("q", &drift, None));
    assert_eq!(reason(&v), "mixed_script", "{v:?}");
    let Verdict::Drop { detail, .. } = v else { unreachable!() };
    assert!(detail.contains("所以我们需要"), "{detail}");
    // a mostly Russian trace fails the share
    let ru = "<think>Сначала сложим длины сторон треугольника и проверим ответ снова.</think> \\boxed{5}";
    assert_eq!(reason(&judge(f, &trace("q", ru, None))), "wrong_script");
    assert_eq!(reason(&judge("filter.language: {language: ru}", &trace("q", ru, None))), "keep");
    assert_eq!(reason(&judge("filter.language: {language: ru}", &trace("q", en, None))), "wrong_script");
    // Japanese mixes Han and kana; both are expected for `ja`
    let ja = "<think>三角形の辺の長さを足して、面積を計算します。答えは五です。</think> \\boxed{5}";
    assert_eq!(reason(&judge("filter.language: {language: ja, max_foreign_run: 4}", &trace("q", ja, None))), "keep");
    assert_eq!(reason(&judge("filter.language: {language: zh}", &trace("q", ja, None))), "wrong_script");
    assert_eq!(reason(&judge("filter.language: {language: zh, min_share: 0.4}", &trace("q", ja, None))), "keep");
    // short texts are not judged; fields are checked together
    assert_eq!(reason(&judge(f, &trace("q", "<think>好</think> 5", None))), "keep");
    let both = "filter.language: {fields: [prompt, response], max_foreign_run: 3, min_share: 0}";
    assert_eq!(reason(&judge(both, &trace("这个图形的面积是多少", en, None))), "mixed_script");
}

#[test]
fn language_filter_config_errors() {
    let bad = |stage: &str| {
        let yaml = format!(
            "name: x\ninputs:\n  - path: {}\n    format: jsonl\n    layout: sharegpt\n    source: s\nstages:\n  - {stage}\noutput:\n  dir: o\n",
            fixture("layouts/sharegpt/data.jsonl")
        );
        parse(std::path::Path::new("t.yaml"), &yaml).unwrap_err().to_string()
    };
    assert!(bad("filter.language: {language: xx}").contains("unknown language `xx`"));
    assert!(bad("filter.language: {language: en, scripts: [Latin]}").contains("not both"));
    assert!(bad("filter.language: {scripts: [Klingon]}").contains("Klingon"));
    assert!(bad("filter.language: {min_share: 1.5}").contains("min_share"));
}

#[test]
fn filters_catch_planted_defects_on_a_synth_corpus() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("corpus");
    let rates = DefectRates::parse(
        "truncated=0.06,loop=0.06,wrong_answer=0.06,overlong=0.02,corrupt_image=0.03,near_duplicate=0.03,shared_image=0.03,contamination=0.03,language_drift=0.03",
    )
    .unwrap();
    let n = 1500;
    let opts = SynthOptions {
        rows: n,
        seed: 9,
        out: data.clone(),
        layout: SynthLayout::Columns,
        defects: rates,
        batch_rows: 128,
        bench_items: None,
    };
    corpus::synth(&opts, &indicatif::ProgressBar::hidden()).unwrap();
    let yaml = format!(
        "name: f\ninputs:\n  - path: {}/data/*.parquet\n    format: parquet\n    columns: {{prompt: problem, response: answer, reference: solution, images: images}}\n    source: synth\nstages:\n  - validate: {{}}\n  - filter.truncated: {{}}\n  - filter.repetition: {{}}\n  - filter.length: {{max_words: 18000}}\n  - filter.correct: {{}}\n  - filter.format: {{}}\n  - filter.language: {{}}\noutput:\n  dir: o\n",
        data.display()
    );
    let spec = write_spec(tmp.path(), &yaml);
    let out = tmp.path().join("run");
    let stats = run(&spec, &out, None);
    // where each row went: origin "...#row" -> stage
    let led = ledger(&out);
    let dropped_by: HashMap<u64, String> =
        led.iter().map(|e| (e.origin.rsplit('#').next().unwrap().parse::<u64>().unwrap(), e.stage.clone())).collect();
    let labels: Vec<(u64, String)> = synth_labels(&data).into_iter().map(|(r, (k, _))| (r, k)).collect();
    let target = [
        ("truncated", "filter.truncated"),
        ("loop", "filter.repetition"),
        ("overlong", "filter.length"),
        ("wrong_answer", "filter.correct"),
        ("corrupt_image", "validate"),
        ("language_drift", "filter.language"),
    ];
    for (kind, stage) in target {
        let rows: Vec<u64> = labels.iter().filter(|(_, k)| k.as_str() == kind).map(|(r, _)| *r).collect();
        let caught = rows.iter().filter(|r| dropped_by.get(r).map(String::as_str) == Some(stage)).count();
        assert!(rows.len() >= 20, "{kind}: only {} planted", rows.len());
        let recall = caught as f64 / rows.len() as f64;
        assert!(recall >= 0.98, "{kind}: {caught}/{} caught by {stage}", rows.len());
    }
    // rows no filter targets: clean ones and the duplicate/contamination kinds
    let untargeted: Vec<u64> =
        (0..n as u64).filter(|r| !labels.iter().any(|(x, k)| x == r && target.iter().any(|(t, _)| t == k))).collect();
    let false_drops: Vec<_> =
        untargeted.iter().filter_map(|r| led.iter().find(|e| e.origin.ends_with(&format!("#{r}")))).collect();
    let rate = false_drops.len() as f64 / untargeted.len() as f64;
    assert!(
        rate <= 0.01,
        "{} of {} clean rows dropped: {:?}",
        false_drops.len(),
        untargeted.len(),
        false_drops.iter().take(5).collect::<Vec<_>>()
    );
    // measured values are kept as histograms
    let rep = stats.stages.iter().find(|s| s.stage == "filter.repetition").unwrap();
    let h = &rep.measured["max_passage_repeats"];
    assert_eq!(h.count, rep.rows_in);
    assert!(h.max >= 3.0);
}
