//! The drawers: one function per scene kind, and [`render`], which picks the drawer for a
//! scene at any image size.

use std::f64::consts::PI;

use image::RgbImage;

use crate::rng::Rng;
use crate::synth::font;

use super::canvas::*;
use super::scene::*;

/// Renders `scene` at `width` x `height` on a light background. `rng` only jitters the
/// layout and background; the same scene and `rng` state always give the same pixels. Any
/// size is accepted (text is scaled to the image; below about 64x64 it is cramped).
pub fn render(scene: &Scene, width: u32, height: u32, rng: &mut Rng) -> RgbImage {
    let bg = background(rng);
    let mut img = filled(width, height, bg);
    let f = Frame::new(width, height);
    let mut cv = Canvas::new(&mut img);
    match scene {
        Scene::BarChart { title, labels, values } => draw_bar_chart(&mut cv, &f, rng, title, labels, values),
        Scene::Shapes { items } => draw_shapes(&mut cv, &f, rng, items),
        Scene::Table { headers, rows } => draw_table(&mut cv, &f, headers, rows),
        Scene::Clock { hour, minute } => draw_clock(&mut cv, &f, *hour, *minute),
        Scene::Geometry { kind, sides } => draw_geometry(&mut cv, &f, rng, *kind, sides),
        Scene::ArithBoxes { numbers } => draw_arith_boxes(&mut cv, numbers),
    }
    img
}

/// Colours used for bars (black is kept for text and axes).
pub(super) const BAR_COLOURS: [Colour; 5] = [Colour::Red, Colour::Blue, Colour::Green, Colour::Orange, Colour::Purple];

pub(super) fn draw_bar_chart(
    cv: &mut Canvas,
    f: &Frame,
    rng: &mut Rng,
    title: &str,
    labels: &[String],
    values: &[i64],
) {
    let colour = rng.pick(&BAR_COLOURS).rgb().0;
    let m = f.margin;
    let gap = f64::from(f.scale).max(2.0);
    let mut top = m;
    if !title.is_empty() {
        let ts = fit_scale(font::text_width(title, 1), f.w - 2.0 * m, f.h * 0.12, f.scale);
        cv.text_top(f.w / 2.0, top, title, ts, INK);
        top += th(ts) + 2.0 * gap;
    }
    let n = values.len();
    if n == 0 {
        return;
    }
    let slot = (f.w - 2.0 * m) / n as f64;
    let labels = &labels[..labels.len().min(n)];
    let value_text: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    let ls = fit_scale(widest(labels.iter().map(String::as_str)), slot * 0.92, f.h * 0.1, f.scale);
    let vs = fit_scale(widest(value_text.iter().map(String::as_str)), slot * 0.92, f.h * 0.1, f.scale);

    let has_labels = labels.iter().any(|l| !l.is_empty());
    let label_y = f.h - m - th(ls);
    let base_y = (if has_labels { label_y - gap } else { f.h - m } - f.lw).round();
    let plot_top = top + th(vs) + gap;
    let area = (base_y - plot_top).max(1.0);
    let vmax = values.iter().copied().max().unwrap_or(1).max(1) as f64;
    let bw = (slot * 0.6).max(1.0);
    for (i, (&v, text)) in values.iter().zip(&value_text).enumerate() {
        let cx = m + slot * (i as f64 + 0.5);
        let bh = (v.max(0) as f64 / vmax * area).round();
        cv.rect((cx - bw / 2.0).round(), base_y - bh, bw.round(), bh, colour);
        cv.text_top(cx, base_y - bh - gap - th(vs), text, vs, INK);
        if let Some(label) = labels.get(i) {
            cv.text_top(cx, label_y, label, ls, INK);
        }
    }
    cv.rect(m, base_y, f.w - 2.0 * m, f.lw, INK);
}

/// Shapes drawn at most (a guard against absurd counts; random scenes have at most 20).
pub(super) const MAX_SHAPES: usize = 400;

pub(super) fn draw_shapes(cv: &mut Canvas, f: &Frame, rng: &mut Rng, items: &[(Shape, Colour, u32)]) {
    let mut list: Vec<(Shape, Colour)> = Vec::new();
    'fill: for &(shape, colour, count) in items {
        for _ in 0..count {
            if list.len() >= MAX_SHAPES {
                break 'fill;
            }
            list.push((shape, colour));
        }
    }
    let total = list.len();
    if total == 0 {
        return;
    }
    // A grid with about 50% spare cells, as square as the image allows; each shape gets its
    // own random cell, so shapes never overlap.
    let m = f.margin;
    let (aw, ah) = ((f.w - 2.0 * m).max(1.0), (f.h - 2.0 * m).max(1.0));
    let needed = total + total.div_ceil(2);
    let (mut cols, mut rows, mut cell) = (1usize, needed, 0.0f64);
    for c in 1..=needed {
        let r = needed.div_ceil(c);
        let s = (aw / c as f64).min(ah / r as f64);
        if s > cell {
            (cols, rows, cell) = (c, r, s);
        }
    }
    let mut cells: Vec<usize> = (0..cols * rows).collect();
    shuffle(rng, &mut cells);
    let ox = m + (aw - cols as f64 * cell) / 2.0;
    let oy = m + (ah - rows as f64 * cell) / 2.0;
    for (&(shape, colour), &idx) in list.iter().zip(&cells) {
        let size = cell * (0.55 + 0.25 * rng.f64());
        let free = cell - size;
        let x = ox + (idx % cols) as f64 * cell + free * rng.f64();
        let y = oy + (idx / cols) as f64 * cell + free * rng.f64();
        let c = colour.rgb().0;
        match shape {
            Shape::Circle => cv.disc(x + size / 2.0, y + size / 2.0, size / 2.0, c),
            Shape::Square => {
                let q = size * 0.88;
                let o = (size - q) / 2.0;
                cv.rect(x + o, y + o, q, q, c);
            }
            Shape::Triangle => {
                let h = size * 0.866;
                let t = y + (size - h) / 2.0;
                cv.convex(&[(x + size / 2.0, t), (x + size, t + h), (x, t + h)], c);
            }
        }
    }
}

pub(super) fn draw_table(cv: &mut Canvas, f: &Frame, headers: &[String], rows: &[Vec<i64>]) {
    let ncols = rows.iter().map(Vec::len).max().unwrap_or(0).max(headers.len());
    if ncols == 0 {
        return;
    }
    let nrows = rows.len() + 1;
    let m = f.margin;
    let (aw, ah) = ((f.w - 2.0 * m).max(1.0), (f.h - 2.0 * m).max(1.0));
    let cw = aw / ncols as f64;
    let ch = (ah / nrows as f64).min(cw * 0.6).max(1.0);
    let (x0, y0) = (m, ((f.h - ch * nrows as f64) / 2.0).max(0.0));
    let (tw, tht) = (cw * ncols as f64, ch * nrows as f64);

    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|v| v.to_string()).collect()).collect();
    let w1 = widest(headers.iter().chain(cells.iter().flatten()).map(String::as_str));
    let ts = fit_scale(w1, cw * 0.85, ch * 0.7, f.scale);

    cv.rect(x0, y0, tw, ch, HEADER_FILL);
    for (c, h) in headers.iter().enumerate() {
        cv.text_centred(x0 + cw * (c as f64 + 0.5), y0 + ch * 0.5, h, ts, INK);
    }
    for (r, row) in cells.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            cv.text_centred(x0 + cw * (c as f64 + 0.5), y0 + ch * (r as f64 + 1.5), v, ts, INK);
        }
    }
    let half = f.lw / 2.0;
    for r in 0..=nrows {
        let y = (y0 + ch * r as f64 - half).clamp(0.0, (f.h - f.lw).max(0.0));
        cv.rect(x0 - half, y, tw + f.lw, f.lw, INK);
    }
    for c in 0..=ncols {
        let x = (x0 + cw * c as f64 - half).clamp(0.0, (f.w - f.lw).max(0.0));
        cv.rect(x, y0 - half, f.lw, tht + f.lw, INK);
    }
}

pub(super) fn draw_clock(cv: &mut Canvas, f: &Frame, hour: u32, minute: u32) {
    let (cx, cy) = (f.w / 2.0, f.h / 2.0);
    let r = (f.w.min(f.h) / 2.0 - f.margin).max(1.0);
    let rim = (r * 0.045).max(1.0);
    // Unit vector for an angle measured clockwise from 12 o'clock (image y points down).
    let dir = |a: f64| (a.sin(), -a.cos());

    cv.disc(cx, cy, r, WHITE);
    cv.ring(cx, cy, r, r - rim, INK);
    for k in 0..12i32 {
        let (sx, sy) = dir(f64::from(k) * PI / 6.0);
        let major = k % 3 == 0;
        let outer = r - rim - r * 0.03;
        let inner = outer - if major { r * 0.13 } else { r * 0.07 };
        let t = if major { r * 0.04 } else { r * 0.02 };
        cv.line(cx + sx * outer, cy + sy * outer, cx + sx * inner, cy + sy * inner, t, INK);
    }
    let ns = fit_scale(font::text_width("12", 1), r * 0.3, r * 0.16, u32::MAX);
    for (label, k) in [("12", 0.0), ("3", 3.0), ("6", 6.0), ("9", 9.0)] {
        let (sx, sy) = dir(k * PI / 6.0);
        cv.text_centred(cx + sx * r * 0.66, cy + sy * r * 0.66, label, ns, INK);
    }
    let minute = minute % 60;
    let hour_angle = (f64::from(hour % 12) + f64::from(minute) / 60.0) * PI / 6.0;
    let minute_angle = f64::from(minute) * PI / 30.0;
    let (hx, hy) = dir(hour_angle);
    let (mx, my) = dir(minute_angle);
    let hour_t = (r * 0.065).max(2.0);
    cv.line(cx, cy, cx + hx * r * 0.48, cy + hy * r * 0.48, hour_t, INK);
    cv.line(cx, cy, cx + mx * r * 0.78, cy + my * r * 0.78, (r * 0.03).max(1.0), INK);
    cv.disc(cx, cy, hour_t * 0.9, INK);
}

pub(super) fn draw_geometry(cv: &mut Canvas, f: &Frame, rng: &mut Rng, kind: GeoKind, sides: &[u32]) {
    let label = |i: usize| sides.get(i).map_or_else(|| "?".to_string(), |v| v.to_string());
    let side = |i: usize| sides.get(i).map_or(0.0, |&v| f64::from(v));
    // Vertices in model units (y up is negative) and labelled edges (from, to, text).
    let mut right_angle = None;
    let (verts, edges): (Vec<(f64, f64)>, Vec<(usize, usize, String)>) = match kind {
        GeoKind::Triangle => {
            let (a, b, c) = match heron(side(0), side(1), side(2)) {
                Some(_) => (side(0), side(1), side(2)),
                None => (1.0, 1.0, 1.0), // not a triangle: draw an equilateral one
            };
            let x = (a * a + c * c - b * b) / (2.0 * a);
            let y = -(c * c - x * x).max(0.0).sqrt();
            (vec![(0.0, 0.0), (a, 0.0), (x, y)], vec![(0, 1, label(0)), (1, 2, label(1)), (2, 0, label(2))])
        }
        GeoKind::Rectangle => {
            let w = if side(0) > 0.0 { side(0) } else { 1.0 };
            let h = if side(1) > 0.0 { side(1) } else { 1.0 };
            (vec![(0.0, 0.0), (w, 0.0), (w, -h), (0.0, -h)], vec![(0, 1, label(0)), (1, 2, label(1))])
        }
        GeoKind::RightTriangle => {
            let a = if side(0) > 0.0 { side(0) } else { 1.0 };
            let b = if side(1) > 0.0 { side(1) } else { 1.0 };
            let s = if rng.chance(0.5) { 1.0 } else { -1.0 }; // right angle bottom-left or bottom-right
            right_angle = Some(0);
            (vec![(0.0, 0.0), (s * a, 0.0), (0.0, -b)], vec![(0, 1, label(0)), (2, 0, label(1)), (1, 2, label(2))])
        }
    };

    let m = f.margin;
    let ls = f.scale;
    let lab_w = f64::from(widest(edges.iter().map(|e| e.2.as_str()))) * f64::from(ls);
    let lab_h = th(ls);
    let pad = (lab_h * 0.5).max(2.0) + f.lw;
    let aw = (f.w - 2.0 * (m + lab_w + pad)).max(f.w * 0.3);
    let ah = (f.h - 2.0 * (m + lab_h + pad)).max(f.h * 0.3);
    let (minx, maxx) = verts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (miny, maxy) = verts.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let k = (aw / (maxx - minx).max(1e-9)).min(ah / (maxy - miny).max(1e-9));
    let (mx, my) = ((minx + maxx) / 2.0, (miny + maxy) / 2.0);
    let pts: Vec<(f64, f64)> =
        verts.iter().map(|&(x, y)| (f.w / 2.0 + (x - mx) * k, f.h / 2.0 + (y - my) * k)).collect();

    cv.convex(&pts, FIGURE_FILL);
    let t = (f.lw * 1.5).max(1.0);
    for (i, &a) in pts.iter().enumerate() {
        let b = pts[(i + 1) % pts.len()];
        cv.line(a.0, a.1, b.0, b.1, t, INK);
    }
    if let Some(v) = right_angle {
        let (p, a, b) = (pts[v], pts[(v + 1) % 3], pts[(v + 2) % 3]);
        let unit = |q: (f64, f64)| {
            let (dx, dy) = (q.0 - p.0, q.1 - p.1);
            let l = dx.hypot(dy).max(1e-9);
            (dx / l, dy / l, l)
        };
        let (ux, uy, la) = unit(a);
        let (vx, vy, lb) = unit(b);
        let q = (la.min(lb) * 0.12).max(3.0);
        let c1 = (p.0 + ux * q, p.1 + uy * q);
        let c2 = (p.0 + vx * q, p.1 + vy * q);
        let corner = (c1.0 + vx * q, c1.1 + vy * q);
        cv.line(c1.0, c1.1, corner.0, corner.1, f.lw, INK);
        cv.line(c2.0, c2.1, corner.0, corner.1, f.lw, INK);
    }
    let n = pts.len() as f64;
    let centroid = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
    for (i, j, text) in &edges {
        let (a, b) = (pts[*i], pts[*j]);
        let mid = ((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0);
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let l = dx.hypot(dy).max(1e-9);
        let (mut nx, mut ny) = (-dy / l, dx / l);
        if nx * (mid.0 - centroid.0) + ny * (mid.1 - centroid.1) < 0.0 {
            (nx, ny) = (-nx, -ny);
        }
        let tw = f64::from(font::text_width(text, ls));
        let off = pad + nx.abs() * tw / 2.0 + ny.abs() * lab_h / 2.0;
        cv.text_centred(mid.0 + nx * off, mid.1 + ny * off, text, ls, INK);
    }
}

/// Boxes in equal cells across the whole image, each inset by a tenth of the cell, with its
/// number in white at the largest scale that fits.
pub(super) fn draw_arith_boxes(cv: &mut Canvas, numbers: &[(Colour, i64)]) {
    let n = numbers.len();
    if n == 0 {
        return;
    }
    let (w, h) = (f64::from(cv.w), f64::from(cv.h));
    let cell = w / n as f64;
    let (ix, iy) = (cell * 0.1, h * 0.1);
    let texts: Vec<String> = numbers.iter().map(|(_, v)| v.to_string()).collect();
    let ts = fit_scale(widest(texts.iter().map(String::as_str)), cell - 2.0 * ix, h - 2.0 * iy, u32::MAX);
    for (i, ((colour, _), text)) in numbers.iter().zip(&texts).enumerate() {
        let x = i as f64 * cell;
        cv.rect(x + ix, iy, cell - 2.0 * ix, h - 2.0 * iy, colour.rgb().0);
        cv.text_centred(x + cell / 2.0, h / 2.0, text, ts, WHITE);
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------
