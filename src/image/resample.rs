//! Streamed resampling to the grey thumbnail: an area average fed one row at a time (so a PNG
//! is never held whole), then a triangle filter to `N x N`.

/// Side of the grey thumbnail (the image the DCT runs on).
pub(super) const N: usize = 32;
/// Side of the intermediate area-averaged image.
pub(super) const PRE: usize = 4 * N;
/// Bytes of a fingerprint's thumbnail.
pub const THUMB_BYTES: usize = N * N;

/// Where source pixel `i` of a side of `len` pixels falls among `m` equal boxes: the box it
/// starts in and its share of the pixel, and the share that falls in the next box (0 when the
/// pixel lies in one box). Exact integer geometry: box `k` covers `[k len / m, (k+1) len / m)`.
pub(super) fn pixel_boxes(len: usize, m: usize) -> Vec<(u32, f32, f32)> {
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
pub(super) struct AreaAverage {
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
pub(super) struct ColumnBox {
    start: usize,
    end: usize,
    left: (usize, f32),
    right: (usize, f32),
}

/// Weight units of a whole source row.
pub(super) const ROW_UNITS: u32 = 64;

impl AreaAverage {
    pub(super) fn new(w: usize, h: usize, channels: usize, mx: usize, my: usize) -> Self {
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
    pub(super) fn push(&mut self, row: &[u8]) {
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
    pub(super) fn finish(mut self) -> Vec<f32> {
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
pub(super) fn box_row<T: Copy + Into<u64>>(
    acc: &[T],
    channels: usize,
    per_pixel: bool,
    prefix: &mut [u64],
    cols: &[ColumnBox],
    out: &mut [f32],
) {
    let grey =
        |px: &[T]| -> u64 { if channels >= 3 { px[0].into() + px[1].into() + px[2].into() } else { px[0].into() } };
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
        *o =
            span(b.start, b.end) + b.left.1 * span(b.left.0, b.left.0 + 1) + b.right.1 * span(b.right.0, b.right.0 + 1);
    }
}

/// The box columns of a side of `len` pixels cut into `m` boxes (see [`pixel_boxes`]).
pub(super) fn column_boxes(len: usize, m: usize) -> Vec<ColumnBox> {
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
pub(super) fn tent_weights(src: usize, dst: usize) -> Vec<(usize, Vec<f32>)> {
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
pub(super) fn triangle_to_thumb(px: &[f32], w: usize, h: usize) -> Vec<u8> {
    static FROM_PRE: std::sync::OnceLock<Vec<(usize, Vec<f32>)>> = std::sync::OnceLock::new();
    let (own_x, own_y);
    let wx = if w == PRE {
        FROM_PRE.get_or_init(|| tent_weights(PRE, N))
    } else {
        own_x = tent_weights(w, N);
        &own_x
    };
    let wy = if h == PRE {
        FROM_PRE.get_or_init(|| tent_weights(PRE, N))
    } else {
        own_y = tent_weights(h, N);
        &own_y
    };
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
pub(super) struct RowThumbnail(AreaAverage);

impl RowThumbnail {
    pub(super) fn new(w: usize, h: usize, channels: usize) -> Self {
        // sides under twice `PRE` go to the triangle filter whole: averaging them into boxes
        // of one to two pixels costs more than it saves
        let side = |n: usize| if n >= 2 * PRE { PRE } else { n };
        Self(AreaAverage::new(w, h, channels, side(w), side(h)))
    }

    pub(super) fn push(&mut self, row: &[u8]) {
        self.0.push(row)
    }

    pub(super) fn finish(self) -> Vec<u8> {
        let (mx, my) = (self.0.mx, self.0.my);
        triangle_to_thumb(&self.0.finish(), mx, my)
    }
}

/// The grey thumbnail of a PNG read row by row, or None when this image takes the general
/// path (interlaced).
pub(super) fn png_streamed(bytes: &[u8]) -> Result<Option<Vec<u8>>, String> {
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
pub(super) fn grey_thumbnail(img: &image::DynamicImage) -> Vec<u8> {
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
