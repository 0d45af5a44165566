//! The Qwen2-VL / Qwen2.5-VL vision tower: 14-pixel patches over 2 frames (a linear map equal
//! to the Conv3d), 2-D rotary positions in 2x2 merge order, transformer blocks (Qwen2-VL:
//! LayerNorm and QuickGELU MLP, full attention per image; Qwen2.5-VL: RMSNorm and SwiGLU MLP,
//! window attention except in `fullatt_block_indexes`), and the 2x2 patch merger into the
//! decoder's width. Attention never crosses images.

use candle_core::{DType, Device, Tensor};

use super::config::{VisionConfig, VisionKind};
use super::ops::{accumulate_dtype, layer_norm, linear, quick_gelu, rms_norm, rope, silu, softmax_last_dim};
use super::weights::Weights;
use crate::error::{Error, Result};

fn ce(e: candle_core::Error) -> Error {
    Error::Run(format!("vision: {e}"))
}

#[derive(Clone)]
enum Mlp {
    Gelu { fc1: (Tensor, Tensor), fc2: (Tensor, Tensor) },
    Swiglu { gate: (Tensor, Tensor), up: (Tensor, Tensor), down: (Tensor, Tensor) },
}

#[derive(Clone)]
struct Block {
    norm1: (Tensor, Option<Tensor>),
    norm2: (Tensor, Option<Tensor>),
    qkv: (Tensor, Tensor),
    proj: (Tensor, Tensor),
    mlp: Mlp,
}

/// Which parts of the vision side train. A frozen part gets no gradient: the graph is cut at
/// its output, so the backward pass never enters it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freeze {
    /// The patch embedding and the transformer blocks.
    pub tower: bool,
    /// The 2x2 patch merger (a trainable tower still gets gradients through it).
    pub merger: bool,
}

/// The vision encoder with its merger.
#[derive(Clone)]
pub struct VisionModel {
    pub cfg: VisionConfig,
    /// Parts that train no more (set by a trainer).
    pub freeze: Freeze,
    patch: Tensor,
    blocks: Vec<Block>,
    ln_q: (Tensor, Option<Tensor>),
    mlp0: (Tensor, Tensor),
    mlp2: (Tensor, Tensor),
    inv_freq: Vec<f64>,
    device: Device,
    dtype: DType,
}

impl VisionModel {
    /// A copy whose weights record no gradients (sharing storage with these).
    pub fn detached(&self) -> Self {
        let d = |t: &Tensor| t.detach();
        let pair = |p: &(Tensor, Tensor)| (d(&p.0), d(&p.1));
        let norm = |p: &(Tensor, Option<Tensor>)| (d(&p.0), p.1.as_ref().map(d));
        let blocks = self
            .blocks
            .iter()
            .map(|b| Block {
                norm1: norm(&b.norm1),
                norm2: norm(&b.norm2),
                qkv: pair(&b.qkv),
                proj: pair(&b.proj),
                mlp: match &b.mlp {
                    Mlp::Gelu { fc1, fc2 } => Mlp::Gelu { fc1: pair(fc1), fc2: pair(fc2) },
                    Mlp::Swiglu { gate, up, down } => Mlp::Swiglu { gate: pair(gate), up: pair(up), down: pair(down) },
                },
            })
            .collect();
        Self {
            patch: d(&self.patch),
            blocks,
            ln_q: norm(&self.ln_q),
            mlp0: pair(&self.mlp0),
            mlp2: pair(&self.mlp2),
            ..self.clone()
        }
    }

    /// Take the weights under `prefix` (`visual`).
    pub fn load(cfg: &VisionConfig, w: &mut Weights, prefix: &str) -> Result<Self> {
        let e = cfg.embed_dim;
        let patch_in = cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size * cfg.patch_size;
        let conv = w.get(
            &format!("{prefix}.patch_embed.proj.weight"),
            (e, cfg.in_channels, cfg.temporal_patch_size, cfg.patch_size, cfg.patch_size),
        )?;
        let patch = conv.reshape((e, patch_in)).map_err(ce)?;
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let p = format!("{prefix}.blocks.{i}");
            let qkv = lin(w, format!("{p}.attn.qkv"), 3 * e, e)?;
            let proj = lin(w, format!("{p}.attn.proj"), e, e)?;
            let mlp = match cfg.kind {
                VisionKind::Qwen2Vl => Mlp::Gelu {
                    fc1: lin(w, format!("{p}.mlp.fc1"), cfg.intermediate_size, e)?,
                    fc2: lin(w, format!("{p}.mlp.fc2"), e, cfg.intermediate_size)?,
                },
                VisionKind::Qwen25Vl => Mlp::Swiglu {
                    gate: lin(w, format!("{p}.mlp.gate_proj"), cfg.intermediate_size, e)?,
                    up: lin(w, format!("{p}.mlp.up_proj"), cfg.intermediate_size, e)?,
                    down: lin(w, format!("{p}.mlp.down_proj"), e, cfg.intermediate_size)?,
                },
            };
            blocks.push(Block {
                norm1: norm(cfg, w, &format!("{p}.norm1"), e)?,
                norm2: norm(cfg, w, &format!("{p}.norm2"), e)?,
                qkv,
                proj,
                mlp,
            });
        }
        let m2 = cfg.spatial_merge_size * cfg.spatial_merge_size;
        let ln_q = norm(cfg, w, &format!("{prefix}.merger.ln_q"), e)?;
        let mlp0 = lin(w, format!("{prefix}.merger.mlp.0"), e * m2, e * m2)?;
        let mlp2 = lin(w, format!("{prefix}.merger.mlp.2"), cfg.out_hidden_size, e * m2)?;
        let head_dim = e / cfg.num_heads;
        let dim = head_dim / 2;
        let inv_freq = (0..dim / 2).map(|j| 1.0 / 10000f64.powf(2.0 * j as f64 / dim as f64)).collect();
        Ok(Self {
            cfg: cfg.clone(),
            freeze: Freeze::default(),
            patch,
            blocks,
            ln_q,
            mlp0,
            mlp2,
            inv_freq,
            device: w.device.clone(),
            dtype: w.dtype,
        })
    }

    /// Features of the images (one row per merged 2x2 patch group, in image order) from the
    /// processor's `pixel_values` (patches, C*T*P*P) and each image's grid (t, h, w) in patches.
    pub fn forward(&self, pixel_values: &Tensor, grids: &[[u32; 3]]) -> Result<Tensor> {
        let m = self.cfg.spatial_merge_size;
        let m2 = m * m;
        let n: usize = grids.iter().map(|g| (g[0] * g[1] * g[2]) as usize).sum();
        if pixel_values.dim(0).map_err(ce)? != n {
            return Err(Error::Run(format!(
                "vision: {} patch rows for grids totalling {n}",
                pixel_values.dim(0).map_err(ce)?
            )));
        }
        let x = linear(&pixel_values.to_dtype(self.dtype).map_err(ce)?, &self.patch, None).map_err(ce)?;
        let (cos, sin) = self.rope_tables(grids)?;
        // full attention per frame; Qwen2.5-VL windows of merged groups, in window order
        let frames: Vec<usize> =
            grids.iter().flat_map(|g| std::iter::repeat_n((g[1] * g[2]) as usize, g[0] as usize)).collect();
        let (order, windows) = match self.cfg.kind {
            VisionKind::Qwen2Vl => ((0..n / m2).collect::<Vec<_>>(), frames.clone()),
            VisionKind::Qwen25Vl => self.window_index(grids),
        };
        let group_rows = |t: &Tensor| -> candle_core::Result<Tensor> {
            let d = t.dim(1)?;
            let idx = Tensor::from_vec(order.iter().map(|&i| i as u32).collect::<Vec<_>>(), order.len(), &self.device)?;
            t.reshape((n / m2, m2 * d))?.index_select(&idx, 0)?.reshape((n, d))
        };
        let mut x = group_rows(&x).map_err(ce)?;
        let cos = group_rows(&cos).map_err(ce)?.unsqueeze(1).map_err(ce)?;
        let sin = group_rows(&sin).map_err(ce)?.unsqueeze(1).map_err(ce)?;
        for (i, b) in self.blocks.iter().enumerate() {
            let full = self.cfg.kind == VisionKind::Qwen2Vl || self.cfg.fullatt_block_indexes.contains(&i);
            let chunks = if full { &frames } else { &windows };
            x = self.block(b, &x, &cos, &sin, chunks).map_err(ce)?;
        }
        if self.freeze.tower {
            x = x.detach();
        }
        let e = self.cfg.embed_dim;
        let y = self.apply_norm(&self.ln_q, &x).map_err(ce)?.reshape((n / m2, e * m2)).map_err(ce)?;
        let y = linear(&y, &self.mlp0.0, Some(&self.mlp0.1)).and_then(|t| t.gelu_erf()).map_err(ce)?;
        let y = linear(&y, &self.mlp2.0, Some(&self.mlp2.1)).map_err(ce)?;
        let y = if self.freeze.tower && self.freeze.merger { y.detach() } else { y };
        // back from window order to image order
        let mut inverse = vec![0u32; order.len()];
        for (pos, &g) in order.iter().enumerate() {
            inverse[g] = pos as u32;
        }
        let idx = Tensor::from_vec(inverse, order.len(), &self.device).map_err(ce)?;
        y.index_select(&idx, 0).map_err(ce)
    }

    fn apply_norm(&self, n: &(Tensor, Option<Tensor>), x: &Tensor) -> candle_core::Result<Tensor> {
        match &n.1 {
            Some(b) => layer_norm(x, &n.0, b, 1e-6),
            None => rms_norm(x, &n.0, 1e-6),
        }
    }

    fn block(
        &self,
        b: &Block,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        chunks: &[usize],
    ) -> candle_core::Result<Tensor> {
        let (n, e) = x.dims2()?;
        let heads = self.cfg.num_heads;
        let hd = e / heads;
        let h = self.apply_norm(&b.norm1, x)?;
        let qkv = linear(&h, &b.qkv.0, Some(&b.qkv.1))?.reshape((n, 3, heads, hd))?;
        let q = rope(&qkv.narrow(1, 0, 1)?.squeeze(1)?, cos, sin)?;
        let k = rope(&qkv.narrow(1, 1, 1)?.squeeze(1)?, cos, sin)?;
        let v = qkv.narrow(1, 2, 1)?.squeeze(1)?;
        let scale = 1.0 / (hd as f64).sqrt();
        let mut outs = Vec::new();
        let mut start = 0;
        for &len in chunks.iter().filter(|&&l| l > 0) {
            let qs = q.narrow(0, start, len)?.transpose(0, 1)?.contiguous()?;
            let ks = k.narrow(0, start, len)?.transpose(0, 1)?.contiguous()?;
            let vs = v.narrow(0, start, len)?.transpose(0, 1)?.contiguous()?;
            let s = (qs.matmul(&ks.t()?.contiguous()?)? * scale)?.to_dtype(accumulate_dtype(vs.dtype()))?;
            let p = softmax_last_dim(&s)?.to_dtype(vs.dtype())?;
            outs.push(p.matmul(&vs)?.transpose(0, 1)?.reshape((len, e))?);
            start += len;
        }
        let o = Tensor::cat(&outs, 0)?;
        let x = (x + linear(&o, &b.proj.0, Some(&b.proj.1))?)?;
        let h = self.apply_norm(&b.norm2, &x)?;
        let m = match &b.mlp {
            Mlp::Gelu { fc1, fc2 } => linear(&quick_gelu(&linear(&h, &fc1.0, Some(&fc1.1))?)?, &fc2.0, Some(&fc2.1))?,
            Mlp::Swiglu { gate, up, down } => {
                let g = silu(&linear(&h, &gate.0, Some(&gate.1))?)?;
                linear(&(g * linear(&h, &up.0, Some(&up.1))?)?, &down.0, Some(&down.1))?
            }
        };
        x + m
    }

    /// cos/sin (patches, head_dim) of the 2-D positions, patches in 2x2 merge order.
    fn rope_tables(&self, grids: &[[u32; 3]]) -> Result<(Tensor, Tensor)> {
        let m = self.cfg.spatial_merge_size as u32;
        let q = self.inv_freq.len();
        let hd = 4 * q;
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for g in grids {
            let (t, h, w) = (g[0], g[1], g[2]);
            for _ in 0..t {
                for bh in 0..h / m {
                    for bw in 0..w / m {
                        for ih in 0..m {
                            for iw in 0..m {
                                let (ph, pw) = ((bh * m + ih) as f64, (bw * m + iw) as f64);
                                let angles: Vec<f64> = self
                                    .inv_freq
                                    .iter()
                                    .map(|&f| ph * (f as f32) as f64)
                                    .chain(self.inv_freq.iter().map(|&f| pw * (f as f32) as f64))
                                    .collect();
                                for _rep in 0..2 {
                                    for a in &angles {
                                        cos.push(a.cos() as f32);
                                        sin.push(a.sin() as f32);
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let n = cos.len() / hd;
        let mk =
            |v: Vec<f32>| Tensor::from_vec(v, (n, hd), &self.device).and_then(|t| t.to_dtype(self.dtype)).map_err(ce);
        Ok((mk(cos)?, mk(sin)?))
    }

    /// Qwen2.5-VL: the order of merged groups window by window, and each window's patch count.
    fn window_index(&self, grids: &[[u32; 3]]) -> (Vec<usize>, Vec<usize>) {
        let m = self.cfg.spatial_merge_size;
        let ws = (self.cfg.window_size / m / self.cfg.patch_size).max(1);
        let (mut order, mut lens) = (Vec::new(), Vec::new());
        let mut base = 0usize;
        for g in grids {
            let (t, gh, gw) = (g[0] as usize, g[1] as usize / m, g[2] as usize / m);
            let (nh, nw) = (gh.div_ceil(ws), gw.div_ceil(ws));
            for f in 0..t {
                for wy in 0..nh {
                    for wx in 0..nw {
                        let mut count = 0;
                        for y in wy * ws..((wy + 1) * ws).min(gh) {
                            for x in wx * ws..((wx + 1) * ws).min(gw) {
                                order.push(base + f * gh * gw + y * gw + x);
                                count += 1;
                            }
                        }
                        lens.push(count * m * m);
                    }
                }
            }
            base += t * gh * gw;
        }
        (order, lens)
    }
}

/// A linear layer with bias: (weight (out, in), bias).
fn lin(w: &mut Weights, name: String, out: usize, inp: usize) -> Result<(Tensor, Tensor)> {
    Ok((w.get(&format!("{name}.weight"), (out, inp))?, w.get(&format!("{name}.bias"), out)?))
}

fn norm(cfg: &VisionConfig, w: &mut Weights, name: &str, dim: usize) -> Result<(Tensor, Option<Tensor>)> {
    let weight = w.get(&format!("{name}.weight"), dim)?;
    let bias = match cfg.kind {
        VisionKind::Qwen2Vl => Some(w.get(&format!("{name}.bias"), dim)?),
        VisionKind::Qwen25Vl => None,
    };
    Ok((weight, bias))
}
