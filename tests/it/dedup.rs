//! Near-duplicate, image and benchmark decontamination stages: crafted rows, planted defects of
//! a synth corpus (precision and recall), determinism, and spilling.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cotforge::schema::LedgerEntry;
use cotforge::synth::corpus::{self, DefectRates, SynthLayout, SynthOptions};

use crate::common::*;

fn corpus(dir: &Path, rows: usize, seed: u64, rates: &str) -> PathBuf {
    let out = dir.join("corpus");
    let opts = SynthOptions {
        rows,
        seed,
        out: out.clone(),
        layout: SynthLayout::Columns,
        defects: DefectRates::parse(rates).unwrap(),
        batch_rows: 256,
        bench_items: None,
    };
    corpus::synth(&opts, &indicatif::ProgressBar::hidden()).unwrap();
    out
}

fn spec_over(data: &Path, stages: &str, extra_top: &str) -> String {
    format!(
        "name: d\n{extra_top}inputs:\n  - path: {}/data/*.parquet\n    format: parquet\n    columns: {{prompt: problem, response: answer, reference: solution, images: images}}\n    source: synth\nstages:\n{stages}output:\n  dir: o\n",
        data.display()
    )
}

fn bench_stage(data: &Path, extra: &str) -> String {
    format!(
        "  - decontaminate: {{benchmarks: [{{name: synthbench, path: {}/bench/*.parquet, format: parquet, columns: {{prompt: question, images: images}}}}]{extra}}}\n",
        data.display()
    )
}

/// (prompt, image bytes) of every row of a synth corpus.
fn read_rows(data: &Path) -> Vec<(String, Vec<Vec<u8>>)> {
    use polars::prelude::{ParquetReader, SerReader};
    let f = std::fs::File::open(data.join("data/train-00000.parquet")).unwrap();
    let df = ParquetReader::new(f).finish().unwrap();
    let p = df.column("problem").unwrap().str().unwrap().clone();
    let imgs = df.column("images").unwrap().list().unwrap().clone();
    (0..df.height())
        .map(|i| {
            let l = imgs.get_as_series(i).unwrap();
            let b = l.struct_().unwrap().field_by_name("bytes").unwrap();
            (p.get(i).unwrap().to_string(), b.binary().unwrap().iter().map(|x| x.unwrap().to_vec()).collect())
        })
        .collect()
}

/// Row number (in the corpus file) of a ledger entry.
fn row_of(e: &LedgerEntry) -> u64 {
    e.origin.rsplit('#').next().unwrap().parse().unwrap()
}

/// Ledger entries of one stage by corpus row.
fn dropped_by(led: &[LedgerEntry], stage: &str) -> BTreeMap<u64, LedgerEntry> {
    led.iter().filter(|e| e.stage == stage).map(|e| (row_of(e), e.clone())).collect()
}

#[test]
fn planted_near_duplicates_shared_images_and_contamination_are_found() {
    let tmp = tempfile::tempdir().unwrap();
    let data =
        corpus(tmp.path(), 2500, 5, "exact_duplicate=0.03,near_duplicate=0.06,shared_image=0.05,contamination=0.04");
    let labels = synth_labels(&data);
    let kind = |r: u64| labels.get(&r).map(|l| l.0.as_str()).unwrap_or("clean");
    let stages = format!("{}  - dedup.minhash: {{}}\n  - dedup.image: {{}}\n", bench_stage(&data, ""));
    let spec = write_spec(tmp.path(), &spec_over(&data, &stages, ""));
    let out = tmp.path().join("run");
    run(&spec, &out, None);
    let led = ledger(&out);
    let kept = curated(&out);
    // every row's id, kept or dropped
    let mut id_of_row: BTreeMap<u64, String> =
        kept.iter().map(|t| (t.origin.rsplit('#').next().unwrap().parse().unwrap(), t.id.clone())).collect();
    id_of_row.extend(led.iter().map(|e| (row_of(e), e.id.clone().unwrap())));

    // decontamination: every planted copy of a benchmark item, and nothing else
    let contam = dropped_by(&led, "decontaminate");
    let planted: BTreeSet<u64> = labels.iter().filter(|(_, l)| l.0 == "contamination").map(|(r, _)| *r).collect();
    assert!(planted.len() >= 60, "{} planted", planted.len());
    assert_eq!(
        contam.keys().copied().collect::<BTreeSet<_>>(),
        planted,
        "contaminated rows differ from the planted ones"
    );
    for e in contam.values() {
        assert_eq!(e.reason, "contaminated");
        assert!(e.detail.contains("synthbench") && e.detail.contains("image"), "{}", e.detail);
    }

    // near duplicates (exact copies are near duplicates at Jaccard 1 with the same images)
    let near = dropped_by(&led, "dedup.minhash");
    let is_dup = |k: &str| k == "near_duplicate" || k == "exact_duplicate";
    let planted: Vec<u64> = labels.iter().filter(|(_, l)| is_dup(&l.0)).map(|(r, _)| *r).collect();
    // a drop is right when the row was planted as a copy, or when (checked here on the data
    // itself) the kept row has the same images and a prompt at Jaccard >= 0.8: two rows planted
    // from one source may ask the same other question about its image
    let rows = read_rows(&data);
    let row_of_id: BTreeMap<&String, u64> = id_of_row.iter().map(|(r, id)| (id, *r)).collect();
    let genuine = |r: u64, e: &LedgerEntry| {
        let k = row_of_id[e.kept_id.as_ref().unwrap()];
        let (a, b) = (&rows[r as usize], &rows[k as usize]);
        k < r && a.1 == b.1 && corpus::prompt_jaccard(&a.0, &b.0) >= 0.8
    };
    let tp = near.iter().filter(|(r, e)| is_dup(kind(**r)) || genuine(**r, e)).count();
    let precision = tp as f64 / near.len() as f64;
    let recall = planted.iter().filter(|r| near.contains_key(r)).count() as f64 / planted.len() as f64;
    let wrong: Vec<_> = near
        .iter()
        .filter(|(r, e)| !is_dup(kind(**r)) && !genuine(**r, e))
        .take(5)
        .map(|(r, e)| (r, kind(*r), e.detail.clone()))
        .collect();
    assert!(precision >= 0.95, "near-duplicate precision {precision:.3}: {wrong:?}");
    assert!(recall >= 0.95, "near-duplicate recall {recall:.3}");
    // the kept row is the planted source, first in input order
    for (r, e) in &near {
        if let Some((_, Some(src))) = labels.get(r).filter(|l| is_dup(&l.0)) {
            let src_fate = led.iter().find(|x| row_of(x) == *src as u64);
            assert_eq!(e.kept_id.as_ref(), id_of_row.get(&(*src as u64)), "row {r}, source {src}: {src_fate:?}");
            assert!(e.detail.contains("estimated Jaccard"), "{}", e.detail);
        }
    }

    // images reused under another question: removed by dedup.image, or before it by
    // dedup.minhash when another planted row asked the same question about the same image
    let img = dropped_by(&led, "dedup.image");
    let planted: Vec<u64> = labels.iter().filter(|(_, l)| l.0 == "shared_image").map(|(r, _)| *r).collect();
    let caught = |r: &u64| img.contains_key(r) || near.get(r).is_some_and(|e| genuine(*r, e));
    let recall = planted.iter().filter(|r| caught(r)).count() as f64 / planted.len() as f64;
    let missed: Vec<_> = planted
        .iter()
        .filter(|r| !caught(r))
        .map(|r| led.iter().find(|e| row_of(e) == *r).map(|e| (e.stage.clone(), e.detail.clone())))
        .take(6)
        .collect();
    assert!(recall >= 0.98, "duplicate-image recall {recall:.3}: {missed:?}");
    assert!(img.len() as f64 >= 0.9 * planted.len() as f64, "{} dropped by dedup.image", img.len());
    // clean rows dropped as duplicate images must really repeat an earlier image (synthetic
    // scenes are simple: the same clock time at the same size renders the same picture)
    let same_bytes = |r: u64, e: &LedgerEntry| {
        let k = row_of_id[e.kept_id.as_ref().unwrap()];
        rows[r as usize].1.iter().all(|b| rows[k as usize].1.contains(b))
    };
    let clean_hit: Vec<(u64, u64, String)> = img
        .iter()
        .filter(|(r, e)| kind(**r) == "clean" && !same_bytes(**r, e))
        .map(|(r, e)| (*r, row_of_id[e.kept_id.as_ref().unwrap()], e.detail.clone()))
        .collect();
    assert!(
        clean_hit.len() as f64 <= 0.01 * rows.len() as f64,
        "{} clean rows dropped as duplicate images: {:?}",
        clean_hit.len(),
        &clean_hit[..clean_hit.len().min(5)]
    );
    for e in img.values() {
        assert_eq!(e.reason, "duplicate_image");
        assert!(e.kept_id.is_some());
    }
}

#[test]
fn text_only_minhash_drops_templated_clean_rows_that_image_aware_keeps() {
    let tmp = tempfile::tempdir().unwrap();
    let data = corpus(tmp.path(), 600, 8, "none");
    let count = |stage: &str, sub: &str| {
        let spec = write_spec(tmp.path(), &spec_over(&data, &format!("  - {stage}\n"), ""));
        let out = tmp.path().join(sub);
        run(&spec, &out, None);
        dropped_by(&ledger(&out), "dedup.minhash").len()
    };
    let aware = count("dedup.minhash: {}", "aware");
    let text_only = count("dedup.minhash: {images: ignore}", "text");
    assert_eq!(aware, 0, "a clean corpus has no near-duplicate (question, image) pairs");
    assert!(text_only > 100, "templated questions over different figures: text-only dropped only {text_only}");
}

#[test]
fn crafted_rows_minhash_image_and_decontamination() {
    let tmp = tempfile::tempdir().unwrap();
    let img = |c: u8| {
        let mut im = image::RgbImage::new(64, 48);
        for (x, y, p) in im.enumerate_pixels_mut() {
            *p = image::Rgb([(x as u8).wrapping_mul(c), (y as u8).wrapping_mul(3), c]);
        }
        let mut b = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(im).write_to(&mut b, image::ImageFormat::Png).unwrap();
        b.into_inner()
    };
    std::fs::write(tmp.path().join("a.png"), img(5)).unwrap();
    std::fs::write(tmp.path().join("b.png"), img(77)).unwrap();
    let q = "What is the total length of the three marked segments in the figure above?";
    let rows = [
        (q, "a.png"),                                                                           // 0 kept
        ("what is the total length of the three marked segments in the figure above", "a.png"), // 1 near dup of 0
        (q, "b.png"), // 2 same text, other image: kept
        ("Name the colour of the largest region shown in the chart.", "a.png"), // 3 same image, other text
    ];
    let mut lines = String::new();
    for (k, (p, i)) in rows.iter().enumerate() {
        lines += &format!(
            "{{\"id\": {k}, \"prompt\": \"<image>\\n{p}\", \"response\": \"<think>r{k}</think> \\\\boxed{{{k}}}\", \"image\": \"{i}\"}}\n"
        );
    }
    std::fs::write(tmp.path().join("rows.jsonl"), lines).unwrap();
    std::fs::write(
        tmp.path().join("bench.jsonl"),
        format!("{{\"question\": \"{q}\", \"image\": \"b.png\"}}\n{{\"question\": \"A text-only benchmark question about seven blue marbles and a jar\", \"image\": null}}\n"),
    )
    .unwrap();
    let input = format!(
        "inputs:\n  - path: {0}/rows.jsonl\n    format: jsonl\n    columns: {{prompt: prompt, response: response, images: image}}\n    source: s\n",
        tmp.path().display()
    );
    let go = |stages: &str, sub: &str| {
        let yaml = format!("name: c\n{input}stages:\n{stages}output:\n  dir: o\n");
        let spec = write_spec(tmp.path(), &yaml);
        let out = tmp.path().join(sub);
        run(&spec, &out, None);
        let led = ledger(&out);
        led.iter()
            .map(|e| (e.origin.rsplit(':').next().unwrap().parse::<usize>().unwrap() - 1, e.reason.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    let m = go("  - dedup.minhash: {}\n", "m");
    assert_eq!(m, BTreeMap::from([(1, "near_duplicate".to_string())]));
    let m = go("  - dedup.minhash: {images: ignore}\n", "t");
    assert_eq!(m, BTreeMap::from([(1, "near_duplicate".to_string()), (2, "near_duplicate".to_string())]));
    let m = go("  - dedup.minhash: {image_radius: 4}\n", "p");
    assert_eq!(m, BTreeMap::from([(1, "near_duplicate".to_string())]));
    let m = go("  - dedup.image: {}\n", "i");
    assert_eq!(m, BTreeMap::from([(1, "duplicate_image".to_string()), (3, "duplicate_image".to_string())]));
    let m = go("  - dedup.image: {on: image_prompt}\n", "ip");
    assert_eq!(m, BTreeMap::from([(1, "duplicate_image".to_string())]));
    let bench = format!(
        "  - decontaminate: {{benchmarks: [{{name: b, path: {}/bench.jsonl, format: jsonl, columns: {{prompt: question, images: image}}}}]}}\n",
        tmp.path().display()
    );
    // row 2 asks the benchmark question over the benchmark's image; rows 0 and 1 ask it over
    // another figure
    assert_eq!(go(&bench, "d"), BTreeMap::from([(2, "contaminated".to_string())]));
    let text_only = bench.replace("]}\n", "], images: ignore}\n");
    assert_eq!(
        go(&text_only, "dt"),
        BTreeMap::from([
            (0, "contaminated".to_string()),
            (1, "contaminated".to_string()),
            (2, "contaminated".to_string())
        ])
    );
}

#[test]
fn dedup_stages_are_deterministic_across_threads_batches_and_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let data =
        corpus(tmp.path(), 700, 21, "exact_duplicate=0.05,near_duplicate=0.08,shared_image=0.05,contamination=0.04");
    let stages = format!("{}  - dedup.minhash: {{MEM}}\n  - dedup.image: {{CHUNK}}\n", bench_stage(&data, ""));
    let go = |threads: Option<usize>, batch: usize, mem: &str, sub: &str| {
        // image chunks of 61 rows: decisions across chunks, overlapped with the next decoding
        let chunk = if mem.is_empty() { "" } else { "chunk_rows: 61" };
        let yaml =
            spec_over(&data, &stages.replace("MEM", mem).replace("CHUNK", chunk), &format!("batch_rows: {batch}\n"));
        let spec = write_spec(tmp.path(), &yaml);
        let out = tmp.path().join(sub);
        run(&spec, &out, threads);
        let kept: Vec<String> = curated(&out).into_iter().map(|t| t.id).collect();
        let led: Vec<(String, String, Option<String>)> =
            ledger(&out).into_iter().map(|e| (e.origin, e.reason, e.kept_id)).collect();
        (kept, led)
    };
    let base = go(Some(1), 512, "", "a");
    assert!(base.1.len() > 50);
    assert_eq!(go(Some(2), 512, "", "b"), base, "threads");
    assert_eq!(go(Some(2), 37, "", "c"), base, "batch boundaries");
    // 1 MiB cannot hold every band's buckets: several passes over the band files
    assert_eq!(go(Some(2), 100, "memory_mb: 1", "d"), base, "spilled clustering");
}

#[test]
fn exact_check_confirms_pairs_with_true_jaccard() {
    let tmp = tempfile::tempdir().unwrap();
    let data = corpus(tmp.path(), 500, 3, "near_duplicate=0.1");
    let spec = write_spec(tmp.path(), &spec_over(&data, "  - dedup.minhash: {check: exact}\n", ""));
    let out = tmp.path().join("r");
    run(&spec, &out, None);
    let near = dropped_by(&ledger(&out), "dedup.minhash");
    assert!(near.len() >= 35, "{} dropped", near.len());
    for e in near.values() {
        let j: f64 = e.detail.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(j >= 0.8 && !e.detail.contains("estimated"), "{}", e.detail);
    }
}

#[test]
fn fingerprints_match_reencodings_and_tell_figures_apart() {
    use cotforge::image::{DEFAULT_THUMB_DISTANCE, distance, fingerprint, fingerprint_of};
    use polars::prelude::{ParquetReader, SerReader};
    let f = std::fs::File::open(repo().join("fixtures/synth/bench/benchmark.parquet")).unwrap();
    let df = ParquetReader::new(f).finish().unwrap();
    let imgs = df.column("images").unwrap().list().unwrap().clone();
    let mut bytes = Vec::new();
    for i in 0..df.height() {
        let l = imgs.get_as_series(i).unwrap();
        let b = l.struct_().unwrap().field_by_name("bytes").unwrap();
        bytes.push(b.binary().unwrap().get(0).unwrap().to_vec());
    }
    let prints: Vec<_> = bytes.iter().map(|b| fingerprint(b).unwrap()).collect();
    let (radius, thumb) = (6, DEFAULT_THUMB_DISTANCE);
    let mut matched = 0;
    let mut worst = 0;
    for (b, fp) in bytes.iter().zip(&prints) {
        let img = image::load_from_memory(b).unwrap();
        // JPEG at quality 80, and a copy at 3/4 size
        let mut jpg = std::io::Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 80).encode_image(&img.to_rgb8()).unwrap();
        let small = img.resize_exact(img.width() * 3 / 4, img.height() * 3 / 4, image::imageops::FilterType::Triangle);
        for variant in [fingerprint(jpg.get_ref()).unwrap(), fingerprint_of(&small)] {
            worst = worst.max(distance(fp.hash, variant.hash));
            matched += usize::from(fp.matches(&variant, radius, thumb));
        }
    }
    assert!(
        matched as f64 >= 0.85 * 2.0 * bytes.len() as f64,
        "{matched} of {} re-encodings match (worst hash distance {worst})",
        2 * bytes.len()
    );
    // distinct figures do not match, though diagrams of one kind have close hashes
    for i in 0..prints.len() {
        for j in i + 1..prints.len() {
            if bytes[i] != bytes[j] {
                assert!(!prints[i].matches(&prints[j], radius, thumb), "figures {i} and {j} match");
            }
        }
    }
}

/// Measurement behind the default thumbnail threshold (BENCHMARKS.md):
/// `cargo test fingerprint_threshold_sweep -- --ignored --nocapture`
#[test]
#[ignore]
fn fingerprint_threshold_sweep() {
    use cotforge::image::{DEFAULT_THUMB_DISTANCE, distance, fingerprint, fingerprint_of, thumb_distance};
    let tmp = tempfile::tempdir().unwrap();
    let data = corpus(tmp.path(), 1200, 77, "none");
    let mut all: Vec<Vec<u8>> = read_rows(&data).into_iter().flat_map(|r| r.1).collect();
    all.sort();
    all.dedup();
    let fps: Vec<_> = all.iter().map(|b| fingerprint(b).unwrap()).collect();
    let mut re = Vec::new();
    for (b, fp) in all.iter().zip(&fps).take(500) {
        let img = image::load_from_memory(b).unwrap();
        let mut jpg = std::io::Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpg, 80).encode_image(&img.to_rgb8()).unwrap();
        let small = img.resize_exact(img.width() * 3 / 4, img.height() * 3 / 4, image::imageops::FilterType::Triangle);
        for v in [fingerprint(jpg.get_ref()).unwrap(), fingerprint_of(&small)] {
            re.push((distance(fp.hash, v.hash), thumb_distance(fp, &v)));
        }
    }
    let mut near = Vec::new();
    for i in 0..fps.len() {
        for j in i + 1..fps.len() {
            if distance(fps[i].hash, fps[j].hash) <= 8 {
                near.push((distance(fps[i].hash, fps[j].hash), thumb_distance(&fps[i], &fps[j])));
            }
        }
    }
    let pairs = fps.len() * (fps.len() - 1) / 2;
    let rate = |t: f64, r: u32| {
        let rec = re.iter().filter(|(h, d)| *h <= r && *d <= t).count() as f64 / re.len() as f64;
        let fp = near.iter().filter(|(h, d)| *h <= r && *d <= t).count();
        (rec, fp)
    };
    eprintln!("{} distinct synth images ({pairs} pairs), {} re-encodings (JPEG q80, 3/4 size)", fps.len(), re.len());
    for t in [0.004, 0.005, 0.01, 0.02] {
        for r in [4, 6, 8] {
            let (rec, fp) = rate(t, r);
            eprintln!("max_thumb_distance {t} radius {r}: re-encodings matched {rec:.3}, distinct pairs matched {fp}");
        }
    }
    let (rec, fp) = rate(DEFAULT_THUMB_DISTANCE, 6);
    assert!(rec >= 0.85, "re-encoding recall {rec:.3} at the defaults");
    assert!((fp as f64) < 1e-5 * pairs as f64, "{fp} distinct pairs match at the defaults");
}

/// Candidate pairs (LSH) and confirmed pairs (signature estimate) against exact Jaccard, on all
/// pairs of a prompt sample, for thresholds 0.6 to 0.9 (the table in BENCHMARKS.md):
/// `cargo test minhash_pairs_against_exact_jaccard -- --nocapture`
#[test]
fn minhash_pairs_against_exact_jaccard() {
    use cotforge::stages::dedup::minhash::BANDING_FP_WEIGHT;
    use cotforge::text::minhash::*;
    use std::collections::{HashMap, HashSet};
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("p");
    let opts = SynthOptions {
        rows: 1500,
        seed: 4,
        out: out.clone(),
        layout: SynthLayout::Prompts,
        defects: DefectRates::parse("exact_duplicate=0.05,near_duplicate=0.2").unwrap(),
        batch_rows: 256,
        bench_items: None,
    };
    corpus::synth(&opts, &indicatif::ProgressBar::hidden()).unwrap();
    let prompts: Vec<String> = read_rows(&out).into_iter().map(|r| r.0).collect();
    let sets: Vec<Vec<u64>> = prompts
        .iter()
        .map(|p| {
            let mut v = Vec::new();
            shingle_hashes(&normalize_for_dedup(p), ShingleKind::Chars, 5, &mut v);
            v.sort_unstable();
            v.dedup();
            v
        })
        .collect();
    let mut exact: HashMap<(usize, usize), f64> = HashMap::new();
    for i in 0..sets.len() {
        for j in i + 1..sets.len() {
            let j_ = exact_jaccard(&mut sets[i].clone(), &mut sets[j].clone());
            if j_ >= 0.5 {
                exact.insert((i, j), j_);
            }
        }
    }
    let hasher = MinHasher::new(128, 0);
    let sigs: Vec<Vec<u32>> = sets
        .iter()
        .map(|s| {
            let mut g = vec![0; 128];
            hasher.signature(s, &mut g);
            g
        })
        .collect();
    eprintln!("{} prompts, {} pairs at exact Jaccard >= 0.5", prompts.len(), exact.len());
    let diffs: Vec<f64> = exact.iter().map(|((i, j), e)| estimate_jaccard(&sigs[*i], &sigs[*j]) - e).collect();
    let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
    let sd = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / diffs.len() as f64).sqrt();
    eprintln!("estimate - exact: mean {mean:+.4}, sd {sd:.4}");
    // unbiased, with the binomial spread of 128 permutations (sd <= 0.044 at any Jaccard)
    assert!(mean.abs() < 0.005 && sd < 0.045, "estimate - exact: mean {mean:+.4}, sd {sd:.4}");
    eprintln!(
        "threshold  bands x rows  true pairs  candidates  candidate recall  confirmed precision  confirmed recall"
    );
    for t in [0.6, 0.7, 0.8, 0.9] {
        let (b, r) = optimal_bands(t, 128, BANDING_FP_WEIGHT);
        let mut cand: HashSet<(usize, usize)> = HashSet::new();
        for band in 0..b {
            let mut buckets: HashMap<u64, Vec<usize>> = HashMap::new();
            for (i, s) in sigs.iter().enumerate() {
                buckets.entry(band_hash(s, band, r)).or_default().push(i);
            }
            for m in buckets.values() {
                for x in 0..m.len() {
                    for y in x + 1..m.len() {
                        cand.insert((m[x], m[y]));
                    }
                }
            }
        }
        let truth: HashSet<(usize, usize)> = exact.iter().filter(|(_, j)| **j >= t).map(|(k, _)| *k).collect();
        let confirmed: HashSet<(usize, usize)> =
            cand.iter().filter(|(i, j)| estimate_jaccard(&sigs[*i], &sigs[*j]) >= t).copied().collect();
        let cand_recall = truth.iter().filter(|p| cand.contains(p)).count() as f64 / truth.len() as f64;
        let hit = confirmed.iter().filter(|p| truth.contains(p)).count() as f64;
        let (precision, recall) = (hit / confirmed.len() as f64, hit / truth.len() as f64);
        eprintln!(
            "{t:9.1}  {b:5} x {r:<4}  {:10}  {:10}  {cand_recall:16.3}  {precision:19.3}  {recall:16.3}",
            truth.len(),
            cand.len()
        );
        assert!(truth.len() >= 200, "threshold {t}: only {} true pairs", truth.len());
        // the banding's S-curve: pairs just above t are candidates with probability 0.87-0.97
        assert!(cand_recall >= 0.85, "threshold {t}: candidate recall {cand_recall:.3}");
        // pairs sit all along the Jaccard scale here (templated prompts differing in numbers),
        // so the estimate's error (sd 0.035) decides the many pairs near t either way; with
        // `check: exact` precision is 1 and recall is the candidate recall
        assert!(precision >= 0.5 && recall >= 0.6, "threshold {t}: precision {precision:.3}, recall {recall:.3}");
    }
}

/// Rewrite a text column of a Parquet file in place, row by row.
fn rewrite_column(path: &Path, col: &str, f: impl Fn(usize, &str) -> String) {
    use polars::prelude::*;
    let mut df = ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap();
    let new: Vec<String> =
        df.column(col).unwrap().str().unwrap().iter().enumerate().map(|(i, s)| f(i, s.unwrap_or(""))).collect();
    df.with_column(Series::new(col.into(), new).into()).unwrap();
    ParquetWriter::new(std::fs::File::create(path).unwrap()).finish(&mut df).unwrap();
}

/// Decontamination precision and recall on a corpus whose prompts and benchmark questions share
/// boilerplate: every one ends with the usual instruction and every other one opens with a
/// template sentence, as real benchmarks and training sets do.
fn boilerplate_corpus(dir: &Path) -> (PathBuf, BTreeSet<u64>) {
    let data = corpus(dir, 2000, 11, "contamination=0.04");
    let with = |i: usize, s: &str| {
        format!("{}{s} {INSTRUCTION}", if i.is_multiple_of(2) { format!("{OPENING} ") } else { String::new() })
    };
    for e in std::fs::read_dir(data.join("data")).unwrap() {
        rewrite_column(&e.unwrap().path(), "problem", with);
    }
    rewrite_column(&data.join("bench/benchmark.parquet"), "question", with);
    let planted = synth_labels(&data).iter().filter(|(_, l)| l.0 == "contamination").map(|(r, _)| *r).collect();
    (data, planted)
}

/// (precision, recall) of one decontamination config over the boilerplate corpus.
fn decontam_scores(tmp: &Path, data: &Path, planted: &BTreeSet<u64>, extra: &str, sub: &str) -> (f64, f64, usize) {
    let spec = write_spec(tmp, &spec_over(data, &bench_stage(data, extra), ""));
    let out = tmp.join(sub);
    run(&spec, &out, None);
    let dropped: BTreeSet<u64> = dropped_by(&ledger(&out), "decontaminate").into_keys().collect();
    let tp = dropped.intersection(planted).count() as f64;
    (tp / dropped.len().max(1) as f64, tp / planted.len() as f64, dropped.len())
}

#[test]
fn decontamination_with_images_survives_shared_instructions_and_template_openings() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, planted) = boilerplate_corpus(tmp.path());
    assert!(planted.len() >= 50, "{} planted", planted.len());
    let (p, r, n) = decontam_scores(tmp.path(), &data, &planted, "", "default");
    eprintln!("synth corpus, text and image: precision {p:.3}, recall {r:.3}, {n} dropped, {} planted", planted.len());
    assert!(p >= 0.98 && r >= 0.98, "text and image: precision {p:.3}, recall {r:.3}");
    let plain = "ngram: 13, boilerplate_items: 1000000000, boilerplate_rows: 1000000000, min_coverage: 0.000001";
    for (extra, what) in [
        (format!(", {plain}"), "plain 13-gram, text and image"),
        (format!(", images: ignore, {plain}"), "plain 13-gram, text alone"),
        (", images: ignore".to_string(), "text alone"),
    ] {
        let (p, r, n) = decontam_scores(tmp.path(), &data, &planted, &extra, "other");
        eprintln!("synth corpus, {what}: precision {p:.3}, recall {r:.3}, {n} dropped");
    }
}

const OPENING: &str = "Look at the figure below carefully and answer the question about what it shows.";
const INSTRUCTION: &str = "Please reason step by step, and put your final answer within \\boxed{}.";

/// A text-only corpus of distinct questions that share the instruction and template openings
/// with the benchmark: `clean` rows, `leaks` copies of benchmark items (some with another
/// opening), and the benchmark of `items` questions, as JSONL. Returns the rows that leak.
fn text_corpus(dir: &Path, clean: usize, items: usize, leaks: usize) -> BTreeSet<u64> {
    let mut rng = cotforge::rng::Rng::new(7);
    let vocab: Vec<String> = (0..800).map(|i| format!("w{i}")).collect();
    let question = |rng: &mut cotforge::rng::Rng| {
        let n = 8 + rng.below(12);
        (0..n).map(|_| rng.pick(&vocab).as_str()).collect::<Vec<_>>().join(" ") + "?"
    };
    let bench: Vec<String> = (0..items).map(|_| question(&mut rng)).collect();
    let wrap = |i: usize, q: &str| {
        format!("{}{q} {INSTRUCTION}", if i.is_multiple_of(2) { format!("{OPENING} ") } else { String::new() })
    };
    let mut rows: Vec<String> = (0..clean).map(|i| wrap(i, &question(&mut rng))).collect();
    let mut leaked = BTreeSet::new();
    for j in 0..leaks {
        let at = rng.below(rows.len() + 1);
        rows.insert(at, wrap(j + 1, &bench[rng.below(items)]));
        leaked = leaked.into_iter().map(|r| if r >= at as u64 { r + 1 } else { r }).collect();
        leaked.insert(at as u64);
    }
    let line = |k: &str, v: &str| serde_json::json!({ k: v, "answer": "x" }).to_string() + "\n";
    std::fs::write(dir.join("rows.jsonl"), rows.iter().map(|r| line("problem", r)).collect::<String>()).unwrap();
    let items_text: String = bench.iter().enumerate().map(|(i, q)| line("question", &wrap(i, q))).collect();
    std::fs::write(dir.join("bench.jsonl"), items_text).unwrap();
    leaked
}

/// (precision, recall, rows dropped) of a text-only decontamination over [`text_corpus`].
fn text_scores(dir: &Path, leaked: &BTreeSet<u64>, extra: &str, sub: &str) -> (f64, f64, usize) {
    let yaml = format!(
        "name: t\ninputs:\n  - path: {d}/rows.jsonl\n    format: jsonl\n    columns: {{prompt: problem, response: answer}}\n    source: s\nstages:\n  - decontaminate: {{benchmarks: [{{name: b, path: {d}/bench.jsonl, format: jsonl, columns: {{prompt: question}}}}]{extra}}}\noutput:\n  dir: o\n",
        d = dir.display()
    );
    let spec = write_spec(dir, &yaml);
    let out = dir.join(sub);
    run(&spec, &out, None);
    // JSONL origins are 1-based lines
    let dropped: BTreeSet<u64> = ledger(&out)
        .iter()
        .filter(|e| e.stage == "decontaminate")
        .map(|e| e.origin.rsplit(':').next().unwrap().parse::<u64>().unwrap() - 1)
        .collect();
    let tp = dropped.intersection(leaked).count() as f64;
    (tp / dropped.len().max(1) as f64, tp / leaked.len() as f64, dropped.len())
}

#[test]
fn decontamination_by_text_survives_shared_instructions_and_template_openings() {
    let tmp = tempfile::tempdir().unwrap();
    let leaked = text_corpus(tmp.path(), 3000, 200, 60);
    let (p, r, n) = text_scores(tmp.path(), &leaked, "", "ours");
    eprintln!("text corpus, ours: precision {p:.3}, recall {r:.3}, {n} dropped, {} leaked", leaked.len());
    assert!(p >= 0.98 && r >= 0.98, "precision {p:.3}, recall {r:.3} ({n} dropped)");
    // a plain 13-gram matcher (any shared 13-gram is a hit) drops every row the instruction
    // joins to the benchmark
    let plain = ", ngram: 13, boilerplate_items: 1000000000, boilerplate_rows: 1000000000, min_coverage: 0.000001";
    let (p, r, n) = text_scores(tmp.path(), &leaked, plain, "plain");
    eprintln!("text corpus, plain 13-gram: precision {p:.3}, recall {r:.3}, {n} dropped");
    assert!(r >= 0.98, "plain recall {r:.3}");
    assert!(p < 0.5, "plain 13-gram precision {p:.3}: the corpus shares no boilerplate");
    // the boilerplate is reported
    let stats = cotforge::pipeline::RunStats::read(&tmp.path().join("ours")).unwrap();
    let s = stats.stages.iter().find(|s| s.stage == "decontaminate").unwrap().summary.clone().unwrap();
    assert!(s["boilerplate_ngrams"].as_u64().unwrap() > 0, "{s}");
    let common = s["most_common_boilerplate"].to_string();
    assert!(common.contains("reason step by step"), "{common}");
    let led = ledger(&tmp.path().join("ours"));
    let e = led.iter().find(|e| e.stage == "decontaminate").unwrap();
    assert!(e.detail.contains("coverage") && e.detail.contains('`'), "{}", e.detail);
}
