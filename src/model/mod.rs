//! Qwen-family models in candle, loaded from Hugging Face weights under their Hugging Face
//! names: the text decoders (Qwen2, Qwen2.5, Qwen3) and Qwen2-VL / Qwen2.5-VL with their vision
//! towers. Every op records gradients (see [`ops`]).

pub mod config;
pub mod ops;
pub mod preprocess;
pub mod text;
pub mod vision;
pub mod weights;

use std::path::Path;

use candle_core::{DType, Device, Tensor};

pub use config::ModelConfig;
pub use text::{Positions, TextModel, text_positions};
pub use weights::Weights;

use crate::error::{Error, Result};

/// A causal language model loaded from a Hugging Face model directory.
pub struct CausalLm {
    pub config: ModelConfig,
    pub text: TextModel,
    /// The vision tower of Qwen2-VL / 2.5-VL models.
    pub vision: Option<vision::VisionModel>,
    /// The trainable variables by Hugging Face name.
    pub vars: std::collections::BTreeMap<String, candle_core::Var>,
}

impl CausalLm {
    /// Load `config.json` and the safetensors weights of `dir`.
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let config = ModelConfig::from_dir(dir)?;
        let mut w = Weights::load(dir, dtype, device)?;
        let text = TextModel::load(&config.text, &mut w, "model")?;
        let vision = match &config.vision {
            Some(v) => Some(vision::VisionModel::load(v, &mut w, "visual")?),
            None => None,
        };
        Ok(Self { config, text, vision, vars: w.vars })
    }

    /// Logits (L, vocab) of one text row made of `segments` (lengths summing to its length).
    pub fn logits(&self, ids: &[u32], segments: &[usize]) -> Result<Tensor> {
        let x = self.text.embed(ids)?;
        self.text.forward(&x, &text_positions(segments), segments)
    }

    /// Logits (L, vocab) of a packed row with images: each image's `<|image_pad|>` run is
    /// replaced by its vision features; M-RoPE positions are computed per segment.
    /// `pixel_values` holds the patches of all images in order, `grids` their (t, h, w).
    pub fn logits_multimodal(&self, ids: &[u32], pixel_values: Option<&Tensor>, grids: &[[u32; 3]], segments: &[usize]) -> Result<Tensor> {
        let err = |e: candle_core::Error| Error::Run(format!("model: {e}"));
        let embeds = self.text.embed(ids)?;
        let x = match (pixel_values, &self.vision, self.config.image_token_id) {
            (Some(px), Some(vis), Some(pad)) if !grids.is_empty() => {
                let feats = vis.forward(px, grids)?.to_dtype(embeds.dtype()).map_err(err)?;
                let l = ids.len();
                let mut k = 0u32;
                let idx: Vec<u32> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, &t)| {
                        if t == pad {
                            k += 1;
                            (l as u32) + k - 1
                        } else {
                            i as u32
                        }
                    })
                    .collect();
                if k as usize != feats.dim(0).map_err(err)? {
                    return Err(Error::Input(format!("{k} image tokens in the row, {} image features", feats.dim(0).map_err(err)?)));
                }
                let table = Tensor::cat(&[&embeds, &feats], 0).map_err(err)?;
                let idx = Tensor::from_vec(idx, l, embeds.device()).map_err(err)?;
                table.index_select(&idx, 0).map_err(err)?
            }
            _ => embeds,
        };
        let merge = self.config.vision.as_ref().map(|v| v.spatial_merge_size as u32).unwrap_or(2);
        let pos = mrope_positions(ids, grids, self.config.image_token_id, merge, segments)?;
        self.text.forward(&x, &pos, segments)
    }

    /// Greedy continuation of a text prompt by `n` tokens (no cache: the reference path).
    pub fn greedy_uncached(&self, prompt: &[u32], n: usize) -> Result<Vec<u32>> {
        let mut ids = prompt.to_vec();
        for _ in 0..n {
            let logits = self.logits(&ids, &[ids.len()])?;
            let last = logits
                .get(ids.len() - 1)
                .and_then(|t| t.argmax(0))
                .and_then(|t| t.to_scalar::<u32>())
                .map_err(|e| Error::Run(format!("model: {e}")))?;
            ids.push(last);
        }
        Ok(ids[prompt.len()..].to_vec())
    }
}

/// M-RoPE positions of a packed row, restarting at each segment: text tokens advance all three
/// axes together; an image's pad tokens take (start + t, start + row, start + column) over its
/// merged grid, and the text after it continues at start + max(rows, columns).
pub fn mrope_positions(ids: &[u32], grids: &[[u32; 3]], image_token: Option<u32>, merge: u32, segments: &[usize]) -> Result<Positions> {
    let mut pos: Positions = [Vec::with_capacity(ids.len()), Vec::with_capacity(ids.len()), Vec::with_capacity(ids.len())];
    let mut grid = grids.iter();
    let mut start = 0;
    for &n in segments {
        let seg = &ids[start..start + n];
        let mut cur = 0u32;
        let mut i = 0;
        while i < n {
            if Some(seg[i]) != image_token {
                for p in pos.iter_mut() {
                    p.push(cur);
                }
                cur += 1;
                i += 1;
                continue;
            }
            let g = grid.next().ok_or_else(|| Error::Input("more image token runs than image grids".into()))?;
            let (t, h, w) = (g[0], g[1] / merge, g[2] / merge);
            let run = (t * h * w) as usize;
            if i + run > n || seg[i..i + run].iter().any(|&x| Some(x) != image_token) {
                return Err(Error::Input(format!("an image of grid {g:?} needs {run} consecutive image tokens")));
            }
            for tt in 0..t {
                for y in 0..h {
                    for x in 0..w {
                        pos[0].push(cur + tt);
                        pos[1].push(cur + y);
                        pos[2].push(cur + x);
                    }
                }
            }
            cur += h.max(w);
            i += run;
        }
        start += n;
    }
    Ok(pos)
}
