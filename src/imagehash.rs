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
//! [`RadiusIndex`] is multi-index hashing (Norouzi et al.): a 64-bit hash is cut into `m`
//! chunks, and two hashes within Hamming distance `r` are within `r / m` (rounded down) of each
//! other on at least one chunk (pigeonhole). Each chunk has a hash table; a query looks up its
//! own chunks and their one-bit variants when `r / m = 1`, and checks the full distance of the
//! entries found. Chunks of 16 bits (`m = 4` up to radius 7) keep the buckets small at 100k
//! and more hashes; `radius + 1` chunks of 9 bits would put hundreds of entries in each.

use std::collections::HashMap;

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

/// Decode image bytes completely (any supported format); the error says why they are unusable.
pub fn decode(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("unrecognised image format".into());
    }
    reader.decode().map_err(|e| e.to_string())
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
fn from_grey(grey: Vec<u8>) -> Fingerprint {
    let px: Vec<f64> = grey.iter().map(|&v| v as f64).collect();
    let coeffs = dct_low(&px);
    let mut sorted: Vec<f64> = coeffs[1..].to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0;
    let hash = coeffs.iter().enumerate().fold(0u64, |h, (i, &c)| if c > median { h | (1 << i) } else { h });
    Fingerprint::new(hash, grey)
}

/// Where source pixel `i` of a side of `len` pixels falls among `m` equal boxes: the box it
/// starts in and its share of the pixel, and the share that falls in the next box (0 when the
/// pixel lies in one box). Exact integer geometry: box `k` covers `[k len / m, (k+1) len / m)`.
fn pixel_boxes(len: usize, m: usize) -> Vec<(u32, f32, f32)> {
    (0..len)
        .map(|i| {
            let k = (i * m / len).min(m - 1);
            let boundary = (k + 1) * len; // end of box k, in units of 1/m pixel
            if boundary < (i + 1) * m && k + 1 < m {
                let first = (boundary - i * m) as f32 / m as f32;
                (k as u32, first, 1.0 - first)
            } else {
                (k as u32, 1.0, 0.0)
            }
        })
        .collect()
}

/// Area average of an 8-bit image into `mx x my` boxes of grey (`mx <= w`, `my <= h`; a side
/// with as many boxes as pixels is copied), fed one row at a time. Grey is the plain mean of
/// R, G and B (alpha left out; any fixed grey works for matching, and this one needs no
/// per-pixel colour conversion). Two accumulators of raw samples roll over the box rows: a
/// source row adds into at most two of them, weighted by its share of each in 64ths, a
/// vectorised 16-bit multiply-add per sample (spilled into 32 bits every four rows); a box
/// row is turned into grey and summed across once, when the rows have passed it (with exact
/// shares for the columns).
struct AreaAverage {
    mx: usize,
    my: usize,
    w: usize,
    h: usize,
    channels: usize,
    cols: Vec<ColumnBox>,
    /// Per source row: its first box row, and its weights (in `ROW_UNITS`) in it and the next.
    rows: Vec<(u32, u16, u16)>,
    /// 16-bit sums per box row slot, spilled into the 32-bit ones before they could overflow.
    acc: [Vec<u16>; 2],
    wide: [Vec<u32>; 2],
    /// Weight added to each `acc` slot since its last spill, and whether it spilled.
    weight: [u32; 2],
    spilled: [bool; 2],
    /// Running grey sums across a box row: `prefix[x]` sums pixels `0..x`.
    prefix: Vec<u64>,
    /// First box row not yet reduced.
    open: usize,
    y: usize,
    sums: Vec<f32>,
}

/// The pixels of one box column: whole pixels `start..end`, and the two it shares with its
/// neighbours with the share of each inside it.
#[derive(Clone, Copy)]
struct ColumnBox {
    start: usize,
    end: usize,
    left: (usize, f32),
    right: (usize, f32),
}

/// Weight units of a whole source row.
const ROW_UNITS: u32 = 64;

impl AreaAverage {
    fn new(w: usize, h: usize, channels: usize, mx: usize, my: usize) -> Self {
        let rows = pixel_boxes(h, my)
            .into_iter()
            .map(|(k, first, _)| {
                let q = ((first * ROW_UNITS as f32).round() as u16).min(ROW_UNITS as u16);
                (k, q, ROW_UNITS as u16 - q)
            })
            .collect();
        Self {
            mx,
            my,
            w,
            h,
            channels,
            cols: column_boxes(w, mx),
            rows,
            acc: [vec![0; w * channels], vec![0; w * channels]],
            wide: [vec![0; w * channels], vec![0; w * channels]],
            weight: [0; 2],
            spilled: [false; 2],
            prefix: vec![0; w + 1],
            open: 0,
            y: 0,
            sums: vec![0.0; mx * my],
        }
    }

    /// Move a slot's 16-bit sums into its 32-bit ones.
    fn spill(&mut self, slot: usize) {
        for (w, a) in self.wide[slot].iter_mut().zip(self.acc[slot].iter_mut()) {
            *w += *a as u32;
            *a = 0;
        }
        self.weight[slot] = 0;
        self.spilled[slot] = true;
    }

    fn add(&mut self, slot: usize, q: u16, row: &[u8]) {
        if (self.weight[slot] + q as u32) * 255 > u16::MAX as u32 {
            self.spill(slot);
        }
        self.weight[slot] += q as u32;
        for (a, &b) in self.acc[slot].iter_mut().zip(row) {
            *a += b as u16 * q;
        }
    }

    /// Sum box row `k` across: the grey of each pixel into running sums, then each box is a
    /// difference of two of them plus its two shared pixels.
    fn reduce(&mut self, k: usize) {
        let slot = k % 2;
        let spilled = self.spilled[slot];
        if spilled {
            self.spill(slot); // everything in the 32-bit sums
        }
        let (c, mx, w) = (self.channels, self.mx, self.w);
        let out = &mut self.sums[k * mx..(k + 1) * mx];
        if spilled {
            box_row(&self.wide[slot], c, mx == w, &mut self.prefix, &self.cols, out);
            self.wide[slot].fill(0);
            self.spilled[slot] = false;
        } else {
            box_row(&self.acc[slot], c, mx == w, &mut self.prefix, &self.cols, out);
        }
        self.acc[slot].fill(0);
        self.weight[slot] = 0;
    }

    /// Add the next row of samples.
    fn push(&mut self, row: &[u8]) {
        let Some(&(k, first, rest)) = self.rows.get(self.y) else { return };
        self.y += 1;
        let k = k as usize;
        while self.open < k {
            self.reduce(self.open);
            self.open += 1;
        }
        if first > 0 {
            self.add(k % 2, first, row);
        }
        if rest > 0 {
            self.add((k + 1) % 2, rest, row);
        }
    }

    /// The box means, grey levels 0 to 255, row-major `mx x my`.
    fn finish(mut self) -> Vec<f32> {
        while self.open < self.my {
            self.reduce(self.open);
            self.open += 1;
        }
        let colours = if self.channels >= 3 { 3.0 } else { 1.0 };
        let area = (self.w as f32 / self.mx as f32) * (self.h as f32 / self.my as f32) * colours * ROW_UNITS as f32;
        self.sums.iter().map(|&s| s / area).collect()
    }
}

/// One box row from the samples summed over its source rows (`channels` per pixel): with a
/// box per pixel, each pixel's grey; else running grey sums across (`prefix`), each box a
/// difference of two of them plus its two shared pixels.
fn box_row<T: Copy + Into<u64>>(acc: &[T], channels: usize, per_pixel: bool, prefix: &mut [u64], cols: &[ColumnBox], out: &mut [f32]) {
    let grey = |px: &[T]| -> u64 { if channels >= 3 { px[0].into() + px[1].into() + px[2].into() } else { px[0].into() } };
    if per_pixel {
        for (o, px) in out.iter_mut().zip(acc.chunks_exact(channels)) {
            *o = grey(px) as f32;
        }
        return;
    }
    let mut run = 0u64;
    for (p, px) in prefix[1..].iter_mut().zip(acc.chunks_exact(channels)) {
        run += grey(px);
        *p = run;
    }
    // differences of running sums are far below 2^63: exact as i64, one conversion each
    let span = |a: usize, b: usize| (prefix[b] - prefix[a]) as i64 as f32;
    for (o, b) in out.iter_mut().zip(cols) {
        *o = span(b.start, b.end) + b.left.1 * span(b.left.0, b.left.0 + 1) + b.right.1 * span(b.right.0, b.right.0 + 1);
    }
}

/// The box columns of a side of `len` pixels cut into `m` boxes (see [`pixel_boxes`]).
fn column_boxes(len: usize, m: usize) -> Vec<ColumnBox> {
    let mut boxes = vec![ColumnBox { start: 0, end: 0, left: (0, 0.0), right: (0, 0.0) }; m];
    let mut started = vec![false; m];
    for (x, (k, first, rest)) in pixel_boxes(len, m).into_iter().enumerate() {
        let k = k as usize;
        if rest > 0.0 {
            boxes[k].right = (x, first);
            boxes[k + 1].left = (x, rest);
        } else {
            let b = &mut boxes[k];
            if !started[k] {
                (b.start, started[k]) = (x, true);
            }
            b.end = x + 1;
        }
    }
    for (b, s) in boxes.iter_mut().zip(started) {
        if !s {
            // no whole pixel: an empty run
            b.end = b.start;
        }
    }
    boxes
}

/// Tent weights for resampling a side of `src` pixels to `dst`: per output pixel, its first
/// source pixel and the weights from there (summing to 1). The tent is that of linear
/// interpolation, stretched by the scale when shrinking; weights cut at the border are
/// renormalised.
fn tent_weights(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = src as f32 / dst as f32;
    let support = scale.max(1.0);
    (0..dst)
        .map(|i| {
            let centre = (i as f32 + 0.5) * scale - 0.5;
            let lo = (centre - support).ceil().max(0.0) as usize;
            let hi = ((centre + support).floor().max(0.0) as usize).min(src - 1);
            let w: Vec<f32> = (lo..=hi.max(lo)).map(|j| (1.0 - (j as f32 - centre).abs() / support).max(0.0)).collect();
            let total: f32 = w.iter().sum();
            (lo, w.into_iter().map(|x| if total > 0.0 { x / total } else { 0.0 }).collect())
        })
        .collect()
}

/// Triangle-filter a `w x h` grey image to `N x N` (rows, then columns). Its overlap smooths
/// the sub-pixel misalignment that rescaled copies of line drawings have, which plain box
/// means keep.
fn triangle_to_thumb(px: &[f32], w: usize, h: usize) -> Vec<u8> {
    static FROM_PRE: std::sync::OnceLock<Vec<(usize, Vec<f32>)>> = std::sync::OnceLock::new();
    let (own_x, own_y);
    let wx = if w == PRE { FROM_PRE.get_or_init(|| tent_weights(PRE, N)) } else { own_x = tent_weights(w, N); &own_x };
    let wy = if h == PRE { FROM_PRE.get_or_init(|| tent_weights(PRE, N)) } else { own_y = tent_weights(h, N); &own_y };
    let mut across = vec![0f32; h * N];
    for (y, row) in px.chunks_exact(w).enumerate() {
        for (x, (lo, k)) in wx.iter().enumerate() {
            across[y * N + x] = row[*lo..*lo + k.len()].iter().zip(k).map(|(a, b)| a * b).sum();
        }
    }
    let mut out = vec![0u8; N * N];
    for (y, (lo, k)) in wy.iter().enumerate() {
        for x in 0..N {
            let v: f32 = k.iter().enumerate().map(|(j, b)| across[(lo + j) * N + x] * b).sum();
            // levels are never negative: adding one half and truncating rounds
            out[y * N + x] = (v.clamp(0.0, 255.0) + 0.5) as u8;
        }
    }
    out
}

/// Turns 8-bit rows with `channels` samples per pixel into the grey thumbnail: area average
/// to at most `PRE x PRE` (a side shorter than `PRE` keeps its pixels), then the triangle
/// filter to `N x N`. One path for every size and format, so an image and its rescaled or
/// re-encoded copies are compared like with like.
struct RowThumbnail(AreaAverage);

impl RowThumbnail {
    fn new(w: usize, h: usize, channels: usize) -> Self {
        // sides under twice `PRE` go to the triangle filter whole: averaging them into boxes
        // of one to two pixels costs more than it saves
        let side = |n: usize| if n >= 2 * PRE { PRE } else { n };
        Self(AreaAverage::new(w, h, channels, side(w), side(h)))
    }

    fn push(&mut self, row: &[u8]) {
        self.0.push(row)
    }

    fn finish(self) -> Vec<u8> {
        let (mx, my) = (self.0.mx, self.0.my);
        triangle_to_thumb(&self.0.finish(), mx, my)
    }
}

/// The grey thumbnail of a PNG read row by row, or None when this image takes the general
/// path (interlaced).
fn png_streamed(bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(|e| e.to_string())?;
    let info = reader.info();
    let (w, h) = (info.width as usize, info.height as usize);
    if info.interlaced || w == 0 || h == 0 {
        return Ok(None);
    }
    let channels = reader.output_color_type().0.samples();
    let mut thumb = RowThumbnail::new(w, h, channels);
    // rows land in one buffer of our own (`next_row` would clear a fresh one for every row)
    let mut buf = vec![0u8; reader.output_line_size(w as u32).ok_or("PNG row size overflows")?];
    let mut rows = 0;
    while reader.read_row(&mut buf).map_err(|e| e.to_string())?.is_some() {
        thumb.push(&buf);
        rows += 1;
    }
    if rows != h {
        return Err(format!("PNG ended after {rows} of {h} rows"));
    }
    Ok(Some(thumb.finish()))
}

/// The image in grey at `N x N` (see [`RowThumbnail`]).
fn grey_thumbnail(img: &image::DynamicImage) -> Vec<u8> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return vec![0; THUMB_BYTES];
    }
    let from = |raw: &[u8], channels: usize| {
        let mut thumb = RowThumbnail::new(w, h, channels);
        raw.chunks_exact(w * channels).for_each(|row| thumb.push(row));
        thumb.finish()
    };
    match img {
        image::DynamicImage::ImageLuma8(b) => from(b.as_raw(), 1),
        image::DynamicImage::ImageLumaA8(b) => from(b.as_raw(), 2),
        image::DynamicImage::ImageRgb8(b) => from(b.as_raw(), 3),
        image::DynamicImage::ImageRgba8(b) => from(b.as_raw(), 4),
        other => from(other.to_rgb8().as_raw(), 3),
    }
}

/// The `K x K` lowest-frequency coefficients of the 2-D DCT-II of an `N x N` image, row-major.
fn dct_low(px: &[f64]) -> Vec<f64> {
    // basis[u][x] = cos((2x + 1) u pi / 2N)
    static BASIS: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let basis = BASIS.get_or_init(|| {
        (0..K).flat_map(|u| (0..N).map(move |x| (((2 * x + 1) * u) as f64 * std::f64::consts::PI / (2 * N) as f64).cos())).collect()
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
struct Entry {
    k: u32,
    hash: u64,
    ns: u64,
}

/// Table key of a chunk in a namespace (entries of other namespaces that collide are filtered
/// out by the full check).
fn table_key(chunk: u64, ns: u64) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    /// A test picture: smooth gradients, a disc and some noise, `channels` samples per pixel.
    fn picture(w: usize, h: usize, channels: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        let mut out = Vec::with_capacity(w * h * channels);
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f64 - w as f64 / 2.0, y as f64 - h as f64 / 3.0);
                let disc = if dx * dx + dy * dy < (w.min(h) as f64 / 4.0).powi(2) { 90.0 } else { 0.0 };
                for c in 0..channels {
                    let v = (x * 255 / w) as f64 * 0.5 + (y * 255 / h) as f64 * 0.3 + disc + (xorshift(&mut s) % 16) as f64 + c as f64 * 7.0;
                    out.push(v.min(255.0) as u8);
                }
            }
        }
        out
    }

    #[test]
    fn area_average_matches_a_direct_computation() {
        for &(w, h, c) in &[(300, 517, 3), (1000, 260, 4), (257, 999, 1), (640, 480, 2)] {
            let px = picture(w, h, c, 7);
            let (mx, my) = (PRE, PRE);
            let mut avg = AreaAverage::new(w, h, c, mx, my);
            px.chunks_exact(w * c).for_each(|row| avg.push(row));
            let got = avg.finish();
            // exact area average in f64: each pixel's overlap with each box
            let grey = |x: usize, y: usize| -> f64 {
                let p = &px[(y * w + x) * c..(y * w + x) * c + c];
                if c >= 3 { (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0 } else { p[0] as f64 }
            };
            let overlap = |i: usize, len: usize, m: usize, k: usize| -> f64 {
                let (lo, hi) = (k as f64 * len as f64 / m as f64, (k + 1) as f64 * len as f64 / m as f64);
                ((i + 1) as f64).min(hi) - (i as f64).max(lo)
            };
            let mut worst = 0f64;
            for ky in 0..my {
                for kx in 0..mx {
                    let (y0, y1) = (ky * h / my, ((ky + 1) * h).div_ceil(my).min(h));
                    let (x0, x1) = (kx * w / mx, ((kx + 1) * w).div_ceil(mx).min(w));
                    let mut sum = 0.0;
                    for y in y0..y1 {
                        let oy = overlap(y, h, my, ky).max(0.0);
                        for x in x0..x1 {
                            sum += oy * overlap(x, w, mx, kx).max(0.0) * grey(x, y);
                        }
                    }
                    let want = sum / ((w as f64 / mx as f64) * (h as f64 / my as f64));
                    worst = worst.max((want - got[ky * mx + kx] as f64).abs());
                }
            }
            // a split row's weight is off by half a unit at most, at each edge of a box
            let bound = 255.0 / ROW_UNITS as f64 / (h as f64 / my as f64) + 0.01;
            assert!(worst < bound, "{w}x{h}x{c}: box means off by {worst} (bound {bound})");
        }
    }

    #[test]
    fn streamed_png_fingerprints_equal_decoded_ones() {
        use image::{DynamicImage, ImageBuffer};
        for &(w, h) in &[(40, 30), (130, 90), (300, 260), (700, 20), (600, 450)] {
            let imgs = [
                DynamicImage::ImageLuma8(ImageBuffer::from_raw(w, h, picture(w as usize, h as usize, 1, 3)).unwrap()),
                DynamicImage::ImageLumaA8(ImageBuffer::from_raw(w, h, picture(w as usize, h as usize, 2, 3)).unwrap()),
                DynamicImage::ImageRgb8(ImageBuffer::from_raw(w, h, picture(w as usize, h as usize, 3, 3)).unwrap()),
                DynamicImage::ImageRgba8(ImageBuffer::from_raw(w, h, picture(w as usize, h as usize, 4, 3)).unwrap()),
            ];
            for img in imgs {
                let mut png = std::io::Cursor::new(Vec::new());
                img.write_to(&mut png, image::ImageFormat::Png).unwrap();
                let streamed = fingerprint(png.get_ref()).unwrap();
                assert_eq!(streamed, fingerprint_of(&img), "{w}x{h} {:?}", img.color());
                assert!(png_streamed(png.get_ref()).unwrap().is_some());
            }
        }
        // 16-bit samples: the stream keeps the high byte, the decoded image rounds
        let px16: Vec<u16> = picture(300, 200, 3, 4).iter().enumerate().map(|(i, &v)| v as u16 * 257 + (i % 200) as u16).collect();
        let img16 = DynamicImage::ImageRgb16(ImageBuffer::from_raw(300, 200, px16).unwrap());
        let mut png = std::io::Cursor::new(Vec::new());
        img16.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let (a, b) = (fingerprint(png.get_ref()).unwrap(), fingerprint_of(&img16));
        assert!(distance(a.hash, b.hash) <= 2 && thumb_distance(&a, &b) < 1e-3, "{} bits, {}", distance(a.hash, b.hash), thumb_distance(&a, &b));
        // truncated data is an error, never a panic
        let cut = &png.get_ref()[..png.get_ref().len() / 2];
        assert!(fingerprint(cut).is_err());
    }

    #[test]
    fn coarse_bound_never_rejects_a_match() {
        let mut s = 99u64;
        let base: Vec<u8> = picture(32, 32, 1, 5);
        let a = Fingerprint::new(1, base.clone());
        for _ in 0..500 {
            // a noisy copy: some close, some far
            let amp = xorshift(&mut s) % 60;
            let t: Vec<u8> = base.iter().map(|&v| (v as i64 + (xorshift(&mut s) % (2 * amp + 1)) as i64 - amp as i64).clamp(0, 255) as u8).collect();
            let b = Fingerprint::new(2, t);
            for max in [0.001, 0.005, 0.02, 0.1] {
                assert_eq!(thumb_distance_within(&a, &b, max), thumb_distance(&a, &b) <= max, "amp {amp} max {max}");
            }
        }
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
        for radius in [0, 3, 4, 6, 7, 8, 10, 20] {
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
