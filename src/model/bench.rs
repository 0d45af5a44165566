//! `cotforge bench-model`: forward and generation throughput on CPU, with random weights.
//!
//! Configs: `tiny` (the fixtures' qwen2: hidden 64, 2 layers, vocab 320) and `small` (a
//! Qwen2-style 8-layer decoder, hidden 512, GQA 8/2 heads, vocab 32,000: about 40M
//! parameters). The forward pass runs a packed row of 4 segments of `tokens / 4`; generation
//! continues a 64-token prompt with the KV cache (sampling at temperature 1, prefill
//! included), as one sequence and as 8 samples decoded in one batch.

use std::time::Instant;

use candle_core::{DType, Device};

use super::{CausalLm, GenerateOptions, ModelConfig, Prompt};
use crate::error::{Error, Result};

fn config(name: &str) -> Result<ModelConfig> {
    ModelConfig::from_json(&super::init::preset(name)?).map_err(Error::Input)
}

/// Run the benchmark; returns report lines.
pub fn bench_model(name: &str, tokens: usize, new_tokens: usize, dtype: DType) -> Result<String> {
    let m = CausalLm::random(config(name)?, dtype, &Device::Cpu, 1)?;
    let params: usize = m.vars.values().map(|v| v.as_tensor().elem_count()).sum();
    let seg = (tokens / 4).max(1);
    let ids: Vec<u32> = (0..seg * 4).map(|i| (i * 7919 % m.config.text.vocab_size) as u32).collect();
    let err = |e: candle_core::Error| Error::Run(format!("bench: {e}"));
    // one warm-up pass, then the best of three
    let mut best = f64::INFINITY;
    for _ in 0..4 {
        let t = Instant::now();
        let logits = m.logits(&ids, &[seg; 4])?;
        logits
            .sum_all()
            .and_then(|s| s.to_scalar::<f32>().or_else(|_| s.to_dtype(DType::F32)?.to_scalar::<f32>()))
            .map_err(err)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    let prompt = Prompt { ids: ids[..64.min(ids.len())].to_vec(), ..Default::default() };
    let decode = |batch: usize| -> Result<(usize, f64)> {
        let opts = GenerateOptions {
            max_new_tokens: new_tokens,
            temperature: 1.0,
            samples: batch,
            seed: 5,
            ..Default::default()
        };
        let t = Instant::now();
        let out = m.generate(std::slice::from_ref(&prompt), &opts)?;
        Ok((out.iter().map(Vec::len).sum(), t.elapsed().as_secs_f64()))
    };
    let (one, one_secs) = decode(1)?;
    let (eight, eight_secs) = decode(8)?;
    Ok(format!(
        "config {name} ({params} parameters, {dtype:?}), {} threads\n\
         forward: packed row of 4 x {seg} tokens in {best:.3} s: {:.0} tokens/s\n\
         generation, 1 sequence: {one} tokens after a 64-token prompt in {one_secs:.3} s: {:.1} tokens/s\n\
         generation, 8 samples of the prompt decoded together: {eight} tokens in {eight_secs:.3} s: {:.1} tokens/s\n",
        rayon::current_num_threads(),
        (seg * 4) as f64 / best,
        one as f64 / one_secs,
        eight as f64 / eight_secs,
    ))
}
