//! Fixed-bucket histograms of values measured by stages (kept in stats.json).
//!
//! Buckets follow a 1-2-5 series, so histograms of any two runs line up and merge by adding
//! counts; the result does not depend on batch boundaries or thread count.

use serde::{Deserialize, Serialize};

/// Lower edges of the buckets: 0, then 0.001 .. 5e7 in a 1-2-5 series; values below 0 go to
/// the first bucket, values past the last edge to the last.
pub fn edges() -> Vec<f64> {
    let mut e = vec![0.0];
    let mut decade = 0.001;
    while decade < 1e8 {
        for m in [1.0, 2.0, 5.0] {
            e.push(m * decade);
        }
        decade *= 10.0;
    }
    e
}

/// The edge after `lower` in `edges` (None for the last bucket, which is open).
pub fn upper_edge(edges: &[f64], lower: f64) -> Option<f64> {
    let i = edges.partition_point(|x| *x <= lower);
    edges.get(i).copied()
}

/// A histogram over [`edges`], with count, sum, min and max.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// `[lower edge, count]` for every non-empty bucket, in order.
    pub buckets: Vec<(f64, u64)>,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { count: 0, sum: 0.0, min: f64::INFINITY, max: f64::NEG_INFINITY, buckets: Vec::new() }
    }
}

impl Histogram {
    /// Add one value (NaN is ignored).
    pub fn add(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        self.count += 1;
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        let e = edges();
        let i = e.partition_point(|x| *x <= v).saturating_sub(1);
        let lower = e[i];
        match self.buckets.binary_search_by(|(l, _)| l.total_cmp(&lower)) {
            Ok(k) => self.buckets[k].1 += 1,
            Err(k) => self.buckets.insert(k, (lower, 1)),
        }
    }

    /// Add another histogram's values (the same edges: counts add up).
    pub fn merge(&mut self, other: &Histogram) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        for &(lower, n) in &other.buckets {
            match self.buckets.binary_search_by(|(l, _)| l.total_cmp(&lower)) {
                Ok(k) => self.buckets[k].1 += n,
                Err(k) => self.buckets.insert(k, (lower, n)),
            }
        }
    }

    /// Mean of the values added.
    pub fn mean(&self) -> f64 {
        if self.count == 0 { 0.0 } else { self.sum / self.count as f64 }
    }
}
