//! Model configs by name and freshly initialised model directories: for benchmarks, tests and
//! training small models from scratch. `write_random` writes a directory that both cotforge
//! and `transformers` load: `config.json`, `model.safetensors` (normal(0, 0.02) weights, norms
//! 1, from the project's seeded RNG) and the tokenizer's files.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device};
use serde_json::{Value, json};

use super::{CausalLm, ModelConfig};
use crate::error::{Context, Error, Result};

/// Names accepted by [`preset`].
pub const PRESETS: &[&str] = &["tiny", "small", "qwen2-tiny", "qwen2-small", "qwen2.5-vl-tiny"];

/// Qwen-family token ids of the Qwen2.5 tokenizer (the vision models' special tokens).
const BOS: u64 = 151643;
const EOS: u64 = 151645;
const VISION_START: u64 = 151652;
const VISION_END: u64 = 151653;
const IMAGE_PAD: u64 = 151655;
const VIDEO_PAD: u64 = 151656;
const QWEN_VOCAB: u64 = 151936;

fn qwen2(vocab: u64, hidden: u64, inter: u64, layers: u64, heads: u64, kv: u64) -> Value {
    json!({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": vocab, "hidden_size": hidden,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "max_position_embeddings": 32768, "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0, "tie_word_embeddings": true, "hidden_act": "silu",
        "bos_token_id": BOS, "eos_token_id": EOS, "torch_dtype": "float32", "use_sliding_window": false,
    })
}

/// The `config.json` of a named config:
/// - `tiny`: hidden 64, 2 layers, vocab 320 (the test fixtures' size);
/// - `small`: hidden 512, 8 layers, 8/2 heads, vocab 32,000 (about 40M parameters);
/// - `qwen2-tiny`: hidden 256, 4 layers, 4/2 heads, intermediate 768, vocab 151,936, tied;
/// - `qwen2-small`: hidden 512, 8 layers, 8/2 heads, intermediate 1,536, vocab 151,936, tied;
/// - `qwen2.5-vl-tiny`: a Qwen2.5-VL with the qwen2-tiny decoder (M-RoPE) and a 4-block
///   vision tower of width 128 (window attention, full attention in blocks 1 and 3), with the
///   Qwen2.5 tokenizer's vision token ids.
pub fn preset(name: &str) -> Result<Value> {
    Ok(match name {
        "tiny" => qwen2(320, 64, 96, 2, 4, 2),
        "small" => qwen2(32000, 512, 1408, 8, 8, 2),
        "qwen2-tiny" => qwen2(QWEN_VOCAB, 256, 768, 4, 4, 2),
        "qwen2-small" => qwen2(QWEN_VOCAB, 512, 1536, 8, 8, 2),
        "qwen2.5-vl-tiny" => {
            let mut text = qwen2(QWEN_VOCAB, 256, 768, 4, 4, 2);
            text["rope_scaling"] = json!({"type": "mrope", "rope_type": "default", "mrope_section": [16, 8, 8]});
            json!({
                "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl",
                "text_config": text.clone(), "vocab_size": QWEN_VOCAB, "hidden_size": 256, "intermediate_size": 768,
                "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
                "rope_theta": 1000000.0, "rope_scaling": text["rope_scaling"].clone(), "max_position_embeddings": 32768,
                "tie_word_embeddings": true, "torch_dtype": "float32",
                "image_token_id": IMAGE_PAD, "video_token_id": VIDEO_PAD,
                "vision_start_token_id": VISION_START, "vision_end_token_id": VISION_END,
                "bos_token_id": BOS, "eos_token_id": EOS,
                "vision_config": {
                    "model_type": "qwen2_5_vl", "depth": 4, "hidden_size": 128, "out_hidden_size": 256,
                    "num_heads": 4, "intermediate_size": 256, "patch_size": 14, "spatial_merge_size": 2,
                    "temporal_patch_size": 2, "in_channels": 3, "window_size": 112, "fullatt_block_indexes": [1, 3],
                    "hidden_act": "silu",
                },
            })
        }
        other => return Err(Error::Input(format!("unknown model config `{other}`; known: {}", PRESETS.join(", ")))),
    })
}

/// Write a freshly initialised model for `config` (a `config.json` value) to `out`, with the
/// tokenizer files of `tokenizer` (if given) so that the directory is a complete model.
pub fn write_random(out: &Path, config: &Value, tokenizer: Option<&Path>, seed: u64) -> Result<CausalLm> {
    let cfg = ModelConfig::from_json(config).map_err(Error::Input)?;
    let model = CausalLm::random(cfg, DType::F32, &Device::Cpu, seed)?;
    std::fs::create_dir_all(out).ctx(|| format!("creating {}", out.display()))?;
    let tensors: HashMap<String, candle_core::Tensor> =
        model.vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect();
    let dest = out.join("model.safetensors");
    let tmp = out.join(".model.safetensors.tmp");
    candle_core::safetensors::save(&tensors, &tmp)
        .map_err(|e| Error::Run(format!("writing {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &dest).ctx(|| format!("renaming {}", dest.display()))?;
    let text = serde_json::to_string_pretty(config).map_err(|e| Error::Run(e.to_string()))?;
    crate::io::atomic_write(&out.join("config.json"), text.as_bytes(), 0)?;
    if let Some(tok) = tokenizer {
        for f in super::SIDE_FILES.iter().filter(|f| **f != "config.json") {
            let src = tok.join(f);
            if src.is_file() {
                std::fs::copy(&src, out.join(f)).ctx(|| format!("copying {}", src.display()))?;
            }
        }
    }
    Ok(model)
}
