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
            let master = if t.dtype() == DType::F32 { None } else { Some(t.detach().to_dtype(DType::F32).map_err(ce)?) };
            let z = t.zeros_like().and_then(|z| z.to_dtype(DType::F32)).map_err(ce)?;
            slots.insert(name.clone(), Slot { var: var.clone(), master, m: z.clone(), v: z, decay: decays(var) });
        }
        Ok(Self { cfg, slots, steps: 0 })
    }

    /// One update with learning rate `lr` from f32 gradients by name (a missing gradient counts
    /// as zero: the moments still decay, as in PyTorch for a parameter whose grad is zero).
    pub fn step(&mut self, grads: &BTreeMap<String, Tensor>, lr: f64) -> Result<()> {
        self.steps += 1;
        let c = self.cfg;
        let t = self.steps as i32;
        let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        for (name, s) in self.slots.iter_mut() {
            let upd = (|| -> candle_core::Result<()> {
                let g = match grads.get(name) {
                    Some(g) => g.to_dtype(DType::F32)?,
                    None => s.m.zeros_like()?,
                };
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
                    return Err(Error::Input(format!("optimizer state: `{k}` has shape {:?}, the model needs {dims:?}", t.dims())));
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

/// Global L2 norm of the gradients.
pub fn global_norm(grads: &BTreeMap<String, Tensor>) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.values() {
        sq += g.to_dtype(DType::F32).and_then(|g| g.sqr()?.sum_all()?.to_scalar::<f32>()).map_err(ce)? as f64;
    }
    Ok(sq.sqrt())
}

/// Scale gradients so their global norm is at most `max_norm` (as `clip_grad_norm_`: factor
/// max_norm / (norm + 1e-6) when below 1). Returns the norm before clipping.
pub fn clip(grads: &mut BTreeMap<String, Tensor>, max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    let f = max_norm / (norm + 1e-6);
    if max_norm > 0.0 && f < 1.0 {
        for g in grads.values_mut() {
            *g = (&*g * f).map_err(ce)?;
        }
    }
    Ok(norm)
}
