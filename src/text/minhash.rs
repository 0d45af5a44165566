//! MinHash signatures and LSH banding for near-duplicate detection.
//!
//! Text is normalised ([`normalize_for_dedup`]), cut into word or character shingles, and each
//! shingle hashed once with xxh3 (stable across versions and platforms). Permutation `i` maps a
//! shingle hash `x` to `(a_i * x + b_i) mod (2^61 - 1)` with `a_i` and `b_i` drawn from xxh3 of
//! the seed (the universal family datasketch uses), keeping the top 32 bits. A multiply-shift
//! family is faster but measurably biased on sets of a few dozen shingles (estimates about 0.02
//! low at Jaccard 0.5-1). A signature keeps the minimum of each permutation, updated shingle by shingle, so the
//! work per document is linear in its length and no shingles x permutations matrix is built.

use schemars::JsonSchema;
use serde::Deserialize;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Shingle unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum ShingleKind {
    /// Character n-grams of the normalised text (spaces included): for short prompts.
    #[default]
    Chars,
    /// Word n-grams: for long texts such as reasoning.
    Words,
}

/// Lowercase, `<image>` placeholders removed, every run of non-alphanumeric characters made one
/// space: wording differences count, punctuation and spacing do not.
pub fn normalize_for_dedup(s: &str) -> String {
    let s = s.replace("<image>", " ");
    let mut out = String::with_capacity(s.len());
    let mut space = true;
    for c in s.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Hashes of the `n`-shingles of already normalised text, appended to `out`. A text shorter
/// than one shingle gives one shingle of the whole text (an empty text gives none).
pub fn shingle_hashes(norm: &str, kind: ShingleKind, n: usize, out: &mut Vec<u64>) {
    let n = n.max(1);
    if norm.is_empty() {
        return;
    }
    match kind {
        ShingleKind::Chars => {
            let bounds: Vec<usize> = norm.char_indices().map(|(i, _)| i).chain([norm.len()]).collect();
            let chars = bounds.len() - 1;
            if chars <= n {
                out.push(xxh3_64(norm.as_bytes()));
                return;
            }
            for k in 0..=chars - n {
                out.push(xxh3_64(&norm.as_bytes()[bounds[k]..bounds[k + n]]));
            }
        }
        ShingleKind::Words => {
            // word boundaries of normalised text are single spaces
            let starts: Vec<usize> = std::iter::once(0).chain(norm.match_indices(' ').map(|(i, _)| i + 1)).collect();
            let words = starts.len();
            if words <= n {
                out.push(xxh3_64(norm.as_bytes()));
                return;
            }
            for k in 0..=words - n {
                let end = if k + n < words { starts[k + n] - 1 } else { norm.len() };
                out.push(xxh3_64(&norm.as_bytes()[starts[k]..end]));
            }
        }
    }
}

/// The Mersenne prime 2^61 - 1.
const MERSENNE_61: u64 = (1 << 61) - 1;

/// A family of `num_perm` permutations.
#[derive(Debug, Clone)]
pub struct MinHasher {
    a: Vec<u64>,
    b: Vec<u64>,
}

impl MinHasher {
    pub fn new(num_perm: usize, seed: u64) -> Self {
        let draw = |i: usize, salt: u64| xxh3_64_with_seed(&(i as u64).to_le_bytes(), seed ^ salt) % MERSENNE_61;
        Self {
            a: (0..num_perm).map(|i| draw(i, 0x5_EEDA).max(1)).collect(),
            b: (0..num_perm).map(|i| draw(i, 0x5_EEDB)).collect(),
        }
    }

    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// The signature of a set of shingle hashes into `sig` (length `num_perm`). An empty set
    /// gives all `u32::MAX`.
    pub fn signature(&self, shingles: &[u64], sig: &mut [u32]) {
        sig.fill(u32::MAX);
        for &h in shingles {
            let x = h % MERSENNE_61;
            for ((s, &a), &b) in sig.iter_mut().zip(&self.a).zip(&self.b) {
                // (a x + b) mod p, p = 2^61 - 1, reduced without division; the top 32 of its
                // 61 bits are kept
                let t = a as u128 * x as u128 + b as u128;
                let mut v = (t as u64 & MERSENNE_61) + (t >> 61) as u64;
                v = (v & MERSENNE_61) + (v >> 61);
                if v >= MERSENNE_61 {
                    v -= MERSENNE_61;
                }
                let v = (v >> 29) as u32;
                if v < *s {
                    *s = v;
                }
            }
        }
    }
}

/// Share of equal positions: the MinHash estimate of Jaccard similarity.
pub fn estimate_jaccard(a: &[u32], b: &[u32]) -> f64 {
    if a.is_empty() {
        return 0.0;
    }
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

/// Exact Jaccard similarity of two shingle hash sets (sorted and deduplicated in place).
pub fn exact_jaccard(a: &mut Vec<u64>, b: &mut Vec<u64>) -> f64 {
    for v in [&mut *a, &mut *b] {
        v.sort_unstable();
        v.dedup();
    }
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// Hash of band `band` (rows `band*rows .. (band+1)*rows`) of a signature.
pub fn band_hash(sig: &[u32], band: usize, rows: usize) -> u64 {
    let part = &sig[band * rows..(band + 1) * rows];
    let mut bytes = Vec::with_capacity(rows * 4);
    for v in part {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    xxh3_64_with_seed(&bytes, band as u64)
}

/// Probability that a pair of Jaccard `s` becomes a candidate with `bands` x `rows`.
pub fn candidate_probability(s: f64, bands: usize, rows: usize) -> f64 {
    1.0 - (1.0 - s.powi(rows as i32)).powi(bands as i32)
}

/// Bands and rows (bands x rows <= num_perm) that minimise the weighted sum of the
/// false-positive area below `threshold` (weight `fp_weight`) and the false-negative area above
/// it (weight `1 - fp_weight`), as datasketch chooses them (it weighs both 0.5).
pub fn optimal_bands(threshold: f64, num_perm: usize, fp_weight: f64) -> (usize, usize) {
    let integrate = |f: &dyn Fn(f64) -> f64, lo: f64, hi: f64| {
        let steps = 200;
        let h = (hi - lo) / steps as f64;
        (0..steps).map(|k| f(lo + (k as f64 + 0.5) * h) * h).sum::<f64>()
    };
    let mut best = (1, num_perm.max(1));
    let mut best_err = f64::INFINITY;
    for b in 1..=num_perm {
        for r in 1..=num_perm / b {
            let fp = integrate(&|s| candidate_probability(s, b, r), 0.0, threshold);
            let fneg = integrate(&|s| 1.0 - candidate_probability(s, b, r), threshold, 1.0);
            let err = fp_weight * fp + (1.0 - fp_weight) * fneg;
            if err < best_err - 1e-12 {
                best_err = err;
                best = (b, r);
            }
        }
    }
    best
}

/// Union-find over row positions whose roots are always the smallest member, so the kept row of
/// a cluster is the first in input order.
#[derive(Debug, Clone)]
pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        Self { parent: (0..n as u32).collect() }
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        let mut root = x;
        while self.parent[root as usize] != root {
            root = self.parent[root as usize];
        }
        while self.parent[x as usize] != root {
            let next = self.parent[x as usize];
            self.parent[x as usize] = root;
            x = next;
        }
        root
    }

    /// Join the sets of `a` and `b`; returns false when they were already one.
    pub fn union(&mut self, a: u32, b: u32) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[hi as usize] = lo;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shingles(s: &str, kind: ShingleKind, n: usize) -> Vec<u64> {
        let mut v = Vec::new();
        shingle_hashes(&normalize_for_dedup(s), kind, n, &mut v);
        v
    }

    #[test]
    fn normalisation_and_shingles() {
        assert_eq!(normalize_for_dedup("<image>\nWhat IS the  area?!"), "what is the area");
        assert_eq!(shingles("a b c d", ShingleKind::Words, 2).len(), 3);
        assert_eq!(shingles("a b", ShingleKind::Words, 5).len(), 1);
        assert_eq!(shingles("abcdef", ShingleKind::Chars, 5).len(), 2);
        assert_eq!(shingles("", ShingleKind::Chars, 5).len(), 0);
        // multi-byte characters are shingled by character, not byte
        assert_eq!(shingles("面积是多少呢", ShingleKind::Chars, 5).len(), 2);
        assert_eq!(shingles("What is it?", ShingleKind::Words, 2), shingles("what  is, it", ShingleKind::Words, 2));
    }

    #[test]
    fn estimate_tracks_exact_jaccard() {
        let mh = MinHasher::new(256, 7);
        let words: Vec<String> = (0..400).map(|i| format!("w{i}")).collect();
        for keep in [400usize, 360, 300, 200, 100] {
            let a = words.join(" ");
            let b = words[..keep].join(" ")
                + " "
                + &(0..(400 - keep)).map(|i| format!("x{i}")).collect::<Vec<_>>().join(" ");
            let (mut sa, mut sb) = (shingles(&a, ShingleKind::Words, 1), shingles(&b, ShingleKind::Words, 1));
            let (mut ga, mut gb) = (vec![0; 256], vec![0; 256]);
            mh.signature(&sa, &mut ga);
            mh.signature(&sb, &mut gb);
            let exact = exact_jaccard(&mut sa, &mut sb);
            let est = estimate_jaccard(&ga, &gb);
            // 256 permutations: standard error at most sqrt(0.25/256) = 0.031
            assert!((est - exact).abs() < 0.1, "keep {keep}: exact {exact:.3}, estimate {est:.3}");
        }
    }

    #[test]
    fn banding_for_threshold_0_8() {
        // datasketch's balanced choice for 0.8 and 128 permutations
        assert_eq!(optimal_bands(0.8, 128, 0.5), (9, 13));
        // weighted for recall (candidates are confirmed afterwards)
        let (b, r) = optimal_bands(0.8, 128, 0.1);
        assert!(b * r <= 128);
        assert!(candidate_probability(0.85, b, r) > 0.95, "{b}x{r}");
        assert!(candidate_probability(0.9, b, r) > 0.99, "{b}x{r}");
        assert!(candidate_probability(0.5, b, r) < 0.05, "{b}x{r}");
    }

    #[test]
    fn union_find_keeps_the_smallest_root() {
        let mut uf = UnionFind::new(6);
        assert!(uf.union(4, 2));
        assert!(uf.union(5, 4));
        assert!(!uf.union(2, 5));
        assert!(uf.union(3, 1));
        assert_eq!(uf.find(5), 2);
        assert_eq!(uf.find(3), 1);
        assert!(uf.union(5, 3));
        assert_eq!(uf.find(4), 1);
    }
}
