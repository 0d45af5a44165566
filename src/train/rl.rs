//! `cotforge train rl`: GRPO with a verifiable reward on the prompts of a curated run.
//!
//! Each step draws `prompts_per_step` prompts (a seeded order, epoch after epoch), samples
//! `group_size` continuations of each with the KV-cache generator, scores them with the
//! verifier (accuracy, plus an optional format reward, minus an optional soft overlong
//! penalty), and normalises the rewards within each group. Groups whose rewards are all equal
//! carry no advantage and are dropped (dynamic sampling). The kept sequences (prompt and
//! response, loss on the response) are packed into rows with the SFT packer; their old
//! log-probabilities (and the frozen reference model's, when `beta` > 0) are computed once,
//! then `updates_per_batch` optimizer steps each run the clipped-ratio objective
//! ([`super::grpo`]) through the same chunked output layer and decoder backward as SFT.
//! Sampling draws from streams keyed by (seed, step, sequence), so a run and its resumption
//! give identical metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::config::TrainConfig;
use super::eval::EvalPrompt;
use super::grpo::{Aggregation, Clip, degenerate, group_advantages, token_coef, token_term};
use super::optim::{Schedule, clip_factor, global_norm, lr_factor};
use super::trainer::{Row, TrainState, Trainer, row_logps};
use crate::error::{Context, Error, Result};
use crate::model::{CausalLm, GenerateOptions};

super::config::trainer_config! {
    /// Settings of `cotforge train rl` (`rl.yaml`). Every field has a default.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields, default)]
    pub struct RlConfig {
        /// Rollout-and-update steps.
        pub steps: usize,
        pub prompts_per_step: usize,
        /// Continuations per prompt (G).
        pub group_size: usize,
        pub temperature: f64,
        pub top_p: f64,
        pub max_new_tokens: usize,
        /// System prompt for prompts without one (default: none, the template's own).
        pub system: Option<String>,
        pub reward: RewardConfig,
        /// Divide advantages by their group's standard deviation (false: only centre them).
        pub std_normalize: bool,
        pub clip_low: f64,
        pub clip_high: f64,
        pub aggregation: Aggregation,
        /// Weight of the k3 KL to the frozen starting model (0: no reference model is loaded).
        pub beta: f64,
        /// Drop groups whose rewards are all equal.
        pub dynamic_sampling: bool,
        /// Optimizer steps on each rollout batch (the old log-probabilities stay those of the
        /// policy that sampled it).
        pub updates_per_batch: usize,
        /// Row length the update packs sequences into.
        pub pack_length: usize,
    }
}

/// The JSON Schema of RL configs, as committed in `schemas/rl-config.schema.json`.
pub fn json_schema() -> String {
    super::config::schema_of::<RlConfig>()
}

/// The reward: `accuracy` times the verifier's verdict plus `format` times the format check,
/// and the overlong handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RewardConfig {
    pub accuracy: f64,
    /// A response has the format when it closes a `<think>` block and then gives a `\boxed{}`.
    pub format: f64,
    pub overlong: Overlong,
    /// `penalty`: the last this many tokens before `max_new_tokens` cost up to 1, linearly (DAPO's
    /// soft overlong punishment); a truncated response costs 1.
    pub overlong_window: usize,
}

/// What happens to responses cut at `max_new_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlong {
    /// Scored like any other.
    Keep,
    /// Scored, but their tokens carry no loss.
    Filter,
    /// The soft length penalty of `overlong_window`.
    Penalty,
}

impl Default for RewardConfig {
    fn default() -> Self {
        Self { accuracy: 1.0, format: 0.0, overlong: Overlong::Filter, overlong_window: 0 }
    }
}

impl Default for RlConfig {
    fn default() -> Self {
        super::config::with_trainer_defaults!(RlConfig {
            steps: 100,
            prompts_per_step: 8,
            group_size: 8,
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 512,
            system: None,
            reward: RewardConfig::default(),
            std_normalize: true,
            clip_low: 0.2,
            clip_high: 0.28,
            aggregation: Aggregation::TokenMean,
            beta: 0.0,
            dynamic_sampling: true,
            updates_per_batch: 1,
            pack_length: 4096,
            lr: 1e-6,
            schedule: Schedule::Constant,
            warmup_ratio: 0.0,
        })
    }
}

impl RlConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Spec(format!("cannot read rl config {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::Spec(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let cfg: Self = super::config::parse_yaml(text)?;
        cfg.check()?;
        Ok(cfg)
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        let positive = [
            ("steps", self.steps),
            ("prompts_per_step", self.prompts_per_step),
            ("group_size", self.group_size),
            ("max_new_tokens", self.max_new_tokens),
            ("updates_per_batch", self.updates_per_batch),
            ("pack_length", self.pack_length),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        if !(self.temperature >= 0.0 && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(format!(
                "temperature must be >= 0 and top_p in (0, 1], not {} and {}",
                self.temperature, self.top_p
            ));
        }
        if !(self.clip_low >= 0.0 && self.clip_low < 1.0 && self.clip_high >= 0.0) {
            return Err(format!(
                "clip_low must be in [0, 1) and clip_high >= 0, not {} and {}",
                self.clip_low, self.clip_high
            ));
        }
        if !(self.beta >= 0.0 && self.beta.is_finite()) {
            return Err(format!("beta must be a non-negative number, not {}", self.beta));
        }
        if self.reward.overlong == Overlong::Penalty
            && (self.reward.overlong_window == 0 || self.reward.overlong_window > self.max_new_tokens)
        {
            return Err(format!(
                "reward.overlong_window must be in [1, max_new_tokens = {}] for the penalty",
                self.max_new_tokens
            ));
        }
        self.train_config().check()
    }

    /// The trainer's settings (optimizer, dtype, freezing, LoRA, recomputation, checkpoints).
    pub fn train_config(&self) -> TrainConfig {
        let mut t = TrainConfig {
            max_steps: Some(self.steps * self.updates_per_batch),
            packs_per_step: 1,
            packs_per_forward: 1,
            ..TrainConfig::default()
        };
        self.shared_into(&mut t);
        t
    }
}

/// Whether a response closes its think block and then answers in `\boxed{}`.
pub fn has_format(text: &str) -> bool {
    match text.rfind("</think>") {
        Some(end) => text[..end].contains("<think>") && text[end..].contains("\\boxed{"),
        None => false,
    }
}

/// DAPO's soft overlong penalty for a response of `len` tokens: 0 up to `max - window`, then
/// falling linearly to -1 at `max` (and -1 for a truncated response).
pub fn overlong_penalty(len: usize, truncated: bool, max: usize, window: usize) -> f64 {
    let free = max.saturating_sub(window);
    if truncated {
        -1.0
    } else if len <= free || window == 0 {
        0.0
    } else {
        -((len - free) as f64 / window as f64).min(1.0)
    }
}

/// One sampled response with its score.
#[derive(Debug, Clone)]
pub struct Rollout {
    pub prompt: usize,
    pub tokens: Vec<u32>,
    pub truncated: bool,
    pub correct: bool,
    pub format: bool,
    pub reward: f64,
}

/// What one RL step measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepStats {
    pub reward: f64,
    pub accuracy: f64,
    pub format: f64,
    pub response_length: f64,
    pub truncated: f64,
    /// Groups kept by dynamic sampling, of all groups.
    pub groups_kept: usize,
    pub groups: usize,
    /// Share of loss tokens whose ratio was clipped (over all updates).
    pub clip_fraction: f64,
    /// Mean k3 KL to the reference over loss tokens (0 without one).
    pub kl: f64,
    /// Mean entropy of the policy over loss tokens (first update).
    pub entropy: f64,
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
    pub rollout_tokens_per_s: f64,
    pub update_tokens_per_s: f64,
    /// Tokens sampled by the rollouts.
    pub sampled_tokens: usize,
    /// Tokens (prompts and responses) through the update's forward and backward passes, over
    /// all updates of the batch.
    pub update_tokens: usize,
}

/// Score the responses of a step (`prompts` in order, `g` responses each, prompt-major).
pub fn score(
    cfg: &RlConfig,
    prompts: &[&EvalPrompt],
    outs: Vec<Vec<u32>>,
    stop: &[u32],
    tokenizer: &tokenizers::Tokenizer,
) -> Result<Vec<Rollout>> {
    let g = cfg.group_size;
    outs.into_iter()
        .enumerate()
        .map(|(k, tokens)| {
            let p = prompts[k / g];
            let crate::rollout::Answer { text, truncated, correct, .. } =
                crate::rollout::judge(tokenizer, stop, &p.reference, &tokens)?;
            let format = has_format(&text);
            let mut reward =
                cfg.reward.accuracy * f64::from(u8::from(correct)) + cfg.reward.format * f64::from(u8::from(format));
            if cfg.reward.overlong == Overlong::Penalty {
                reward += overlong_penalty(tokens.len(), truncated, cfg.max_new_tokens, cfg.reward.overlong_window);
            }
            Ok(Rollout { prompt: k / g, tokens, truncated, correct, format, reward })
        })
        .collect()
}

/// The per-token inputs of one update row, in its loss-position order.
struct RowData {
    row: Row,
    old: Vec<f32>,
    reference: Option<Vec<f32>>,
    adv: Vec<f64>,
    weight: Vec<f64>,
}

/// Pack the kept rollouts into update rows (the SFT packer, `pack_length` tokens a row) with
/// each token's advantage and aggregation weight.
fn update_rows(
    cfg: &RlConfig,
    prompts: &[&EvalPrompt],
    rollouts: &[&Rollout],
    adv: &[f64],
) -> Vec<(Row, Vec<f64>, Vec<f64>)> {
    let lens: Vec<u32> =
        rollouts.iter().map(|r| (prompts[r.prompt].prompt.ids.len() + r.tokens.len()) as u32).collect();
    let loss_lens: Vec<usize> = rollouts
        .iter()
        .map(|r| if cfg.reward.overlong == Overlong::Filter && r.truncated { 0 } else { r.tokens.len() })
        .collect();
    let weights = cfg.aggregation.weights(&loss_lens);
    let capacity = lens.iter().copied().max().unwrap_or(1).max(cfg.pack_length as u32);
    let packing = crate::shards::bfd::best_fit_decreasing(&lens, capacity, None);
    packing
        .packs
        .iter()
        .map(|members| {
            let mut row = Row::default();
            let (mut a, mut w) = (Vec::new(), Vec::new());
            for &i in members {
                let i = i as usize;
                let (r, p) = (rollouts[i], &prompts[rollouts[i].prompt]);
                let masked = loss_lens[i] == 0;
                row.ids.extend_from_slice(&p.prompt.ids);
                row.ids.extend_from_slice(&r.tokens);
                row.loss_mask.extend(std::iter::repeat_n(false, p.prompt.ids.len()));
                row.loss_mask.extend(std::iter::repeat_n(!masked, r.tokens.len()));
                row.segments.push(lens[i]);
                row.images.extend(p.images.iter().cloned());
                row.grids.extend_from_slice(&p.prompt.grids);
                row.packs.push(i as u64);
                // the loss positions of this segment are its response tokens, in order
                if !masked {
                    a.extend(std::iter::repeat_n(adv[i], r.tokens.len()));
                    w.extend(std::iter::repeat_n(weights[i], r.tokens.len()));
                }
            }
            (row, a, w)
        })
        .collect()
}

/// What `cotforge train rl` is told.
#[derive(Debug, Clone)]
pub struct RlArgs {
    /// A curated run directory: prompts, images, references.
    pub prompts: PathBuf,
    pub model: PathBuf,
    pub tokenizer: Option<PathBuf>,
    pub out: PathBuf,
    pub config: RlConfig,
    pub resume: bool,
    pub progress: bool,
    pub device: String,
    /// Use at most this many prompts of the run.
    pub limit: Option<usize>,
}

/// The end of an RL run.
#[derive(Debug, Clone)]
pub struct RlSummary {
    pub steps: usize,
    pub checkpoint: PathBuf,
    pub last: StepStats,
}

/// The prompt order of an epoch: a seeded permutation.
fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    let mut rng = crate::rng::Rng::for_item(seed, 0x726c_6f72, epoch);
    for i in (1..n).rev() {
        idx.swap(i, rng.below(i + 1));
    }
    idx
}

/// Run GRPO: `out/metrics.jsonl` (a line per step), `out/checkpoints/step-N`.
pub fn run(args: &RlArgs) -> Result<RlSummary> {
    let cfg = &args.config;
    let tcfg = cfg.train_config();
    let device = crate::model::device(&args.device)?;
    let tok_dir = args.tokenizer.clone().unwrap_or_else(|| args.model.clone());
    std::fs::create_dir_all(&args.out).ctx(|| format!("creating {}", args.out.display()))?;
    let metrics = args.out.join("metrics.jsonl");
    let ckpt_root = args.out.join("checkpoints");
    let rl_json = serde_json::to_value(cfg).map_err(|e| Error::Run(format!("rl config: {e}")))?;

    let resumed = if args.resume { checkpoint::latest(&ckpt_root)? } else { None };
    let base_fingerprint = if cfg.lora.is_some() { Some(checkpoint::model_fingerprint(&args.model)?) } else { None };
    let state = match &resumed {
        Some(dir) => {
            let st = checkpoint::read_state_for(dir, &args.model, &base_fingerprint)?;
            if st.rl.as_ref() != Some(&rl_json) {
                return Err(Error::Input(format!(
                    "{}: the checkpoint's rl config differs from this one; resume with the same config",
                    dir.display()
                )));
            }
            Some(st)
        }
        None => {
            if metrics.exists() {
                std::fs::remove_file(&metrics).ctx(|| format!("removing {}", metrics.display()))?;
            }
            None
        }
    };
    let model_dir = match (&resumed, &cfg.lora) {
        (Some(dir), None) => dir.clone(),
        _ => args.model.clone(),
    };
    let model = CausalLm::load(&model_dir, tcfg.candle_dtype(), &device)?;
    let reference =
        if cfg.beta > 0.0 { Some(CausalLm::load(&args.model, tcfg.candle_dtype(), &device)?) } else { None };
    let (prompts, tokenizer) =
        super::eval::load_prompts(&args.prompts, &tok_dir, cfg.system.clone(), &model, args.limit)?;
    if prompts.is_empty() {
        return Err(Error::Input(format!("{}: no prompts with a reference", args.prompts.display())));
    }
    let prompt_ids: Vec<&str> = prompts.iter().map(|p| p.id.as_str()).collect();
    let prompts_blake3 = blake3::hash(prompt_ids.join("\n").as_bytes()).to_hex().to_string();
    let mut trainer = Trainer::new(model, tcfg.clone())?;
    let chunk = super::loss::chunk_rows(trainer.model.config.text.vocab_size, tcfg.head_chunk_mib << 20);
    let mut step = 0;
    if let (Some(st), Some(dir)) = (&state, &resumed) {
        if st.shards_manifest_sha256 != prompts_blake3 {
            return Err(Error::Input(format!("{}: the checkpoint was trained on other prompts", dir.display())));
        }
        if cfg.lora.is_some() {
            checkpoint::load_adapters(dir, &trainer)?;
        }
        checkpoint::load_optimizer(dir, &mut trainer.opt, (st.step * cfg.updates_per_batch) as u64)?;
        step = st.step;
        super::sft::truncate_metrics(&metrics, step)?;
    }
    let stop = crate::tokenize::stop_tokens(&tokenizer);
    let total_updates = cfg.steps * cfg.updates_per_batch;
    let warmup = (cfg.warmup_ratio * total_updates as f64).ceil() as usize;
    let bar = crate::progress::bar(args.progress, Some(cfg.steps as u64), "train rl", "steps");
    bar.set_position(step as u64);
    let mut last = StepStats::default();
    let mut checkpoint_dir = resumed.clone();
    let n = prompts.len();
    // the shuffle of the epoch the last step drew from (a step may span two epochs)
    let mut order: Option<(u64, Vec<usize>)> = None;
    while step < cfg.steps {
        let first = step * cfg.prompts_per_step;
        let mut batch: Vec<&EvalPrompt> = Vec::with_capacity(cfg.prompts_per_step);
        for k in first..first + cfg.prompts_per_step {
            let epoch = (k / n) as u64;
            if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
                order = Some((epoch, epoch_order(n, cfg.seed, epoch)));
            }
            let idx = order.as_ref().map_or(0, |(_, o)| o[k % n]);
            batch.push(&prompts[idx]);
        }
        let stats = rl_step(
            &mut trainer,
            cfg,
            step,
            &batch,
            &stop,
            &tokenizer,
            reference.as_ref(),
            chunk,
            warmup,
            total_updates,
        )?;
        step += 1;
        let mut line = serde_json::to_value(&stats).map_err(|e| Error::Run(format!("metrics: {e}")))?;
        line["step"] = step.into();
        line["split"] = "train".into();
        super::sft::metrics_line(&metrics, &line)?;
        bar.set_message(format!("reward {:.3} acc {:.3}", stats.reward, stats.accuracy));
        bar.inc(1);
        last = stats;
        let done = step == cfg.steps;
        if done || (cfg.save_every > 0 && step % cfg.save_every == 0) {
            let st = TrainState {
                format: super::trainer::STATE_FORMAT.into(),
                step,
                total_steps: cfg.steps,
                epoch: (step * cfg.prompts_per_step) / n,
                position: (step * cfg.prompts_per_step) % n,
                seed: cfg.seed,
                config: tcfg.clone(),
                shards_manifest_sha256: prompts_blake3.clone(),
                base_model_blake3: base_fingerprint.clone(),
                rl: Some(rl_json.clone()),
            };
            checkpoint_dir = Some(checkpoint::save(&ckpt_root, &trainer, &st, &args.model, &tok_dir)?);
        }
    }
    bar.finish_and_clear();
    let checkpoint = checkpoint_dir.ok_or_else(|| Error::Run("train rl: no checkpoint written".into()))?;
    Ok(RlSummary { steps: step, checkpoint, last })
}

/// One rollout batch and its updates.
#[allow(clippy::too_many_arguments)]
fn rl_step(
    trainer: &mut Trainer,
    cfg: &RlConfig,
    step: usize,
    batch: &[&EvalPrompt],
    stop: &[u32],
    tokenizer: &tokenizers::Tokenizer,
    reference: Option<&CausalLm>,
    chunk: usize,
    warmup: usize,
    total_updates: usize,
) -> Result<StepStats> {
    let g = cfg.group_size;
    let t = Instant::now();
    let opts = GenerateOptions {
        max_new_tokens: cfg.max_new_tokens,
        temperature: cfg.temperature,
        top_p: cfg.top_p,
        stop: stop.to_vec(),
        seed: cfg.seed ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        samples: g,
    };
    let ps: Vec<crate::model::Prompt> = batch.iter().map(|p| p.prompt.clone()).collect();
    let outs = trainer.model.generate(&ps, &opts)?;
    let generated: usize = outs.iter().map(Vec::len).sum();
    let rollout_secs = t.elapsed().as_secs_f64();
    let rollouts = score(cfg, batch, outs, stop, tokenizer)?;
    let rewards: Vec<f64> = rollouts.iter().map(|r| r.reward).collect();
    let adv = group_advantages(&rewards, g, cfg.std_normalize, 1e-4);
    let m = rollouts.len().max(1) as f64;
    let mut stats = StepStats {
        reward: rewards.iter().sum::<f64>() / m,
        accuracy: rollouts.iter().filter(|r| r.correct).count() as f64 / m,
        format: rollouts.iter().filter(|r| r.format).count() as f64 / m,
        response_length: generated as f64 / m,
        truncated: rollouts.iter().filter(|r| r.truncated).count() as f64 / m,
        groups: batch.len(),
        rollout_tokens_per_s: generated as f64 / rollout_secs.max(1e-9),
        sampled_tokens: generated,
        ..StepStats::default()
    };
    // dynamic sampling: groups with one reward for all carry no advantage
    let keep: Vec<usize> = (0..rollouts.len())
        .filter(|&k| !(cfg.dynamic_sampling && degenerate(&rewards[k / g * g..k / g * g + g])))
        .collect();
    stats.groups_kept = keep.len() / g;
    let kept: Vec<&Rollout> = keep.iter().map(|&k| &rollouts[k]).collect();
    let kept_adv: Vec<f64> = keep.iter().map(|&k| adv[k]).collect();
    let clip = Clip { low: cfg.clip_low, high: cfg.clip_high };
    let t = Instant::now();
    let mut update_tokens = 0usize;
    let mut rows = Vec::new();
    for (row, a, w) in update_rows(cfg, batch, &kept, &kept_adv) {
        let old = row_logps(&trainer.model, &row, false, chunk)?.logp;
        let reference = match reference {
            Some(r) => Some(row_logps(r, &row, false, chunk)?.logp),
            None => None,
        };
        if old.len() != a.len() {
            return Err(Error::Run(format!("train rl: {} loss positions for {} advantages", old.len(), a.len())));
        }
        rows.push(RowData { row, old, reference, adv: a, weight: w });
    }
    let (mut clipped, mut counted, mut kl, mut entropy, mut loss) = (0usize, 0usize, 0.0, 0.0, 0.0);
    for u in 0..cfg.updates_per_batch {
        let mut acc = BTreeMap::new();
        let mut ent_sum = 0.0;
        let mut ent_n = 0usize;
        for d in &rows {
            let terms = std::cell::RefCell::new(Vec::with_capacity(d.old.len()));
            let f = |i: usize, lp: f32| -> f32 {
                let term = token_term(
                    f64::from(lp),
                    f64::from(d.old[i]),
                    d.reference.as_ref().map(|r| f64::from(r[i])),
                    d.adv[i],
                    clip,
                    cfg.beta,
                );
                terms.borrow_mut().push((term, d.weight[i]));
                token_coef(&term, d.weight[i])
            };
            let out = trainer.accumulate_objective(&d.row, &f, u == 0, &mut acc)?;
            update_tokens += d.row.ids.len();
            for (term, w) in terms.into_inner() {
                clipped += usize::from(term.clipped);
                counted += 1;
                kl += term.kl;
                loss += w * term.loss;
            }
            ent_sum += out.entropy.iter().map(|&e| f64::from(e)).sum::<f64>();
            ent_n += out.entropy.len();
        }
        if u == 0 {
            entropy = ent_sum / ent_n.max(1) as f64;
        }
        let lr = cfg.lr * lr_factor(cfg.schedule, step * cfg.updates_per_batch + u, warmup, total_updates);
        // a batch without advantages still steps (zero gradients), as the optimizer count
        // that resumption restores assumes
        let norm = global_norm(&acc)?;
        trainer.opt.step_scaled(&acc, clip_factor(norm, cfg.max_grad_norm), lr)?;
        stats.grad_norm = norm;
        stats.lr = lr;
    }
    stats.clip_fraction = clipped as f64 / counted.max(1) as f64;
    stats.kl = kl / counted.max(1) as f64;
    stats.entropy = entropy;
    stats.loss = loss / cfg.updates_per_batch as f64;
    stats.update_tokens_per_s = update_tokens as f64 / t.elapsed().as_secs_f64().max(1e-9);
    stats.update_tokens = update_tokens;
    Ok(stats)
}
