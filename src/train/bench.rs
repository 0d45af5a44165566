//! `cotforge bench-sft`: tokens/s of one SFT step (forward, backward, AdamW) on CPU, on one
//! packed row of `tokens` tokens in `segments` equal segments, each a quarter prompt (no loss)
//! and three quarters response (loss), with a random model of a named config (see
//! [`crate::model::init::preset`]). One warm-up step, then `steps` timed steps; the peak RSS
//! is the process's.

use std::time::{Duration, Instant};

use candle_core::{DType, Device};

use super::{TrainConfig, Trainer};
use crate::error::{Error, Result};
use crate::model::{CausalLm, ModelConfig};
use crate::shards::Pack;

/// The benchmark row: token ids below `vocab`, segments of equal length, loss on the last
/// three quarters of each.
pub fn bench_pack(tokens: usize, segments: usize, vocab: usize) -> Pack {
    let seg = tokens / segments.max(1);
    let mut rng = crate::rng::Rng::new(7);
    let input_ids: Vec<u32> = (0..seg * segments).map(|_| rng.below(vocab.min(150_000)) as u32).collect();
    let loss_mask = (0..seg * segments).map(|i| i % seg >= seg / 4).collect();
    Pack {
        index: 0,
        input_ids,
        loss_mask,
        segment_lengths: vec![seg as u32; segments],
        sample_ids: (0..segments).map(|s| format!("s{s}")).collect(),
        images: vec![],
        image_grid_thw: vec![],
    }
}

pub fn bench_sft(
    config: &str,
    tokens: usize,
    segments: usize,
    steps: usize,
    head_chunk_mib: usize,
    graph_budget_mib: usize,
) -> Result<String> {
    let cfg = ModelConfig::from_json(&crate::model::init::preset(config)?).map_err(Error::Input)?;
    let vocab = cfg.text.vocab_size;
    let model = CausalLm::random(cfg, DType::F32, &Device::Cpu, 1)?;
    let params: usize = model.vars.values().map(|v| v.as_tensor().elem_count()).sum();
    let train = TrainConfig { lr: 1e-5, packs_per_step: 1, head_chunk_mib, graph_budget_mib, ..TrainConfig::default() };
    let mut t = Trainer::new(model, train)?;
    let pack = bench_pack(tokens, segments, vocab);
    let loss_tokens = t.nll(&crate::train::Row::of([&pack]))?.tokens;
    t.step(std::slice::from_ref(&pack), 1e-5)?;
    let mut times = Vec::new();
    for _ in 0..steps.max(1) {
        let s = Instant::now();
        t.step(std::slice::from_ref(&pack), 1e-5)?;
        times.push(s.elapsed());
    }
    let best = times.iter().min().copied().unwrap_or(Duration::ZERO).as_secs_f64();
    let mean = times.iter().map(|d| d.as_secs_f64()).sum::<f64>() / times.len() as f64;
    let rss = crate::progress::peak_rss_bytes().unwrap_or(0) as f64 / (1u64 << 30) as f64;
    Ok(format!(
        "config {config} ({params} parameters, f32), {} threads, 1 row of {} tokens in {segments} segments ({loss_tokens} loss tokens)\n\
         SFT step (forward, backward, AdamW): best {best:.3} s, mean {mean:.3} s over {} steps: {:.0} tokens/s (best), {:.0} tokens/s (mean)\n\
         peak RSS {rss:.2} GiB\n",
        rayon::current_num_threads(),
        pack.input_ids.len(),
        times.len(),
        pack.input_ids.len() as f64 / best,
        pack.input_ids.len() as f64 / mean,
    ))
}
