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

#[test]
fn one_sft_step_matches_pytorch_loss_gradients_and_adamw() {
    for name in ["qwen2", "qwen2_5_vl"] {
        let r = candle_core::safetensors::load(model_dir(name).join("sft_reference.safetensors"), &Device::Cpu).unwrap();
        let packs = reference_packs(&r);
        let mut t = trainer(name, parity_config(packs.len(), 1));
        let (nll, grads) = t.gradients(&packs).unwrap();
        let want_loss = r["loss"].to_vec1::<f32>().unwrap()[0] as f64;
        assert!((nll.mean() - want_loss).abs() < 1e-5, "{name}: loss {} vs torch {want_loss}", nll.mean());
        let mut compared = 0;
        for (k, want) in r.iter().filter(|(k, _)| k.starts_with("grad.")) {
            let pname = &k["grad.".len()..];
            let got = grads.get(pname).unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
            let d = max_abs_diff(got, want);
            assert!(d <= 1e-5 + 1e-4 * max_abs(want), "{name}: {pname}: max abs gradient difference {d} (scale {})", max_abs(want));
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
        eprintln!("{name}: loss {} (torch {want_loss}), parameters after the step within {worst}", nll.mean());
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
            let grids: Vec<[u32; 3]> = p.image_grid_thw.iter().skip(img).take_while(|_| n_img > 0).take(1).copied().collect();
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
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "{what}: the same parameters have gradients");
    for (k, g) in a {
        let d = max_abs_diff(g, &b[k]);
        assert!(d <= tol * (1.0 + max_abs(g)), "{what}: {k}: max abs difference {d}");
    }
}

#[test]
fn packed_rows_equal_their_segments_alone_in_loss_and_gradients() {
    for name in ["qwen2", "qwen2_5_vl"] {
        let r = candle_core::safetensors::load(model_dir(name).join("sft_reference.safetensors"), &Device::Cpu).unwrap();
        let packs = reference_packs(&r);
        let alone = split_segments(&packs);
        assert!(alone.len() > packs.len());
        let t = trainer(name, parity_config(packs.len(), 1));
        // the loss of a packed row is the token-weighted mean of its segments' losses
        for p in &packs {
            let whole = t.nll(&Row::of([p])).unwrap();
            let parts: Vec<_> = split_segments(std::slice::from_ref(p)).iter().map(|s| t.nll(&Row::of([s])).unwrap()).collect();
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
    let r = candle_core::safetensors::load(model_dir("qwen2_5_vl").join("sft_reference.safetensors"), &Device::Cpu).unwrap();
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
