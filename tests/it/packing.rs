//! tokenize > bucket > mix > pack: shards checked against their source conversations, the
//! ledger, determinism, the reader's order and resume, and the manifest checks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use cotforge::io::PartReader;
use cotforge::schema::Trace;
use cotforge::shards::{Pack, ShardSet};
use cotforge::tokenize::encode::{ChatEncoder, EncodeOptions};

use crate::common::*;

const SYSTEM: &str = "Think step by step inside <think> </think>, then give the final answer in \\\\boxed{}.";

fn tokenizer_dir() -> PathBuf {
    repo().join("fixtures/tokenizers/qwen2.5")
}

/// The synthetic fixture corpus (and the HF-layout one) through validate and `stages`.
fn spec_yaml(stages: &str) -> String {
    format!(
        "name: packing\ninputs:\n  - path: {synth}\n    format: parquet\n    columns: {{prompt: problem, response: answer, reference: solution, images: images}}\n    source: synth\n  - path: {hf}\n    format: parquet\n    columns: {{prompt: problem, response: answer, reference: solution, images: images}}\n    source: cold-start\nstages:\n  - validate: {{}}\n  - filter.truncated: {{}}\n  - tokenize:\n      tokenizer: {tok}\n      system: \"{SYSTEM}\"\n{stages}output:\n  dir: o\n",
        synth = fixture("synth/data/*.parquet"),
        hf = fixture("layouts/hf/*.parquet"),
        tok = tokenizer_dir().display(),
    )
}

fn run_spec(dir: &Path, stages: &str, threads: Option<usize>) -> (PathBuf, cotforge::pipeline::RunStats) {
    std::fs::create_dir_all(dir).unwrap();
    let spec = write_spec(dir, &spec_yaml(stages));
    let out = dir.join("run");
    let stats = run(&spec, &out, threads);
    (out, stats)
}

fn encoder() -> ChatEncoder {
    let opts = EncodeOptions { system: Some(SYSTEM.replace("\\\\", "\\")), ..EncodeOptions::default() };
    ChatEncoder::from_dir(&tokenizer_dir(), opts).unwrap()
}

/// Token counts of the rows `tokenize` wrote (its work output).
fn tokenized_lengths(out: &Path, stage_dir: &str) -> Vec<u32> {
    let mut v = Vec::new();
    PartReader::open(&out.join("work").join(stage_dir))
        .unwrap()
        .for_each_batch_of(1000, Some(&["num_tokens"]), |df| {
            v.extend(df.column("num_tokens").unwrap().u32().unwrap().iter().map(|n| n.unwrap()));
            Ok(())
        })
        .unwrap();
    v
}

/// Each segment of each pack: (pack, segment start, trace id).
fn segments(packs: &[Pack]) -> Vec<(usize, usize, usize, String)> {
    let mut out = Vec::new();
    for (p, pack) in packs.iter().enumerate() {
        let mut at = 0;
        for (len, id) in pack.segment_lengths.iter().zip(&pack.sample_ids) {
            out.push((p, at, *len as usize, id.clone()));
            at += *len as usize;
        }
    }
    out
}

#[test]
fn packs_decode_to_their_source_conversations_with_exact_loss_masks() {
    let tmp = tempfile::tempdir().unwrap();
    let max = 4096;
    let stages = format!("  - pack: {{max_length: {max}, max_segments: 3, row_group_packs: 4, packs_per_file: 8}}\n");
    let (out, stats) = run_spec(tmp.path(), &stages, None);
    let kept: HashMap<String, Trace> = curated(&out).into_iter().map(|t| (t.id.clone(), t)).collect();
    let set = ShardSet::open(&out.join("shards"), &tokenizer_dir()).unwrap();
    set.verify_checksums().unwrap();
    let m = set.manifest.clone();
    assert!(m.files.len() >= 2, "several files: {}", m.files.len());
    let packs = set.read_all().unwrap();
    let enc = encoder();
    let pad = enc.image_pad_id().unwrap();
    let im_end = enc.tokenizer.token_to_id("<|im_end|>").unwrap();
    // every kept row is in exactly one pack, whole
    let ids: Vec<String> = packs.iter().flat_map(|p| p.sample_ids.clone()).collect();
    assert_eq!(ids.len(), kept.len());
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "a sample in two packs");
    assert!(ids.iter().all(|id| kept.contains_key(id)));
    let (mut tokens, mut loss, mut images) = (0u64, 0u64, 0u64);
    for (i, p) in packs.iter().enumerate() {
        assert_eq!(p.index, i as u64);
        assert_eq!(p.segment_lengths.iter().sum::<u32>() as usize, p.input_ids.len());
        assert_eq!(p.loss_mask.len(), p.input_ids.len());
        assert!(p.input_ids.len() <= max as usize && p.segment_lengths.len() <= 3);
        tokens += p.input_ids.len() as u64;
        loss += p.loss_mask.iter().filter(|&&x| x).count() as u64;
        images += p.images.len() as u64;
    }
    let mut image_at = vec![0usize; packs.len()];
    for (p, at, len, id) in segments(&packs) {
        let pack = &packs[p];
        let t = &kept[&id];
        let ids = &pack.input_ids[at..at + len];
        let mask = &pack.loss_mask[at..at + len];
        // the ids are the conversation's, images expanded
        let want = enc.encode_trace(t).unwrap().unwrap();
        assert_eq!(ids, &want.ids[..], "{id}: ids");
        // decoded with each image's pads as one, the segment is the rendered conversation
        let mut collapsed = Vec::new();
        for (k, &x) in ids.iter().enumerate() {
            if x != pad || k == 0 || ids[k - 1] != pad {
                collapsed.push(x);
            }
        }
        let text = enc.tokenizer.decode(&collapsed, false).unwrap();
        let messages = enc.messages(t).unwrap();
        assert_eq!(text, enc.template.render(&messages, false, &serde_json::Map::new()).unwrap(), "{id}: text");
        // the loss covers exactly the assistant turn: one run that decodes to the response and <|im_end|>
        let runs = mask.windows(2).filter(|w| !w[0] && w[1]).count() + usize::from(mask[0]);
        assert_eq!(runs, 1, "{id}: one masked span");
        let masked: Vec<u32> = ids.iter().zip(mask).filter(|(_, m)| **m).map(|(x, _)| *x).collect();
        assert_eq!(masked.last(), Some(&im_end));
        assert_eq!(
            enc.tokenizer.decode(&masked, false).unwrap(),
            format!("{}<|im_end|>", t.response),
            "{id}: loss span"
        );
        // images: the trace's bytes, in order, with grids whose pad counts are in the ids
        let pads = ids.iter().filter(|&&x| x == pad).count() as u32;
        let n = t.images.len();
        let seg_images = &pack.images[image_at[p]..image_at[p] + n];
        let seg_grids = &pack.image_grid_thw[image_at[p]..image_at[p] + n];
        image_at[p] += n;
        for (bytes, im) in seg_images.iter().zip(&t.images) {
            assert_eq!(&blake3::hash(bytes).to_hex()[..32], im.id.as_str(), "{id}: image bytes");
        }
        assert_eq!(seg_grids.iter().map(|g| g[0] * g[1] * g[2] / 4).sum::<u32>(), pads, "{id}: grids");
        assert_eq!(seg_grids, &want.grids[..]);
    }
    assert!(images > 0);
    // over-long rows are in the ledger, nowhere else
    let led = ledger(&out);
    let earlier: HashSet<&str> = led.iter().filter(|e| e.stage != "pack").filter_map(|e| e.id.as_deref()).collect();
    let mut over = 0;
    PartReader::open(&out.join("work/00-ingest"))
        .unwrap()
        .for_each_batch(1000, |df| {
            for t in cotforge::schema::traces_from_df(&df).unwrap() {
                if !earlier.contains(t.id.as_str()) && enc.encode_trace(&t).unwrap().unwrap().ids.len() > max as usize {
                    over += 1;
                }
            }
            Ok(())
        })
        .unwrap();
    let dropped: Vec<_> = led.iter().filter(|e| e.stage == "pack").collect();
    assert!(over > 0, "the fixture has samples over {max} tokens");
    assert_eq!(dropped.len(), over);
    assert!(dropped.iter().all(|e| e.reason == "over_length" && !kept.contains_key(e.id.as_ref().unwrap())));
    // the manifest's counts are the packs'
    assert_eq!(
        (m.packs, m.samples, m.tokens, m.loss_tokens, m.images),
        (packs.len() as u64, ids.len() as u64, tokens, loss, images)
    );
    assert!((m.fill - tokens as f64 / (packs.len() as f64 * max as f64)).abs() < 1e-12);
    let s = stats.shards.unwrap();
    assert_eq!((s.packs, s.tokens), (m.packs, m.tokens));
    assert_eq!(m.tokenizer_sha256, enc.tokenizer_sha256);
    assert_eq!(m.spec_blake3, stats.spec_blake3);
    // inspect shows the packs with segments and loss spans marked
    let shown = cotforge::shards::inspect(&out.join("shards"), 2, Some(&tokenizer_dir())).unwrap();
    assert!(shown.contains("=== pack 1:") && !shown.contains("=== pack 2:"), "{shown}");
    assert!(shown.contains("--- segment 1/") && shown.contains("⟦<think>") && shown.contains("<|im_end|>⟧"), "{shown}");
}

#[test]
fn truncation_cuts_inside_the_answer_and_shards_are_byte_identical_across_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let max = 2048;
    let stages = format!("  - pack: {{max_length: {max}, over_length: truncate, packs_per_file: 16}}\n");
    let (a, _) = run_spec(&tmp.path().join("a"), &stages, Some(1));
    let (b, _) = run_spec(&tmp.path().join("b"), &stages, Some(3));
    assert_eq!(tree(&a.join("shards")), tree(&b.join("shards")), "shards differ across thread counts");
    let set = ShardSet::open(&a.join("shards"), &tokenizer_dir()).unwrap();
    let packs = set.read_all().unwrap();
    let kept: HashMap<String, Trace> = curated(&a).into_iter().map(|t| (t.id.clone(), t)).collect();
    let enc = encoder();
    let mut truncated = 0;
    for (p, at, len, id) in segments(&packs) {
        let full = enc.encode_trace(&kept[&id]).unwrap().unwrap();
        let ids = &packs[p].input_ids[at..at + len];
        let mask = &packs[p].loss_mask[at..at + len];
        assert_eq!(ids, &full.ids[..len], "{id}: a prefix of the sample");
        if full.ids.len() > max as usize {
            truncated += 1;
            assert_eq!(len, max as usize, "{id}: cut at max_length inside the answer");
            // the prompt is whole: the cut is after the assistant turn started
            assert!(full.assistant[0].0 < len as u32 && *mask.last().unwrap(), "{id}");
            assert_eq!(mask.iter().filter(|&&x| x).count() as u32, len as u32 - full.assistant[0].0);
        }
    }
    assert!(truncated > 10, "{truncated} truncated samples");
    // only samples whose prompt alone fills max_length are dropped
    for e in ledger(&a).iter().filter(|e| e.stage == "pack") {
        assert!(e.reason == "over_length" && e.detail.contains("no safe truncation point"), "{e:?}");
    }
}

#[test]
fn bucket_and_mix_sample_by_seed_and_record_what_they_leave_out() {
    let tmp = tempfile::tempdir().unwrap();
    let stages = "  - bucket: {boundaries: [2048, 4096], caps: {\"2048-4096\": 30}, weights: {\"4096+\": 0.5}, seed: 7}\n  - mix: {shares: {synth: 3, cold-start: 1}, seed: 7}\n  - pack: {max_length: 16384}\n";
    let (out, stats) = run_spec(&tmp.path().join("a"), stages, None);
    let lengths = tokenized_lengths(&out, "03-tokenize");
    let by_label = |lo: u32, hi: u32| lengths.iter().filter(|&&n| n >= lo && n < hi).count() as u64;
    let st = |name: &str| stats.stages.iter().find(|s| s.stage == name).unwrap().clone();
    let bucket = st("bucket");
    let sum = bucket.summary.as_ref().unwrap();
    let b = |label: &str, k: &str| sum["buckets"][label][k].as_u64().unwrap();
    assert_eq!(b("0-2048", "rows_in"), by_label(0, 2048));
    assert_eq!(b("0-2048", "rows_kept"), by_label(0, 2048));
    assert_eq!(b("2048-4096", "rows_in"), by_label(2048, 4096));
    assert_eq!(b("2048-4096", "rows_kept"), 30.min(by_label(2048, 4096)));
    let over = by_label(4096, u32::MAX);
    assert!(b("4096+", "rows_kept") > over / 4 && b("4096+", "rows_kept") < over * 3 / 4, "weight 0.5 of {over}");
    assert_eq!(bucket.dropped.get("bucket_cap").copied().unwrap_or(0), bucket.rows_in - bucket.rows_out);
    // mix: 3:1 synth to cold-start, as many rows as cold-start allows
    let mix = st("mix");
    let groups = &mix.summary.as_ref().unwrap()["groups"];
    let cold = groups["cold-start"]["rows_in"].as_u64().unwrap();
    assert_eq!(groups["cold-start"]["rows_kept"].as_u64().unwrap(), cold);
    assert_eq!(groups["synth"]["rows_kept"].as_u64().unwrap(), 3 * cold);
    let led = ledger(&out);
    assert_eq!(led.iter().filter(|e| e.reason == "mix_cap").count() as u64, mix.rows_in - mix.rows_out);
    assert!(led.iter().filter(|e| e.reason == "mix_cap").all(|e| e.source == "synth" && e.stage == "mix"));
    // every kept row carries its bucket; same seed, same rows
    let kept = curated(&out);
    assert!(kept.iter().all(|t| t.bucket.as_deref().is_some_and(|b| ["0-2048", "2048-4096", "4096+"].contains(&b))));
    let (again, _) = run_spec(&tmp.path().join("b"), stages, Some(1));
    let ids = |o: &Path| curated(o).into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(&out), ids(&again));
    // another seed keeps other rows
    let (other, _) = run_spec(&tmp.path().join("c"), &stages.replace("seed: 7}\n  - pack", "seed: 8}\n  - pack"), None);
    assert_ne!(ids(&out), ids(&other));
    assert_eq!(ids(&out).len(), ids(&other).len());
}

#[test]
fn the_reader_shuffles_per_seed_and_epoch_resumes_and_refuses_another_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, _) = run_spec(tmp.path(), "  - pack: {max_length: 4096, row_group_packs: 2, packs_per_file: 8}\n", None);
    let dir = out.join("shards");
    let set = ShardSet::open(&dir, &tokenizer_dir()).unwrap();
    let n = set.len();
    assert!(n >= 20 && set.row_groups() >= 10, "{n} packs");
    let o1 = set.order(1, 0, 4);
    assert_eq!(o1, set.order(1, 0, 4));
    assert_ne!(o1, set.order(1, 1, 4));
    assert_ne!(o1, set.order(2, 0, 4));
    assert_eq!(o1.iter().collect::<HashSet<_>>().len(), n, "a permutation");
    // the loader follows the order, prefetching; resuming at k gives the rest
    let all = set.read_all().unwrap();
    let loaded: Vec<(usize, Pack)> = set.loader(1, 0, 0, 3).map(|r| r.unwrap()).collect();
    assert_eq!(loaded.len(), n);
    let by_index: BTreeMap<u64, &Pack> = all.iter().map(|p| (p.index, p)).collect();
    let rows_per_group: Vec<u64> = (0..set.row_groups()).map(|g| set.read_group(g).unwrap()[0].index).collect();
    for (k, (pos, p)) in loaded.iter().enumerate() {
        assert_eq!(*pos, k);
        let (g, r) = o1[k];
        assert_eq!(p.index, rows_per_group[g as usize] + r as u64);
        assert_eq!(by_index[&p.index], p);
    }
    let resumed: Vec<u64> = set.loader(1, 0, 7, 2).map(|r| r.unwrap().1.index).collect();
    assert_eq!(resumed, loaded[7..].iter().map(|(_, p)| p.index).collect::<Vec<_>>());
    // another chat template or tokenizer is refused, naming both hashes
    let other = tmp.path().join("tok");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(tokenizer_dir().join("tokenizer.json"), other.join("tokenizer.json")).unwrap();
    let cfg = std::fs::read_to_string(tokenizer_dir().join("tokenizer_config.json")).unwrap();
    std::fs::write(
        other.join("tokenizer_config.json"),
        cfg.replace("You are a helpful assistant.", "You are helpful."),
    )
    .unwrap();
    let err = ShardSet::open(&dir, &other).err().expect("refused").to_string();
    assert!(err.contains("another chat template") && err.contains(&set.manifest.template_sha256), "{err}");
    let tj = std::fs::read_to_string(tokenizer_dir().join("tokenizer.json")).unwrap();
    std::fs::write(other.join("tokenizer.json"), format!("{tj}\n")).unwrap();
    let err = ShardSet::open(&dir, &other).err().expect("refused").to_string();
    assert!(err.contains("another tokenizer") && err.contains("manifest.json"), "{err}");
    // a damaged shard is found
    let f = dir.join(&set.manifest.files[0].path);
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&f, &bytes).unwrap();
    let err = ShardSet::open(&dir, &tokenizer_dir()).unwrap().verify_checksums().unwrap_err().to_string();
    assert!(err.contains("sha256") && err.contains("damaged"), "{err}");
    bytes.truncate(100);
    std::fs::write(&f, &bytes).unwrap();
    let err = ShardSet::open(&dir, &tokenizer_dir()).err().expect("refused").to_string();
    assert!(err.contains("100 bytes"), "{err}");
}

#[test]
fn token_stages_must_follow_tokenize_and_pack_comes_last() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = |stages: &str| {
        let yaml = spec_yaml("").replace(
            &format!("  - tokenize:\n      tokenizer: {}\n      system: \"{SYSTEM}\"\n", tokenizer_dir().display()),
            stages,
        );
        let p = write_spec(tmp.path(), &yaml);
        cotforge::spec::load(&p).expect_err("refused").to_string()
    };
    let tok = format!("  - tokenize: {{tokenizer: {}}}\n", tokenizer_dir().display());
    assert!(bad("  - pack: {max_length: 4096}\n").contains("needs a `tokenize` stage before it"));
    let e = bad(&format!("{tok}  - pack: {{max_length: 4096}}\n  - bucket: {{boundaries: [10]}}\n"));
    assert!(e.contains("(pack) must be the last stage"), "{e}");
    let e = bad(&format!("{tok}  - mix: {{by: source_bucket, total: 5}}\n"));
    assert!(e.contains("put a `bucket` stage before it"), "{e}");
    let e = bad(&format!("{tok}  - bucket: {{boundaries: [10], caps: {{\"5-10\": 1}}}}\n"));
    assert!(e.contains("no bucket `5-10`; the buckets are 0-10, 10+"), "{e}");
    let e = bad("  - tokenize: {tokenizer: /nonexistent}\n");
    assert!(e.contains("has no tokenizer.json"), "{e}");
}
