//! Model configuration from a Hugging Face `config.json`: Qwen2 / Qwen2.5 / Qwen3 text
//! decoders and Qwen2-VL / Qwen2.5-VL. Reads both layouts transformers writes: the hub's (text
//! settings at the top, `rope_theta`, `rope_scaling.mrope_section`) and transformers 5's
//! (`text_config`, `rope_parameters`).

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// The decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct TextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    /// M-RoPE sections over `head_dim / 2` frequencies (temporal, height, width); None: 1-D RoPE.
    pub mrope_section: Option<[usize; 3]>,
    /// Bias on the q, k, v projections (Qwen2 family: yes; Qwen3: `attention_bias`).
    pub qkv_bias: bool,
    /// RMSNorm on each head's q and k (Qwen3).
    pub qk_norm: bool,
    pub tie_word_embeddings: bool,
}

/// Which vision tower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VisionKind {
    /// Qwen2-VL: LayerNorm, QuickGELU MLP, full attention per image.
    Qwen2Vl,
    /// Qwen2.5-VL: RMSNorm, SwiGLU MLP with bias, window attention except `fullatt_block_indexes`.
    Qwen25Vl,
}

/// The vision encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub kind: VisionKind,
    pub depth: usize,
    /// Width of the vision transformer.
    pub embed_dim: usize,
    pub num_heads: usize,
    /// Hidden size of the vision MLP.
    pub intermediate_size: usize,
    /// Width of the merger's output (the decoder's hidden size).
    pub out_hidden_size: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub spatial_merge_size: usize,
    pub in_channels: usize,
    /// Qwen2.5-VL window side in pixels, and the blocks with full attention.
    pub window_size: usize,
    pub fullatt_block_indexes: Vec<usize>,
}

/// A whole model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub model_type: String,
    pub text: TextConfig,
    pub vision: Option<VisionConfig>,
    pub image_token_id: Option<u32>,
    pub vision_start_token_id: Option<u32>,
    pub vision_end_token_id: Option<u32>,
}

fn num(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

impl ModelConfig {
    /// Read `config.json` from a model directory.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: not JSON: {e}", path.display())))?;
        Self::from_json(&v).map_err(|e| Error::Input(format!("{}: {e}", path.display())))
    }

    pub fn from_json(v: &Value) -> std::result::Result<Self, String> {
        let model_type = v.get("model_type").and_then(Value::as_str).ok_or("no `model_type`")?.to_string();
        let supported = ["qwen2", "qwen3", "qwen2_vl", "qwen2_5_vl"];
        if !supported.contains(&model_type.as_str()) {
            return Err(format!("model_type `{model_type}` is not supported; cotforge reads {}", supported.join(", ")));
        }
        // text settings: `text_config` (transformers 5) over the top level (hub checkpoints)
        let t = v.get("text_config").filter(|t| t.get("hidden_size").is_some()).unwrap_or(v);
        let need = |key: &str| -> std::result::Result<usize, String> {
            num(t, key).or_else(|| num(v, key)).map(|x| x as usize).ok_or_else(|| format!("no `{key}`"))
        };
        let hidden_size = need("hidden_size")?;
        let heads = need("num_attention_heads")?;
        let rope = t.get("rope_parameters").or_else(|| v.get("rope_parameters"));
        let scaling = t.get("rope_scaling").or_else(|| v.get("rope_scaling")).filter(|s| !s.is_null());
        let rope_theta = num(t, "rope_theta")
            .or_else(|| num(v, "rope_theta"))
            .or_else(|| rope.and_then(|r| num(r, "rope_theta")))
            .unwrap_or(10000.0);
        let section = scaling
            .and_then(|s| s.get("mrope_section"))
            .or_else(|| rope.and_then(|r| r.get("mrope_section")))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).map(|x| x as usize).collect::<Vec<_>>());
        let mrope_section = match section {
            None => None,
            Some(s) if s.len() == 3 => Some([s[0], s[1], s[2]]),
            Some(s) => return Err(format!("mrope_section {s:?}: expected three numbers")),
        };
        let head_dim = num(t, "head_dim").map(|x| x as usize).unwrap_or(hidden_size / heads);
        if let Some(s) = mrope_section {
            if s.iter().sum::<usize>() != head_dim / 2 {
                return Err(format!("mrope_section {s:?} does not sum to head_dim / 2 = {}", head_dim / 2));
            }
        }
        let qwen3 = model_type == "qwen3";
        let text = TextConfig {
            vocab_size: need("vocab_size")?,
            hidden_size,
            intermediate_size: need("intermediate_size")?,
            num_hidden_layers: need("num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: num(t, "num_key_value_heads").map(|x| x as usize).unwrap_or(heads),
            head_dim,
            rms_norm_eps: num(t, "rms_norm_eps").unwrap_or(1e-6),
            rope_theta,
            mrope_section,
            qkv_bias: if qwen3 { t.get("attention_bias").and_then(Value::as_bool).unwrap_or(false) } else { true },
            qk_norm: qwen3,
            tie_word_embeddings: v
                .get("tie_word_embeddings")
                .or_else(|| t.get("tie_word_embeddings"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
        };
        let vision = match v.get("vision_config") {
            None => None,
            Some(vc) => {
                let kind = if model_type == "qwen2_5_vl" { VisionKind::Qwen25Vl } else { VisionKind::Qwen2Vl };
                let g = |key: &str| num(vc, key).map(|x| x as usize);
                let (embed_dim, intermediate_size, out) = match kind {
                    VisionKind::Qwen2Vl => {
                        let e = g("embed_dim").ok_or("vision_config: no `embed_dim`")?;
                        (e, e * g("mlp_ratio").unwrap_or(4), g("hidden_size").unwrap_or(hidden_size))
                    }
                    VisionKind::Qwen25Vl => (
                        g("hidden_size").ok_or("vision_config: no `hidden_size`")?,
                        g("intermediate_size").ok_or("vision_config: no `intermediate_size`")?,
                        g("out_hidden_size").unwrap_or(hidden_size),
                    ),
                };
                Some(VisionConfig {
                    kind,
                    depth: g("depth").ok_or("vision_config: no `depth`")?,
                    embed_dim,
                    num_heads: g("num_heads").ok_or("vision_config: no `num_heads`")?,
                    intermediate_size,
                    out_hidden_size: out,
                    patch_size: g("patch_size").unwrap_or(14),
                    temporal_patch_size: g("temporal_patch_size").unwrap_or(2),
                    spatial_merge_size: g("spatial_merge_size").unwrap_or(2),
                    in_channels: g("in_channels").or_else(|| g("in_chans")).unwrap_or(3),
                    window_size: g("window_size").unwrap_or(112),
                    fullatt_block_indexes: vc
                        .get("fullatt_block_indexes")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_u64).map(|x| x as usize).collect())
                        .unwrap_or_default(),
                })
            }
        };
        let id = |key: &str| v.get(key).and_then(Value::as_u64).map(|x| x as u32);
        Ok(Self {
            model_type,
            text,
            vision,
            image_token_id: id("image_token_id"),
            vision_start_token_id: id("vision_start_token_id"),
            vision_end_token_id: id("vision_end_token_id"),
        })
    }
}
