//! `dedup.exact`: exact duplicates after normalisation ([`crate::text::normalize`]) of the
//! chosen fields; images compare by content id. The first row in input order is kept; the
//! others go to the ledger as `duplicate` with `kept_id`.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::Deserialize;
use xxhash_rust::xxh3::Xxh3;

use crate::error::Result;
use crate::schema::Trace;
use crate::stages::{IndexContext, Measured, Stage, StageContext, Verdict};
use crate::text::normalize;

/// A part of the trace that dedup keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyField {
    System,
    Prompt,
    Response,
    Reference,
    Images,
}

/// Parameters of `dedup.exact`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExactConfig {
    /// Fields that together make the key. Default `[prompt, images]`.
    #[serde(default = "default_on")]
    pub on: Vec<KeyField>,
}

fn default_on() -> Vec<KeyField> {
    vec![KeyField::Prompt, KeyField::Images]
}

/// The dedup key of a row: xxh3-128 over the normalised fields, each length-prefixed.
pub fn key(t: &Trace, on: &[KeyField]) -> u128 {
    let mut h = Xxh3::new();
    let mut put = |s: &str| {
        h.update(&(s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    for f in on {
        match f {
            KeyField::System => put(&normalize(t.system.as_deref().unwrap_or(""))),
            KeyField::Prompt => put(&normalize(&t.prompt)),
            KeyField::Response => put(&normalize(&t.response)),
            KeyField::Reference => put(&normalize(t.reference.as_deref().unwrap_or(""))),
            KeyField::Images => {
                put(&t.images.len().to_string());
                for i in &t.images {
                    put(&i.id);
                }
            }
        }
    }
    h.digest128()
}

pub struct Exact {
    on: Vec<KeyField>,
    /// key -> (position of the first row with it, its id)
    first: HashMap<u128, (u64, String)>,
}

impl Exact {
    pub fn new(cfg: ExactConfig) -> Self {
        let on = if cfg.on.is_empty() { default_on() } else { cfg.on };
        Self { on, first: HashMap::new() }
    }
}

impl Stage for Exact {
    fn name(&self) -> &'static str {
        "dedup.exact"
    }

    fn needs_index(&self) -> bool {
        true
    }

    fn index(&mut self, first: u64, batch: &[Trace], _ctx: &IndexContext) -> Result<()> {
        use rayon::prelude::*;
        let keys: Vec<u128> = batch.par_iter().map(|t| key(t, &self.on)).collect();
        for (i, (k, t)) in keys.into_iter().zip(batch).enumerate() {
            self.first.entry(k).or_insert_with(|| (first + i as u64, t.id.clone()));
        }
        Ok(())
    }

    /// The first row of each key among the task's rows: `[key (hex), position, id]`.
    fn save_partial(&mut self) -> Result<Vec<u8>> {
        let mut v: Vec<(String, u64, &str)> =
            self.first.iter().map(|(k, (p, id))| (format!("{k:032x}"), *p, id.as_str())).collect();
        v.sort_unstable_by_key(|e| e.1);
        crate::stages::encode_state(self.name(), &v)
    }

    fn load_partial(&mut self, bytes: &[u8]) -> Result<()> {
        let v: Vec<(String, u64, String)> = crate::stages::decode_state(self.name(), bytes)?;
        for (k, p, id) in v {
            let k = u128::from_str_radix(&k, 16)
                .map_err(|e| crate::Error::Run(format!("dedup.exact: bad key {k}: {e}")))?;
            // tasks arrive in rank order: an earlier task's first row stays first
            self.first.entry(k).or_insert((p, id));
        }
        Ok(())
    }

    fn save_decisions(&mut self) -> Result<Vec<u8>> {
        self.save_partial()
    }

    fn load_decisions(&mut self, bytes: &[u8]) -> Result<()> {
        self.load_partial(bytes)
    }

    fn judge_measured(&self, pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        match self.first.get(&key(t, &self.on)) {
            Some((p, kept)) if *p != pos => Ok(Measured::only(Verdict::Drop {
                reason: "duplicate",
                detail: format!("same normalised {} as {kept}", names(&self.on)),
                kept_id: Some(kept.clone()),
            })),
            _ => Ok(Measured::only(Verdict::Keep)),
        }
    }
}

fn names(on: &[KeyField]) -> String {
    on.iter().map(|f| format!("{f:?}").to_lowercase()).collect::<Vec<_>>().join("+")
}
