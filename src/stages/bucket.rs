//! `bucket`: labels each tokenized row with its length bucket (`0-2048`, `2048-4096`, ...,
//! `8192+`) and may keep only a share (`weights`) or a number (`caps`) of rows per bucket,
//! sampled by seed (see [`super::sample`]). Rows left out go to the ledger as `bucket_cap`. A
//! global stage: its index pass reads only ids, token counts and buckets.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::sample::{self, GroupSampler};
use super::{IndexContext, Measured, Stage, StageContext, Verdict};
use crate::error::{Error, Result};
use crate::schema::Trace;

/// Parameters of `bucket`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Increasing token counts between buckets, e.g. `[2048, 4096, 8192]` makes `0-2048`,
    /// `2048-4096`, `4096-8192` and `8192+`.
    pub boundaries: Vec<u32>,
    /// Most rows kept per bucket label, e.g. `{"0-2048": 5000}`; sampled by seed.
    #[serde(default)]
    pub caps: BTreeMap<String, u64>,
    /// Share of rows kept per bucket label, in [0, 1], e.g. `{"0-2048": 0.5}`; sampled by seed.
    #[serde(default)]
    pub weights: BTreeMap<String, f64>,
    /// Sampling seed. Default 0.
    #[serde(default)]
    pub seed: u64,
}

impl BucketConfig {
    pub fn labels(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.boundaries.len() + 1);
        let mut lo = 0;
        for &b in &self.boundaries {
            out.push(format!("{lo}-{b}"));
            lo = b;
        }
        out.push(format!("{lo}+"));
        out
    }

    /// The bucket label of a token count.
    pub fn label(&self, tokens: u32) -> String {
        let i = self.boundaries.partition_point(|&b| b <= tokens);
        let lo = if i == 0 { 0 } else { self.boundaries[i - 1] };
        match self.boundaries.get(i) {
            Some(hi) => format!("{lo}-{hi}"),
            None => format!("{lo}+"),
        }
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        if self.boundaries.is_empty() {
            return Err("`boundaries` is empty; give increasing token counts, e.g. [2048, 4096, 8192]".into());
        }
        if self.boundaries[0] == 0 || self.boundaries.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!("`boundaries` must be positive and increasing, got {:?}", self.boundaries));
        }
        let labels = self.labels();
        for k in self.caps.keys().chain(self.weights.keys()) {
            if !labels.contains(k) {
                return Err(format!("no bucket `{k}`; the buckets are {}", labels.join(", ")));
            }
        }
        if let Some((k, w)) = self.weights.iter().find(|(_, w)| !(0.0..=1.0).contains(*w)) {
            return Err(format!("weights.{k} = {w}: a weight is the share of rows kept, in [0, 1]"));
        }
        Ok(())
    }
}

pub(super) fn need_tokens(stage: &str, t: &Trace) -> Result<u32> {
    t.num_tokens
        .ok_or_else(|| Error::Run(format!("{stage}: row {} has no token count; put `tokenize` before `{stage}`", t.id)))
}

pub struct Bucket {
    cfg: BucketConfig,
    sampler: GroupSampler,
    /// Rows and tokens per label before weights.
    seen: BTreeMap<String, [u64; 2]>,
}

impl Bucket {
    pub fn new(cfg: BucketConfig) -> Self {
        Self { cfg, sampler: GroupSampler::default(), seen: BTreeMap::new() }
    }

    fn weight(&self, label: &str) -> f64 {
        self.cfg.weights.get(label).copied().unwrap_or(1.0)
    }
}

impl Stage for Bucket {
    fn name(&self) -> &'static str {
        "bucket"
    }

    fn needs_index(&self) -> bool {
        true
    }

    fn index_columns(&self) -> Option<Vec<&'static str>> {
        Some(vec!["id", "num_tokens"])
    }

    fn index(&mut self, first: u64, batch: &[Trace], _ctx: &IndexContext) -> Result<()> {
        for (i, t) in batch.iter().enumerate() {
            let n = need_tokens("bucket", t)?;
            let label = self.cfg.label(n);
            let s = self.seen.entry(label.clone()).or_default();
            s[0] += 1;
            s[1] += n as u64;
            let key = sample::key(self.cfg.seed, &t.id);
            if sample::within_weight(key, self.weight(&label)) {
                self.sampler.add(&label, key, first + i as u64, n);
            }
        }
        Ok(())
    }

    fn finish_index(&mut self, _ctx: &IndexContext) -> Result<()> {
        self.sampler.set_quotas(&self.cfg.caps);
        Ok(())
    }

    fn judge_measured(&self, pos: u64, t: &Trace, ctx: &StageContext) -> Result<Measured> {
        self.apply(pos, &mut t.clone(), ctx)
    }

    fn apply(&self, pos: u64, t: &mut Trace, _ctx: &StageContext) -> Result<Measured> {
        let n = need_tokens("bucket", t)?;
        let label = self.cfg.label(n);
        let key = sample::key(self.cfg.seed, &t.id);
        let w = self.weight(&label);
        let verdict = if !sample::within_weight(key, w) {
            Verdict::drop("bucket_cap", format!("bucket {label}: weight {w} (seed {})", self.cfg.seed))
        } else if !self.sampler.keeps(&label, key, pos) {
            let cap = self.cfg.caps.get(&label).copied().unwrap_or(0);
            Verdict::drop("bucket_cap", format!("bucket {label}: cap {cap} (seed {})", self.cfg.seed))
        } else {
            Verdict::Keep
        };
        t.bucket = Some(label);
        Ok(Measured { verdict, values: vec![("tokens", n as f64)] })
    }

    fn save_partial(&mut self) -> Result<Vec<u8>> {
        super::encode_state(self.name(), &(&self.seen, &self.sampler))
    }

    fn load_partial(&mut self, bytes: &[u8]) -> Result<()> {
        let (seen, sampler): (BTreeMap<String, [u64; 2]>, GroupSampler) = super::decode_state(self.name(), bytes)?;
        for (label, [rows, tokens]) in seen {
            let s = self.seen.entry(label).or_default();
            s[0] += rows;
            s[1] += tokens;
        }
        self.sampler.absorb(sampler);
        Ok(())
    }

    fn save_decisions(&mut self) -> Result<Vec<u8>> {
        self.save_partial()
    }

    fn load_decisions(&mut self, bytes: &[u8]) -> Result<()> {
        (self.seen, self.sampler) = super::decode_state(self.name(), bytes)?;
        Ok(())
    }

    fn summary(&self) -> Option<serde_json::Value> {
        let mut out = serde_json::Map::new();
        for label in self.cfg.labels() {
            let [rows, tokens] = self.seen.get(&label).copied().unwrap_or_default();
            let [_, kept, _, kept_tokens] = self.sampler.totals.get(&label).copied().unwrap_or_default();
            out.insert(
                label,
                serde_json::json!({"rows_in": rows, "rows_kept": kept, "tokens_in": tokens, "tokens_kept": kept_tokens}),
            );
        }
        Some(serde_json::json!({"boundaries": self.cfg.boundaries, "buckets": out}))
    }
}
