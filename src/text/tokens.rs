//! Token counts: a Hugging Face `tokenizer.json` for text, and the Qwen2-VL policy for images.
//!
//! The Qwen2.5 tokenizer (`fixtures/tokenizers/qwen2.5`) is built into the binary and is the
//! default. Image tokens follow Qwen2-VL's `smart_resize`: each side is rounded to a multiple of
//! 28 (Python's round-half-even), the area is brought within `[min_pixels, max_pixels]`, and an
//! image costs `h * w / 28^2` `<|image_pad|>` tokens plus `<|vision_start|>` and `<|vision_end|>`.

use std::path::Path;

use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// The bundled Qwen2.5 `tokenizer.json`.
pub const BUNDLED_QWEN25: &[u8] = include_bytes!("../../fixtures/tokenizers/qwen2.5/tokenizer.json");

/// Qwen2-VL patch merge size in pixels (14-pixel patches, merged 2x2).
pub const FACTOR: u32 = 28;
/// Qwen2-VL processor defaults.
pub const DEFAULT_MIN_PIXELS: u64 = 56 * 56;
pub const DEFAULT_MAX_PIXELS: u64 = 28 * 28 * 1280;

/// A loaded tokenizer with the blake3 of its file (for manifests).
pub struct TokenCounter {
    tokenizer: Tokenizer,
    pub blake3: String,
}

impl TokenCounter {
    /// The bundled Qwen2.5 tokenizer.
    pub fn bundled() -> Result<Self> {
        Self::from_bytes(BUNDLED_QWEN25, "bundled Qwen2.5 tokenizer")
    }

    /// A `tokenizer.json` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(format!("reading tokenizer {}", path.display()), e))?;
        Self::from_bytes(&bytes, &path.display().to_string())
    }

    fn from_bytes(bytes: &[u8], what: &str) -> Result<Self> {
        let tokenizer = Tokenizer::from_bytes(bytes)
            .map_err(|e| Error::Input(format!("{what}: not a usable tokenizer.json: {e}")))?;
        Ok(Self { tokenizer, blake3: blake3::hash(bytes).to_hex().to_string() })
    }

    /// Token ids of a text (special tokens in the text are recognised; nothing is added).
    pub fn ids(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Run(format!("tokenizing: {e}")))
    }

    /// Number of tokens of a text.
    pub fn count(&self, text: &str) -> Result<usize> {
        self.tokenizer.encode_fast(text, false).map(|e| e.len()).map_err(|e| Error::Run(format!("tokenizing: {e}")))
    }

    /// Tokens of `text`, and how many of them lie inside each byte range of `spans` (a token
    /// counts for a span when it starts and ends within it). One encoding of the whole text:
    /// the counts are those of the sequence the model sees, not of the pieces encoded apart.
    pub fn count_spans(&self, text: &str, spans: &[std::ops::Range<usize>]) -> Result<(usize, Vec<usize>)> {
        let enc = self.tokenizer.encode(text, false).map_err(|e| Error::Run(format!("tokenizing: {e}")))?;
        let mut counts = vec![0usize; spans.len()];
        for &(a, b) in enc.get_offsets() {
            for (c, s) in counts.iter_mut().zip(spans) {
                if a >= s.start && b <= s.end {
                    *c += 1;
                }
            }
        }
        Ok((enc.len(), counts))
    }

    /// The underlying tokenizer (for batch encoding baselines).
    pub fn inner(&self) -> &Tokenizer {
        &self.tokenizer
    }
}

/// Python's `round()` (half to even) of a non-negative ratio.
fn round_half_even(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc() - 0.5).abs() < 1e-12 && r % 2.0 != 0.0 { r - 1.0 } else { r }
}

/// Qwen2-VL `smart_resize`: the (height, width) an image is resized to. Same arithmetic as
/// transformers (checked against it in tests); where transformers refuses an aspect ratio over
/// 200, this still answers.
pub fn smart_resize(height: u32, width: u32, min_pixels: u64, max_pixels: u64) -> (u32, u32) {
    let f = FACTOR as f64;
    let (h, w) = (height.max(1) as f64, width.max(1) as f64);
    let mut hb = round_half_even(h / f) * f;
    let mut wb = round_half_even(w / f) * f;
    if hb * wb > max_pixels as f64 {
        let beta = (h * w / max_pixels as f64).sqrt();
        hb = ((h / beta / f).floor() * f).max(f);
        wb = ((w / beta / f).floor() * f).max(f);
    } else if hb * wb < min_pixels as f64 {
        let beta = (min_pixels as f64 / (h * w)).sqrt();
        hb = (h * beta / f).ceil() * f;
        wb = (w * beta / f).ceil() * f;
    }
    (hb as u32, wb as u32)
}

/// `<|image_pad|>` tokens of one image under the Qwen2-VL policy.
pub fn image_pad_tokens(height: u32, width: u32, min_pixels: u64, max_pixels: u64) -> u64 {
    let (h, w) = smart_resize(height, width, min_pixels, max_pixels);
    (h as u64 * w as u64) / (FACTOR as u64 * FACTOR as u64)
}

/// Throughput of token counting on `texts`: (raw `tokenizers` `encode_batch_fast` tokens/s,
/// cotforge's per-row counting as `filter.length` does it, tokens/s, total tokens).
pub fn bench_counting(tk: &TokenCounter, texts: &[String]) -> Result<(f64, f64, usize)> {
    use rayon::prelude::*;
    let t = std::time::Instant::now();
    let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let enc = tk.inner().encode_batch_fast(inputs, false).map_err(|e| Error::Run(format!("tokenizing: {e}")))?;
    let raw_total: usize = enc.iter().map(|e| e.len()).sum();
    let raw = raw_total as f64 / t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let ours_total: usize = texts.par_iter().map(|s| tk.count(s)).collect::<Result<Vec<_>>>()?.into_iter().sum();
    let ours = ours_total as f64 / t.elapsed().as_secs_f64();
    if ours_total != raw_total {
        return Err(Error::Run(format!("token totals differ: {raw_total} (batch) vs {ours_total} (per row)")));
    }
    Ok((raw, ours, raw_total))
}
