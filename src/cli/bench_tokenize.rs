//! `cotforge bench-tokenize`: the throughput of a packing run against raw `tokenizers`.
//!
//! The run must tokenize straight after ingest (e.g. `benches/pack100k.yaml`). The baseline
//! renders the same conversations (untimed) and encodes them with `encode_batch_fast` on all
//! cores, in chunks; the run's rate is the same text tokens over the wall time of its segment
//! holding `tokenize` and of writing the shards (reading, rendering, tokenizing, image
//! expansion, the work files, packing and the shard files all included).

use std::path::Path;

use crate::error::{Context, Error, Result};
use crate::io::PartReader;
use crate::pipeline::RunStats;
use crate::schema;
use crate::stages::StageSpec;

/// Run the benchmark on a finished run directory; returns the report lines.
pub fn bench_tokenize(run: &Path, chunk: usize) -> Result<String> {
    let spec = crate::spec::load(&run.join("spec.yaml"))?;
    let Some(StageSpec::Tokenize(cfg)) = spec.stages.first() else {
        return Err(Error::Input(format!(
            "{}: the spec's first stage must be `tokenize` for this benchmark",
            run.display()
        )));
    };
    let stats: RunStats = serde_json::from_slice(
        &std::fs::read(run.join("stats.json")).ctx(|| format!("reading {}/stats.json", run.display()))?,
    )
    .ctx(|| "reading stats.json")?;
    let secs =
        |pred: &dyn Fn(&str) -> bool| stats.wall_seconds.iter().filter(|(k, _)| pred(k)).map(|(_, v)| v).sum::<f64>();
    let segment = secs(&|k| k.split(" > ").any(|s| s == "tokenize"));
    let shards = secs(&|k| k == "write shards");
    if segment == 0.0 {
        return Err(Error::Input(format!(
            "{}: stats.json has no wall time for the tokenize segment; rerun without --resume",
            run.display()
        )));
    }
    let enc = cfg.encoder()?;
    let mut texts = Vec::new();
    PartReader::open(&run.join("work/00-ingest"))?.for_each_batch(4096, |df| {
        for t in schema::traces_from_df(&df)? {
            if let Ok(m) = enc.messages(&t) {
                texts.push(enc.template.render(&m, false, &enc.opts.template_vars)?);
            }
        }
        Ok(())
    })?;
    let started = std::time::Instant::now();
    let mut tokens = 0usize;
    for c in texts.chunks(chunk.max(1)) {
        let refs: Vec<&str> = c.iter().map(String::as_str).collect();
        let e = enc.tokenizer.encode_batch_fast(refs, false).map_err(|e| Error::Run(format!("tokenizing: {e}")))?;
        tokens += e.iter().map(|x| x.len()).sum::<usize>();
    }
    let raw_secs = started.elapsed().as_secs_f64();
    let raw = tokens as f64 / raw_secs;
    let ours = tokens as f64 / (segment + shards);
    Ok(format!(
        "{} conversations, {tokens} text tokens (before image expansion)\n\
         tokenizers encode_batch_fast (chunks of {chunk}): {raw_secs:.1} s, {raw:.0} tokens/s\n\
         cotforge tokenize > pack segment {segment:.1} s + write shards {shards:.1} s: {ours:.0} tokens/s ({:.0}% of batch)\n",
        texts.len(),
        100.0 * ours / raw
    ))
}
