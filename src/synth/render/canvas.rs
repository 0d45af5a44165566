//! The canvas: drawing primitives on a raw RGB buffer (rectangles, lines, discs, polygons,
//! text in the 5x7 font), clipped at the image bounds, and layout helpers.

use image::{Rgb, RgbImage};

use crate::rng::Rng;
use crate::synth::font;

/// Dark grey used for text, axes, outlines and grid lines.
pub(super) const INK: [u8; 3] = [30, 30, 30];

pub(super) const WHITE: [u8; 3] = [255, 255, 255];

pub(super) const HEADER_FILL: [u8; 3] = [222, 226, 232];

pub(super) const FIGURE_FILL: [u8; 3] = [222, 236, 250];

/// A clipping drawing surface over an image's raw RGB buffer. Coordinates are continuous:
/// pixel (x, y) covers [x, x+1) x [y, y+1) and is painted when its centre is inside a shape.
pub(super) struct Canvas<'a> {
    pub(super) img: &'a mut RgbImage,
    pub(super) w: i32,
    pub(super) h: i32,
}

impl<'a> Canvas<'a> {
    pub(super) fn new(img: &'a mut RgbImage) -> Self {
        let w = img.width().min(i32::MAX as u32) as i32;
        let h = img.height().min(i32::MAX as u32) as i32;
        Canvas { img, w, h }
    }

    /// Paints pixels `x0..=x1` of row `y` (clipped).
    pub(super) fn span(&mut self, y: i32, x0: i32, x1: i32, c: [u8; 3]) {
        if y < 0 || y >= self.h {
            return;
        }
        let (a, b) = (x0.max(0), x1.min(self.w - 1));
        if a > b {
            return;
        }
        let row = y as usize * self.w as usize;
        let buf: &mut [u8] = self.img;
        if let Some(px) = buf.get_mut((row + a as usize) * 3..(row + b as usize + 1) * 3) {
            font::fill_rgb(px, c);
        }
    }

    /// Fills the axis-aligned rectangle [x, x+w) x [y, y+h), edges rounded to whole pixels.
    pub(super) fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, c: [u8; 3]) {
        let (x0, x1) = (x.round() as i32, (x + w).round() as i32);
        let (y0, y1) = (y.round() as i32, (y + h).round() as i32);
        for yy in y0.max(0)..y1.min(self.h) {
            self.span(yy, x0, x1.saturating_sub(1), c);
        }
    }

    /// Fills the disc of radius `r` centred at (`cx`, `cy`).
    pub(super) fn disc(&mut self, cx: f64, cy: f64, r: f64, c: [u8; 3]) {
        self.ring(cx, cy, r, 0.0, c);
    }

    /// Fills the annulus between radii `r_in` and `r_out` centred at (`cx`, `cy`).
    // `!(x > 0.0)` also refuses NaN
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub(super) fn ring(&mut self, cx: f64, cy: f64, r_out: f64, r_in: f64, c: [u8; 3]) {
        if !(r_out > 0.0) {
            return;
        }
        let y0 = ((cy - r_out).floor() as i32).max(0);
        let y1 = ((cy + r_out).ceil() as i32).min(self.h - 1);
        for y in y0..=y1 {
            let dy = f64::from(y) + 0.5 - cy;
            let d_out = r_out * r_out - dy * dy;
            if d_out < 0.0 {
                continue;
            }
            let ho = d_out.sqrt();
            let (xo0, xo1) = ((cx - ho - 0.5).ceil() as i32, (cx + ho - 0.5).floor() as i32);
            let d_in = r_in * r_in - dy * dy;
            if r_in > 0.0 && d_in > 0.0 {
                let hi = d_in.sqrt();
                let (xi0, xi1) = ((cx - hi - 0.5).ceil() as i32, (cx + hi - 0.5).floor() as i32);
                self.span(y, xo0, xi0.saturating_sub(1), c);
                self.span(y, xi1.saturating_add(1), xo1, c);
            } else {
                self.span(y, xo0, xo1, c);
            }
        }
    }

    /// Fills a convex polygon (any winding) by scanlines.
    pub(super) fn convex(&mut self, pts: &[(f64, f64)], c: [u8; 3]) {
        if pts.len() < 3 {
            return;
        }
        let ymin = pts.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
        let ymax = pts.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
        let y0 = ((ymin - 0.5).ceil() as i32).max(0);
        let y1 = ((ymax - 0.5).floor() as i32).min(self.h - 1);
        for y in y0..=y1 {
            let yc = f64::from(y) + 0.5;
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for (i, &a) in pts.iter().enumerate() {
                let b = pts[(i + 1) % pts.len()];
                if (a.1 <= yc && yc < b.1) || (b.1 <= yc && yc < a.1) {
                    let x = a.0 + (yc - a.1) * (b.0 - a.0) / (b.1 - a.1);
                    lo = lo.min(x);
                    hi = hi.max(x);
                }
            }
            if lo <= hi {
                self.span(y, (lo - 0.5).ceil() as i32, (hi - 0.5).floor() as i32, c);
            }
        }
    }

    /// Draws a line of thickness `t` (at least one pixel) from (`x0`, `y0`) to (`x1`, `y1`),
    /// with round caps when thicker than two pixels.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub(super) fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, t: f64, c: [u8; 3]) {
        let t = t.max(1.0);
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len = dx.hypot(dy);
        if !(len > 1e-9) {
            self.disc(x0, y0, t / 2.0 + 0.5, c);
            return;
        }
        let (nx, ny) = (-dy / len * t / 2.0, dx / len * t / 2.0);
        self.convex(&[(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], c);
        if t > 2.0 {
            self.disc(x0, y0, t / 2.0, c);
            self.disc(x1, y1, t / 2.0, c);
        }
    }

    /// Draws `text` with its top-left corner at (`x`, `y`).
    pub(super) fn text(&mut self, x: f64, y: f64, text: &str, scale: u32, c: [u8; 3]) {
        font::draw_text(self.img, x.round() as i32, y.round() as i32, text, scale, Rgb(c));
    }

    /// Draws `text` centred horizontally on `cx` with its top at `y`.
    pub(super) fn text_top(&mut self, cx: f64, y: f64, text: &str, scale: u32, c: [u8; 3]) {
        let tw = f64::from(font::text_width(text, scale));
        self.text((cx - tw / 2.0).floor(), y, text, scale, c);
    }

    /// Draws `text` centred on (`cx`, `cy`).
    pub(super) fn text_centred(&mut self, cx: f64, cy: f64, text: &str, scale: u32, c: [u8; 3]) {
        let th = f64::from(font::text_height(scale));
        self.text_top(cx, (cy - th / 2.0).floor(), text, scale, c);
    }
}

/// Size-dependent layout constants.
pub(super) struct Frame {
    pub(super) w: f64,
    pub(super) h: f64,
    /// Preferred font scale.
    pub(super) scale: u32,
    /// Line width in pixels.
    pub(super) lw: f64,
    pub(super) margin: f64,
}

impl Frame {
    pub(super) fn new(width: u32, height: u32) -> Self {
        let m = f64::from(width.min(height));
        Frame {
            w: f64::from(width),
            h: f64::from(height),
            scale: ((m / 180.0).round() as u32).max(1),
            lw: (m / 240.0).round().max(1.0),
            margin: (m * 0.04).max(2.0),
        }
    }
}

/// Height in pixels of text at `scale`.
pub(super) fn th(scale: u32) -> f64 {
    f64::from(font::text_height(scale))
}

/// Width at scale 1 of the widest of `texts`.
pub(super) fn widest<'s>(texts: impl IntoIterator<Item = &'s str>) -> u32 {
    texts.into_iter().map(|t| font::text_width(t, 1)).max().unwrap_or(0)
}

/// The largest scale up to `pref` at which text `width1` pixels wide at scale 1 fits in
/// `max_w` x `max_h`; never below 1 (text may then overflow and is clipped).
pub(super) fn fit_scale(width1: u32, max_w: f64, max_h: f64, pref: u32) -> u32 {
    let by_w = if width1 == 0 { u32::MAX } else { (max_w / f64::from(width1)).floor().max(0.0) as u32 };
    let by_h = (max_h / f64::from(font::GLYPH_H)).floor().max(0.0) as u32;
    pref.min(by_w).min(by_h).max(1)
}

/// A light background: white 30% of the time, otherwise a faint random tint.
pub(super) fn background(rng: &mut Rng) -> [u8; 3] {
    if rng.chance(0.3) {
        return WHITE;
    }
    let base = rng.range(240, 253);
    let mut c = [0u8; 3];
    for ch in &mut c {
        *ch = (base + rng.range(-3, 2)).clamp(0, 255) as u8;
    }
    c
}

/// An image filled with `bg` in a single pass.
pub(super) fn filled(width: u32, height: u32, bg: [u8; 3]) -> RgbImage {
    let n = width as usize * height as usize;
    RgbImage::from_raw(width, height, bg.repeat(n)).unwrap_or_else(|| RgbImage::from_pixel(width, height, Rgb(bg)))
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------
