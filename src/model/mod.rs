//! Qwen-family models in candle, loaded from Hugging Face weights under their Hugging Face
//! names: the text decoders (Qwen2, Qwen2.5, Qwen3) and Qwen2-VL / Qwen2.5-VL with their vision
//! towers. Every op records gradients (see [`ops`]).

pub mod config;
pub mod init;
pub mod logits;
pub mod lora;
pub mod bench;
pub mod ops;
pub mod preprocess;
pub mod text;
pub mod vision;
pub mod weights;

use std::path::Path;

use candle_core::{DType, Device, Tensor};

pub use config::ModelConfig;
pub use text::{KvCache, Positions, TextModel, text_positions};
pub use weights::Weights;

use crate::error::{Error, Result};

/// Files copied from the model (and tokenizer) directory when present.
pub const SIDE_FILES: &[&str] = &[
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.json",
    "chat_template.jinja",
    "preprocessor_config.json",
    "video_preprocessor_config.json",
];

/// The device named `cpu`, `cuda` or `cuda:N` (CUDA needs the `cuda` cargo feature).
pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        n if n == "cuda" || n.starts_with("cuda:") => {
            let ordinal: usize = match n.strip_prefix("cuda:") {
                Some(k) => k.parse().map_err(|_| Error::Spec(format!("device `{n}`: expected cuda:N")))?,
                None => 0,
            };
            cuda_device(ordinal)
        }
        other => Err(Error::Spec(format!("unknown device `{other}`; use cpu, cuda or cuda:N"))),
    }
}

#[cfg(feature = "cuda")]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|e| Error::Run(format!("cuda:{ordinal}: {e}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device(ordinal: usize) -> Result<Device> {
    Err(Error::Spec(format!(
        "cuda:{ordinal}: this cotforge was built without the `cuda` feature (cargo build --release --features cuda)"
    )))
}

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
        Self::from_weights(ModelConfig::from_dir(dir)?, Weights::load(dir, dtype, device)?)
    }

    /// Take the decoder (`model.*`, `lm_head`) and the vision tower (`visual.*`) from weights.
    fn from_weights(config: ModelConfig, mut w: Weights) -> Result<Self> {
        let text = TextModel::load(&config.text, &mut w, "model")?;
        let vision = match &config.vision {
            Some(v) => Some(vision::VisionModel::load(v, &mut w, "visual")?),
            None => None,
        };
        Ok(Self { config, text, vision, vars: w.vars })
    }

    /// A model with random weights for a config (benchmarks).
    pub fn random(config: ModelConfig, dtype: DType, device: &Device, seed: u64) -> Result<Self> {
        Self::from_weights(config, Weights::random(dtype, device, seed))
    }

    /// A copy that records no gradients (weights shared, so optimizer updates show): for
    /// inference, where a graph would only hold memory.
    pub fn detached(&self) -> Self {
        Self {
            config: self.config.clone(),
            text: self.text.detached(),
            vision: self.vision.as_ref().map(|v| v.detached()),
            vars: self.vars.clone(),
        }
    }

    /// Logits (L, vocab) of one text row made of `segments` (lengths summing to its length).
    pub fn logits(&self, ids: &[u32], segments: &[usize]) -> Result<Tensor> {
        let x = self.text.embed(ids)?;
        self.text.forward(&x, &text_positions(segments), segments)
    }

    /// Logits (L, vocab) of a packed row with images: each image's `<|image_pad|>` run is
    /// replaced by its vision features; M-RoPE positions are computed per segment.
    /// `pixel_values` holds the patches of all images in order, `grids` their (t, h, w).
    pub fn logits_multimodal(
        &self,
        ids: &[u32],
        pixel_values: Option<&Tensor>,
        grids: &[[u32; 3]],
        segments: &[usize],
    ) -> Result<Tensor> {
        let x = self.embed_multimodal(ids, pixel_values, grids)?;
        self.text.forward(&x, &self.positions(ids, grids, segments)?, segments)
    }

    /// Per-token positions of a packed row (M-RoPE for vision-language models).
    pub fn positions(&self, ids: &[u32], grids: &[[u32; 3]], segments: &[usize]) -> Result<Positions> {
        mrope_positions(ids, grids, self.config.image_token_id, self.merge(), segments)
    }

    /// The processor's `pixel_values` for encoded images (PNG, JPEG, ...) resized to the grids
    /// the tokenize stage recorded; `what` names them in errors.
    pub fn pixel_values_for(&self, images: &[Vec<u8>], grids: &[[u32; 3]], what: &str) -> Result<Option<Tensor>> {
        let Some(v) = &self.config.vision else {
            if images.is_empty() {
                return Ok(None);
            }
            return Err(Error::Input(format!("{what}: {} images, but the model has no vision tower", images.len())));
        };
        if images.is_empty() {
            return Ok(None);
        }
        if images.len() != grids.len() {
            return Err(Error::Input(format!("{what}: {} images and {} image grids", images.len(), grids.len())));
        }
        let mut rows = Vec::new();
        for (k, (bytes, g)) in images.iter().zip(grids).enumerate() {
            let img =
                image::load_from_memory(bytes).map_err(|e| Error::Input(format!("{what}: image {k}: {e}")))?.to_rgb8();
            let (w, h) = img.dimensions();
            rows.extend(preprocess::pixel_values_at(
                img.as_raw(),
                w as usize,
                h as usize,
                *g,
                v.patch_size,
                v.spatial_merge_size,
                v.temporal_patch_size,
            ));
        }
        let cols = 3 * v.temporal_patch_size * v.patch_size * v.patch_size;
        let n = rows.len() / cols;
        Tensor::from_vec(rows, (n, cols), &self.text.device()).map(Some).map_err(|e| Error::Run(format!("model: {e}")))
    }

    fn merge(&self) -> u32 {
        self.config.vision.as_ref().map(|v| v.spatial_merge_size as u32).unwrap_or(2)
    }

    /// Input embeddings (L, hidden): token embeddings, each image's pad run replaced by its
    /// vision features (a differentiable gather from the two).
    pub fn embed_multimodal(&self, ids: &[u32], pixel_values: Option<&Tensor>, grids: &[[u32; 3]]) -> Result<Tensor> {
        let err = |e: candle_core::Error| Error::Run(format!("model: {e}"));
        let embeds = self.text.embed(ids)?;
        match (pixel_values, &self.vision, self.config.image_token_id) {
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
                    return Err(Error::Input(format!(
                        "{k} image tokens in the row, {} image features",
                        feats.dim(0).map_err(err)?
                    )));
                }
                let table = Tensor::cat(&[&embeds, &feats], 0).map_err(err)?;
                let idx = Tensor::from_vec(idx, l, embeds.device()).map_err(err)?;
                table.index_select(&idx, 0).map_err(err)
            }
            _ => Ok(embeds),
        }
    }

    /// Continue each prompt `opts.samples` times with a KV cache: greedy when `temperature` is
    /// 0, else sampling from the temperature-scaled distribution cut to its top-p mass; a stop
    /// token ends a sequence (and is included). Outputs are prompt-major (prompt 0's samples
    /// first). Each prompt is prefilled once; then all sequences decode together, one batched
    /// step per token, and finished ones leave the batch. Sequence k draws from its own random
    /// stream, so a result depends on the seed and its index, not on the batch around it.
    pub fn generate(&self, prompts: &[Prompt], opts: &GenerateOptions) -> Result<Vec<Vec<u32>>> {
        self.detached().generate_untracked(prompts, opts)
    }

    fn generate_untracked(&self, prompts: &[Prompt], opts: &GenerateOptions) -> Result<Vec<Vec<u32>>> {
        let err = |e: candle_core::Error| Error::Run(format!("model: {e}"));
        let n = opts.samples.max(1);
        let total = prompts.len() * n;
        let mut outs = vec![Vec::new(); total];
        if total == 0 || opts.max_new_tokens == 0 {
            return Ok(outs);
        }
        let mut rngs: Vec<_> =
            (0..total).map(|k| crate::rng::Rng::for_item(opts.seed, 0x6765_6e65, k as u64)).collect();
        let mut caches = Vec::with_capacity(prompts.len());
        let mut first = Vec::with_capacity(prompts.len());
        let mut next = Vec::with_capacity(total);
        for (i, p) in prompts.iter().enumerate() {
            if p.ids.is_empty() {
                return Err(Error::Input(format!("generate: prompt {i} is empty")));
            }
            let x = self.embed_multimodal(&p.ids, p.pixel_values.as_ref(), &p.grids)?;
            let pos = self.positions(&p.ids, &p.grids, &[p.ids.len()])?;
            let after = pos.iter().flat_map(|a| a.iter()).copied().max().unwrap_or(0) + 1;
            next.extend(std::iter::repeat_n(after, n));
            let mut cache = KvCache::default();
            first.push(
                self.text
                    .forward_cached(&x, &pos, &mut cache)?
                    .to_dtype(DType::F32)
                    .and_then(|t| t.to_vec1::<f32>())
                    .map_err(err)?,
            );
            caches.push(cache);
        }
        let rows: Vec<u32> = (0..total).map(|k| (k / n) as u32).collect();
        let mut batch = text::BatchCache::stack(&caches.iter().collect::<Vec<_>>())?.select(&rows)?;
        drop(caches);
        let mut logits: Vec<Vec<f32>> = (0..total).map(|k| first[k / n].clone()).collect();
        let mut active: Vec<usize> = (0..total).collect();
        // the vision markers are never generated: an image pad token without an image would
        // leave the sequence with more image tokens than features when it is trained on
        let banned: Vec<usize> =
            [self.config.image_token_id, self.config.vision_start_token_id, self.config.vision_end_token_id]
                .into_iter()
                .flatten()
                .map(|t| t as usize)
                .filter(|&t| t < first.first().map_or(0, Vec::len))
                .collect();
        loop {
            let mut keep = Vec::with_capacity(active.len());
            let mut toks = Vec::with_capacity(active.len());
            for (row, &k) in active.iter().enumerate() {
                for &b in &banned {
                    logits[row][b] = f32::NEG_INFINITY;
                }
                let tok = sample(&logits[row], opts.temperature, opts.top_p, &mut rngs[k]);
                outs[k].push(tok);
                if !opts.stop.contains(&tok) && outs[k].len() < opts.max_new_tokens {
                    keep.push(row as u32);
                    toks.push(tok);
                }
            }
            if keep.is_empty() {
                return Ok(outs);
            }
            if keep.len() < active.len() {
                batch = batch.select(&keep)?;
                active = keep.iter().map(|&r| active[r as usize]).collect();
            }
            let p: Vec<u32> = active.iter().map(|&k| next[k]).collect();
            let x = self.text.embed(&toks)?;
            logits = self
                .text
                .forward_step(&x, &[p.clone(), p.clone(), p], &mut batch)?
                .to_dtype(DType::F32)
                .and_then(|t| t.to_vec2::<f32>())
                .map_err(err)?;
            for &k in &active {
                next[k] += 1;
            }
        }
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

/// A prompt for [`CausalLm::generate`]: token ids (images as their pad runs) and the images.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    pub ids: Vec<u32>,
    pub pixel_values: Option<Tensor>,
    pub grids: Vec<[u32; 3]>,
}

/// Sampling settings.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// 0: greedy.
    pub temperature: f64,
    /// Nucleus mass kept (1: all).
    pub top_p: f64,
    pub stop: Vec<u32>,
    pub seed: u64,
    /// Continuations per prompt (GRPO groups); 0 counts as 1.
    pub samples: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { max_new_tokens: 64, temperature: 0.0, top_p: 1.0, stop: Vec::new(), seed: 0, samples: 1 }
    }
}

/// Pick the next token from logits: the first maximum when greedy, else a draw from the
/// softmax of logits / temperature restricted to the smallest set of tokens holding `top_p`.
pub fn sample(logits: &[f32], temperature: f64, top_p: f64, rng: &mut crate::rng::Rng) -> u32 {
    let argmax = || logits.iter().enumerate().fold(0usize, |b, (i, &v)| if v > logits[b] { i } else { b }) as u32;
    if temperature <= 0.0 {
        return argmax();
    }
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(u32, f64)> =
        logits.iter().enumerate().map(|(i, &v)| (i as u32, ((v as f64 - max) / temperature).exp())).collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    if top_p >= 1.0 {
        // the whole distribution: no need to order it
        let mut r = rng.f64() * total;
        for p in &probs {
            r -= p.1;
            if r <= 0.0 {
                return p.0;
            }
        }
        return probs.iter().rev().find(|p| p.1 > 0.0).map_or(0, |p| p.0);
    }
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut kept = 0.0;
    let mut n = 0;
    for p in &probs {
        kept += p.1 / total;
        n += 1;
        if kept >= top_p {
            break;
        }
    }
    let mass: f64 = probs[..n].iter().map(|p| p.1).sum();
    let mut r = rng.f64() * mass;
    for p in &probs[..n] {
        r -= p.1;
        if r <= 0.0 {
            return p.0;
        }
    }
    probs[n - 1].0
}

/// M-RoPE positions of a packed row, restarting at each segment: text tokens advance all three
/// axes together; an image's pad tokens take (start + t, start + row, start + column) over its
/// merged grid, and the text after it continues at start + max(rows, columns).
pub fn mrope_positions(
    ids: &[u32],
    grids: &[[u32; 3]],
    image_token: Option<u32>,
    merge: u32,
    segments: &[usize],
) -> Result<Positions> {
    let mut pos: Positions =
        [Vec::with_capacity(ids.len()), Vec::with_capacity(ids.len()), Vec::with_capacity(ids.len())];
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
