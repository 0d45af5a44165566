//! The fingerprint of an image: the DCT hash of its 32x32 grey thumbnail, and the thumbnail
//! itself with what comparing two thumbnails needs (see the module doc of [`super`]).

use super::decode::decode;
use super::radius::distance;
use super::resample::{N, THUMB_BYTES, grey_thumbnail, png_streamed};

/// Side of the low-frequency block that gives the bits.
pub(super) const K: usize = 8;

/// Default largest [`thumb_distance`] of matching images, chosen for precision: template
/// diagrams (clocks, tables, bar charts of one layout) that differ in a hand or a few digits
/// come close to it. Byte-identical copies are always at 0; see the ignored test
/// `fingerprint_threshold_sweep` for re-encoding recall and distinct-pair matches by threshold.
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
    /// The normalised thumbnail (mean 0, norm 1) projected onto 4x4-pixel blocks: each block's
    /// mean times 4, so that the distance of two of these bounds the thumbnails' distance from
    /// below (see [`thumb_distance_within`]).
    coarse: Vec<f32>,
}

/// Side of the coarse blocks of [`Fingerprint`].
const BLOCK: usize = 4;

impl Fingerprint {
    pub fn new(hash: u64, thumb: Vec<u8>) -> Self {
        let n = thumb.len().max(1) as f64;
        let sum: f64 = thumb.iter().map(|&x| x as f64).sum();
        let sq: f64 = thumb.iter().map(|&x| (x as f64) * (x as f64)).sum();
        let spread = (sq - sum * sum / n).max(0.0).sqrt();
        let coarse = if thumb.len() == THUMB_BYTES && spread >= 1e-6 {
            let (mean, side) = (sum / n, N / BLOCK);
            let mut c = vec![0f32; side * side];
            for (i, &x) in thumb.iter().enumerate() {
                c[(i / N / BLOCK) * side + (i % N) / BLOCK] += ((x as f64 - mean) / spread) as f32;
            }
            // block mean times sqrt(block size) = block sum / sqrt(block size)
            c.iter_mut().for_each(|v| *v /= BLOCK as f32);
            c
        } else {
            Vec::new()
        };
        Self { hash, thumb, sum, spread, coarse }
    }

    /// Whether two images match: hashes within `radius` bits and thumbnails within
    /// `max_thumb` ([`thumb_distance`]).
    pub fn matches(&self, other: &Fingerprint, radius: u32, max_thumb: f64) -> bool {
        distance(self.hash, other.hash) <= radius && thumb_distance_within(self, other, max_thumb)
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
    // at most 255 * 255 * 1024 < 2^32
    let dot: u32 = a.thumb.iter().zip(&b.thumb).map(|(&x, &y)| x as u32 * y as u32).sum();
    let cov = dot as f64 - a.sum * b.sum / n;
    1.0 - cov / (a.spread * b.spread)
}

/// Whether [`thumb_distance`] is at most `max`, rejecting most pairs on the coarse blocks
/// first. For normalised thumbnails the distance is half their squared Euclidean distance,
/// and projecting onto block means (an orthogonal projection) can only shorten a vector, so
/// half the squared distance of the coarse vectors is a lower bound: above `max`, the pair
/// cannot match.
pub fn thumb_distance_within(a: &Fingerprint, b: &Fingerprint, max: f64) -> bool {
    if a.coarse.len() == b.coarse.len() && !a.coarse.is_empty() {
        // eight running sums, so that the loop vectorises (float sums are not reassociated)
        let mut lanes = [0f32; 8];
        for (x, y) in a.coarse.chunks_exact(8).zip(b.coarse.chunks_exact(8)) {
            for i in 0..8 {
                lanes[i] += (x[i] - y[i]) * (x[i] - y[i]);
            }
        }
        let bound = lanes.iter().sum::<f32>() / 2.0;
        // float slack: the bound is computed in f32
        if bound as f64 > max + 1e-4 {
            return false;
        }
    }
    thumb_distance(a, b) <= max
}

/// The fingerprint of encoded image bytes, or the decoder's error. Decoding is complete (a
/// corrupt image is an error), but non-interlaced PNG images are read one row at a time into
/// the area average, never held whole; the result equals `fingerprint_of(&decode(bytes)?)`
/// (16-bit samples: within a level, the stream keeps the high byte where the decoder rounds).
pub fn fingerprint(bytes: &[u8]) -> Result<Fingerprint, String> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n")
        && let Some(grey) = png_streamed(bytes)?
    {
        return Ok(from_grey(grey));
    }
    Ok(fingerprint_of(&decode(bytes)?))
}

/// The fingerprint of a decoded image.
pub fn fingerprint_of(img: &image::DynamicImage) -> Fingerprint {
    from_grey(grey_thumbnail(img))
}

/// The fingerprint of a 32x32 grey thumbnail: hash bits from its DCT.
pub(super) fn from_grey(grey: Vec<u8>) -> Fingerprint {
    let px: Vec<f64> = grey.iter().map(|&v| v as f64).collect();
    let coeffs = dct_low(&px);
    let mut sorted: Vec<f64> = coeffs[1..].to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0;
    let hash = coeffs.iter().enumerate().fold(0u64, |h, (i, &c)| if c > median { h | (1 << i) } else { h });
    Fingerprint::new(hash, grey)
}

/// The `K x K` lowest-frequency coefficients of the 2-D DCT-II of an `N x N` image, row-major.
pub(super) fn dct_low(px: &[f64]) -> Vec<f64> {
    // basis[u][x] = cos((2x + 1) u pi / 2N)
    static BASIS: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let basis = BASIS.get_or_init(|| {
        (0..K)
            .flat_map(|u| (0..N).map(move |x| (((2 * x + 1) * u) as f64 * std::f64::consts::PI / (2 * N) as f64).cos()))
            .collect()
    });
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
