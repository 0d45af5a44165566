//! Deterministic sampling by seed, shared by `bucket` and `mix`: every row gets a key,
//! `xxh3(id, seed)`, and a group keeps its rows with the smallest keys (ties by input
//! position). The keys depend only on the row id and the seed, so the rows kept do not depend
//! on input order, batch size or thread count, and a larger quota keeps a superset.

use std::collections::{BTreeMap, HashMap};

/// The sampling key of a row.
pub fn key(seed: u64, id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), seed)
}

/// Whether a row with `key` survives a keep-share `weight` in [0, 1].
pub fn within_weight(key: u64, weight: f64) -> bool {
    weight >= 1.0 || (key as f64) < weight * 18_446_744_073_709_551_616.0
}

/// Rows of each group seen in the index pass (key, position, tokens), then the largest
/// (key, position) each group keeps.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct GroupSampler {
    rows: BTreeMap<String, Vec<(u64, u64, u32)>>,
    /// Absent: the group keeps every row; `None`: no row; `Some(l)`: rows up to `l`.
    limits: HashMap<String, Option<(u64, u64)>>,
    /// Per group: rows seen, rows kept, tokens seen, tokens kept.
    pub totals: BTreeMap<String, [u64; 4]>,
}

impl GroupSampler {
    pub fn add(&mut self, group: &str, key: u64, pos: u64, tokens: u32) {
        match self.rows.get_mut(group) {
            Some(v) => v.push((key, pos, tokens)),
            None => {
                self.rows.insert(group.to_string(), vec![(key, pos, tokens)]);
            }
        }
    }

    /// Add the rows another sampler saw (a later task's, in split runs).
    pub fn absorb(&mut self, other: GroupSampler) {
        for (g, rows) in other.rows {
            self.rows.entry(g).or_default().extend(rows);
        }
    }

    /// Rows seen per group.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.rows.iter().map(|(g, v)| (g.clone(), v.len() as u64)).collect()
    }

    /// Keep at most `quotas[group]` rows of each group (groups not listed keep all), then
    /// drop the per-row lists.
    pub fn set_quotas(&mut self, quotas: &BTreeMap<String, u64>) {
        for (group, mut rows) in std::mem::take(&mut self.rows) {
            let n = rows.len() as u64;
            let tokens: u64 = rows.iter().map(|r| r.2 as u64).sum();
            let quota = quotas.get(&group).copied().unwrap_or(n);
            let (kept, kept_tokens) = if quota >= n {
                (n, tokens)
            } else if quota == 0 {
                self.limits.insert(group.clone(), None);
                (0, 0)
            } else {
                let k = quota as usize;
                rows.select_nth_unstable_by_key(k - 1, |r| (r.0, r.1));
                let limit = (rows[k - 1].0, rows[k - 1].1);
                self.limits.insert(group.clone(), Some(limit));
                (quota, rows[..k].iter().map(|r| r.2 as u64).sum())
            };
            self.totals.insert(group, [n, kept, tokens, kept_tokens]);
        }
    }

    /// Whether a row of `group` is kept.
    pub fn keeps(&self, group: &str, key: u64, pos: u64) -> bool {
        match self.limits.get(group) {
            None => true,
            Some(None) => false,
            Some(Some(l)) => (key, pos) <= *l,
        }
    }

    /// The summary for stats.json: per group, rows and tokens in and kept.
    pub fn summary(&self) -> serde_json::Value {
        let groups: serde_json::Map<String, serde_json::Value> = self
            .totals
            .iter()
            .map(|(g, [n, k, t, kt])| {
                (g.clone(), serde_json::json!({"rows_in": n, "rows_kept": k, "tokens_in": t, "tokens_kept": kt}))
            })
            .collect();
        serde_json::Value::Object(groups)
    }
}
