//! Checkpoints: `checkpoints/step-NNNNNNN/` holds the model as Hugging Face loads it
//! (`model.safetensors` under the original names, `config.json`, the tokenizer and processor
//! files), plus `optimizer.safetensors` (f32 moments and master weights) and `trainer_state.json`
//! (step, data position, config) for `--resume`. A LoRA run adds `adapter.safetensors` and
//! `adapter_config.json`; its `model.safetensors` has the adapters merged. A checkpoint is written to a temporary
//! directory and renamed into place; only the last `keep_last` stay.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;

use super::optim::AdamW;
use super::trainer::{STATE_FORMAT, TrainState, Trainer};
use crate::error::{Context, Error, Result};

fn step_of(dir: &Path) -> Option<usize> {
    dir.file_name()?.to_str()?.strip_prefix("step-")?.parse().ok()
}

/// Checkpoint directories under `root`, oldest first.
pub fn list(root: &Path) -> Result<Vec<PathBuf>> {
    let Ok(rd) = std::fs::read_dir(root) else { return Ok(Vec::new()) };
    let mut dirs: Vec<(usize, PathBuf)> = Vec::new();
    for e in rd {
        let p = e.ctx(|| format!("listing {}", root.display()))?.path();
        if let Some(s) = step_of(&p)
            && p.join("trainer_state.json").is_file()
        {
            dirs.push((s, p));
        }
    }
    dirs.sort();
    Ok(dirs.into_iter().map(|d| d.1).collect())
}

/// The newest checkpoint under `root`.
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    Ok(list(root)?.pop())
}

/// The trainer state of checkpoint `dir`, refused when it was trained with LoRA on another base
/// model than `model` (`base` is the fingerprint of `model` for LoRA runs, else None).
pub fn read_state_for(dir: &Path, model: &Path, base: &Option<String>) -> Result<TrainState> {
    let st = read_state(dir)?;
    if &st.base_model_blake3 != base {
        return Err(Error::Input(format!(
            "{}: the LoRA checkpoint was trained on another base model than {}",
            dir.display(),
            model.display()
        )));
    }
    Ok(st)
}

pub fn read_state(dir: &Path) -> Result<TrainState> {
    let p = dir.join("trainer_state.json");
    let bytes = std::fs::read(&p).ctx(|| format!("reading {}", p.display()))?;
    let st: TrainState = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Input(format!("{}: not a cotforge trainer state: {e}", p.display())))?;
    if st.format != STATE_FORMAT {
        return Err(Error::Input(format!("{}: format {}, this cotforge reads {STATE_FORMAT}", p.display(), st.format)));
    }
    Ok(st)
}

pub fn load_optimizer(dir: &Path, opt: &mut AdamW, steps: u64) -> Result<()> {
    let p = dir.join("optimizer.safetensors");
    let t = candle_core::safetensors::load(&p, &candle_core::Device::Cpu)
        .map_err(|e| Error::Input(format!("{}: {e}", p.display())))?;
    opt.load_state(&t, steps).map_err(|e| Error::Input(format!("{}: {e}", p.display())))
}

fn save_tensors(map: HashMap<String, Tensor>, path: &Path) -> Result<()> {
    candle_core::safetensors::save(&map, path).map_err(|e| Error::Run(format!("writing {}: {e}", path.display())))
}

/// The model's variables under their Hugging Face names, LoRA adapters merged.
pub fn model_tensors(trainer: &Trainer) -> Result<HashMap<String, Tensor>> {
    let mut m: HashMap<String, Tensor> =
        trainer.model.vars.iter().map(|(n, v)| (n.clone(), v.as_tensor().detach())).collect();
    m.extend(trainer.model.text.merged_weights("model")?);
    Ok(m)
}

/// What a LoRA run's `adapter.safetensors` holds: every trainable tensor (the adapters, and
/// the vision tower or merger when they train).
fn adapter_tensors(trainer: &Trainer) -> HashMap<String, Tensor> {
    trainer.trainable.iter().map(|(n, v)| (n.clone(), v.as_tensor().detach())).collect()
}

/// Restore the trainable tensors of a LoRA run from its checkpoint (the base model is loaded
/// from the model directory).
pub fn load_adapters(dir: &Path, trainer: &Trainer) -> Result<()> {
    let p = dir.join("adapter.safetensors");
    let t = candle_core::safetensors::load(&p, &candle_core::Device::Cpu)
        .map_err(|e| Error::Input(format!("{}: {e}", p.display())))?;
    for (name, var) in &trainer.trainable {
        let x = t.get(name).ok_or_else(|| Error::Input(format!("{}: no tensor `{name}`", p.display())))?;
        if x.dims() != var.as_tensor().dims() {
            return Err(Error::Input(format!(
                "{}: `{name}` has shape {:?}, the run needs {:?}",
                p.display(),
                x.dims(),
                var.as_tensor().dims()
            )));
        }
        let x = x
            .to_dtype(var.dtype())
            .and_then(|x| x.to_device(var.device()))
            .map_err(|e| Error::Run(format!("{}: {e}", p.display())))?;
        var.set(&x).map_err(|e| Error::Run(format!("{}: {e}", p.display())))?;
    }
    Ok(())
}

/// blake3 of a model directory's config and weights (what a LoRA checkpoint was trained on).
pub fn model_fingerprint(dir: &Path) -> Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ctx(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|x| x == "safetensors") || p.file_name().is_some_and(|n| n == "config.json")
        })
        .collect();
    files.sort();
    let mut h = blake3::Hasher::new();
    for f in files {
        h.update(f.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        let mut file = std::fs::File::open(&f).ctx(|| format!("opening {}", f.display()))?;
        h.update_reader(&mut file).ctx(|| format!("reading {}", f.display()))?;
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Write a checkpoint for `state.step`; returns its directory.
pub fn save(
    root: &Path,
    trainer: &Trainer,
    state: &TrainState,
    model_dir: &Path,
    tokenizer_dir: &Path,
) -> Result<PathBuf> {
    std::fs::create_dir_all(root).ctx(|| format!("creating {}", root.display()))?;
    let name = format!("step-{:07}", state.step);
    let dest = root.join(&name);
    let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).ctx(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
    save_tensors(model_tensors(trainer)?, &tmp.join("model.safetensors"))?;
    if let Some(l) = &state.config.lora {
        save_tensors(adapter_tensors(trainer), &tmp.join("adapter.safetensors"))?;
        let cfg = serde_json::json!({
            "format": "cotforge-lora-v1", "rank": l.rank, "alpha": l.alpha, "dropout": l.dropout, "targets": l.targets,
            "base_model": model_dir, "base_model_blake3": state.base_model_blake3,
            "merged": "model.safetensors holds the base with these adapters merged",
        });
        let bytes = serde_json::to_vec_pretty(&cfg).map_err(|e| Error::Run(format!("adapter config: {e}")))?;
        std::fs::write(tmp.join("adapter_config.json"), bytes).ctx(|| format!("writing {}", tmp.display()))?;
    }
    save_tensors(trainer.opt.state_tensors().into_iter().collect(), &tmp.join("optimizer.safetensors"))?;
    for f in crate::model::SIDE_FILES {
        let src = [model_dir.join(f), tokenizer_dir.join(f)].into_iter().find(|p| p.is_file());
        if let Some(src) = src {
            std::fs::copy(&src, tmp.join(f)).ctx(|| format!("copying {}", src.display()))?;
        }
    }
    let st = serde_json::to_vec_pretty(state).map_err(|e| Error::Run(format!("trainer state: {e}")))?;
    std::fs::write(tmp.join("trainer_state.json"), st).ctx(|| format!("writing {}", tmp.display()))?;
    if dest.exists() {
        std::fs::remove_dir_all(&dest).ctx(|| format!("replacing {}", dest.display()))?;
    }
    std::fs::rename(&tmp, &dest).ctx(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
    let all = list(root)?;
    let keep = state.config.keep_last.max(1);
    for old in all.iter().take(all.len().saturating_sub(keep)) {
        std::fs::remove_dir_all(old).ctx(|| format!("removing old checkpoint {}", old.display()))?;
    }
    Ok(dest)
}
