//! Perceptual image hashes and an index that answers Hamming-radius queries.
//!
//! The perceptual hash of a [`Fingerprint`] is the DCT hash: the image in grey, resized to
//! 32x32, a 2-D DCT-II, and one bit per coefficient of the 8x8 lowest frequencies (DC excluded
//! from the median): set when the coefficient is above the median. Re-encoding, rescaling and
//! mild compression move few bits; different pictures differ in about half of them.
//!
//! Diagrams defeat a 64-bit hash alone: two clocks with different hands, or two rectangles
//! with different side labels, are within 2-4 bits, as close as a JPEG re-encoding of one of
//! them. So a match is confirmed on the 32x32 grey thumbnail the hash is computed from: one minus
//! the normalised cross-correlation of the thumbnails ([`thumb_distance`]) must stay under a
//! threshold ([`DEFAULT_THUMB_DISTANCE`]). A [`Fingerprint`] holds the hash and the thumbnail.
//! What stays out of reach at this resolution: tables or charts of one layout whose only
//! difference is a few small digits look the same.
//!
//! [`RadiusIndex`] is multi-index hashing (Norouzi et al.): a 64-bit hash is cut into
//! `radius + 1` chunks, and two hashes within Hamming distance `radius` agree exactly on at least
//! one chunk (pigeonhole). Each chunk has a hash table; a query looks up its own chunks and
//! checks the full distance of the few entries found.

use std::collections::HashMap;

use image::imageops::FilterType;

/// Side of the grey image the DCT runs on.
const N: usize = 32;
/// Side of the intermediate area-averaged image.
const PRE: usize = 4 * N;
/// Bytes of a fingerprint's thumbnail.
pub const THUMB_BYTES: usize = N * N;
/// Side of the low-frequency block that gives the bits.
const K: usize = 8;

/// Default largest [`thumb_distance`] of matching images, chosen for precision: template
/// diagrams (clocks, tables, bar charts of one layout) that differ in a hand or a few digits
/// come close to it. Byte-identical copies are always at 0; see the ignored test
/// `fingerprint_threshold_sweep` for re-encoding recall and distinct-pair matches by threshold.
/// Measured by the ignored test `fingerprint_threshold_sweep`.
pub const DEFAULT_THUMB_DISTANCE: f64 = 0.005;

/// What image matching compares: the perceptual hash, and the grey thumbnail it came from
/// (with its mean and spread, so that comparing two costs one pass of integer products).
#[derive(Debug, Clone, PartialEq)]
pub struct Fingerprint {
    pub hash: u64,
    /// 32x32 grey pixels, row-major.
    pub thumb: Vec<u8>,
    sum: f64,
    /// Square root of the sum of squared deviations from the mean.
    spread: f64,
}

impl Fingerprint {
    pub fn new(hash: u64, thumb: Vec<u8>) -> Self {
        let n = thumb.len().max(1) as f64;
        let sum: f64 = thumb.iter().map(|&x| x as f64).sum();
        let sq: f64 = thumb.iter().map(|&x| (x as f64) * (x as f64)).sum();
        let spread = (sq - sum * sum / n).max(0.0).sqrt();
        Self { hash, thumb, sum, spread }
    }

    /// Whether two images match: hashes within `radius` bits and thumbnails within
    /// `max_thumb` ([`thumb_distance`]).
    pub fn matches(&self, other: &Fingerprint, radius: u32, max_thumb: f64) -> bool {
        distance(self.hash, other.hash) <= radius && thumb_distance(self, other) <= max_thumb
    }
}

/// One minus the normalised cross-correlation of two thumbnails: 0 for the same picture up to
/// brightness and contrast, up to 2 for a negative. Flat thumbnails (no spread) are at 0 from
/// each other when their mean levels agree within 8, else at 1.
pub fn thumb_distance(a: &Fingerprint, b: &Fingerprint) -> f64 {
    let n = a.thumb.len().min(b.thumb.len()).max(1) as f64;
    if a.spread < 1e-6 || b.spread < 1e-6 {
        let flat_both = a.spread < 1e-6 && b.spread < 1e-6;
        return if flat_both && ((a.sum - b.sum) / n).abs() <= 8.0 { 0.0 } else { 1.0 };
    }
    let dot: u64 = a.thumb.iter().zip(&b.thumb).map(|(&x, &y)| x as u32 * y as u32).map(u64::from).sum();
    let cov = dot as f64 - a.sum * b.sum / n;
    1.0 - cov / (a.spread * b.spread)
}

/// The fingerprint of encoded image bytes, or the decoder's error.
pub fn fingerprint(bytes: &[u8]) -> Result<Fingerprint, String> {
    let img = image::load_from_memory(bytes).map_err(|e| e.to_string())?;
    Ok(fingerprint_of(&img))
}

/// The fingerprint of a decoded image.
pub fn fingerprint_of(img: &image::DynamicImage) -> Fingerprint {
    let grey = grey_thumbnail(img);
    let px: Vec<f64> = grey.iter().map(|&v| v as f64).collect();
    let coeffs = dct_low(&px);
    let mut sorted: Vec<f64> = coeffs[1..].to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0;
    let hash = coeffs.iter().enumerate().fold(0u64, |h, (i, &c)| if c > median { h | (1 << i) } else { h });
    Fingerprint::new(hash, grey)
}

/// The source pixels under each of the `N` boxes along a side of `len >= N` pixels: a run of
/// whole pixels `[start, end)`, and the pixels cut by the box's left and right edges with the
/// share of each inside the box (a box is `len / N` pixels wide).
fn box_spans(len: usize, m: usize) -> Vec<(usize, usize, usize, f32, usize, f32)> {
    let width = len as f64 / m as f64;
    (0..m)
        .map(|k| {
            let (lo, hi) = (k as f64 * width, (k + 1) as f64 * width);
            let (start, end) = (lo.ceil() as usize, (hi.floor() as usize).min(len));
            let left = (start as f64 - lo) as f32; // share of pixel start - 1
            let right = (hi - end as f64) as f32; // share of pixel end
            (start, end.max(start), start.saturating_sub(1), left, end.min(len - 1), if end < len { right } else { 0.0 })
        })
        .collect()
}

/// The grey level (sum of the colour channels) of every pixel of an 8-bit buffer with `C`
/// channels, area-averaged into the `N x N` boxes: whole pixels of a box are a plain sum of
/// bytes (vectorised), the two it shares with its neighbours are weighted.
fn box_sums<const C: usize>(raw: &[u8], w: usize, h: usize, m: usize, sums: &mut [f32]) {
    let (cols, rows) = (box_spans(w, m), box_spans(h, m));
    let colours = C.min(3);
    let grey = |p: &[u8]| p[..colours].iter().map(|&b| b as u32).sum::<u32>() as f32;
    let mut line = vec![0f32; m];
    let row_of = |y: usize| &raw[y * w * C..(y + 1) * w * C];
    let line_of = |y: usize, line: &mut [f32]| {
        let row = row_of(y);
        for (k, &(start, end, left_px, left, right_px, right)) in cols.iter().enumerate() {
            let run = &row[start * C..end * C];
            let whole: u32 = if C == 4 {
                run.iter().map(|&b| b as u32).sum::<u32>() - run.iter().skip(3).step_by(4).map(|&b| b as u32).sum::<u32>()
            } else if C == 2 {
                run.iter().step_by(2).map(|&b| b as u32).sum()
            } else {
                run.iter().map(|&b| b as u32).sum()
            };
            line[k] = whole as f32
                + left * grey(&row[left_px * C..left_px * C + C])
                + right * grey(&row[right_px * C..right_px * C + C]);
        }
    };
    for (ky, &(start, end, top_px, top, bottom_px, bottom)) in rows.iter().enumerate() {
        let out = &mut sums[ky * m..(ky + 1) * m];
        for y in start..end {
            line_of(y, &mut line);
            for (o, l) in out.iter_mut().zip(&line) {
                *o += l;
            }
        }
        for (y, share) in [(top_px, top), (bottom_px, bottom)] {
            if share > 0.0 {
                line_of(y, &mut line);
                for (o, l) in out.iter_mut().zip(&line) {
                    *o += l * share;
                }
            }
        }
    }
}

/// The image in grey at `N x N`: first area-averaged to `PRE x PRE` in one pass (a filtered
/// resize of a large image costs many times more), then triangle-filtered down to `N`.
fn grey_thumbnail(img: &image::DynamicImage) -> Vec<u8> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let small = if w >= PRE && h >= PRE {
        let mut sums = vec![0f32; PRE * PRE];
        // grey is the plain mean of R, G and B (any fixed grey works for matching; this one
        // avoids the library's per-pixel float colour conversion)
        let colours = match img {
            image::DynamicImage::ImageLuma8(b) => {
                box_sums::<1>(b.as_raw(), w, h, PRE, &mut sums);
                1.0
            }
            image::DynamicImage::ImageLumaA8(b) => {
                box_sums::<2>(b.as_raw(), w, h, PRE, &mut sums);
                1.0
            }
            image::DynamicImage::ImageRgb8(b) => {
                box_sums::<3>(b.as_raw(), w, h, PRE, &mut sums);
                3.0
            }
            image::DynamicImage::ImageRgba8(b) => {
                box_sums::<4>(b.as_raw(), w, h, PRE, &mut sums);
                3.0
            }
            other => {
                box_sums::<3>(other.to_rgb8().as_raw(), w, h, PRE, &mut sums);
                3.0
            }
        };
        let area = (w as f32 / PRE as f32) * (h as f32 / PRE as f32) * colours;
        let px: Vec<u8> = sums.iter().map(|&s| (s / area).round().clamp(0.0, 255.0) as u8).collect();
        image::GrayImage::from_raw(PRE as u32, PRE as u32, px).unwrap_or_else(|| img.to_luma8())
    } else {
        img.to_luma8()
    };
    // the final step is a triangle filter: its overlap smooths the sub-pixel misalignment that
    // rescaled copies of line drawings have, which plain box means keep
    image::imageops::resize(&small, N as u32, N as u32, FilterType::Triangle).into_raw()
}

/// The `K x K` lowest-frequency coefficients of the 2-D DCT-II of an `N x N` image, row-major.
fn dct_low(px: &[f64]) -> Vec<f64> {
    // basis[u][x] = cos((2x + 1) u pi / 2N)
    let basis: Vec<f64> = (0..K)
        .flat_map(|u| (0..N).map(move |x| (((2 * x + 1) * u) as f64 * std::f64::consts::PI / (2 * N) as f64).cos()))
        .collect();
    // rows first: tmp[y][u] = sum_x px[y][x] basis[u][x]
    let mut tmp = vec![0.0; N * K];
    for y in 0..N {
        for u in 0..K {
            tmp[y * K + u] = (0..N).map(|x| px[y * N + x] * basis[u * N + x]).sum();
        }
    }
    let mut out = vec![0.0; K * K];
    for v in 0..K {
        for u in 0..K {
            out[v * K + u] = (0..N).map(|y| tmp[y * K + u] * basis[v * N + y]).sum();
        }
    }
    out
}

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
    tables: Vec<HashMap<u64, Vec<u32>>>,
    hashes: Vec<u64>,
    namespaces: Vec<u64>,
    payloads: Vec<T>,
}

/// Table key of a chunk in a namespace (entries of other namespaces that collide are filtered
/// out by the full check).
fn table_key(chunk: u64, ns: u64) -> u64 {
    chunk ^ ns.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl<T> RadiusIndex<T> {
    /// An empty index answering queries within `radius` bits (at most 63).
    pub fn new(radius: u32) -> Self {
        let m = (radius.min(63) + 1) as usize;
        Self { radius, cuts: chunks(m), tables: vec![HashMap::new(); m], hashes: Vec::new(), namespaces: Vec::new(), payloads: Vec::new() }
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
            t.entry(table_key((hash >> shift) & mask, ns)).or_default().push(k);
        }
        self.hashes.push(hash);
        self.namespaces.push(ns);
        self.payloads.push(payload);
    }

    fn hit(&self, k: u32, hash: u64, ns: u64) -> bool {
        self.namespaces[k as usize] == ns && distance(self.hashes[k as usize], hash) <= self.radius
    }

    /// The entry within the radius that was inserted first, with its distance: the nearest
    /// one would depend on what else is in the index, the first is stable.
    pub fn first_within(&self, hash: u64) -> Option<(&T, u32)> {
        self.first_within_ns(hash, 0, |_| true)
    }

    /// [`Self::first_within`] in a namespace, among entries whose payload passes `keep`.
    pub fn first_within_ns(&self, hash: u64, ns: u64, keep: impl Fn(&T) -> bool) -> Option<(&T, u32)> {
        let mut best: Option<u32> = None;
        for (t, &(shift, mask)) in self.tables.iter().zip(&self.cuts) {
            if let Some(list) = t.get(&table_key((hash >> shift) & mask, ns)) {
                for &k in list {
                    if best.is_some_and(|b| k >= b) {
                        break; // lists are in insertion order
                    }
                    if self.hit(k, hash, ns) && keep(&self.payloads[k as usize]) {
                        best = Some(k);
                        break;
                    }
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
        for (t, &(shift, mask)) in self.tables.iter().zip(&self.cuts) {
            if let Some(list) = t.get(&table_key((hash >> shift) & mask, 0)) {
                ks.extend(list.iter().copied().filter(|&k| self.hit(k, hash, 0) && keep(&self.payloads[k as usize])));
            }
        }
        ks.sort_unstable();
        ks.dedup();
        ks.into_iter().map(|k| (&self.payloads[k as usize], distance(self.hashes[k as usize], hash))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    #[test]
    fn chunks_cover_all_bits() {
        for m in 1..=20 {
            let c = chunks(m);
            let all = c.iter().fold(0u64, |acc, &(s, mask)| acc | (mask << s));
            assert_eq!(all, u64::MAX, "m={m}");
            assert_eq!(c.iter().map(|&(_, mask)| mask.count_ones()).sum::<u32>(), 64);
        }
    }

    #[test]
    fn radius_index_matches_brute_force() {
        let mut s = 0x9E3779B97F4A7C15u64;
        let base: Vec<u64> = (0..300).map(|_| xorshift(&mut s)).collect();
        // near copies: flip a few bits of earlier hashes
        let mut all = base.clone();
        for i in 0..300 {
            let mut h = base[i];
            for _ in 0..(xorshift(&mut s) % 9) {
                h ^= 1 << (xorshift(&mut s) % 64);
            }
            all.push(h);
        }
        for radius in [0, 3, 6, 10] {
            let mut idx = RadiusIndex::new(radius);
            for (i, &h) in all.iter().enumerate() {
                let want: Vec<usize> = (0..i).filter(|&j| distance(all[j], h) <= radius).collect();
                let got: Vec<usize> = idx.all_within(h).into_iter().map(|(p, _)| *p).collect();
                assert_eq!(got, want, "radius {radius}, item {i}");
                assert_eq!(idx.first_within(h).map(|(p, _)| *p), want.first().copied());
                // a namespace sees only its own entries
                assert_eq!(idx.first_within_ns(h, 7, |_| true), None);
                assert_eq!(idx.first_within_ns(h, 0, |p| p % 2 == 1).map(|(p, _)| *p), want.iter().find(|p| *p % 2 == 1).copied());
                idx.insert(h, i);
            }
        }
    }
}
