//! The SFT trainer: one step against PyTorch (fixtures/make_sft_fixtures.py), packed rows
//! against their segments alone, accumulation, and the run loop (checkpoints, resume).

use std::collections::{BTreeMap, HashMap};

use candle_core::{DType, Device, Tensor};
use cotforge::model::CausalLm;
use cotforge::shards::Pack;
use cotforge::train::optim::AdamWConfig;
use cotforge::train::{Row, TrainConfig, Trainer};

use crate::common::repo;

fn model_dir(name: &str) -> std::path::PathBuf {
    repo().join("fixtures/models").join(name)
}

fn ints(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<i64>().unwrap().into_iter().map(|x| x as u32).collect()
}

fn max_abs(t: &Tensor) -> f32 {
    t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// The packs of a reference step (the VL model's second segment of pack 0 has the image).
fn reference_packs(r: &HashMap<String, Tensor>) -> Vec<Pack> {
    let image = std::fs::read(model_dir("image.png")).unwrap();
    (0..)
        .take_while(|k| r.contains_key(&format!("pack{k}.ids")))
        .map(|k| {
            let grids: Vec<[u32; 3]> = match r.get(&format!("pack{k}.image_grid_thw")) {
                Some(g) => ints(g).chunks(3).map(|c| [c[0], c[1], c[2]]).collect(),
                None => vec![],
            };
            let segs = ints(&r[&format!("pack{k}.segments")]);
            Pack {
                index: k as u64,
                input_ids: ints(&r[&format!("pack{k}.ids")]),
                loss_mask: ints(&r[&format!("pack{k}.loss_mask")]).into_iter().map(|b| b == 1).collect(),
                sample_ids: (0..segs.len()).map(|s| format!("{k}-{s}")).collect(),
                segment_lengths: segs,
                images: grids.iter().map(|_| image.clone()).collect(),
                image_grid_thw: grids,
            }
        })
        .collect()
}

fn parity_config(packs_per_step: usize, packs_per_forward: usize) -> TrainConfig {
    TrainConfig {
        lr: 1e-2,
        packs_per_step,
        packs_per_forward,
        max_grad_norm: 0.5,
        adamw: AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1 },
        ..TrainConfig::default()
    }
}

fn trainer(name: &str, cfg: TrainConfig) -> Trainer {
    Trainer::new(CausalLm::load(&model_dir(name), DType::F32, &Device::Cpu).unwrap(), cfg).unwrap()
}

/// The same, with attention in query blocks of 4 rows (the fixtures' segments span 1-5 blocks).
fn blocked_trainer(name: &str, cfg: TrainConfig) -> Trainer {
    let mut m = CausalLm::load(&model_dir(name), DType::F32, &Device::Cpu).unwrap();
    m.text.query_block_rows = Some(4);
    Trainer::new(m, cfg).unwrap()
}

#[test]
fn one_sft_step_matches_pytorch_loss_gradients_and_adamw() {
    for (name, blocked) in [("qwen2", false), ("qwen2_5_vl", false), ("qwen2", true), ("qwen2_5_vl", true)] {
        let r =
            candle_core::safetensors::load(model_dir(name).join("sft_reference.safetensors"), &Device::Cpu).unwrap();
        let packs = reference_packs(&r);
        let make = if blocked { blocked_trainer } else { trainer };
        let mut t = make(name, parity_config(packs.len(), 1));
        let (nll, grads) = t.gradients(&packs).unwrap();
        let want_loss = r["loss"].to_vec1::<f32>().unwrap()[0] as f64;
        assert!((nll.mean() - want_loss).abs() < 1e-5, "{name}: loss {} vs torch {want_loss}", nll.mean());
        let mut compared = 0;
        for (k, want) in r.iter().filter(|(k, _)| k.starts_with("grad.")) {
            let pname = &k["grad.".len()..];
            let got = grads.get(pname).unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
            let d = max_abs_diff(got, want);
            assert!(
                d <= 1e-5 + 1e-4 * max_abs(want),
                "{name}: {pname}: max abs gradient difference {d} (scale {})",
                max_abs(want)
            );
            assert!(max_abs(got) > 0.0, "{name}: {pname}: zero gradient");
            compared += 1;
        }
        assert_eq!(compared, t.trainable.len(), "{name}: every trainable parameter compared");
        let want_norm = r["grad_norm"].to_vec1::<f32>().unwrap()[0] as f64;
        let (nll2, norm) = t.step(&packs, 1e-2).unwrap();
        assert_eq!(nll2, nll, "{name}: the step recomputes the same loss");
        assert!((norm - want_norm).abs() < 1e-4 * want_norm, "{name}: grad norm {norm} vs torch {want_norm}");
        // AdamW's first step moves a weight by lr * g / (|g| + eps): where |g| is near eps
        // (1e-8) that ratio amplifies float noise, so compare where |g| > 1e-6
        let mut worst = 0f32;
        for (k, want) in r.iter().filter(|(k, _)| k.starts_with("after.")) {
            let pname = &k["after.".len()..];
            let g = r[&format!("grad.{pname}")].abs().unwrap().ge(1e-6).unwrap().to_dtype(DType::F32).unwrap();
            let d = max_abs(&((t.model.vars[pname].as_tensor() - want).unwrap() * g).unwrap());
            assert!(d < 1e-5, "{name}: {pname} after AdamW: max abs difference {d}");
            worst = worst.max(d);
        }
        // and the optimizer alone, given PyTorch's gradients, agrees everywhere
        let mut fresh = trainer(name, parity_config(packs.len(), 1));
        let mut torch_grads: BTreeMap<String, Tensor> =
            r.iter().filter_map(|(k, v)| k.strip_prefix("grad.").map(|p| (p.to_string(), v.clone()))).collect();
        let norm = cotforge::train::optim::clip(&mut torch_grads, 0.5).unwrap();
        assert!((norm - want_norm).abs() < 1e-5 * want_norm);
        fresh.opt.step(&torch_grads, 1e-2).unwrap();
        for (k, want) in r.iter().filter(|(k, _)| k.starts_with("after.")) {
            let d = max_abs_diff(fresh.model.vars[&k["after.".len()..]].as_tensor(), want);
            assert!(d < 1e-6, "{name}: {k} from PyTorch's gradients: max abs difference {d}");
        }
        eprintln!(
            "{name} (query blocks of 4: {blocked}): loss {} (torch {want_loss}), parameters after the step within {worst}",
            nll.mean()
        );
    }
}

/// The packs of the reference with each segment as a pack of its own.
fn split_segments(packs: &[Pack]) -> Vec<Pack> {
    let mut out = Vec::new();
    for p in packs {
        let (mut at, mut img) = (0usize, 0usize);
        for (s, &len) in p.segment_lengths.iter().enumerate() {
            let len = len as usize;
            let ids = p.input_ids[at..at + len].to_vec();
            let n_img = ids.iter().filter(|&&t| t == 300).count();
            let grids: Vec<[u32; 3]> =
                p.image_grid_thw.iter().skip(img).take_while(|_| n_img > 0).take(1).copied().collect();
            let k = grids.len();
            out.push(Pack {
                index: out.len() as u64,
                input_ids: ids,
                loss_mask: p.loss_mask[at..at + len].to_vec(),
                segment_lengths: vec![len as u32],
                sample_ids: vec![p.sample_ids[s].clone()],
                images: p.images[img..img + k].to_vec(),
                image_grid_thw: grids,
            });
            img += k;
            at += len;
        }
    }
    out
}

fn assert_grads_close(what: &str, a: &BTreeMap<String, Tensor>, b: &BTreeMap<String, Tensor>, tol: f32) {
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: the same parameters have gradients"
    );
    for (k, g) in a {
        let d = max_abs_diff(g, &b[k]);
        assert!(d <= tol * (1.0 + max_abs(g)), "{what}: {k}: max abs difference {d}");
    }
}

#[test]
fn packed_rows_equal_their_segments_alone_in_loss_and_gradients() {
    for name in ["qwen2", "qwen2_5_vl"] {
        let r =
            candle_core::safetensors::load(model_dir(name).join("sft_reference.safetensors"), &Device::Cpu).unwrap();
        let packs = reference_packs(&r);
        let alone = split_segments(&packs);
        assert!(alone.len() > packs.len());
        let t = trainer(name, parity_config(packs.len(), 1));
        // the loss of a packed row is the token-weighted mean of its segments' losses
        for p in &packs {
            let whole = t.nll(&Row::of([p])).unwrap();
            let parts: Vec<_> =
                split_segments(std::slice::from_ref(p)).iter().map(|s| t.nll(&Row::of([s])).unwrap()).collect();
            let tokens: usize = parts.iter().map(|n| n.tokens).sum();
            let weighted: f64 = parts.iter().map(|n| n.mean() * n.tokens as f64).sum::<f64>() / tokens as f64;
            assert_eq!(whole.tokens, tokens);
            assert!((whole.mean() - weighted).abs() < 1e-6, "{name}: packed {} vs segments {weighted}", whole.mean());
        }
        // packed gradients equal the gradients of the segments run one by one
        let (packed_nll, packed) = t.gradients(&packs).unwrap();
        let t1 = trainer(name, parity_config(alone.len(), 1));
        let (alone_nll, unpacked) = t1.gradients(&alone).unwrap();
        assert!((packed_nll.mean() - alone_nll.mean()).abs() < 1e-6);
        assert_grads_close(name, &packed, &unpacked, 1e-5);
    }
}

/// `image.png` with its pixels permuted by `k`: the same size, other content.
fn image_variant(k: u8) -> Vec<u8> {
    let img = image::load_from_memory(&std::fs::read(model_dir("image.png")).unwrap()).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let out = image::RgbImage::from_fn(w, h, |x, y| {
        let p = img.get_pixel((x + 3 * k as u32) % w, (y + 5 * k as u32) % h);
        image::Rgb([p[0].wrapping_add(60 * k), p[1], p[2].wrapping_sub(40 * k)])
    });
    let mut buf = std::io::Cursor::new(Vec::new());
    out.write_to(&mut buf, image::ImageFormat::Png).unwrap();
    buf.into_inner()
}

#[test]
fn packs_of_several_images_equal_their_segments_alone() {
    // the reference's image segment three times over, each with another image, in one pack
    // and in packs run together in one forward: each segment's features must reach its own
    // image tokens, and its gradients its own image
    let r = candle_core::safetensors::load(model_dir("qwen2_5_vl").join("sft_reference.safetensors"), &Device::Cpu)
        .unwrap();
    let seg = split_segments(&reference_packs(&r)).into_iter().find(|p| !p.images.is_empty()).unwrap();
    let mut pack = Pack {
        index: 0,
        input_ids: vec![],
        loss_mask: vec![],
        segment_lengths: vec![],
        sample_ids: vec![],
        images: vec![],
        image_grid_thw: vec![],
    };
    for k in 0..3u8 {
        pack.input_ids.extend(&seg.input_ids);
        pack.loss_mask.extend(&seg.loss_mask);
        pack.segment_lengths.extend(&seg.segment_lengths);
        pack.sample_ids.push(format!("s{k}"));
        pack.images.push(image_variant(k));
        pack.image_grid_thw.extend(&seg.image_grid_thw);
    }
    let alone = split_segments(std::slice::from_ref(&pack));
    assert_eq!(alone.len(), 3);
    let t = trainer("qwen2_5_vl", parity_config(3, 1));
    let parts: Vec<_> = alone.iter().map(|s| t.nll(&Row::of([s])).unwrap()).collect();
    assert!((parts[0].mean() - parts[1].mean()).abs() > 1e-4, "the images change the loss");
    let whole = t.nll(&Row::of([&pack])).unwrap();
    let weighted: f64 = parts.iter().map(|n| n.sum).sum::<f64>() / parts.iter().map(|n| n.tokens).sum::<usize>() as f64;
    assert!((whole.mean() - weighted).abs() < 1e-6, "packed {} vs segments {weighted}", whole.mean());
    let (_, one) = trainer("qwen2_5_vl", parity_config(1, 1)).gradients(std::slice::from_ref(&pack)).unwrap();
    let (_, each) = trainer("qwen2_5_vl", parity_config(3, 1)).gradients(&alone).unwrap();
    let (_, together) = trainer("qwen2_5_vl", parity_config(3, 3)).gradients(&alone).unwrap();
    assert_grads_close("one pack of three images", &one, &each, 1e-5);
    assert_grads_close("three packs in one forward", &together, &each, 1e-5);
}

#[test]
fn accumulating_four_forwards_equals_one_forward_of_four_packs() {
    let r = candle_core::safetensors::load(model_dir("qwen2").join("sft_reference.safetensors"), &Device::Cpu).unwrap();
    let mut packs = reference_packs(&r);
    packs.extend(split_segments(&packs[..1]).into_iter().take(1));
    assert_eq!(packs.len(), 4);
    let (a_nll, a) = trainer("qwen2", parity_config(4, 1)).gradients(&packs).unwrap();
    let (b_nll, b) = trainer("qwen2", parity_config(4, 4)).gradients(&packs).unwrap();
    let (c_nll, c) = trainer("qwen2", parity_config(4, 2)).gradients(&packs).unwrap();
    assert!((a_nll.sum - b_nll.sum).abs() < 1e-4 && a_nll.tokens == b_nll.tokens && c_nll.tokens == a_nll.tokens);
    assert_grads_close("4x1 vs 1x4", &a, &b, 1e-5);
    assert_grads_close("4x1 vs 2x2", &a, &c, 1e-5);
    // the loss is normalised by the whole step's loss tokens, not per forward: doubling a
    // pack doubles its weight, it does not change the others'
    let mut doubled = packs.clone();
    doubled.push(packs[3].clone());
    let (d_nll, _) = trainer("qwen2", parity_config(5, 1)).gradients(&doubled).unwrap();
    let extra = trainer("qwen2", parity_config(1, 1)).nll(&Row::of([&packs[3]])).unwrap();
    assert!((d_nll.sum - (a_nll.sum + extra.sum)).abs() < 1e-4);
    assert_eq!(d_nll.tokens, a_nll.tokens + extra.tokens);
}

#[test]
fn frozen_vision_parts_get_no_gradient_and_the_rest_trains() {
    let r = candle_core::safetensors::load(model_dir("qwen2_5_vl").join("sft_reference.safetensors"), &Device::Cpu)
        .unwrap();
    let packs = reference_packs(&r);
    let (_, all) = trainer("qwen2_5_vl", parity_config(1, 1)).gradients(&packs).unwrap();
    for (tower, merger) in [(true, false), (true, true), (false, true)] {
        let mut cfg = parity_config(1, 1);
        cfg.freeze.vision_tower = tower;
        cfg.freeze.merger = merger;
        let t = trainer("qwen2_5_vl", cfg);
        let (_, g) = t.gradients(&packs).unwrap();
        for (k, full) in &all {
            let is_merger = k.starts_with("visual.merger.");
            let frozen = (tower && k.starts_with("visual.") && !is_merger) || (merger && is_merger);
            assert_eq!(g.contains_key(k), !frozen, "tower {tower} merger {merger}: {k}");
            assert_eq!(t.trainable.contains_key(k), !frozen);
            if !frozen {
                // a frozen part changes nothing downstream of it
                assert!(max_abs_diff(&g[k], full) < 1e-6, "{k}");
            }
        }
    }
}

#[test]
fn learning_rate_scales_apply_per_model_part() {
    // Adam's first step moves each weight by lr * g / (|g| + eps): a scale of 0.25 on the
    // tower and 0 on the merger give a quarter of the move and none, the text model the same
    let r = candle_core::safetensors::load(model_dir("qwen2_5_vl").join("sft_reference.safetensors"), &Device::Cpu)
        .unwrap();
    let packs = reference_packs(&r);
    let weights = |t: &Trainer| -> BTreeMap<String, Tensor> {
        t.trainable.iter().map(|(k, v)| (k.clone(), v.as_tensor().copy().unwrap())).collect()
    };
    let moved = |scale: Option<(f64, f64)>| -> BTreeMap<String, Tensor> {
        let mut cfg = parity_config(1, 1);
        cfg.adamw.weight_decay = 0.0;
        cfg.max_grad_norm = 0.0;
        if let Some((tower, merger)) = scale {
            cfg.lr_scale.vision_tower = tower;
            cfg.lr_scale.merger = merger;
        }
        let mut t = trainer("qwen2_5_vl", cfg);
        let before = weights(&t);
        t.step(&packs, 1e-3).unwrap();
        weights(&t)
            .into_iter()
            .map(|(k, w)| {
                let d = (w - &before[&k]).unwrap();
                (k, d)
            })
            .collect()
    };
    let (full, scaled) = (moved(None), moved(Some((0.25, 0.0))));
    assert!(
        full.keys().any(|k| k.starts_with("visual.merger.")) && full.keys().any(|k| k.starts_with("visual.blocks."))
    );
    for (k, d) in &full {
        let want = if k.starts_with("visual.merger.") {
            0.0
        } else if k.starts_with("visual.") {
            0.25
        } else {
            1.0
        };
        let expect = (d * want).unwrap();
        assert!(max_abs_diff(&scaled[k], &expect) <= 1e-4 * max_abs(d) + 1e-9, "{k}: scale {want}");
        if want > 0.0 {
            assert!(max_abs(&scaled[k]) > 0.0, "{k} moves");
        }
    }
    let e = TrainConfig::parse("lr_scale: {merger: -1}").unwrap_err();
    assert!(e.contains("lr_scale.merger"), "{e}");
}

/// A small text-only SFT corpus ("What is a + b?" with a short think block) through
/// tokenize > pack, with the repository's Qwen2.5 tokenizer; returns the shard directory.
pub(crate) fn text_shards(dir: &std::path::Path, rows: usize, max_length: usize) -> std::path::PathBuf {
    let rows: Vec<(String, String, String)> = (0..rows)
        .map(|i| {
            let (a, b) = (i * 7 % 50, i * 13 % 40);
            let response =
                format!("<think>\nAdd the tens and the ones: {a} + {b} = {}.\n</think>\n\\boxed{{{}}}", a + b, a + b);
            (format!("What is {a} + {b}?"), response, (a + b).to_string())
        })
        .collect();
    shards_of(dir, &rows, max_length)
}

/// A curated run (`DIR/run`) of (prompt, response, reference) rows tokenized with the Qwen2.5
/// template and system prompt "Think step by step." and packed; returns its shard directory.
pub(crate) fn shards_of(
    dir: &std::path::Path,
    rows: &[(String, String, String)],
    max_length: usize,
) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let jsonl: String = rows
        .iter()
        .map(|(p, r, x)| format!("{}\n", serde_json::json!({"prompt": p, "response": r, "reference": x})))
        .collect();
    std::fs::write(dir.join("train.jsonl"), jsonl).unwrap();
    let spec = format!(
        "name: sft\ninputs:\n  - path: {}\n    format: jsonl\n    layout: columns\n    columns: {{prompt: prompt, response: response, reference: reference}}\n    source: arith\nstages:\n  - tokenize:\n      tokenizer: {}\n      system: Think step by step.\n  - pack: {{max_length: {max_length}, row_group_packs: 2}}\noutput:\n  dir: o\n",
        dir.join("train.jsonl").display(),
        repo().join("fixtures/tokenizers/qwen2.5").display()
    );
    let spec = crate::common::write_spec(dir, &spec);
    crate::common::run(&spec, &dir.join("run"), Some(2));
    dir.join("run/shards")
}

/// A randomly initialised small Qwen2 with the full Qwen2.5 vocabulary and tokenizer files.
pub(crate) fn random_model(dir: &std::path::Path) -> std::path::PathBuf {
    let mut cfg = cotforge::model::init::preset("qwen2-tiny").unwrap();
    for (k, v) in [
        ("hidden_size", 32),
        ("intermediate_size", 64),
        ("num_hidden_layers", 2),
        ("num_attention_heads", 2),
        ("num_key_value_heads", 1),
    ] {
        cfg[k] = v.into();
    }
    cotforge::model::init::write_random(dir, &cfg, Some(&repo().join("fixtures/tokenizers/qwen2.5")), 3).unwrap();
    dir.to_path_buf()
}

pub(crate) fn train_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("tokens_per_s");
            v
        })
        .collect()
}

pub(crate) fn copy_dir(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
        }
    }
}

/// A quiet CPU run of `cfg` on the shards with the model's tokenizer.
fn cpu_args(
    shards: &std::path::Path,
    model: &std::path::Path,
    out: std::path::PathBuf,
    cfg: &TrainConfig,
    resume: bool,
) -> cotforge::train::SftArgs {
    cotforge::train::SftArgs {
        shards: shards.into(),
        model: model.into(),
        tokenizer: None,
        out,
        config: cfg.clone(),
        resume,
        progress: false,
        device: "cpu".into(),
    }
}

#[test]
fn a_resumed_run_continues_bit_identically_with_checkpoints_that_load() {
    use cotforge::train::config::EvalConfig;
    use cotforge::train::sft::run;
    let tmp = tempfile::tempdir().unwrap();
    let shards = text_shards(&tmp.path().join("data"), 40, 128);
    let n_packs = cotforge::shards::ShardSet::open(&shards, &repo().join("fixtures/tokenizers/qwen2.5")).unwrap().len();
    assert!(n_packs >= 8, "{n_packs} packs");
    let model = random_model(&tmp.path().join("model"));
    let cfg = TrainConfig {
        lr: 3e-3,
        max_steps: Some(6),
        packs_per_step: 3,
        warmup_ratio: 0.3,
        save_every: 3,
        keep_last: 5,
        eval: Some(EvalConfig { shards: Some(shards.clone()), generate: None, every: 3 }),
        ..TrainConfig::default()
    };
    let args =
        |out: &str, cfg: &TrainConfig, resume: bool| cpu_args(&shards, &model, tmp.path().join(out), cfg, resume);
    let a = run(&args("a", &cfg, false)).unwrap();
    assert_eq!(a.steps, 6);
    let ckpts = cotforge::train::checkpoint::list(&tmp.path().join("a/checkpoints")).unwrap();
    let names: Vec<String> = ckpts.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["step-0000003", "step-0000006"]);
    let lines = train_lines(&tmp.path().join("a/metrics.jsonl"));
    let train: Vec<&serde_json::Value> = lines.iter().filter(|l| l["split"] == "train").collect();
    let evals: Vec<&serde_json::Value> = lines.iter().filter(|l| l["split"] == "eval").collect();
    assert_eq!((train.len(), evals.len()), (6, 2));
    // warmup over ceil(0.3 * 6) = 2 steps from 0, then cosine to 0 at step 6
    let lr: Vec<f64> = train.iter().map(|l| l["lr"].as_f64().unwrap()).collect();
    assert_eq!(lr[0], 0.0);
    assert!((lr[1] - 1.5e-3).abs() < 1e-12 && (lr[2] - 3e-3).abs() < 1e-12 && lr[3] < lr[2] && lr[5] < lr[4]);
    for l in &train {
        assert_eq!(l["packs"], 3);
        let fill = l["fill"].as_f64().unwrap();
        assert!(fill > 0.2 && fill <= 1.0, "{l}");
        assert!(l["loss_tokens"].as_u64().unwrap() > 0 && l["grad_norm"].as_f64().unwrap() > 0.0);
    }
    // the model learns something: held-out (here: the same packs) loss falls between evaluations
    assert!(evals[1]["loss"].as_f64().unwrap() < evals[0]["loss"].as_f64().unwrap(), "{evals:?}");

    // an interrupted run: its output as it stood at step 3, then --resume
    copy_dir(&tmp.path().join("a"), &tmp.path().join("b"));
    std::fs::remove_dir_all(tmp.path().join("b/checkpoints/step-0000006")).unwrap();
    let b = run(&args("b", &cfg, true)).unwrap();
    assert_eq!(b.steps, 6);
    let weights =
        |dir: &str| std::fs::read(tmp.path().join(dir).join("checkpoints/step-0000006/model.safetensors")).unwrap();
    assert_eq!(weights("a"), weights("b"), "resumed weights are bit-identical");
    let opt =
        |dir: &str| std::fs::read(tmp.path().join(dir).join("checkpoints/step-0000006/optimizer.safetensors")).unwrap();
    assert_eq!(opt("a"), opt("b"));
    assert_eq!(train_lines(&tmp.path().join("b/metrics.jsonl")), lines, "the same metrics");

    // resuming with another config is refused
    let other = TrainConfig { lr: 1e-3, ..cfg.clone() };
    let e = run(&args("b", &other, true)).expect_err("config differs").to_string();
    assert!(e.contains("config"), "{e}");

    // keep_last: 1 leaves only the final checkpoint, which loads as a model with its tokenizer
    let c = run(&args("c", &TrainConfig { keep_last: 1, ..cfg.clone() }, false)).unwrap();
    let ckpts = cotforge::train::checkpoint::list(&tmp.path().join("c/checkpoints")).unwrap();
    assert_eq!(ckpts, [c.checkpoint.clone()]);
    assert_eq!(std::fs::read(c.checkpoint.join("model.safetensors")).unwrap(), weights("a"));
    let loaded = CausalLm::load(&c.checkpoint, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(loaded.vars.len(), CausalLm::load(&model, DType::F32, &Device::Cpu).unwrap().vars.len());
    cotforge::shards::ShardSet::open(&shards, &c.checkpoint).expect("the checkpoint carries the tokenizer");
    assert!(
        !tmp.path().join("c/checkpoints").read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp"))
    );
}

#[test]
fn devices_are_named_and_cuda_needs_its_feature() {
    assert!(matches!(cotforge::model::device("cpu").unwrap(), Device::Cpu));
    let e = cotforge::model::device("gpu").err().unwrap().to_string();
    assert!(e.contains("cpu, cuda or cuda:N"), "{e}");
    let e = cotforge::model::device("cuda:x").err().unwrap().to_string();
    assert!(e.contains("cuda:N"), "{e}");
    if !cfg!(feature = "cuda") {
        let e = cotforge::model::device("cuda:1").err().unwrap().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}

#[test]
fn train_configs_are_checked_with_clear_errors() {
    assert_eq!(TrainConfig::parse("").unwrap(), TrainConfig::default());
    let c = TrainConfig::parse(
        "lr: 2.0e-5\nschedule: linear\npacks_per_step: 4\npacks_per_forward: 2\nfreeze: {vision_tower: true}\n",
    )
    .unwrap();
    assert_eq!((c.lr, c.packs_per_step, c.freeze.vision_tower), (2e-5, 4, true));
    for (text, want) in [
        ("lr: 1e-5\nlearning_rate: 2\n", "learning_rate"),
        ("packs_per_step: 3\npacks_per_forward: 2\n", "multiple"),
        ("dtype: fp16\n", "dtype"),
        ("schedule: step\n", "step"),
        ("warmup_ratio: 1.5\n", "warmup_ratio"),
    ] {
        let e = TrainConfig::parse(text).err().unwrap_or_else(|| panic!("accepted {text:?}"));
        assert!(e.contains(want), "{text:?}: {e}");
    }
}

#[test]
fn bf16_parameters_train_through_f32_master_weights() {
    let r = candle_core::safetensors::load(model_dir("qwen2").join("sft_reference.safetensors"), &Device::Cpu).unwrap();
    let packs = reference_packs(&r);
    let cfg = TrainConfig { dtype: "bf16".into(), ..parity_config(packs.len(), 1) };
    let mut t = Trainer::new(CausalLm::load(&model_dir("qwen2"), DType::BF16, &Device::Cpu).unwrap(), cfg).unwrap();
    let (nll, _) = t.step(&packs, 1e-2).unwrap();
    let want_loss = r["loss"].to_vec1::<f32>().unwrap()[0] as f64;
    assert!((nll.mean() - want_loss).abs() < 0.02 * want_loss, "bf16 loss {} vs f32 {want_loss}", nll.mean());
    let state = t.opt.state_tensors();
    let original = CausalLm::load(&model_dir("qwen2"), DType::F32, &Device::Cpu).unwrap();
    let (mut diff, mut step, mut n) = (0f64, 0f64, 0usize);
    for (name, var) in &t.model.vars {
        assert_eq!(var.dtype(), DType::BF16, "{name}");
        let master = &state[&format!("master.{name}")];
        assert_eq!(master.dtype(), DType::F32);
        assert_eq!(state[&format!("m.{name}")].dtype(), DType::F32, "moments in f32");
        // the variable is its master weight rounded to bf16
        assert_eq!(
            max_abs_diff(
                &master.to_dtype(DType::BF16).unwrap().to_dtype(DType::F32).unwrap(),
                &var.to_dtype(DType::F32).unwrap()
            ),
            0.0,
            "{name}"
        );
        // the master moved like PyTorch's f32 step (up to bf16 gradients)
        let want = &r[&format!("after.{name}")];
        let before = original.vars[name].as_tensor();
        let elems = want.elem_count();
        diff += (master - want).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
        step += (want - before).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
        n += elems;
    }
    let (diff, step) = (diff / n as f64, step / n as f64);
    assert!(step > 1e-3 && diff < 0.2 * step, "mean |master - torch| {diff}, mean |step| {step}");
}

#[test]
fn generation_eval_prompts_match_training_and_a_memorised_set_scores_full_accuracy() {
    use cotforge::train::config::EvalConfig;
    use cotforge::train::eval::GenEvalConfig;
    use cotforge::train::optim::Schedule;
    use cotforge::train::sft::run;
    let tmp = tempfile::tempdir().unwrap();
    let shards = text_shards(&tmp.path().join("data"), 2, 256);
    let model = random_model(&tmp.path().join("model"));
    let tok = repo().join("fixtures/tokenizers/qwen2.5");
    let m = CausalLm::load(&model, DType::F32, &Device::Cpu).unwrap();
    // the eval prompt of a trace is its training sample up to the first loss token, with the
    // system prompt the manifest records (run() uses it when the config names none)
    let set = cotforge::shards::ShardSet::open(&shards, &tok).unwrap();
    assert_eq!(set.manifest.system.as_deref(), Some("Think step by step."));
    let (prompts, tokenizer) =
        cotforge::train::eval::load_prompts(&tmp.path().join("data/run"), &tok, set.manifest.system.clone(), &m, None)
            .unwrap();
    assert_eq!(prompts.len(), 2);
    let (plain, _) = cotforge::train::eval::load_prompts(&tmp.path().join("data/run"), &tok, None, &m, None).unwrap();
    assert_ne!(plain[0].prompt.ids, prompts[0].prompt.ids);
    let packs = set.read_all().unwrap();
    for p in &prompts {
        let pack = packs.iter().find(|k| k.sample_ids.contains(&p.id)).expect("the trace was packed");
        let s = pack.sample_ids.iter().position(|x| x == &p.id).unwrap();
        let start: usize = pack.segment_lengths[..s].iter().map(|&x| x as usize).sum();
        let first_loss = (start..).find(|&i| pack.loss_mask[i]).unwrap();
        assert_eq!(p.prompt.ids, pack.input_ids[start..first_loss], "{}", p.id);
    }
    // before training: nothing right; after memorising the two samples: both right
    let before = cotforge::train::eval::accuracy(&m, &tokenizer, &prompts, 40, 2).unwrap();
    assert_eq!(before.correct, 0);
    let cfg = TrainConfig {
        lr: 1e-2,
        schedule: Schedule::Constant,
        warmup_ratio: 0.0,
        max_steps: Some(60),
        packs_per_step: 1,
        eval: Some(EvalConfig {
            shards: None,
            generate: Some(GenEvalConfig {
                run: tmp.path().join("data/run"),
                limit: None,
                max_new_tokens: 40,
                system: None,
                batch: 2,
            }),
            every: 30,
        }),
        ..TrainConfig::default()
    };
    let args = cpu_args(&shards, &model, tmp.path().join("sft"), &cfg, false);
    let s = run(&args).unwrap();
    assert_eq!(s.eval_accuracy, Some(1.0), "memorised prompts are answered right");
    let lines = train_lines(&tmp.path().join("sft/metrics.jsonl"));
    let evals: Vec<_> = lines.iter().filter(|l| l["split"] == "eval_generate").collect();
    assert_eq!(evals.len(), 2);
    assert_eq!(evals[1]["correct"], 2);
    assert_eq!(evals[1]["truncated"], 0, "the continuations end at <|im_end|>");
    // each evaluation's continuations, with their verdicts
    let out = std::fs::read_to_string(tmp.path().join("sft/eval/generate-step-0000060.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!((r["correct"].as_bool(), r["truncated"].as_bool()), (Some(true), Some(false)), "{r}");
        assert_eq!(r["extracted"], r["reference"]);
        assert!(r["text"].as_str().unwrap().contains("\\boxed{"), "{r}");
    }
    // `cotforge eval` on the checkpoint, with the shards' system prompt, agrees
    let results = tmp.path().join("eval.jsonl");
    let o = crate::common::cli(
        &[
            "eval",
            "--model",
            s.checkpoint.to_str().unwrap(),
            "--prompts",
            tmp.path().join("data/run").to_str().unwrap(),
            "--shards",
            shards.to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--max-new-tokens",
            "40",
            "--batch",
            "2",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((summary["correct"].as_u64(), summary["prompts"].as_u64()), (Some(2), Some(2)), "{summary}");
    assert_eq!(std::fs::read_to_string(&results).unwrap(), out, "the same continuations as the run's own evaluation");
}

fn lora_config(dropout: f64) -> TrainConfig {
    let lora = cotforge::train::config::LoraConfig { rank: 4, alpha: 8.0, dropout, ..Default::default() };
    TrainConfig { lora: Some(lora), ..parity_config(1, 1) }
}

/// Give every adapter's B a fixed non-zero value (a fresh B is zero, so A gets no gradient).
fn set_lora_b(t: &Trainer) {
    for (k, v) in &t.adapters {
        if k.ends_with("lora_B.weight") {
            let n = v.as_tensor().elem_count();
            let x = (Tensor::arange(0u32, n as u32, &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap() * 0.37)
                .unwrap()
                .sin()
                .unwrap();
            v.set(&(x * 0.05).unwrap().reshape(v.as_tensor().shape()).unwrap()).unwrap();
        }
    }
}

#[test]
fn lora_trains_only_its_adapters_and_the_merged_export_equals_the_unmerged_model() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["qwen2", "qwen2_5_vl"] {
        let r =
            candle_core::safetensors::load(model_dir(name).join("sft_reference.safetensors"), &Device::Cpu).unwrap();
        let packs = reference_packs(&r);
        let t = trainer(name, lora_config(0.0));
        let layers = t.model.config.text.num_hidden_layers;
        assert_eq!(t.adapters.len(), layers * 7 * 2, "{name}: A and B for 7 projections per layer");
        let ids = &packs[0].input_ids;
        let segs: Vec<usize> = packs[0].segment_lengths.iter().map(|&s| s as usize).collect();
        let base = CausalLm::load(&model_dir(name), DType::F32, &Device::Cpu).unwrap().logits(ids, &segs).unwrap();
        // a fresh adapter (B = 0) changes nothing
        assert_eq!(max_abs_diff(&t.model.logits(ids, &segs).unwrap(), &base), 0.0);
        set_lora_b(&t);
        let (_, g) = t.gradients(&packs).unwrap();
        for k in g.keys() {
            assert!(
                t.adapters.contains_key(k) || k.starts_with("visual."),
                "{name}: the decoder's own weight {k} got a gradient"
            );
        }
        for k in t.adapters.keys() {
            let grad = g.get(k).unwrap_or_else(|| panic!("{name}: no gradient for {k}"));
            assert!(max_abs(grad) > 0.0, "{name}: zero gradient for {k}");
        }
        // merged into the base weights, the model computes what base + adapters compute
        let unmerged = t.model.logits(ids, &segs).unwrap();
        assert!(max_abs_diff(&unmerged, &base) > 1e-3, "{name}: the adapters change the outputs");
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(model_dir(name).join("config.json"), dir.join("config.json")).unwrap();
        let merged = cotforge::train::checkpoint::model_tensors(&t).unwrap();
        candle_core::safetensors::save(&merged, dir.join("model.safetensors")).unwrap();
        let loaded = CausalLm::load(&dir, DType::F32, &Device::Cpu).unwrap();
        let d = max_abs_diff(&loaded.logits(ids, &segs).unwrap(), &unmerged);
        assert!(d < 1e-4 * (1.0 + max_abs(&unmerged)), "{name}: merged vs unmerged logits differ by {d}");
    }
}

#[test]
fn lora_dropout_masks_are_replayed_by_the_recomputing_backward_pass() {
    use cotforge::train::config::Recompute;
    let r = candle_core::safetensors::load(model_dir("qwen2").join("sft_reference.safetensors"), &Device::Cpu).unwrap();
    let packs = reference_packs(&r);
    let grads = |dropout: f64, recompute: Recompute| {
        let t = trainer("qwen2", TrainConfig { recompute, ..lora_config(dropout) });
        set_lora_b(&t);
        t.gradients(&packs).unwrap()
    };
    let (kept_nll, kept) = grads(0.3, Recompute::Never);
    let (re_nll, re) = grads(0.3, Recompute::Always);
    assert!((kept_nll.sum - re_nll.sum).abs() < 1e-4);
    assert_grads_close("dropout: whole graph vs recomputed", &kept, &re, 1e-5);
    // dropout acts, and only in training
    let (plain_nll, _) = grads(0.0, Recompute::Never);
    assert!((plain_nll.sum - kept_nll.sum).abs() > 1e-3, "{} vs {}", plain_nll.sum, kept_nll.sum);
    let t = trainer("qwen2", lora_config(0.3));
    set_lora_b(&t);
    let t0 = trainer("qwen2", lora_config(0.0));
    set_lora_b(&t0);
    assert_eq!(t.nll(&Row::of(&packs)).unwrap(), t0.nll(&Row::of(&packs)).unwrap());
}

#[test]
fn a_resumed_lora_run_continues_bit_identically_from_base_and_adapters() {
    use cotforge::train::sft::run;
    let tmp = tempfile::tempdir().unwrap();
    let shards = text_shards(&tmp.path().join("data"), 24, 128);
    let model = random_model(&tmp.path().join("model"));
    let lora = cotforge::train::config::LoraConfig {
        rank: 2,
        alpha: 4.0,
        dropout: 0.1,
        targets: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    };
    let cfg = TrainConfig {
        lr: 1e-2,
        max_steps: Some(4),
        packs_per_step: 2,
        save_every: 2,
        keep_last: 5,
        lora: Some(lora),
        ..TrainConfig::default()
    };
    let args =
        |out: &str, model: &std::path::Path, resume: bool| cpu_args(&shards, model, tmp.path().join(out), &cfg, resume);
    let a = run(&args("a", &model, false)).unwrap();
    let ck = &a.checkpoint;
    let adapter_cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ck.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!((adapter_cfg["rank"].as_u64(), adapter_cfg["targets"].as_array().map(|t| t.len())), (Some(2), Some(3)));
    let adapters = candle_core::safetensors::load(ck.join("adapter.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(adapters.len(), 2 * 3 * 2, "A and B of 3 projections in 2 layers");
    // the merged model differs from the base only in the targeted projections
    let merged = candle_core::safetensors::load(ck.join("model.safetensors"), &Device::Cpu).unwrap();
    let base = candle_core::safetensors::load(model.join("model.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(merged.len(), base.len());
    for (k, w) in &base {
        let changed = max_abs_diff(w, &merged[k]) > 0.0;
        let targeted = ["q_proj", "v_proj", "down_proj"].iter().any(|t| k.contains(t)) && k.ends_with(".weight");
        assert_eq!(changed, targeted, "{k}");
    }

    copy_dir(&tmp.path().join("a"), &tmp.path().join("b"));
    std::fs::remove_dir_all(tmp.path().join("b/checkpoints/step-0000004")).unwrap();
    run(&args("b", &model, true)).unwrap();
    for f in ["model.safetensors", "adapter.safetensors", "optimizer.safetensors"] {
        let read = |dir: &str| std::fs::read(tmp.path().join(dir).join("checkpoints/step-0000004").join(f)).unwrap();
        assert_eq!(read("a"), read("b"), "{f} is bit-identical after resuming");
    }
    assert_eq!(train_lines(&tmp.path().join("a/metrics.jsonl")), train_lines(&tmp.path().join("b/metrics.jsonl")));
    // resuming on another base model is refused
    let other = random_model(&tmp.path().join("other"));
    std::fs::write(other.join("config.json"), std::fs::read(model.join("config.json")).unwrap()).unwrap();
    let mut w = base.clone();
    w.insert("model.norm.weight".into(), (&base["model.norm.weight"] * 2.0).unwrap());
    candle_core::safetensors::save(&w, other.join("model.safetensors")).unwrap();
    let e = run(&args("b", &other, true)).expect_err("another base").to_string();
    assert!(e.contains("base model"), "{e}");
}
