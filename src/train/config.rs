//! `train.yaml`: the SFT settings. Every field has a default, so an empty file (or none) is a
//! valid config; unknown keys are errors naming the file, line and column.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::optim::Schedule;
use crate::error::{Error, Result};

/// Declares a trainer's config struct: its own fields, then the fields every trainer shares
/// (optimizer, precision, freezing, adapters, checkpoints, memory), each written and documented
/// once here; and `shared_into`, which copies the shared fields onto a [`TrainConfig`].
macro_rules! trainer_config {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Peak learning rate.
            pub lr: f64,
            pub schedule: $crate::train::optim::Schedule,
            /// Share of the optimizer steps spent warming up linearly from 0.
            pub warmup_ratio: f64,
            /// Clip gradients to this global L2 norm (0: no clipping).
            pub max_grad_norm: f64,
            pub adamw: $crate::train::optim::AdamWConfig,
            /// Seeds the data order (and dropout).
            pub seed: u64,
            /// `f32` or `bf16` parameters (the optimizer keeps f32 moments and master weights).
            pub dtype: String,
            pub freeze: $crate::train::config::FreezeConfig,
            /// Learning-rate multipliers of the vision parts (the `vit_lr` / `aligner_lr` of other
            /// trainers): a vision tower trained from scratch next to a text model needs a smaller
            /// one, as its patch embedding sums over 1,176 coherent pixel inputs.
            pub lr_scale: $crate::train::config::LrScaleConfig,
            /// Train LoRA adapters on the decoder instead of all its weights (absent: full fine-tune).
            pub lora: Option<$crate::train::config::LoraConfig>,
            /// Save a checkpoint every this many steps (0: only at the end).
            pub save_every: usize,
            /// Checkpoints kept (the oldest go first).
            pub keep_last: usize,
            /// Recompute decoder layers in the backward pass (`always`) instead of keeping the whole
            /// graph (`never`); `auto` keeps it when its estimated size fits `graph_budget_mib`.
            pub recompute: $crate::train::config::Recompute,
            pub graph_budget_mib: usize,
            /// Positions of the output layer per chunk are sized so one chunk of f32 logits takes
            /// about this many MiB.
            pub head_chunk_mib: usize,
        }

        impl $name {
            /// Copy the fields every trainer shares onto `to`; its other fields stay.
            pub fn shared_into(&self, to: &mut $crate::train::config::TrainConfig) {
                to.lr = self.lr;
                to.schedule = self.schedule;
                to.warmup_ratio = self.warmup_ratio;
                to.max_grad_norm = self.max_grad_norm;
                to.adamw = self.adamw;
                to.seed = self.seed;
                to.dtype = self.dtype.clone();
                to.freeze = self.freeze.clone();
                to.lr_scale = self.lr_scale;
                to.lora = self.lora.clone();
                to.save_every = self.save_every;
                to.keep_last = self.keep_last;
                to.recompute = self.recompute;
                to.graph_budget_mib = self.graph_budget_mib;
                to.head_chunk_mib = self.head_chunk_mib;
            }
        }
    };
}
pub(crate) use trainer_config;

/// A trainer config with the shared fields at the defaults all trainers use; the fields given
/// (its own, and `lr`, `schedule` and `warmup_ratio`, which differ per trainer) come first.
macro_rules! with_trainer_defaults {
    ($name:ident { $($field:ident: $value:expr),* $(,)? }) => {
        $name {
            $($field: $value,)*
            max_grad_norm: 1.0,
            adamw: $crate::train::optim::AdamWConfig::default(),
            seed: 0,
            dtype: "f32".into(),
            freeze: $crate::train::config::FreezeConfig::default(),
            lr_scale: $crate::train::config::LrScaleConfig::default(),
            lora: None,
            save_every: 0,
            keep_last: 2,
            recompute: $crate::train::config::Recompute::Auto,
            graph_budget_mib: 1024,
            head_chunk_mib: 256,
        }
    };
}
pub(crate) use with_trainer_defaults;

trainer_config! {
    /// Settings of `cotforge train sft`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields, default)]
    pub struct TrainConfig {
        /// Passes over the shards (ignored when `max_steps` is set).
        pub epochs: usize,
        /// Stop after this many optimizer steps (epochs repeat as needed).
        pub max_steps: Option<usize>,
        /// Packs per optimizer step. The loss of a step is the sum of its token losses divided by
        /// the loss tokens of the whole step, whatever the accumulation.
        pub packs_per_step: usize,
        /// Packs per forward pass (run as one row of all their segments); `packs_per_step` is a
        /// multiple of it, and the steps accumulate `packs_per_step / packs_per_forward` passes.
        pub packs_per_forward: usize,
        pub eval: Option<EvalConfig>,
    }
}

/// Activation recomputation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Recompute {
    Auto,
    Always,
    Never,
}

/// Parts of the model that do not train.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FreezeConfig {
    /// The vision tower (patch embedding and blocks).
    pub vision_tower: bool,
    /// The patch merger.
    pub merger: bool,
}

/// Multipliers of the learning rate (and so of the weight decay step) per model part.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LrScaleConfig {
    /// The vision tower (patch embedding and blocks).
    pub vision_tower: f64,
    /// The patch merger.
    pub merger: f64,
}

impl Default for LrScaleConfig {
    fn default() -> Self {
        Self { vision_tower: 1.0, merger: 1.0 }
    }
}

impl LrScaleConfig {
    /// The multiplier of a parameter by its name.
    pub fn of(&self, name: &str) -> f64 {
        if name.starts_with("visual.merger.") {
            self.merger
        } else if name.starts_with("visual.") {
            self.vision_tower
        } else {
            1.0
        }
    }
}

/// LoRA adapters on the decoder's projections. The decoder's own weights (embedding, norms,
/// output layer included) stay fixed; the vision tower and merger train unless frozen.
/// Checkpoints hold the merged model (`model.safetensors`) and the adapters
/// (`adapter.safetensors`, `adapter_config.json`); resuming reads the base model again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    pub rank: usize,
    /// The adapter's output is scaled by alpha / rank.
    pub alpha: f64,
    /// Dropout on the adapters' inputs.
    pub dropout: f64,
    /// Projections that get adapters: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
    /// down_proj.
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: crate::model::lora::TARGETS.iter().map(|t| t.to_string()).collect(),
        }
    }
}

/// Held-out evaluation: loss on shards, and generation accuracy on prompts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// A shard directory packed with the same tokenizer: its loss is measured.
    #[serde(default)]
    pub shards: Option<PathBuf>,
    /// Prompts whose greedy continuations are verified against their references.
    #[serde(default)]
    pub generate: Option<super::eval::GenEvalConfig>,
    /// Evaluate every this many steps (0: only at the end).
    #[serde(default)]
    pub every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        with_trainer_defaults!(TrainConfig {
            lr: 1e-5,
            schedule: Schedule::Cosine,
            warmup_ratio: 0.03,
            epochs: 1,
            max_steps: None,
            packs_per_step: 8,
            packs_per_forward: 1,
            eval: None,
        })
    }
}

impl TrainConfig {
    /// Read a config file (relative paths in it are taken from the working directory, as in
    /// pipeline specs).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Spec(format!("cannot read train config {}: {e}", path.display())))?;
        let cfg = Self::parse(&text).map_err(|e| Error::Spec(format!("{}: {e}", path.display())))?;
        Ok(cfg)
    }

    /// Parse config text and check it.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let cfg: Self = parse_yaml(text)?;
        cfg.check()?;
        Ok(cfg)
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(format!("lr must be a non-negative number, not {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(format!("warmup_ratio must be in [0, 1), not {}", self.warmup_ratio));
        }
        if self.packs_per_step == 0
            || self.packs_per_forward == 0
            || !self.packs_per_step.is_multiple_of(self.packs_per_forward)
        {
            return Err(format!(
                "packs_per_step ({}) must be a positive multiple of packs_per_forward ({})",
                self.packs_per_step, self.packs_per_forward
            ));
        }
        for (k, v) in [("vision_tower", self.lr_scale.vision_tower), ("merger", self.lr_scale.merger)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("lr_scale.{k} must be a non-negative number, not {v}"));
            }
        }
        if self.max_steps.is_none() && self.epochs == 0 {
            return Err("epochs must be at least 1 (or set max_steps)".into());
        }
        if self.dtype != "f32" && self.dtype != "bf16" {
            return Err(format!("dtype must be f32 or bf16, not `{}`", self.dtype));
        }
        if let Some(l) = &self.lora {
            if l.rank == 0 {
                return Err("lora.rank must be at least 1".into());
            }
            if !(0.0..1.0).contains(&l.dropout) {
                return Err(format!("lora.dropout must be in [0, 1), not {}", l.dropout));
            }
            if l.targets.is_empty() {
                return Err("lora.targets is empty".into());
            }
            if let Some(t) = l.targets.iter().find(|t| !crate::model::lora::TARGETS.contains(&t.as_str())) {
                return Err(format!("lora target `{t}` is not one of {}", crate::model::lora::TARGETS.join(", ")));
            }
        }
        if self.keep_last == 0 {
            return Err("keep_last must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.adamw.beta1) || !(0.0..1.0).contains(&self.adamw.beta2) {
            return Err("adamw betas must be in [0, 1)".into());
        }
        Ok(())
    }

    /// The parameter dtype.
    pub fn candle_dtype(&self) -> candle_core::DType {
        if self.dtype == "bf16" { candle_core::DType::BF16 } else { candle_core::DType::F32 }
    }
}

/// A config from YAML text (empty text: the defaults), errors with line and column.
pub(crate) fn parse_yaml<T: serde::de::DeserializeOwned + Default>(text: &str) -> std::result::Result<T, String> {
    if text.trim().is_empty() {
        return Ok(T::default());
    }
    serde_saphyr::from_str(text).map_err(|e| match e.location() {
        Some(l) => format!("line {} column {}: {e}", l.line(), l.column()),
        None => e.to_string(),
    })
}

/// The pretty JSON Schema of a config type, with a final newline.
pub(crate) fn schema_of<T: schemars::JsonSchema>() -> String {
    let mut s = serde_json::to_string_pretty(&schemars::schema_for!(T)).expect("schema serialises");
    s.push('\n');
    s
}

/// The JSON Schema of train configs, as committed in `schemas/train-config.schema.json`.
pub fn json_schema() -> String {
    schema_of::<TrainConfig>()
}
