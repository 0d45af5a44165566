//! The candle models against `transformers` (fixtures/make_model_fixtures.py): logits, greedy
//! generation, packed rows, and gradients against finite differences.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use cotforge::model::{CausalLm, ModelConfig};

use crate::common::repo;

fn model_dir(name: &str) -> std::path::PathBuf {
    repo().join("fixtures/models").join(name)
}

fn reference(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(model_dir(name).join("reference.safetensors"), &Device::Cpu).unwrap()
}

fn ids_of(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<i64>().unwrap().into_iter().map(|x| x as u32).collect()
}

/// A fixture model with its reference: (reference, model, input ids, pixel values, grids).
fn fixture_model(name: &str) -> (HashMap<String, Tensor>, CausalLm, Vec<u32>, Option<Tensor>, Vec<[u32; 3]>) {
    let r = reference(name);
    let m = CausalLm::load(&model_dir(name), DType::F32, &Device::Cpu).unwrap();
    let ids = ids_of(&r["input_ids"]);
    let (px, grids) = match r.get("pixel_values") {
        Some(px) => (Some(px.clone()), grids_of(&r["image_grid_thw"])),
        None => (None, vec![]),
    };
    (r, m, ids, px, grids)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn text_decoders_match_transformers_logits_and_greedy_generation() {
    for name in ["qwen2", "qwen3"] {
        let r = reference(name);
        let m = CausalLm::load(&model_dir(name), DType::F32, &Device::Cpu).unwrap();
        let ids = ids_of(&r["input_ids"]);
        let logits = m.logits(&ids, &[ids.len()]).unwrap();
        let want = r["logits"].squeeze(0).unwrap();
        let d = max_abs_diff(&logits, &want);
        assert!(d < 1e-4, "{name}: max abs logit difference {d}");
        assert_eq!(m.greedy_uncached(&ids, 8).unwrap(), ids_of(&r["greedy"]), "{name}: greedy tokens");
    }
}

#[test]
fn configs_read_hub_and_transformers5_layouts() {
    let hub = serde_json::json!({
        "model_type": "qwen2_5_vl", "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008,
        "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "tie_word_embeddings": true, "image_token_id": 151655, "vision_start_token_id": 151652,
        "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
            "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "in_chans": 3}
    });
    let c = ModelConfig::from_json(&hub).unwrap();
    assert_eq!((c.text.head_dim, c.text.mrope_section, c.text.rope_theta), (128, Some([16, 24, 24]), 1e6));
    assert!(c.text.tie_word_embeddings && c.text.qkv_bias && !c.text.qk_norm);
    let v = c.vision.unwrap();
    assert_eq!(
        (v.embed_dim, v.intermediate_size, v.out_hidden_size, v.fullatt_block_indexes.len()),
        (1280, 3420, 2048, 4)
    );
    let five = ModelConfig::from_dir(&model_dir("qwen2_vl")).unwrap();
    assert_eq!((five.text.hidden_size, five.text.mrope_section, five.image_token_id), (64, Some([2, 3, 3]), Some(300)));
    assert_eq!(five.vision.unwrap().intermediate_size, 64);
    let bad = ModelConfig::from_json(&serde_json::json!({"model_type": "llama"})).unwrap_err();
    assert!(bad.contains("not supported"), "{bad}");
}

#[test]
fn a_packed_row_gives_each_segment_its_own_logits() {
    let m = CausalLm::load(&model_dir("qwen2"), DType::F32, &Device::Cpu).unwrap();
    let segs: Vec<Vec<u32>> = vec![vec![5, 17, 42, 99, 100], vec![7, 250, 3], vec![64, 128, 11, 200, 13, 1, 77]];
    let row: Vec<u32> = segs.concat();
    let lens: Vec<usize> = segs.iter().map(Vec::len).collect();
    let packed = m.logits(&row, &lens).unwrap();
    let mut at = 0;
    for s in &segs {
        let alone = m.logits(s, &[s.len()]).unwrap();
        let d = max_abs_diff(&packed.narrow(0, at, s.len()).unwrap(), &alone);
        assert!(d < 1e-5, "segment at {at}: {d}");
        at += s.len();
    }
    // and attending across the boundary would have changed them
    let whole = m.logits(&row, &[row.len()]).unwrap();
    assert!(max_abs_diff(&whole.narrow(0, 5, 3).unwrap(), &packed.narrow(0, 5, 3).unwrap()) > 1e-3);
}

/// Backward through `loss` gives every variable of `m` a non-zero gradient, and on its `entries`
/// largest entries the gradient matches central finite differences (f64 models).
fn assert_gradients(name: &str, m: &CausalLm, loss: impl Fn(&CausalLm) -> Tensor, entries: usize) -> usize {
    let grads = loss(m).backward().unwrap();
    let mut checked = 0;
    for (pname, var) in &m.vars {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{name}: no gradient for {pname}"));
        let gv = g.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        assert!(gv.iter().any(|&x| x != 0.0), "{name}: zero gradient for {pname}");
        let mut order: Vec<usize> = (0..gv.len()).collect();
        order.sort_by(|&a, &b| gv[b].abs().total_cmp(&gv[a].abs()));
        let orig = var.as_tensor().flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for &i in order.iter().take(entries) {
            let at = |delta: f64| {
                let mut v = orig.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.as_tensor().shape(), &Device::Cpu).unwrap()).unwrap();
                loss(m).to_scalar::<f64>().unwrap()
            };
            let fd = (at(1e-5) - at(-1e-5)) / 2e-5;
            at(0.0);
            assert!(
                (fd - gv[i]).abs() <= 1e-5 * (1.0 + fd.abs()),
                "{name} {pname}[{i}]: backward {} vs finite difference {fd}",
                gv[i]
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn every_parameter_gets_a_gradient_that_matches_finite_differences() {
    for name in ["qwen2", "qwen3"] {
        let m = CausalLm::load(&model_dir(name), DType::F64, &Device::Cpu).unwrap();
        let ids: Vec<u32> = vec![5, 17, 42, 99, 100, 7, 250, 3, 64];
        let segs = [4, 5];
        let probe = Tensor::randn(0f64, 1.0, (ids.len(), m.config.text.vocab_size), &Device::Cpu).unwrap();
        let checked =
            assert_gradients(name, &m, |m| (m.logits(&ids, &segs).unwrap() * &probe).unwrap().sum_all().unwrap(), 2);
        assert!(
            checked >= 2 * m.vars.len() && m.vars.len() >= 20,
            "{name}: {checked} entries of {} tensors",
            m.vars.len()
        );
    }
}

fn grids_of(t: &Tensor) -> Vec<[u32; 3]> {
    let v = ids_of(t);
    v.chunks_exact(3).map(|c| [c[0], c[1], c[2]]).collect()
}

#[test]
fn vision_language_models_match_transformers_logits_and_positions() {
    for name in ["qwen2_vl", "qwen2_5_vl"] {
        let r = reference(name);
        let m = CausalLm::load(&model_dir(name), DType::F32, &Device::Cpu).unwrap();
        let ids = ids_of(&r["input_ids"]);
        let grids = grids_of(&r["image_grid_thw"]);
        let pos = cotforge::model::mrope_positions(&ids, &grids, m.config.image_token_id, 2, &[ids.len()]).unwrap();
        assert_eq!(pos.concat(), ids_of(&r["position_ids"]), "{name}: M-RoPE positions");
        let logits = m.logits_multimodal(&ids, Some(&r["pixel_values"]), &grids, &[ids.len()]).unwrap();
        let d = max_abs_diff(&logits, &r["logits"].squeeze(0).unwrap());
        assert!(d < 1e-4, "{name}: max abs logit difference {d}");
    }
}

#[test]
fn a_packed_multimodal_row_gives_each_segment_its_own_logits() {
    let r = reference("qwen2_5_vl");
    let m = CausalLm::load(&model_dir("qwen2_5_vl"), DType::F32, &Device::Cpu).unwrap();
    let img_ids = ids_of(&r["input_ids"]);
    let grids = grids_of(&r["image_grid_thw"]);
    let px = &r["pixel_values"];
    let a: Vec<u32> = vec![5, 17, 42, 99];
    let c: Vec<u32> = vec![7, 250, 3, 64, 128];
    let row = [a.clone(), img_ids.clone(), c.clone()].concat();
    let lens = [a.len(), img_ids.len(), c.len()];
    let packed = m.logits_multimodal(&row, Some(px), &grids, &lens).unwrap();
    let alone = [
        m.logits_multimodal(&a, None, &[], &[a.len()]).unwrap(),
        m.logits_multimodal(&img_ids, Some(px), &grids, &[img_ids.len()]).unwrap(),
        m.logits_multimodal(&c, None, &[], &[c.len()]).unwrap(),
    ];
    let mut at = 0;
    for (k, want) in alone.iter().enumerate() {
        let d = max_abs_diff(&packed.narrow(0, at, lens[k]).unwrap(), want);
        assert!(d < 1e-5, "segment {k}: {d}");
        at += lens[k];
    }
}

#[test]
fn the_vision_language_models_train_every_parameter_including_the_vision_tower() {
    for name in ["qwen2_vl", "qwen2_5_vl"] {
        let r = reference(name);
        let m = CausalLm::load(&model_dir(name), DType::F64, &Device::Cpu).unwrap();
        let ids = ids_of(&r["input_ids"]);
        let grids = grids_of(&r["image_grid_thw"]);
        let px = &r["pixel_values"];
        let probe = Tensor::randn(0f64, 1.0, (ids.len(), m.config.text.vocab_size), &Device::Cpu).unwrap();
        let out = |m: &CausalLm| {
            (m.logits_multimodal(&ids, Some(px), &grids, &[ids.len()]).unwrap() * &probe).unwrap().sum_all().unwrap()
        };
        assert!(m.vars.keys().any(|k| k.starts_with("visual.")));
        assert_eq!(assert_gradients(name, &m, out, 1), m.vars.len());
    }
}

#[test]
fn image_preprocessing_equals_the_hf_processor_on_pixel_values() {
    let img = image::open(model_dir("image.png")).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let (px, grid) = cotforge::model::preprocess::pixel_values(
        img.as_raw(),
        w as usize,
        h as usize,
        56 * 56,
        28 * 28 * 64,
        14,
        2,
        2,
    );
    let r = reference("qwen2_vl");
    assert_eq!(vec![grid], grids_of(&r["image_grid_thw"]));
    let want = r["pixel_values"].flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(px.len(), want.len());
    let d = px.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(d < 1e-5, "max abs pixel difference {d}");
    // random images enlarged to min_pixels, shrunk to max_pixels, thin, odd-sized, unchanged
    let cases = candle_core::safetensors::load(model_dir("preprocess.safetensors"), &Device::Cpu).unwrap();
    for k in 0..5 {
        let rgb = &cases[&format!("rgb{k}")];
        let (h, w, _) = rgb.dims3().unwrap();
        let bytes = rgb.flatten_all().unwrap().to_vec1::<u8>().unwrap();
        let (px, grid) = cotforge::model::preprocess::pixel_values(&bytes, w, h, 56 * 56, 28 * 28 * 16, 14, 2, 2);
        assert_eq!(vec![grid], grids_of(&cases[&format!("grid{k}")]), "image {k} ({h}x{w})");
        let want = cases[&format!("pixel_values{k}")].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let d = px.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(px.len() == want.len() && d < 1e-5, "image {k} ({h}x{w}): max abs pixel difference {d}");
    }
}

#[test]
fn cached_generation_matches_transformers_greedy_and_samples_reproducibly() {
    use cotforge::model::{GenerateOptions, Prompt};
    for name in ["qwen2", "qwen3", "qwen2_vl", "qwen2_5_vl"] {
        let (r, m, ids, px, grids) = fixture_model(name);
        let prompt = Prompt { ids: ids.clone(), pixel_values: px, grids };
        let greedy = GenerateOptions { max_new_tokens: 8, ..Default::default() };
        let out = m.generate(&[prompt.clone(), prompt.clone()], &greedy).unwrap();
        assert_eq!(out[0], ids_of(&r["greedy"]), "{name}: greedy tokens");
        assert_eq!(out[0], out[1]);
        if name == "qwen2" {
            // the cache changes nothing: the uncached path agrees
            assert_eq!(m.greedy_uncached(&ids, 8).unwrap(), out[0]);
            // a stop token ends the sequence and is kept
            let stop = GenerateOptions { stop: vec![out[0][3]], ..greedy.clone() };
            assert_eq!(m.generate(&[prompt.clone()], &stop).unwrap()[0], out[0][..4]);
            // sampling: same seed, same tokens; another seed, other tokens; tiny top_p is greedy
            let hot = GenerateOptions { max_new_tokens: 16, temperature: 5.0, seed: 3, ..Default::default() };
            let a = m.generate(&[prompt.clone()], &hot).unwrap();
            assert_eq!(a, m.generate(&[prompt.clone()], &hot).unwrap());
            assert_ne!(a, m.generate(&[prompt.clone()], &GenerateOptions { seed: 4, ..hot.clone() }).unwrap());
            let nucleus = GenerateOptions { top_p: 1e-9, max_new_tokens: 8, ..hot.clone() };
            assert_eq!(m.generate(&[prompt.clone()], &nucleus).unwrap()[0], out[0]);
        }
    }
}

#[test]
fn batched_generation_equals_one_prompt_at_a_time() {
    use cotforge::model::{GenerateOptions, Prompt};
    for name in ["qwen2", "qwen3", "qwen2_vl", "qwen2_5_vl"] {
        let (_, m, ids, px, grids) = fixture_model(name);
        // prompts of different lengths (text ones cut before any image), the image one in the middle
        let text_end = m.config.image_token_id.and_then(|t| ids.iter().position(|&x| x == t)).unwrap_or(ids.len());
        let prompts = vec![
            Prompt { ids: ids[..3].to_vec(), ..Default::default() },
            Prompt { ids: ids.clone(), pixel_values: px, grids },
            Prompt { ids: ids[..text_end.min(ids.len() - 1)].to_vec(), ..Default::default() },
            Prompt { ids: ids[1..2].to_vec(), ..Default::default() },
        ];
        let greedy = GenerateOptions { max_new_tokens: 10, ..Default::default() };
        let alone: Vec<Vec<u32>> =
            prompts.iter().map(|p| m.generate(std::slice::from_ref(p), &greedy).unwrap().remove(0)).collect();
        assert_eq!(m.generate(&prompts, &greedy).unwrap(), alone, "{name}: batched greedy");
        if m.vision.is_none() {
            for (p, a) in prompts.iter().zip(&alone) {
                assert_eq!(&m.greedy_uncached(&p.ids, 10).unwrap(), a, "{name}: the uncached reference path");
            }
        }
        // one sequence stopping early leaves the batch without disturbing the others
        let stop = GenerateOptions { stop: vec![alone[0][2]], ..greedy.clone() };
        let stopped = m.generate(&prompts, &stop).unwrap();
        for (s, a) in stopped.iter().zip(&alone) {
            let cut = a.iter().position(|&t| t == alone[0][2]).map_or(a.len(), |i| i + 1);
            assert_eq!(s[..], a[..cut], "{name}: stop token");
        }
        assert_eq!(stopped[0].len(), 3);
        // several samples per prompt: each prompt prefilled once, the same draws as repeating it
        let hot = GenerateOptions {
            max_new_tokens: 12,
            temperature: 3.0,
            top_p: 0.9,
            seed: 11,
            samples: 3,
            ..Default::default()
        };
        let grouped = m.generate(&prompts[..2], &hot).unwrap();
        let repeated: Vec<Prompt> = prompts[..2].iter().flat_map(|p| std::iter::repeat_n(p.clone(), 3)).collect();
        assert_eq!(
            grouped,
            m.generate(&repeated, &GenerateOptions { samples: 1, ..hot.clone() }).unwrap(),
            "{name}: samples"
        );
        assert_eq!(grouped.len(), 6);
        assert!(grouped[..3].iter().any(|g| g != &grouped[0]), "{name}: samples of one prompt differ");
    }
}

#[test]
fn sharded_and_bf16_checkpoints_load_under_their_hf_names() {
    let r = reference("qwen2_5_vl");
    let src = model_dir("qwen2_5_vl");
    let tensors = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let ids = ids_of(&r["input_ids"]);
    let grids = grids_of(&r["image_grid_thw"]);
    let logits_of = |m: &CausalLm| {
        m.logits_multimodal(&ids, Some(&r["pixel_values"]), &grids, &[ids.len()]).unwrap().to_dtype(DType::F32).unwrap()
    };
    let base = logits_of(&CausalLm::load(&src, DType::F32, &Device::Cpu).unwrap());
    // the same tensors split over two shards with an index, stored as f32 and as bf16
    let write_sharded = |dir: &std::path::Path, dtype: DType| {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        let mut map = serde_json::Map::new();
        for (k, part) in names.chunks(names.len().div_ceil(2)).enumerate() {
            let file = format!("model-{:05}-of-00002.safetensors", k + 1);
            let shard: HashMap<String, Tensor> =
                part.iter().map(|n| ((*n).clone(), tensors[*n].to_dtype(dtype).unwrap())).collect();
            candle_core::safetensors::save(&shard, dir.join(&file)).unwrap();
            for n in part {
                map.insert((*n).clone(), serde_json::Value::String(file.clone()));
            }
        }
        let index = serde_json::json!({ "metadata": {}, "weight_map": map });
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    };
    let tmp = tempfile::tempdir().unwrap();
    let f32_dir = tmp.path().join("f32");
    write_sharded(&f32_dir, DType::F32);
    let sharded = CausalLm::load(&f32_dir, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(sharded.vars.len(), tensors.len(), "every checkpoint tensor is a variable");
    assert_eq!(max_abs_diff(&logits_of(&sharded), &base), 0.0, "sharded f32 loads the same weights");

    // bf16 on disk, run in bf16: every variable is bf16 and the logits stay within bf16 error
    let bf16_dir = tmp.path().join("bf16");
    write_sharded(&bf16_dir, DType::BF16);
    let half = CausalLm::load(&bf16_dir, DType::BF16, &Device::Cpu).unwrap();
    assert!(half.vars.values().all(|v| v.dtype() == DType::BF16));
    let scale = base.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
    let d = max_abs_diff(&logits_of(&half), &base);
    eprintln!("bf16: max abs logit difference {d}, logit scale {scale}");
    assert!(d > 0.0 && d < 0.03 * scale, "bf16 logits: max abs difference {d} at scale {scale}");
    // bf16 on disk, run in f32: the weights are the bf16 values, exactly
    let widened = CausalLm::load(&bf16_dir, DType::F32, &Device::Cpu).unwrap();
    let w = widened.vars["model.layers.0.mlp.up_proj.weight"].as_tensor();
    let want =
        tensors["model.layers.0.mlp.up_proj.weight"].to_dtype(DType::BF16).unwrap().to_dtype(DType::F32).unwrap();
    assert_eq!(max_abs_diff(w, &want), 0.0);

    // a shard named in the index but missing is an error naming it
    std::fs::remove_file(f32_dir.join("model-00002-of-00002.safetensors")).unwrap();
    let e = CausalLm::load(&f32_dir, DType::F32, &Device::Cpu).err().expect("missing shard").to_string();
    assert!(e.contains("model-00002-of-00002.safetensors"), "{e}");
}

#[test]
fn attention_in_query_blocks_gives_the_same_logits() {
    for name in ["qwen2", "qwen2_5_vl"] {
        let r = reference(name);
        let mut m = CausalLm::load(&model_dir(name), DType::F32, &Device::Cpu).unwrap();
        let ids = ids_of(&r["input_ids"]);
        let grids = r.get("image_grid_thw").map(grids_of).unwrap_or_default();
        let px = r.get("pixel_values");
        let whole = m.logits_multimodal(&ids, px, &grids, &[ids.len()]).unwrap();
        for rows in [1, 3, 7] {
            m.text.query_block_rows = Some(rows);
            let blocked = m.logits_multimodal(&ids, px, &grids, &[ids.len()]).unwrap();
            let d = max_abs_diff(&blocked, &whole);
            assert!(d < 1e-5, "{name}: blocks of {rows}: {d}");
        }
    }
}

#[test]
fn the_fused_causal_softmax_equals_the_masked_composite_forward_and_backward() {
    use cotforge::model::ops::{causal_softmax, softmax_last_dim};
    // scores (2, 3, n, t) from a fixed pattern; offsets: a first block, a later block, and
    // more keys than the block needs (decoding after a cache)
    for (n, t, offset) in [(5, 5, 0), (4, 9, 5), (3, 7, 2)] {
        let len = 2 * 3 * n * t;
        let x = (Tensor::arange(0u32, len as u32, &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap() * 0.731)
            .unwrap()
            .sin()
            .unwrap();
        let x = (x * 3.0).unwrap().reshape((2, 3, n, t)).unwrap();
        let dy = (Tensor::arange(0u32, len as u32, &Device::Cpu).unwrap().to_dtype(DType::F32).unwrap() * 1.37)
            .unwrap()
            .cos()
            .unwrap()
            .reshape((2, 3, n, t))
            .unwrap();
        let scale = 0.35;
        let mask: Vec<f32> = (0..n * t).map(|k| if k % t > offset + k / t { f32::NEG_INFINITY } else { 0.0 }).collect();
        let mask = Tensor::from_vec(mask, (n, t), &Device::Cpu).unwrap();
        let run = |fused: bool| {
            let v = candle_core::Var::from_tensor(&x).unwrap();
            let y = if fused {
                causal_softmax(v.as_tensor(), scale, offset).unwrap()
            } else {
                softmax_last_dim(&(v.as_tensor() * scale).unwrap().broadcast_add(&mask).unwrap()).unwrap()
            };
            let g = (&y * &dy).unwrap().sum_all().unwrap().backward().unwrap();
            (y, g.get(v.as_tensor()).unwrap().clone())
        };
        let (y1, g1) = run(true);
        let (y0, g0) = run(false);
        assert!(max_abs_diff(&y1, &y0) < 1e-6, "n {n} t {t} offset {offset}: outputs");
        assert!(max_abs_diff(&g1, &g0) < 1e-6, "n {n} t {t} offset {offset}: gradients");
        // masked keys get exactly zero probability, and each row sums to one
        let row0: Vec<f32> = y1.flatten_all().unwrap().to_vec1().unwrap()[..t].to_vec();
        assert!(row0[offset + 1..].iter().all(|&p| p == 0.0), "{row0:?}");
        assert!((row0.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }
}
