//! Benchmark commands: `bench-tokens`, `bench-tokenize`, `bench-model`, `bench-sft` and
//! `bench-pack`. Each prints its numbers; `BENCHMARKS.md` records them with the commands.

use std::path::PathBuf;

use crate::error::{Error, Result};

/// Benchmark token counting on a text column of a Parquet file: raw `tokenizers` batch
/// encoding against cotforge's per-row counting (what filter.length does).
#[derive(clap::Args)]
pub struct BenchTokensArgs {
    /// Parquet file.
    pub parquet: PathBuf,
    /// Text column.
    #[arg(long, default_value = "answer")]
    pub column: String,
    /// Rows to read.
    #[arg(long, default_value_t = 2000)]
    pub rows: usize,
}

pub fn bench_tokens(a: BenchTokensArgs) -> Result<()> {
    let BenchTokensArgs { parquet, column, rows } = a;
    let df = crate::io::read_parquet_slice(&parquet, Some(vec![column.clone()]), 0, rows)?;
    let texts: Vec<String> = df
        .column(&column)
        .and_then(|c| c.str().map(|s| s.iter().map(|v| v.unwrap_or("").to_string()).collect()))
        .map_err(|e| Error::Input(format!("{}: column `{column}`: {e}", parquet.display())))?;
    let tk = crate::text::tokens::TokenCounter::bundled()?;
    let (raw, ours, total) = crate::text::tokens::bench_counting(&tk, &texts)?;
    println!("{} texts, {total} tokens", texts.len());
    println!("tokenizers encode_batch_fast: {raw:.0} tokens/s");
    println!("cotforge per-row counting:    {ours:.0} tokens/s ({:.0}% of batch)", 100.0 * ours / raw);
    Ok(())
}

/// Benchmark a finished packing run (first stage `tokenize`, e.g. benches/pack100k.yaml):
/// raw `tokenizers` batch encoding of the same rendered conversations against the run's
/// tokenize-and-pack wall time.
#[derive(clap::Args)]
pub struct BenchTokenizeArgs {
    /// Run directory.
    pub run: PathBuf,
    /// Conversations per `encode_batch_fast` call.
    #[arg(long, default_value_t = 1024)]
    pub chunk: usize,
}

pub fn bench_tokenize(a: BenchTokenizeArgs) -> Result<()> {
    let BenchTokenizeArgs { run, chunk } = a;
    print!("{}", crate::cli::bench_tokenize::bench_tokenize(&run, chunk)?);
    Ok(())
}

/// Benchmark the candle model on CPU with random weights: forward tokens/s on a packed row
/// and KV-cache generation tokens/s.
#[derive(clap::Args)]
pub struct BenchModelArgs {
    /// `tiny` (the test fixtures' size) or `small` (8 layers, hidden 512, vocab 32k).
    #[arg(long, default_value = "tiny")]
    pub config: String,
    /// Tokens in the packed row of the forward pass.
    #[arg(long, default_value_t = 1024)]
    pub tokens: usize,
    /// Tokens to generate.
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Run in bf16 instead of f32.
    #[arg(long)]
    bf16: bool,
}

pub fn bench_model(a: BenchModelArgs) -> Result<()> {
    let BenchModelArgs { config, tokens, new_tokens, bf16 } = a;
    let dtype = if bf16 { candle_core::DType::BF16 } else { candle_core::DType::F32 };
    print!("{}", crate::model::bench::bench_model(&config, tokens, new_tokens, dtype)?);
    Ok(())
}

/// Benchmark one SFT step (forward, backward, AdamW) on CPU with a random model: tokens/s
/// and peak RSS, on one packed row (a quarter prompt, three quarters loss per segment).
#[derive(clap::Args)]
pub struct BenchSftArgs {
    /// qwen2-tiny (hidden 256, 4 layers, vocab 151,936) or qwen2-small (hidden 512, 8
    /// layers), or any `init-model` config name.
    #[arg(long, default_value = "qwen2-tiny")]
    pub config: String,
    #[arg(long, default_value_t = 2048)]
    pub tokens: usize,
    #[arg(long, default_value_t = 4)]
    pub segments: usize,
    /// Timed steps after one warm-up step.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Output-layer chunk size (MiB of f32 logits), as `head_chunk_mib` in train.yaml.
    #[arg(long, default_value_t = 256)]
    pub head_chunk_mib: usize,
    /// Keep the decoder's whole graph when its estimate fits this many MiB, else recompute
    /// layers in the backward pass (`graph_budget_mib` in train.yaml).
    #[arg(long, default_value_t = 1024)]
    pub graph_budget_mib: usize,
}

pub fn bench_sft(a: BenchSftArgs) -> Result<()> {
    let BenchSftArgs { config, tokens, segments, steps, head_chunk_mib, graph_budget_mib } = a;
    print!("{}", crate::train::bench::bench_sft(&config, tokens, segments, steps, head_chunk_mib, graph_budget_mib)?);
    Ok(())
}

/// Benchmark best-fit-decreasing packing on log-normal long-CoT lengths (median 2k
/// tokens, p95 7k).
#[derive(clap::Args)]
pub struct BenchPackArgs {
    /// Number of samples.
    #[arg(long, default_value_t = 1_000_000)]
    pub n: usize,
    /// Pack capacities (tokens).
    #[arg(long, value_delimiter = ',', default_value = "8192,16384")]
    pub max_len: Vec<u32>,
    /// Also write the lengths, one per line, to this file (for benches/trl_pack_compare.py).
    #[arg(long)]
    pub lengths_out: Option<PathBuf>,
}

pub fn bench_pack(a: BenchPackArgs) -> Result<()> {
    let BenchPackArgs { n, max_len, lengths_out } = a;
    let lengths = crate::shards::bfd::lognormal_lengths(n, 2000.0, 7000.0, 32_768, 1);
    if let Some(path) = lengths_out {
        let text: String = lengths.iter().map(|l| format!("{l}\n")).collect();
        crate::io::atomic_write(&path, text.as_bytes(), 0)?;
    }
    for cap in max_len {
        let t = std::time::Instant::now();
        let p = crate::shards::bfd::best_fit_decreasing(&lengths, cap, None);
        let secs = t.elapsed().as_secs_f64();
        let lost: u64 = p.over.iter().map(|&i| lengths[i as usize] as u64).sum();
        println!(
            "{n} samples, capacity {cap}: {} packs, fill {:.4}%, {} over-length samples ({lost} tokens) left out, {secs:.3} s",
            p.packs.len(),
            100.0 * p.fill(),
            p.over.len()
        );
    }
    Ok(())
}
