//! Best-fit-decreasing bin packing of sample lengths into packs of fixed capacity, over the
//! whole dataset at once (no windows).
//!
//! Samples go in decreasing length (ties by input position); each goes into the pack whose
//! remaining room is the smallest that still holds it, else into a new pack. The open packs
//! are counted by remaining room in a segment tree over the room values `0..=capacity`, so
//! finding the best fit is one descent: O(log capacity) per sample and O(n log n) with the sort.
//! Packs with equal room are interchangeable for every later decision, so the number of packs
//! equals that of a quadratic best-fit scan; among them the most recently filled one is taken,
//! which keeps the result deterministic.

/// The outcome of packing: packs (sample indices in the order they were placed, longest
/// first), and the samples longer than the capacity, left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Packing {
    pub packs: Vec<Vec<u32>>,
    pub over: Vec<u32>,
    /// Tokens in the packs.
    pub tokens: u64,
    pub capacity: u32,
}

impl Packing {
    /// Share of the packs' token slots that hold tokens.
    pub fn fill(&self) -> f64 {
        if self.packs.is_empty() {
            return 1.0;
        }
        self.tokens as f64 / (self.packs.len() as f64 * self.capacity as f64)
    }
}

/// Counts of open packs per remaining room, with a descent to the smallest room at or
/// above a need that has a pack.
struct RoomTree {
    /// Leaves start at `size`; each node holds the count of packs under it.
    counts: Vec<u32>,
    size: usize,
}

impl RoomTree {
    fn new(rooms: usize) -> Self {
        let size = rooms.next_power_of_two();
        Self { counts: vec![0; 2 * size], size }
    }

    fn add(&mut self, room: usize, delta: i32) {
        let mut i = self.size + room;
        while i >= 1 {
            self.counts[i] = (self.counts[i] as i64 + delta as i64) as u32;
            i /= 2;
        }
    }

    /// The smallest room `>= need` with at least one pack.
    fn smallest_at_least(&self, need: usize) -> Option<usize> {
        if need >= self.size {
            return None;
        }
        // walk up from the leaf until a right sibling subtree has packs, then down its leftmost
        let mut i = self.size + need;
        if self.counts[i] > 0 {
            return Some(need);
        }
        loop {
            if i == 1 {
                return None;
            }
            if i.is_multiple_of(2) && self.counts[i + 1] > 0 {
                i += 1;
                break;
            }
            i /= 2;
        }
        while i < self.size {
            i = if self.counts[2 * i] > 0 { 2 * i } else { 2 * i + 1 };
        }
        Some(i - self.size)
    }
}

/// Pack `lengths` into packs of `capacity` tokens, at most `max_segments` samples per pack
/// (None: no limit). Samples of length 0 take no room but count as segments.
pub fn best_fit_decreasing(lengths: &[u32], capacity: u32, max_segments: Option<usize>) -> Packing {
    let cap = capacity as usize;
    let mut order: Vec<u32> = (0..lengths.len() as u32).collect();
    // decreasing length, ties by position: a stable sort on the key
    order.sort_by_key(|&i| std::cmp::Reverse(lengths[i as usize]));
    let mut tree = RoomTree::new(cap + 1);
    // open packs per room value (most recently filled last)
    let mut by_room: Vec<Vec<u32>> = vec![Vec::new(); cap + 1];
    let mut packs: Vec<Vec<u32>> = Vec::new();
    let mut room: Vec<u32> = Vec::new();
    let mut over = Vec::new();
    let mut tokens = 0u64;
    let limit = max_segments.unwrap_or(usize::MAX).max(1);
    for i in order {
        let len = lengths[i as usize];
        if len > capacity {
            over.push(i);
            continue;
        }
        tokens += len as u64;
        let p = match tree.smallest_at_least(len as usize) {
            Some(r) => {
                let p = by_room[r].pop().unwrap_or_default();
                tree.add(r, -1);
                p
            }
            None => {
                packs.push(Vec::new());
                room.push(capacity);
                (packs.len() - 1) as u32
            }
        };
        packs[p as usize].push(i);
        room[p as usize] -= len;
        // a full pack, or one at the segment limit, takes no more samples
        if packs[p as usize].len() < limit {
            let r = room[p as usize] as usize;
            by_room[r].push(p);
            tree.add(r, 1);
        }
    }
    over.sort_unstable();
    Packing { packs, over, tokens, capacity }
}

/// Lengths drawn from a log-normal distribution with the given median and 95th percentile,
/// clamped to `1..=max` (deterministic for a seed): long-CoT trace lengths for tests and
/// benchmarks.
pub fn lognormal_lengths(n: usize, median: f64, p95: f64, max: u32, seed: u64) -> Vec<u32> {
    let mu = median.ln();
    let sigma = (p95.ln() - mu) / 1.644_853_626_951_472_2;
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            // Box-Muller
            let (u, v) = (uniform(), uniform());
            let z = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
            ((mu + sigma * z).exp().round() as u32).clamp(1, max)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Best fit by scanning every open pack: the reference.
    fn quadratic_best_fit(lengths: &[u32], capacity: u32, limit: usize) -> usize {
        let mut order: Vec<usize> = (0..lengths.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        let mut packs: Vec<(u32, usize)> = Vec::new(); // room, segments
        for i in order {
            let len = lengths[i];
            if len > capacity {
                continue;
            }
            let best = packs
                .iter()
                .enumerate()
                .filter(|(_, (r, n))| *r >= len && *n < limit)
                .min_by_key(|(_, (r, _))| *r)
                .map(|(k, _)| k);
            match best {
                Some(k) => {
                    packs[k].0 -= len;
                    packs[k].1 += 1;
                }
                None => packs.push((capacity - len, 1)),
            }
        }
        packs.len()
    }

    fn check(lengths: &[u32], p: &Packing, limit: usize) {
        let mut seen = vec![false; lengths.len()];
        for pack in &p.packs {
            assert!(!pack.is_empty() && pack.len() <= limit);
            assert!(pack.iter().map(|&i| lengths[i as usize] as u64).sum::<u64>() <= p.capacity as u64);
            for &i in pack {
                assert!(!seen[i as usize], "sample {i} packed twice");
                seen[i as usize] = true;
            }
        }
        for &i in &p.over {
            assert!(lengths[i as usize] > p.capacity && !seen[i as usize]);
            seen[i as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "a sample was lost");
        assert_eq!(p.tokens, p.packs.iter().flatten().map(|&i| lengths[i as usize] as u64).sum::<u64>());
    }

    #[test]
    fn matches_quadratic_best_fit_and_loses_nothing() {
        let mut s = 7u64;
        for round in 0..200 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let n = 1 + (s >> 40) as usize % 300;
            let cap = 8 + (s >> 20) as u32 % 500;
            let limit = if round % 3 == 0 { 3 } else { usize::MAX };
            let lengths: Vec<u32> = (0..n)
                .map(|k| {
                    let x = (s ^ (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    (x >> 33) as u32 % (cap + cap / 4 + 1)
                })
                .collect();
            let p = best_fit_decreasing(&lengths, cap, Some(limit));
            check(&lengths, &p, limit);
            assert_eq!(p.packs.len(), quadratic_best_fit(&lengths, cap, limit), "round {round}: pack count");
            assert_eq!(p, best_fit_decreasing(&lengths, cap, Some(limit)), "deterministic");
        }
    }

    #[test]
    fn room_tree_finds_the_smallest_room_that_fits() {
        let mut t = RoomTree::new(100);
        for r in [3, 17, 17, 64, 99] {
            t.add(r, 1);
        }
        assert_eq!(t.smallest_at_least(0), Some(3));
        assert_eq!(t.smallest_at_least(4), Some(17));
        assert_eq!(t.smallest_at_least(18), Some(64));
        assert_eq!(t.smallest_at_least(99), Some(99));
        assert_eq!(t.smallest_at_least(100), None);
        t.add(99, -1);
        assert_eq!(t.smallest_at_least(65), None);
    }

    #[test]
    fn long_cot_lengths_fill_packs_to_999_per_mille() {
        // median about 2k tokens, p95 about 7k, as long reasoning traces run
        let lengths = lognormal_lengths(100_000, 2000.0, 7000.0, 32_768, 1);
        let mut sorted = lengths.clone();
        sorted.sort_unstable();
        let (median, p95) = (sorted[sorted.len() / 2], sorted[sorted.len() * 95 / 100]);
        assert!((1800..2200).contains(&median) && (6300..7700).contains(&p95), "median {median}, p95 {p95}");
        for cap in [8192, 16384] {
            let p = best_fit_decreasing(&lengths, cap, None);
            check(&lengths, &p, usize::MAX);
            assert!(p.fill() >= 0.999, "capacity {cap}: fill {:.5}", p.fill());
        }
    }
}
