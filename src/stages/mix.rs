//! `mix`: brings sources (or source/bucket groups) to target `shares` of the output, as many
//! rows as the scarcest group allows, with optional `caps` and a `total`, sampled by seed (see
//! [`super::sample`]). Rows left out go to the ledger as `mix_cap`. A global stage: its index
//! pass reads only ids, sources, token counts and buckets.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::sample::{self, GroupSampler};
use super::{IndexContext, Measured, Stage, StageContext, Verdict};
use crate::error::{Error, Result};
use crate::schema::Trace;

/// What `mix` groups rows by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MixBy {
    /// The input's `source` name (default).
    #[default]
    Source,
    /// Source and bucket, as `source/bucket` (needs `bucket` before `mix`).
    SourceBucket,
}

/// Parameters of `mix`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MixConfig {
    /// Groups: `source` (default) or `source_bucket` (keys like `synth/2048-4096`).
    #[serde(default)]
    pub by: MixBy,
    /// Target share of the output per group, e.g. `{cold-start: 0.7, synth: 0.3}` (normalised
    /// to sum 1). The output is as large as the scarcest group allows. When given, every
    /// group in the data must be listed (0 drops a group).
    #[serde(default)]
    pub shares: BTreeMap<String, f64>,
    /// Most rows kept per group.
    #[serde(default)]
    pub caps: BTreeMap<String, u64>,
    /// Most rows kept in all.
    #[serde(default)]
    pub total: Option<u64>,
    /// Sampling seed. Default 0.
    #[serde(default)]
    pub seed: u64,
}

impl MixConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        if let Some((k, s)) = self.shares.iter().find(|(_, s)| !s.is_finite() || **s < 0.0) {
            return Err(format!("shares.{k} = {s}: shares must be non-negative"));
        }
        if !self.shares.is_empty() && self.shares.values().sum::<f64>() <= 0.0 {
            return Err("`shares` sum to 0; give at least one group a positive share".into());
        }
        if self.shares.is_empty() && self.caps.is_empty() && self.total.is_none() {
            return Err("give `shares`, `caps` or `total`; without them mix keeps every row".into());
        }
        Ok(())
    }

    /// Rows kept per group, given the rows per group.
    pub fn quotas(&self, counts: &BTreeMap<String, u64>) -> Result<BTreeMap<String, u64>> {
        let mut q: BTreeMap<String, u64> = counts.clone();
        for (g, &n) in counts {
            if let Some(&c) = self.caps.get(g) {
                q.insert(g.clone(), n.min(c));
            }
        }
        if !self.shares.is_empty() {
            if let Some(g) = counts.keys().find(|g| !self.shares.contains_key(*g)) {
                return Err(Error::Spec(format!(
                    "mix: group `{g}` ({} rows) has no entry in `shares`; give it a share (0 drops it). Groups: {}",
                    counts[g],
                    counts.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            let sum: f64 = self.shares.iter().filter(|(g, _)| counts.contains_key(*g)).map(|(_, s)| s).sum();
            if sum <= 0.0 {
                return Err(Error::Spec("mix: every group present has share 0".into()));
            }
            // the largest output in which every group can meet its share
            let mut total = f64::INFINITY;
            for (g, &avail) in &q {
                let p = self.shares[g] / sum;
                if p > 0.0 {
                    total = total.min(avail as f64 / p);
                }
            }
            if let Some(t) = self.total {
                total = total.min(t as f64);
            }
            for (g, v) in q.iter_mut() {
                let p = self.shares[g] / sum;
                *v = ((p * total + 1e-9).floor() as u64).min(*v);
            }
        } else if let Some(t) = self.total {
            let n: u64 = q.values().sum();
            if n > t {
                // proportional to what each group has
                for v in q.values_mut() {
                    *v = ((*v as f64) * t as f64 / n as f64 + 1e-9).floor() as u64;
                }
            }
        }
        Ok(q)
    }

    fn group(&self, t: &Trace) -> Result<String> {
        Ok(match self.by {
            MixBy::Source => t.source.clone(),
            MixBy::SourceBucket => {
                let b = t.bucket.as_deref().ok_or_else(|| {
                    Error::Run(format!(
                        "mix: row {} has no bucket; put `bucket` before `mix` (by: source_bucket)",
                        t.id
                    ))
                })?;
                format!("{}/{b}", t.source)
            }
        })
    }
}

pub struct Mix {
    cfg: MixConfig,
    sampler: GroupSampler,
    quotas: BTreeMap<String, u64>,
}

impl Mix {
    pub fn new(cfg: MixConfig) -> Self {
        Self { cfg, sampler: GroupSampler::default(), quotas: BTreeMap::new() }
    }
}

impl Stage for Mix {
    fn name(&self) -> &'static str {
        "mix"
    }

    fn needs_index(&self) -> bool {
        true
    }

    fn index_columns(&self) -> Option<Vec<&'static str>> {
        Some(vec!["id", "source", "num_tokens", "bucket"])
    }

    fn index(&mut self, first: u64, batch: &[Trace], _ctx: &IndexContext) -> Result<()> {
        for (i, t) in batch.iter().enumerate() {
            let g = self.cfg.group(t)?;
            self.sampler.add(&g, sample::key(self.cfg.seed, &t.id), first + i as u64, t.num_tokens.unwrap_or(0));
        }
        Ok(())
    }

    fn finish_index(&mut self, _ctx: &IndexContext) -> Result<()> {
        self.quotas = self.cfg.quotas(&self.sampler.counts())?;
        self.sampler.set_quotas(&self.quotas);
        Ok(())
    }

    fn judge_measured(&self, pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let g = self.cfg.group(t)?;
        let verdict = if self.sampler.keeps(&g, sample::key(self.cfg.seed, &t.id), pos) {
            Verdict::Keep
        } else {
            let [n, k, _, _] = self.sampler.totals.get(&g).copied().unwrap_or_default();
            Verdict::drop("mix_cap", format!("group {g}: {k} of {n} rows kept (seed {})", self.cfg.seed))
        };
        Ok(Measured::only(verdict))
    }

    fn save_partial(&mut self) -> Result<Vec<u8>> {
        super::encode_state(self.name(), &self.sampler)
    }

    fn load_partial(&mut self, bytes: &[u8]) -> Result<()> {
        let sampler: GroupSampler = super::decode_state(self.name(), bytes)?;
        self.sampler.absorb(sampler);
        Ok(())
    }

    fn save_decisions(&mut self) -> Result<Vec<u8>> {
        super::encode_state(self.name(), &(&self.quotas, &self.sampler))
    }

    fn load_decisions(&mut self, bytes: &[u8]) -> Result<()> {
        (self.quotas, self.sampler) = super::decode_state(self.name(), bytes)?;
        Ok(())
    }

    fn summary(&self) -> Option<serde_json::Value> {
        let kept: u64 = self.sampler.totals.values().map(|t| t[1]).sum();
        let mut s = self.sampler.summary();
        if let serde_json::Value::Object(m) = &mut s {
            for (g, v) in m.iter_mut() {
                let k = self.sampler.totals[g][1];
                v["share_out"] = serde_json::json!(if kept == 0 { 0.0 } else { k as f64 / kept as f64 });
            }
        }
        Some(serde_json::json!({"groups": s}))
    }
}
