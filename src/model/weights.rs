//! Weights from Hugging Face safetensors (`model.safetensors` or a sharded
//! `model.safetensors.index.json`), under their Hugging Face names. Every tensor the model takes
//! becomes a [`Var`] (trainable) in the model's dtype; a missing tensor or a wrong shape is an
//! error naming the tensor and the directory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Shape, Tensor, Var};

use crate::error::{Error, Result};

/// Tensors read from a model directory, and the trainable variables taken from them.
pub struct Weights {
    dir: PathBuf,
    tensors: HashMap<String, Tensor>,
    pub dtype: DType,
    pub device: Device,
    /// Every tensor the model took, by Hugging Face name.
    pub vars: BTreeMap<String, Var>,
    /// Benchmarks: make up missing tensors (normal, std 0.02; norms 1) from this seed.
    random: Option<u64>,
}

fn ce(what: impl std::fmt::Display) -> impl FnOnce(candle_core::Error) -> Error {
    move |e| Error::Input(format!("{what}: {e}"))
}

impl Weights {
    /// Read every safetensors file of `dir` (memory: the whole model once, in its stored dtype).
    pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Self> {
        let index = dir.join("model.safetensors.index.json");
        let files: Vec<PathBuf> = if index.is_file() {
            let text =
                std::fs::read_to_string(&index).map_err(|e| Error::io(format!("reading {}", index.display()), e))?;
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::Input(format!("{}: not JSON: {e}", index.display())))?;
            let map = v
                .get("weight_map")
                .and_then(|m| m.as_object())
                .ok_or_else(|| Error::Input(format!("{}: no `weight_map`", index.display())))?;
            let mut names: Vec<&str> = map.values().filter_map(|f| f.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            names.into_iter().map(|f| dir.join(f)).collect()
        } else {
            vec![dir.join("model.safetensors")]
        };
        let mut tensors = HashMap::new();
        for f in &files {
            if !f.is_file() {
                return Err(Error::Input(format!(
                    "{}: no such weights file (a model directory has model.safetensors or an index)",
                    f.display()
                )));
            }
            tensors.extend(candle_core::safetensors::load(f, device).map_err(ce(f.display()))?);
        }
        Ok(Self { dir: dir.to_path_buf(), tensors, dtype, device: device.clone(), vars: BTreeMap::new(), random: None })
    }

    /// Random weights for any config (benchmarks): every tensor asked for is made up.
    pub fn random(dtype: DType, device: &Device, seed: u64) -> Self {
        Self {
            dir: PathBuf::from("<random>"),
            tensors: HashMap::new(),
            dtype,
            device: device.clone(),
            vars: BTreeMap::new(),
            random: Some(seed),
        }
    }

    /// Whether the checkpoint has a tensor.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Take a tensor as a trainable variable, checking its shape.
    pub fn get(&mut self, name: &str, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if let (Some(seed), false) = (self.random, self.tensors.contains_key(name)) {
            let n = shape.elem_count();
            let values: Vec<f32> = if name.ends_with("norm.weight")
                || name.contains("layernorm")
                || name.contains("norm1")
                || name.contains("norm2")
                || name.contains("ln_q")
            {
                vec![1.0; n]
            } else {
                let mut rng = crate::rng::Rng::for_item(seed, 0x7765_6967, self.vars.len() as u64);
                (0..n).map(|_| (rng.normal() * 0.02) as f32).collect()
            };
            let t = Tensor::from_vec(values, &shape, &self.device).map_err(ce(name))?;
            self.tensors.insert(name.to_string(), t);
        }
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| Error::Input(format!("{}: the checkpoint has no tensor `{name}`", self.dir.display())))?;
        if t.shape() != &shape {
            return Err(Error::Input(format!(
                "{}: tensor `{name}` has shape {:?}, the config needs {:?}",
                self.dir.display(),
                t.dims(),
                shape.dims()
            )));
        }
        let v = Var::from_tensor(&t.to_dtype(self.dtype).map_err(ce(name))?).map_err(ce(name))?;
        let out = v.as_tensor().clone();
        self.vars.insert(name.to_string(), v);
        Ok(out)
    }
}
