//! [`RadiusIndex`]: multi-index hashing over 64-bit hashes for Hamming-radius queries (see the
//! module doc of [`super`]).

use std::collections::HashMap;

/// Hamming distance of two hashes.
pub fn distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// Chunk boundaries of a 64-bit hash cut into `m` nearly equal parts: (shift, mask) each. Two
/// hashes within Hamming distance `m - 1` agree on at least one chunk.
pub fn chunks(m: usize) -> Vec<(u32, u64)> {
    let mut out = Vec::with_capacity(m);
    let mut start = 0u32;
    for i in 0..m {
        let len = (64 - start) / (m - i) as u32;
        let mask = if len >= 64 { u64::MAX } else { (1u64 << len) - 1 };
        out.push((start, mask));
        start += len;
    }
    out
}

/// Multi-index hashing over 64-bit hashes with a payload per entry.
#[derive(Debug, Clone)]
pub struct RadiusIndex<T> {
    radius: u32,
    cuts: Vec<(u32, u64)>,
    /// Chunk distance each table is searched within: 0 or 1.
    flips: u32,
    /// Per chunk: table key -> the entries with that chunk, in insertion order, each with its
    /// full hash and namespace (checked without a jump into `hashes`).
    tables: Vec<HashMap<u64, Vec<Entry>>>,
    hashes: Vec<u64>,
    payloads: Vec<T>,
}

/// An entry of a bucket: its position in insertion order, hash and namespace.
#[derive(Debug, Clone, Copy)]
pub(super) struct Entry {
    k: u32,
    hash: u64,
    ns: u64,
}

/// Table key of a chunk in a namespace (entries of other namespaces that collide are filtered
/// out by the full check).
pub(super) fn table_key(chunk: u64, ns: u64) -> u64 {
    chunk ^ ns.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl<T> RadiusIndex<T> {
    /// An empty index answering queries within `radius` bits (at most 63).
    pub fn new(radius: u32) -> Self {
        let radius = radius.min(63);
        // at least 4 chunks, and enough that a query searches each within one bit
        let m = 4.max((radius as usize + 2) / 2);
        let flips = radius / m as u32;
        Self {
            radius,
            cuts: chunks(m),
            flips,
            tables: vec![HashMap::new(); m],
            hashes: Vec::new(),
            payloads: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn insert(&mut self, hash: u64, payload: T) {
        self.insert_ns(hash, 0, payload)
    }

    /// Insert into a namespace: queries see only entries of their own namespace.
    pub fn insert_ns(&mut self, hash: u64, ns: u64, payload: T) {
        let k = self.hashes.len() as u32;
        for (t, &(shift, mask)) in self.tables.iter_mut().zip(&self.cuts) {
            t.entry(table_key((hash >> shift) & mask, ns)).or_default().push(Entry { k, hash, ns });
        }
        self.hashes.push(hash);
        self.payloads.push(payload);
    }

    fn hit(&self, e: &Entry, hash: u64, ns: u64) -> bool {
        e.ns == ns && distance(e.hash, hash) <= self.radius
    }

    /// The bucket lists a query looks at: per table, its chunk and (with one flip) each
    /// one-bit variant of it.
    fn lists(&self, hash: u64, ns: u64) -> impl Iterator<Item = &Vec<Entry>> + '_ {
        self.tables.iter().zip(&self.cuts).flat_map(move |(t, &(shift, mask))| {
            let chunk = (hash >> shift) & mask;
            let variants = if self.flips == 0 { 0 } else { mask.count_ones() };
            (0..=variants)
                .map(move |j| if j == 0 { chunk } else { chunk ^ (1 << (j - 1)) })
                .filter_map(move |c| t.get(&table_key(c, ns)))
        })
    }

    /// The entry within the radius that was inserted first, with its distance: the nearest
    /// one would depend on what else is in the index, the first is stable.
    pub fn first_within(&self, hash: u64) -> Option<(&T, u32)> {
        self.first_within_ns(hash, 0, |_| true)
    }

    /// [`Self::first_within`] in a namespace, among entries whose payload passes `keep`.
    pub fn first_within_ns(&self, hash: u64, ns: u64, keep: impl Fn(&T) -> bool) -> Option<(&T, u32)> {
        let mut best: Option<u32> = None;
        for list in self.lists(hash, ns) {
            for e in list {
                if best.is_some_and(|b| e.k >= b) {
                    break; // lists are in insertion order
                }
                if self.hit(e, hash, ns) && keep(&self.payloads[e.k as usize]) {
                    best = Some(e.k);
                    break;
                }
            }
        }
        best.map(|k| (&self.payloads[k as usize], distance(self.hashes[k as usize], hash)))
    }

    /// Every entry within the radius, in insertion order.
    pub fn all_within(&self, hash: u64) -> Vec<(&T, u32)> {
        self.all_within_where(hash, |_| true)
    }

    /// Every entry within the radius whose payload passes `keep`, in insertion order.
    pub fn all_within_where(&self, hash: u64, keep: impl Fn(&T) -> bool) -> Vec<(&T, u32)> {
        let mut ks: Vec<u32> = Vec::new();
        for list in self.lists(hash, 0) {
            ks.extend(list.iter().filter(|e| self.hit(e, hash, 0) && keep(&self.payloads[e.k as usize])).map(|e| e.k));
        }
        ks.sort_unstable();
        ks.dedup();
        ks.into_iter().map(|k| (&self.payloads[k as usize], distance(self.hashes[k as usize], hash))).collect()
    }
}
