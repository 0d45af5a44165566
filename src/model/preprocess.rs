//! Image preprocessing equal to Hugging Face's Qwen2-VL image processor (PIL backend):
//! `smart_resize` to multiples of 28, bicubic resampling as PIL does it on 8-bit images (its
//! separable filter with a = -0.5, widened when shrinking, fixed-point coefficients, horizontal
//! pass then vertical, each rounded and clipped to 0..255), rescale by 1/255, CLIP mean/std
//! normalisation, and patchify into rows of (C, T, 14, 14) in 2x2 merge order.

use crate::text::tokens::smart_resize;

/// OpenAI CLIP mean and std, as the Qwen2-VL processor normalises (its digits, as published).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

const PRECISION_BITS: u32 = 32 - 8 - 2;

fn bicubic(x: f64) -> f64 {
    let a = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * a
    } else {
        0.0
    }
}

/// PIL's per-output-pixel source window and fixed-point weights for one axis.
fn coefficients(in_size: usize, out_size: usize) -> (Vec<(usize, usize)>, Vec<Vec<i32>>) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = 2.0 * filterscale;
    let (mut bounds, mut weights) = (Vec::with_capacity(out_size), Vec::with_capacity(out_size));
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let w: Vec<f64> = (0..n).map(|x| bicubic((x as f64 + xmin as f64 - center + 0.5) * ss)).collect();
        let total: f64 = w.iter().sum();
        let fixed = w
            .iter()
            .map(|&k| {
                let k = if total != 0.0 { k / total } else { k };
                let v = k * (1u32 << PRECISION_BITS) as f64;
                (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
            })
            .collect();
        bounds.push((xmin, n));
        weights.push(fixed);
    }
    (bounds, weights)
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resize interleaved RGB bytes (w x h) to (nw x nh) as PIL's `Image.resize(..., BICUBIC)`.
pub fn resize_bicubic(rgb: &[u8], w: usize, h: usize, nw: usize, nh: usize) -> Vec<u8> {
    if nw == w && nh == h {
        return rgb.to_vec();
    }
    let init = 1i64 << (PRECISION_BITS - 1);
    let (vb, vk) = coefficients(h, nh);
    // the horizontal pass covers only the source rows the vertical pass reads
    let (first, last) = (vb[0].0, vb[nh - 1].0 + vb[nh - 1].1);
    let (tmp, shift) = if nw != w {
        let (hb, hk) = coefficients(w, nw);
        let mut out = vec![0u8; (last - first) * nw * 3];
        for y in 0..last - first {
            let src = &rgb[(y + first) * w * 3..(y + first + 1) * w * 3];
            for (x, ((xmin, n), k)) in hb.iter().zip(&hk).enumerate() {
                for c in 0..3 {
                    let mut ss = init;
                    for i in 0..*n {
                        ss += src[(xmin + i) * 3 + c] as i64 * k[i] as i64;
                    }
                    out[(y * nw + x) * 3 + c] = clip8(ss);
                }
            }
        }
        (out, first)
    } else {
        (rgb.to_vec(), 0)
    };
    if nh == h {
        return tmp;
    }
    let mut out = vec![0u8; nh * nw * 3];
    for (y, ((ymin, n), k)) in vb.iter().zip(&vk).enumerate() {
        for x in 0..nw * 3 {
            let mut ss = init;
            for i in 0..*n {
                ss += tmp[(ymin - shift + i) * nw * 3 + x] as i64 * k[i] as i64;
            }
            out[y * nw * 3 + x] = clip8(ss);
        }
    }
    out
}

/// The processor's output for one RGB image: `pixel_values` rows (patches, 3 * T * P * P) and
/// the grid (1, h / P, w / P).
#[allow(clippy::too_many_arguments)]
pub fn pixel_values(
    rgb: &[u8],
    width: usize,
    height: usize,
    min_pixels: u64,
    max_pixels: u64,
    patch: usize,
    merge: usize,
    temporal: usize,
) -> (Vec<f32>, [u32; 3]) {
    let (nh, nw) = smart_resize(height as u32, width as u32, min_pixels, max_pixels);
    let grid = [1, nh / patch as u32, nw / patch as u32];
    (pixel_values_at(rgb, width, height, grid, patch, merge, temporal), grid)
}

/// `pixel_values` for an image resized to a known grid (1, gh, gw) of patches (the grid the
/// tokenize stage recorded in the shards).
pub fn pixel_values_at(
    rgb: &[u8],
    width: usize,
    height: usize,
    grid: [u32; 3],
    patch: usize,
    merge: usize,
    temporal: usize,
) -> Vec<f32> {
    let (gh, gw) = (grid[1] as usize, grid[2] as usize);
    let (nh, nw) = (gh * patch, gw * patch);
    let img = resize_bicubic(rgb, width, height, nw, nh);
    let value = |y: usize, x: usize, c: usize| -> f32 {
        let v = (img[(y * nw + x) * 3 + c] as f64 * (1.0 / 255.0)) as f32;
        (v - CLIP_MEAN[c]) / CLIP_STD[c]
    };
    let cols = 3 * temporal * patch * patch;
    let mut out = Vec::with_capacity(gh * gw * cols);
    for bh in 0..gh / merge {
        for bw in 0..gw / merge {
            for ih in 0..merge {
                for iw in 0..merge {
                    let (py0, px0) = ((bh * merge + ih) * patch, (bw * merge + iw) * patch);
                    for c in 0..3 {
                        for _t in 0..temporal {
                            for py in 0..patch {
                                for px in 0..patch {
                                    out.push(value(py0 + py, px0 + px, c));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    out
}
