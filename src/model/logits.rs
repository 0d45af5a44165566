//! Logits of a model on given token ids and images, written to a safetensors file: for
//! checking a model or checkpoint against another implementation (`cotforge logits`).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use super::CausalLm;
use crate::error::{Error, Result};

/// What to compute the logits of.
pub struct LogitsRequest<'a> {
    pub model: &'a Path,
    /// Token ids; each image's pad tokens must be there in full.
    pub ids: &'a [u32],
    /// Image files in order, each resized with the Qwen2-VL processor's `smart_resize`.
    pub images: &'a [PathBuf],
    pub min_pixels: u64,
    pub max_pixels: u64,
}

/// Write `logits` (L, vocab) in f32 to `out` (atomically); returns the number of images.
pub fn write_logits(req: &LogitsRequest, out: &Path) -> Result<usize> {
    let m = CausalLm::load(req.model, DType::F32, &Device::Cpu)?.detached();
    // each image at the processor's smart_resize of its size, as patch grids
    let patch = m.config.vision.as_ref().map_or(14, |v| v.patch_size) as u32;
    let (mut images, mut grids) = (Vec::new(), Vec::new());
    for p in req.images {
        let bytes = std::fs::read(p).map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
        let (w, h) = crate::image::measure(&bytes)
            .ok_or_else(|| Error::Input(format!("{}: not a readable image", p.display())))?;
        let (nh, nw) = crate::text::tokens::smart_resize(h, w, req.min_pixels, req.max_pixels);
        grids.push([1, nh / patch, nw / patch]);
        images.push(bytes);
    }
    let px = m.pixel_values_for(&images, &grids, "--image")?;
    let err = |e: candle_core::Error| Error::Run(format!("logits: {e}"));
    let ids = req.ids;
    let logits = m.logits_multimodal(ids, px.as_ref(), &grids, &[ids.len()])?.to_dtype(DType::F32).map_err(err)?;
    let map = std::collections::HashMap::from([("logits".to_string(), logits)]);
    let tmp = crate::io::tmp_name(out, 0);
    candle_core::safetensors::save(&map, &tmp).map_err(|e| Error::Run(format!("writing {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, out).map_err(|e| Error::io(format!("renaming {} to {}", tmp.display(), out.display()), e))?;
    Ok(grids.len())
}
