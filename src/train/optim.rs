//! AdamW with f32 moments (and f32 master weights for half-precision parameters), weight decay
//! only on matrices, global-norm clipping, and warmup + cosine / linear / constant schedules
//! that follow `transformers`' schedulers step for step.

use std::collections::BTreeMap;

use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

fn ce(e: candle_core::Error) -> Error {
    Error::Run(format!("optimizer: {e}"))
}

/// Learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Cosine,
    Linear,
    Constant,
}

/// The multiplier of the peak learning rate at optimizer step `step` (0-based) of `total`, as
/// `get_{cosine,linear,constant}_schedule_with_warmup`: linear warmup from 0 over `warmup`
/// steps, then the schedule down to 0 at `total`.
pub fn lr_factor(schedule: Schedule, step: usize, warmup: usize, total: usize) -> f64 {
    if step < warmup {
        return step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    match schedule {
        Schedule::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
        Schedule::Linear => (1.0 - progress).max(0.0),
        Schedule::Constant => 1.0,
    }
}

/// AdamW hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdamWConfig {
    #[serde(default = "default_beta1")]
    pub beta1: f64,
    #[serde(default = "default_beta2")]
    pub beta2: f64,
    #[serde(default = "default_eps")]
    pub eps: f64,
    #[serde(default)]
    pub weight_decay: f64,
}

fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: default_beta1(), beta2: default_beta2(), eps: default_eps(), weight_decay: 0.0 }
    }
}

struct Slot {
    var: Var,
    /// f32 copy of a half-precision parameter; the variable is its rounding.
    master: Option<Tensor>,
    m: Tensor,
    v: Tensor,
    decay: bool,
    /// Multiplier of the learning rate for this parameter.
    lr_scale: f64,
}

/// AdamW over named variables.
pub struct AdamW {
    pub cfg: AdamWConfig,
    slots: BTreeMap<String, Slot>,
    /// Optimizer steps taken.
    pub steps: u64,
}

/// Whether a parameter gets weight decay: matrices do; biases and norm weights (1-D) do not.
pub fn decays(var: &Var) -> bool {
    var.as_tensor().rank() >= 2
}

impl AdamW {
    pub fn new(vars: &BTreeMap<String, Var>, cfg: AdamWConfig) -> Result<Self> {
        let mut slots = BTreeMap::new();
        for (name, var) in vars {
            let t = var.as_tensor();
            let master =
                if t.dtype() == DType::F32 { None } else { Some(t.detach().to_dtype(DType::F32).map_err(ce)?) };
            // separate storage for each moment: the CPU update writes them in place
            let z = || Tensor::zeros(t.shape(), DType::F32, t.device()).map_err(ce);
            slots.insert(
                name.clone(),
                Slot { var: var.clone(), master, m: z()?, v: z()?, decay: decays(var), lr_scale: 1.0 },
            );
        }
        Ok(Self { cfg, slots, steps: 0 })
    }

    /// Multiply the learning rate of each parameter by `scale(name)` (parameter groups).
    pub fn scale_lr(&mut self, scale: impl Fn(&str) -> f64) {
        for (name, s) in self.slots.iter_mut() {
            s.lr_scale = scale(name);
        }
    }

    /// One update with learning rate `lr` from f32 gradients by name (a missing gradient counts
    /// as zero: the moments still decay, as in PyTorch for a parameter whose grad is zero).
    pub fn step(&mut self, grads: &BTreeMap<String, Tensor>, lr: f64) -> Result<()> {
        self.step_scaled(grads, 1.0, lr)
    }

    /// [`Self::step`] with the gradients multiplied by `scale` (clipping) on the way in. On the
    /// CPU, each parameter is updated in place by three fused passes (first moment, second
    /// moment, parameter) instead of a dozen tensor ops with their allocations.
    pub fn step_scaled(&mut self, grads: &BTreeMap<String, Tensor>, scale: f64, lr: f64) -> Result<()> {
        self.steps += 1;
        let c = self.cfg;
        let t = self.steps as i32;
        let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        for (name, s) in self.slots.iter_mut() {
            let lr = lr * s.lr_scale;
            let upd = (|| -> candle_core::Result<()> {
                let g = match grads.get(name) {
                    Some(g) => g.to_dtype(DType::F32)?,
                    None => s.m.zeros_like()?,
                };
                let decay = if s.decay { 1.0 - lr * c.weight_decay } else { 1.0 };
                if g.device().is_cpu() && g.is_contiguous() && s.m.is_contiguous() {
                    let p = match &s.master {
                        Some(m) => m.clone(),
                        None => s.var.as_tensor().clone(),
                    };
                    s.m.inplace_op2(&g, &fused::Moment { beta: c.beta1 as f32, scale: scale as f32, square: false })?;
                    s.v.inplace_op2(&g, &fused::Moment { beta: c.beta2 as f32, scale: scale as f32, square: true })?;
                    let update = fused::Update {
                        decay: decay as f32,
                        step: (lr / bc1) as f32,
                        bc2_sqrt: bc2.sqrt() as f32,
                        eps: c.eps as f32,
                    };
                    p.inplace_op3(&s.m, &s.v, &update)?;
                    if s.master.is_some() {
                        s.var.set(&p.to_dtype(s.var.dtype())?)?;
                    }
                    return Ok(());
                }
                let g = if scale != 1.0 { (g * scale)? } else { g };
                let p = match &s.master {
                    Some(m) => m.clone(),
                    None => s.var.as_tensor().detach(),
                };
                let p = if s.decay && c.weight_decay != 0.0 { (&p * (1.0 - lr * c.weight_decay))? } else { p };
                s.m = ((&s.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
                s.v = ((&s.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
                let denom = ((&s.v / bc2)?.sqrt()? + c.eps)?;
                let p = (p - ((&s.m / bc1)? / denom)?.affine(lr, 0.0)?)?;
                match &mut s.master {
                    Some(m) => {
                        s.var.set(&p.to_dtype(s.var.dtype())?)?;
                        *m = p;
                    }
                    None => s.var.set(&p)?,
                }
                Ok(())
            })();
            upd.map_err(|e| Error::Run(format!("optimizer: updating `{name}`: {e}")))?;
        }
        Ok(())
    }

    /// The state to save: moments and master weights as named f32 tensors.
    pub fn state_tensors(&self) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        for (name, s) in &self.slots {
            out.insert(format!("m.{name}"), s.m.clone());
            out.insert(format!("v.{name}"), s.v.clone());
            if let Some(m) = &s.master {
                out.insert(format!("master.{name}"), m.clone());
            }
        }
        out
    }

    /// Restore what [`Self::state_tensors`] saved (and the step count).
    pub fn load_state(&mut self, tensors: &std::collections::HashMap<String, Tensor>, steps: u64) -> Result<()> {
        for (name, s) in self.slots.iter_mut() {
            let (dims, device) = (s.m.dims().to_vec(), s.m.device().clone());
            let get = |k: String| -> Result<Tensor> {
                let t = tensors.get(&k).ok_or_else(|| Error::Input(format!("optimizer state: no tensor `{k}`")))?;
                if t.dims() != dims.as_slice() {
                    return Err(Error::Input(format!(
                        "optimizer state: `{k}` has shape {:?}, the model needs {dims:?}",
                        t.dims()
                    )));
                }
                t.to_device(&device).map_err(ce)
            };
            s.m = get(format!("m.{name}"))?;
            s.v = get(format!("v.{name}"))?;
            if s.master.is_some() {
                let m = get(format!("master.{name}"))?;
                s.var.set(&m.to_dtype(s.var.dtype()).map_err(ce)?).map_err(ce)?;
                s.master = Some(m);
            }
        }
        self.steps = steps;
        Ok(())
    }
}

/// Global L2 norm of the gradients (f32 CPU gradients are read in place).
pub fn global_norm(grads: &BTreeMap<String, Tensor>) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.values() {
        sq += match fused::sum_squares(g) {
            Some(s) => s,
            None => g.to_dtype(DType::F32).and_then(|g| g.sqr()?.sum_all()?.to_scalar::<f32>()).map_err(ce)? as f64,
        };
    }
    Ok(sq.sqrt())
}

/// The factor that scales gradients of global norm `norm` to at most `max_norm` (as
/// `clip_grad_norm_`: max_norm / (norm + 1e-6) when below 1; 1 when `max_norm` is 0).
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    let f = max_norm / (norm + 1e-6);
    if max_norm > 0.0 && f < 1.0 { f } else { 1.0 }
}

/// Scale gradients so their global norm is at most `max_norm` (see [`clip_factor`]). Returns
/// the norm before clipping.
pub fn clip(grads: &mut BTreeMap<String, Tensor>, max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    let f = clip_factor(norm, max_norm);
    if f != 1.0 {
        for g in grads.values_mut() {
            *g = (&*g * f).map_err(ce)?;
        }
    }
    Ok(norm)
}

/// In-place CPU kernels of the AdamW update, in PyTorch's arithmetic: `m = b1 m + (1 - b1) g`,
/// `v = b2 v + (1 - b2) g^2`, `p = p (1 - lr wd) - lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)`.
mod fused {
    use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Tensor};
    use rayon::prelude::*;

    const CHUNK: usize = 1 << 15;

    fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
        match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
            _ => candle_core::bail!("fused AdamW: expected a contiguous f32 tensor"),
        }
    }

    fn slice_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> candle_core::Result<&'a mut [f32]> {
        match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
            _ => candle_core::bail!("fused AdamW: expected a contiguous f32 tensor"),
        }
    }

    /// A moment's update from the gradient times `scale` (squared for the second moment).
    pub struct Moment {
        pub beta: f32,
        pub scale: f32,
        pub square: bool,
    }

    impl InplaceOp2 for Moment {
        fn name(&self) -> &'static str {
            "adamw-moment"
        }

        fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
            let (m, g) = (slice_mut(s1, l1)?, slice(s2, l2)?);
            if m.len() != g.len() {
                candle_core::bail!("fused AdamW: moment of {} values, gradient of {}", m.len(), g.len());
            }
            let (b, rest, scale, square) = (self.beta, 1.0 - self.beta, self.scale, self.square);
            m.par_chunks_mut(CHUNK).zip(g.par_chunks(CHUNK)).for_each(|(m, g)| {
                for (m, &g) in m.iter_mut().zip(g) {
                    let g = g * scale;
                    *m = b * *m + rest * if square { g * g } else { g };
                }
            });
            Ok(())
        }
    }

    /// The parameter's update from both moments.
    pub struct Update {
        /// 1 - lr * weight_decay (1 without decay).
        pub decay: f32,
        /// lr / (1 - beta1^t)
        pub step: f32,
        /// sqrt(1 - beta2^t)
        pub bc2_sqrt: f32,
        pub eps: f32,
    }

    impl InplaceOp3 for Update {
        fn name(&self) -> &'static str {
            "adamw-update"
        }

        fn cpu_fwd(
            &self,
            s1: &mut CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
            s3: &CpuStorage,
            l3: &Layout,
        ) -> candle_core::Result<()> {
            let (p, m, v) = (slice_mut(s1, l1)?, slice(s2, l2)?, slice(s3, l3)?);
            if p.len() != m.len() || p.len() != v.len() {
                candle_core::bail!(
                    "fused AdamW: parameter of {} values, moments of {} and {}",
                    p.len(),
                    m.len(),
                    v.len()
                );
            }
            let (decay, step, bc2_sqrt, eps) = (self.decay, self.step, self.bc2_sqrt, self.eps);
            p.par_chunks_mut(CHUNK).zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK))).for_each(|(p, (m, v))| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    *p = *p * decay - step * m / (v.sqrt() / bc2_sqrt + eps);
                }
            });
            Ok(())
        }
    }

    /// The sum of squares of an f32 CPU tensor, read in place (None for other tensors).
    pub fn sum_squares(t: &Tensor) -> Option<f64> {
        let (s, l) = t.storage_and_layout();
        let candle_core::Storage::Cpu(CpuStorage::F32(v)) = &*s else { return None };
        let (a, b) = l.contiguous_offsets()?;
        Some(v[a..b].par_chunks(CHUNK).map(|c| c.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>()).sum())
    }
}
