//! The trainer core both SFT and GRPO drive: the model with its trainable variables (LoRA
//! adapters or full weights, frozen vision parts left out), gradients of packed rows (the output
//! layer in chunks at loss positions only), the optimizer step with accumulation and clipping,
//! and the state a checkpoint records.

use super::config::TrainConfig;
use super::loss::{Coef, chunk_rows, head, loss_positions};
use super::optim::{AdamW, clip_factor, global_norm};
use crate::error::{Error, Result};
use crate::model::CausalLm;
use crate::shards::Pack;
use candle_core::{DType, Tensor, Var};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub(crate) fn ce(e: candle_core::Error) -> Error {
    Error::Run(format!("train: {e}"))
}

/// One forward pass's input: packs joined into one row of all their segments.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub ids: Vec<u32>,
    pub loss_mask: Vec<bool>,
    pub segments: Vec<u32>,
    pub images: Vec<Vec<u8>>,
    pub grids: Vec<[u32; 3]>,
    /// Pack indices, for error messages.
    pub packs: Vec<u64>,
}

impl Row {
    pub fn of<'a>(packs: impl IntoIterator<Item = &'a Pack>) -> Self {
        let mut r = Row::default();
        for p in packs {
            r.ids.extend_from_slice(&p.input_ids);
            r.loss_mask.extend_from_slice(&p.loss_mask);
            r.segments.extend_from_slice(&p.segment_lengths);
            r.images.extend(p.images.iter().cloned());
            r.grids.extend_from_slice(&p.image_grid_thw);
            r.packs.push(p.index);
        }
        r
    }

    /// Positions that predict a loss token, and their targets.
    pub fn loss_positions(&self) -> (Vec<u32>, Vec<u32>) {
        loss_positions(&self.ids, &self.loss_mask, &self.segments)
    }

    fn what(&self) -> String {
        format!("packs {:?}", self.packs)
    }
}

/// Summed negative log-likelihood over a row's loss tokens, and their number.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Nll {
    pub sum: f64,
    pub tokens: usize,
}

impl Nll {
    /// The NLL of the positions of a head pass.
    pub fn of(out: &super::loss::HeadOutput) -> Self {
        Nll { sum: -out.logp.iter().map(|&x| x as f64).sum::<f64>(), tokens: out.logp.len() }
    }

    pub fn mean(&self) -> f64 {
        if self.tokens == 0 { 0.0 } else { self.sum / self.tokens as f64 }
    }
}

impl std::ops::AddAssign for Nll {
    fn add_assign(&mut self, o: Nll) {
        self.sum += o.sum;
        self.tokens += o.tokens;
    }
}

/// A model with its trainable variables and optimizer.
pub struct Trainer {
    pub model: CausalLm,
    pub cfg: TrainConfig,
    /// Variables that train, by Hugging Face name.
    pub trainable: BTreeMap<String, Var>,
    /// The variable that is the output layer (the embedding when tied).
    head_name: String,
    pub opt: AdamW,
    chunk: usize,
    /// The LoRA adapters' variables (empty for a full fine-tune).
    pub adapters: BTreeMap<String, Var>,
}

impl Trainer {
    pub fn new(mut model: CausalLm, cfg: TrainConfig) -> Result<Self> {
        cfg.check().map_err(Error::Spec)?;
        if let Some(v) = model.vision.as_mut() {
            v.freeze = crate::model::vision::Freeze { tower: cfg.freeze.vision_tower, merger: cfg.freeze.merger };
        }
        let frozen = |name: &str| {
            let merger = name.starts_with("visual.merger.");
            (cfg.freeze.merger && merger) || (cfg.freeze.vision_tower && name.starts_with("visual.") && !merger)
        };
        let mut trainable: BTreeMap<String, Var> =
            model.vars.iter().filter(|(n, _)| !frozen(n)).map(|(n, v)| (n.clone(), v.clone())).collect();
        let head_id = model.text.lm_head().id();
        let head_name = model
            .vars
            .iter()
            .find(|(_, v)| v.as_tensor().id() == head_id)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| Error::Run("train: the output layer is no model variable".into()))?;
        let adapters = match &cfg.lora {
            Some(l) => {
                let vars = model.text.add_lora("model", l.rank, l.alpha, l.dropout, &l.targets, cfg.seed)?;
                // the decoder's own weights stay fixed
                trainable.retain(|n, _| n.starts_with("visual."));
                trainable.extend(vars.clone());
                vars
            }
            None => BTreeMap::new(),
        };
        let mut opt = AdamW::new(&trainable, cfg.adamw)?;
        opt.scale_lr(|name| cfg.lr_scale.of(name));
        let chunk = chunk_rows(model.config.text.vocab_size, cfg.head_chunk_mib << 20);
        Ok(Self { model, cfg, trainable, head_name, opt, chunk, adapters })
    }

    /// The row's loss without gradients.
    pub fn nll(&self, row: &Row) -> Result<Nll> {
        Ok(Nll::of(&self.logps(row, false)?))
    }

    /// Log-probabilities of the row's loss tokens (and the entropies at their positions when
    /// asked), without gradients.
    pub fn logps(&self, row: &Row, entropy: bool) -> Result<super::loss::HeadOutput> {
        row_logps(&self.model, row, entropy, self.chunk)
    }

    /// Forward and backward of one row for the objective `scale * sum of its token NLLs`;
    /// the f32 gradients are added into `acc`. See [`Self::accumulate_objective`].
    pub fn accumulate(&self, row: &Row, scale: f64, acc: &mut BTreeMap<String, Tensor>) -> Result<Nll> {
        let c = -scale as f32;
        Ok(Nll::of(&self.accumulate_objective(row, &|_, _| c, false, acc)?))
    }

    /// Forward and backward of one row for the objective `sum_i c_i * log p_i` over its loss
    /// tokens (in [`Row::loss_positions`] order); the f32 gradients are added into `acc`, and
    /// the tokens' log-probabilities (and entropies when asked) are returned. The output layer runs as [`head`]. The decoder
    /// either keeps its whole graph (when [`Self::keeps_graph`]) or runs as
    /// [`crate::model::TextModel::forward_stored`] / `backward_stored`: each layer recomputed
    /// in the backward pass, attention in query blocks.
    pub fn accumulate_objective(
        &self,
        row: &Row,
        coef: Coef,
        entropy: bool,
        acc: &mut BTreeMap<String, Tensor>,
    ) -> Result<super::loss::HeadOutput> {
        let (pos, tgt) = row.loss_positions();
        if pos.is_empty() {
            return Ok(super::loss::HeadOutput::default());
        }
        // LoRA dropout draws its masks from the step and the row's first pack, so the
        // recomputing backward pass replays them and a resumed run draws the same ones
        let seeded;
        let text = match &self.cfg.lora {
            Some(l) if l.dropout > 0.0 => {
                let key: Vec<u64> =
                    [self.cfg.seed, self.opt.steps].into_iter().chain(row.packs.iter().copied()).collect();
                let bytes: Vec<u8> = key.iter().flat_map(|k| k.to_le_bytes()).collect();
                seeded = self.model.text.with_dropout(Some(xxhash_rust::xxh3::xxh3_64(&bytes)));
                &seeded
            }
            _ => &self.model.text,
        };
        let (x, positions, segs) = row_inputs(row, &self.model)?;
        // the final hidden states: with the decoder's whole graph, or from the stored forward
        // pass through a variable that collects their gradient
        let (hn, recompute) = if self.keeps_graph(&segs) {
            (text.hidden(&x, &positions, &segs)?, None)
        } else {
            let (h, stored) = text.forward_stored(&x, &positions, &segs)?;
            let hv = Var::from_tensor(&h).map_err(ce)?;
            (text.final_norm(hv.as_tensor())?, Some((hv, stored)))
        };
        let idx = Tensor::new(pos.as_slice(), x.device()).map_err(ce)?;
        let (out, grads) =
            head(&hn.index_select(&idx, 0).map_err(ce)?, text.lm_head(), &tgt, Some(coef), entropy, self.chunk)?;
        let grads = grads.expect("coefficients given");
        let store = grads.surrogate.backward().map_err(ce)?;
        self.absorb(&store, acc)?;
        if self.trainable.contains_key(&self.head_name) {
            add_grad(acc, &self.head_name, grads.weight)?;
        }
        if let Some((hv, stored)) = recompute {
            let g = store
                .get(hv.as_tensor())
                .cloned()
                .ok_or_else(|| Error::Run("train: no gradient reached the hidden states".into()))?;
            // the decoder, layer by layer from the top
            let g0 = text.backward_stored(&stored, &positions, &segs, &g, &mut |gs| self.absorb(gs, acc))?;
            // the input embeddings (and the vision tower)
            let store = (x * g0).and_then(|t| t.sum_all()).and_then(|t| t.backward()).map_err(ce)?;
            self.absorb(&store, acc)?;
        }
        Ok(out)
    }

    /// Whether a row of these segments runs with the decoder's whole graph kept (no
    /// recomputation): `recompute: never`, or `auto` when the graph's estimated size is
    /// within `graph_budget_mib`.
    pub fn keeps_graph(&self, segments: &[usize]) -> bool {
        use super::config::Recompute;
        match self.cfg.recompute {
            Recompute::Always => false,
            Recompute::Never => true,
            Recompute::Auto => self.model.text.graph_bytes(segments) <= self.cfg.graph_budget_mib << 20,
        }
    }

    /// Add the trainable variables' gradients of a store into `acc` (f32).
    fn absorb(&self, store: &candle_core::backprop::GradStore, acc: &mut BTreeMap<String, Tensor>) -> Result<()> {
        for (name, var) in &self.trainable {
            if let Some(g) = store.get(var.as_tensor()) {
                add_grad(acc, name, g.clone())?;
            }
        }
        Ok(())
    }

    /// Gradients of one optimizer step over `packs`: the mean NLL over all their loss tokens,
    /// run `packs_per_forward` packs at a time. Returns the loss and the gradients.
    pub fn gradients(&self, packs: &[Pack]) -> Result<(Nll, BTreeMap<String, Tensor>)> {
        let rows: Vec<Row> = packs.chunks(self.cfg.packs_per_forward).map(Row::of).collect();
        let total: usize = rows.iter().map(|r| r.loss_positions().0.len()).sum();
        let mut acc = BTreeMap::new();
        let mut nll = Nll::default();
        if total == 0 {
            return Ok((nll, acc));
        }
        for row in &rows {
            nll += self.accumulate(row, 1.0 / total as f64, &mut acc)?;
        }
        Ok((nll, acc))
    }

    /// One optimizer step: gradients, clipping, AdamW at `lr`. Returns the loss and the
    /// gradient norm before clipping.
    pub fn step(&mut self, packs: &[Pack], lr: f64) -> Result<(Nll, f64)> {
        let (nll, grads) = self.gradients(packs)?;
        let norm = global_norm(&grads)?;
        self.opt.step_scaled(&grads, clip_factor(norm, self.cfg.max_grad_norm), lr)?;
        Ok((nll, norm))
    }
}

/// A row's input embeddings (images included), positions and segment lengths for `model`.
pub(crate) fn row_inputs(row: &Row, model: &CausalLm) -> Result<(Tensor, crate::model::Positions, Vec<usize>)> {
    let px = model.pixel_values_for(&row.images, &row.grids, &row.what())?;
    let segs: Vec<usize> = row.segments.iter().map(|&s| s as usize).collect();
    let x = model
        .embed_multimodal(&row.ids, px.as_ref(), &row.grids)
        .map_err(|e| Error::Run(format!("{}: {e}", row.what())))?;
    let pos = model.positions(&row.ids, &row.grids, &segs).map_err(|e| Error::Run(format!("{}: {e}", row.what())))?;
    Ok((x, pos, segs))
}

/// Log-probabilities of a row's loss tokens under `model` (and entropies when asked), without
/// gradients; the output layer in chunks of `chunk` positions.
pub fn row_logps(model: &CausalLm, row: &Row, entropy: bool, chunk: usize) -> Result<super::loss::HeadOutput> {
    let (pos, tgt) = row.loss_positions();
    if pos.is_empty() {
        return Ok(super::loss::HeadOutput::default());
    }
    let m = model.detached();
    let (x, positions, segs) = row_inputs(row, &m)?;
    let (h, _) = m.text.forward_stored(&x, &positions, &segs)?;
    let h = m.text.final_norm(&h)?;
    let idx = Tensor::new(pos.as_slice(), h.device()).map_err(ce)?;
    let (out, _) = head(&h.index_select(&idx, 0).map_err(ce)?, m.text.lm_head(), &tgt, None, entropy, chunk)?;
    Ok(out)
}

pub(crate) fn add_grad(acc: &mut BTreeMap<String, Tensor>, name: &str, g: Tensor) -> Result<()> {
    let g = g.to_dtype(DType::F32).map_err(ce)?;
    let sum = match acc.remove(name) {
        Some(prev) => (prev + g).map_err(ce)?,
        None => g,
    };
    acc.insert(name.to_string(), sum);
    Ok(())
}

/// Where a run stands (saved with each checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub format: String,
    /// Optimizer steps done.
    pub step: usize,
    pub total_steps: usize,
    /// The next step's epoch and its first position in that epoch's order.
    pub epoch: usize,
    pub position: usize,
    pub seed: u64,
    pub config: TrainConfig,
    /// sha256 of the shard manifest the run reads.
    pub shards_manifest_sha256: String,
    /// LoRA: the base model's [`checkpoint::model_fingerprint`] (a resumed run loads the base
    /// again and checks it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_model_blake3: Option<String>,
    /// An RL run's config (`cotforge train rl`), checked on resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rl: Option<serde_json::Value>,
}

pub const STATE_FORMAT: &str = "cotforge-train-state-v1";
