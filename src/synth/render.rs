//! Synthetic scenes (bar charts, scattered shapes, tables, clocks, geometry figures, coloured
//! number boxes) and a small software renderer for them.
//!
//! A [`Scene`] holds the ground truth a question can be asked about; [`random_scene`] draws
//! one from an [`Rng`], and [`render`] turns it into an RGB image of any size. The renderer
//! uses the `Rng` only for layout jitter (scatter positions, background tint), so a scene and
//! an `Rng` state always give the same pixels. All drawing primitives here work directly on
//! the raw RGB buffer, clip at the image bounds and never allocate per pixel.
//!
//! Text is drawn with the built-in 5x7 [`font`], which has uppercase letters only: labels and
//! titles are stored in natural case and appear uppercase in the image.

use std::f64::consts::PI;

use image::{Rgb, RgbImage};

use crate::synth::font;
use crate::synth::rng::Rng;

/// A named colour used for things a question may refer to by colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colour {
    Red,
    Blue,
    Green,
    Orange,
    Purple,
    Black,
}

impl Colour {
    pub const ALL: [Colour; 6] = [
        Colour::Red,
        Colour::Blue,
        Colour::Green,
        Colour::Orange,
        Colour::Purple,
        Colour::Black,
    ];

    /// Lowercase English name ("red", ...).
    pub fn name(&self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Blue => "blue",
            Colour::Green => "green",
            Colour::Orange => "orange",
            Colour::Purple => "purple",
            Colour::Black => "black",
        }
    }

    /// The exact RGB value drawn for this colour.
    pub fn rgb(&self) -> Rgb<u8> {
        Rgb(match self {
            Colour::Red => [214, 39, 40],
            Colour::Blue => [31, 119, 180],
            Colour::Green => [44, 160, 44],
            Colour::Orange => [255, 127, 14],
            Colour::Purple => [148, 103, 189],
            Colour::Black => [0, 0, 0],
        })
    }
}

/// A shape kind for [`Scene::Shapes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    Circle,
    Square,
    Triangle,
}

impl Shape {
    pub const ALL: [Shape; 3] = [Shape::Circle, Shape::Square, Shape::Triangle];

    /// Lowercase English name ("circle", "square", "triangle").
    pub fn name(&self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
        }
    }
}

/// The figure of a [`Scene::Geometry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeoKind {
    /// General triangle; `sides` = `[base, right side, left side]`.
    Triangle,
    /// Rectangle; `sides` = `[width, height]` (written under the bottom and beside the right side).
    Rectangle,
    /// Right triangle; `sides` = `[horizontal leg, vertical leg, hypotenuse]`.
    RightTriangle,
}

impl GeoKind {
    pub const ALL: [GeoKind; 3] = [
        GeoKind::Triangle,
        GeoKind::Rectangle,
        GeoKind::RightTriangle,
    ];

    /// Lowercase English name ("triangle", "rectangle", "right triangle").
    pub fn name(&self) -> &'static str {
        match self {
            GeoKind::Triangle => "triangle",
            GeoKind::Rectangle => "rectangle",
            GeoKind::RightTriangle => "right triangle",
        }
    }
}

/// The ground truth of one synthetic image.
#[derive(Debug, Clone, PartialEq)]
pub enum Scene {
    /// Vertical bars with the value written above each bar, its label under it and the title
    /// at the top. Bar heights are proportional to the values (the largest fills the plot).
    BarChart {
        title: String,
        labels: Vec<String>,
        values: Vec<i64>,
    },
    /// Coloured shapes scattered without overlap; each tuple is (shape, colour, how many).
    Shapes { items: Vec<(Shape, Colour, u32)> },
    /// A grid with a shaded header row and numeric cells (`rows[r][c]`).
    Table {
        headers: Vec<String>,
        rows: Vec<Vec<i64>>,
    },
    /// An analog clock face showing `hour:minute` (hour 1-12, minute 0-59).
    Clock { hour: u32, minute: u32 },
    /// A figure outline with each side's length written next to it (see [`GeoKind`]).
    Geometry { kind: GeoKind, sides: Vec<u32> },
    /// Numbers in filled coloured boxes (white text), side by side in equal cells across the
    /// image: at 28 x 28 pixels a cell is exactly one merged vision token.
    ArithBoxes { numbers: Vec<(Colour, i64)> },
}

/// The variant of a [`Scene`], for choosing what [`random_scene`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SceneKind {
    BarChart,
    Shapes,
    Table,
    Clock,
    Geometry,
    ArithBoxes,
}

impl SceneKind {
    pub const ALL: [SceneKind; 6] = [
        SceneKind::BarChart,
        SceneKind::Shapes,
        SceneKind::Table,
        SceneKind::Clock,
        SceneKind::Geometry,
        SceneKind::ArithBoxes,
    ];

    /// snake_case name ("bar_chart", ...).
    pub fn name(&self) -> &'static str {
        match self {
            SceneKind::BarChart => "bar_chart",
            SceneKind::Shapes => "shapes",
            SceneKind::Table => "table",
            SceneKind::Clock => "clock",
            SceneKind::Geometry => "geometry",
            SceneKind::ArithBoxes => "arith_boxes",
        }
    }
}

impl Scene {
    /// Which variant this is.
    pub fn kind(&self) -> SceneKind {
        match self {
            Scene::BarChart { .. } => SceneKind::BarChart,
            Scene::Shapes { .. } => SceneKind::Shapes,
            Scene::Table { .. } => SceneKind::Table,
            Scene::Clock { .. } => SceneKind::Clock,
            Scene::Geometry { .. } => SceneKind::Geometry,
            Scene::ArithBoxes { .. } => SceneKind::ArithBoxes,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random scenes
// ---------------------------------------------------------------------------------------------

/// Bar chart topics: (title, labels form a sequence, label pool).
const BAR_TOPICS: &[(&str, bool, &[&str])] = &[
    (
        "Fruit sold",
        false,
        &[
            "Apple", "Banana", "Cherry", "Grape", "Lemon", "Mango", "Peach", "Pear", "Plum",
        ],
    ),
    (
        "Visitors per day",
        true,
        &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    ),
    (
        "Monthly sales",
        true,
        &[
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ],
    ),
    (
        "Rainfall (mm)",
        true,
        &[
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ],
    ),
    (
        "Votes per team",
        false,
        &["A", "B", "C", "D", "E", "F", "G"],
    ),
    (
        "Books read",
        false,
        &["Ana", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana"],
    ),
    (
        "Pets owned",
        false,
        &["Cats", "Dogs", "Fish", "Birds", "Mice", "Frogs", "Hamsters"],
    ),
    (
        "Cars sold per year",
        true,
        &["2018", "2019", "2020", "2021", "2022", "2023", "2024"],
    ),
    (
        "Test scores",
        false,
        &[
            "Math", "Art", "Music", "Science", "History", "Reading", "Sport",
        ],
    ),
];

/// Table header sets (each has at least four entries).
const TABLE_HEADERS: &[&[&str]] = &[
    &["Q1", "Q2", "Q3", "Q4"],
    &["2021", "2022", "2023", "2024"],
    &["Mon", "Tue", "Wed", "Thu"],
    &["A", "B", "C", "D"],
    &["North", "South", "East", "West"],
    &["Red", "Blue", "Green", "Gold"],
    &["Shop 1", "Shop 2", "Shop 3", "Shop 4"],
];

/// Pythagorean triples (legs, hypotenuse) used for right triangles, before scaling.
const TRIPLES: &[(u32, u32, u32)] = &[
    (3, 4, 5),
    (5, 12, 13),
    (8, 15, 17),
    (7, 24, 25),
    (20, 21, 29),
    (9, 12, 15),
];

/// Fisher-Yates shuffle.
fn shuffle<T>(rng: &mut Rng, xs: &mut [T]) {
    for i in (1..xs.len()).rev() {
        let j = rng.below(i + 1);
        xs.swap(i, j);
    }
}

/// `n` distinct indices below `len`, in increasing order.
fn sample_sorted(rng: &mut Rng, len: usize, n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..len).collect();
    shuffle(rng, &mut idx);
    idx.truncate(n);
    idx.sort_unstable();
    idx
}

/// A random scene of the given kind, within the ranges documented on [`Scene`]:
/// bar charts have 3-7 bars valued 1-99; shapes have 2-4 distinct (shape, colour) groups of
/// 1-5 each (at most 20 in all); tables have 2-4 columns and 2-5 rows of values 0-999; clocks
/// show a whole five minutes; geometry sides are 2-40 long and right triangles use
/// Pythagorean triples; arithmetic scenes have 4 boxes coloured red, blue, green, orange from
/// left to right ([`ARITH_COLOURS`]), each holding a digit 1-[`ARITH_MAX_DIGIT`].
pub fn random_scene(rng: &mut Rng, kind: SceneKind) -> Scene {
    match kind {
        SceneKind::BarChart => {
            let &(title, sequential, pool) = rng.pick(BAR_TOPICS);
            let n = (rng.range(3, 7) as usize).min(pool.len());
            let picked: Vec<usize> = if sequential {
                let start = rng.below(pool.len() - n + 1);
                (start..start + n).collect()
            } else {
                sample_sorted(rng, pool.len(), n)
            };
            let labels = picked.iter().map(|&i| pool[i].to_string()).collect();
            let values = (0..n).map(|_| rng.range(1, 99)).collect();
            Scene::BarChart {
                title: title.to_string(),
                labels,
                values,
            }
        }
        SceneKind::Shapes => {
            let mut pairs: Vec<(Shape, Colour)> = Shape::ALL
                .iter()
                .flat_map(|&s| Colour::ALL.iter().map(move |&c| (s, c)))
                .collect();
            shuffle(rng, &mut pairs);
            let groups = rng.range(2, 4) as usize;
            let items = pairs[..groups]
                .iter()
                .map(|&(s, c)| (s, c, rng.range(1, 5) as u32))
                .collect();
            Scene::Shapes { items }
        }
        SceneKind::Table => {
            let headers = *rng.pick(TABLE_HEADERS);
            let ncols = (rng.range(2, 4) as usize).min(headers.len());
            let nrows = rng.range(2, 5) as usize;
            let rows = (0..nrows)
                .map(|_| (0..ncols).map(|_| rng.range(0, 999)).collect())
                .collect();
            Scene::Table {
                headers: headers[..ncols].iter().map(|h| h.to_string()).collect(),
                rows,
            }
        }
        SceneKind::Clock => Scene::Clock {
            hour: rng.range(1, 12) as u32,
            minute: 5 * rng.range(0, 11) as u32,
        },
        SceneKind::Geometry => {
            let kind = *rng.pick(&GeoKind::ALL);
            let sides = match kind {
                GeoKind::Triangle => random_triangle(rng).to_vec(),
                GeoKind::Rectangle => {
                    let w = rng.range(3, 30);
                    let h = rng.range(((w + 2) / 3).max(2), (3 * w).min(30));
                    vec![w as u32, h as u32]
                }
                GeoKind::RightTriangle => {
                    let &(a, b, c) = rng.pick(TRIPLES);
                    let k = rng.range(1, i64::from(40 / c).max(1)) as u32;
                    let (a, b) = if rng.chance(0.5) { (a, b) } else { (b, a) };
                    vec![a * k, b * k, c * k]
                }
            };
            Scene::Geometry { kind, sides }
        }
        SceneKind::ArithBoxes => Scene::ArithBoxes {
            numbers: ARITH_COLOURS.iter().map(|&c| (c, rng.range(1, ARITH_MAX_DIGIT))).collect(),
        },
    }
}

/// Side lengths 2-20 of a clearly non-degenerate triangle (area at least a tenth of the
/// longest side squared), base first.
fn random_triangle(rng: &mut Rng) -> [u32; 3] {
    for _ in 0..64 {
        let s = [
            rng.range(2, 20) as f64,
            rng.range(2, 20) as f64,
            rng.range(2, 20) as f64,
        ];
        if let Some(area) = heron(s[0], s[1], s[2]) {
            let longest = s[0].max(s[1]).max(s[2]);
            if area >= 0.1 * longest * longest {
                return [s[0] as u32, s[1] as u32, s[2] as u32];
            }
        }
    }
    [7, 8, 9]
}

/// Area of the triangle with sides `a`, `b`, `c`, if they form a non-degenerate one.
fn heron(a: f64, b: f64, c: f64) -> Option<f64> {
    if a <= 0.0 || b <= 0.0 || c <= 0.0 || a + b <= c || a + c <= b || b + c <= a {
        return None;
    }
    let s = (a + b + c) / 2.0;
    Some((s * (s - a) * (s - b) * (s - c)).sqrt())
}

// ---------------------------------------------------------------------------------------------
// Drawing primitives
// ---------------------------------------------------------------------------------------------

/// Dark grey used for text, axes, outlines and grid lines.
const INK: [u8; 3] = [30, 30, 30];
const WHITE: [u8; 3] = [255, 255, 255];
const HEADER_FILL: [u8; 3] = [222, 226, 232];
const FIGURE_FILL: [u8; 3] = [222, 236, 250];

/// A clipping drawing surface over an image's raw RGB buffer. Coordinates are continuous:
/// pixel (x, y) covers [x, x+1) x [y, y+1) and is painted when its centre is inside a shape.
struct Canvas<'a> {
    img: &'a mut RgbImage,
    w: i32,
    h: i32,
}

impl<'a> Canvas<'a> {
    fn new(img: &'a mut RgbImage) -> Self {
        let w = img.width().min(i32::MAX as u32) as i32;
        let h = img.height().min(i32::MAX as u32) as i32;
        Canvas { img, w, h }
    }

    /// Paints pixels `x0..=x1` of row `y` (clipped).
    fn span(&mut self, y: i32, x0: i32, x1: i32, c: [u8; 3]) {
        if y < 0 || y >= self.h {
            return;
        }
        let (a, b) = (x0.max(0), x1.min(self.w - 1));
        if a > b {
            return;
        }
        let row = y as usize * self.w as usize;
        let buf: &mut [u8] = &mut **self.img;
        if let Some(px) = buf.get_mut((row + a as usize) * 3..(row + b as usize + 1) * 3) {
            font::fill_rgb(px, c);
        }
    }

    /// Fills the axis-aligned rectangle [x, x+w) x [y, y+h), edges rounded to whole pixels.
    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, c: [u8; 3]) {
        let (x0, x1) = (x.round() as i32, (x + w).round() as i32);
        let (y0, y1) = (y.round() as i32, (y + h).round() as i32);
        for yy in y0.max(0)..y1.min(self.h) {
            self.span(yy, x0, x1.saturating_sub(1), c);
        }
    }

    /// Fills the disc of radius `r` centred at (`cx`, `cy`).
    fn disc(&mut self, cx: f64, cy: f64, r: f64, c: [u8; 3]) {
        self.ring(cx, cy, r, 0.0, c);
    }

    /// Fills the annulus between radii `r_in` and `r_out` centred at (`cx`, `cy`).
    fn ring(&mut self, cx: f64, cy: f64, r_out: f64, r_in: f64, c: [u8; 3]) {
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
            let (xo0, xo1) = (
                (cx - ho - 0.5).ceil() as i32,
                (cx + ho - 0.5).floor() as i32,
            );
            let d_in = r_in * r_in - dy * dy;
            if r_in > 0.0 && d_in > 0.0 {
                let hi = d_in.sqrt();
                let (xi0, xi1) = (
                    (cx - hi - 0.5).ceil() as i32,
                    (cx + hi - 0.5).floor() as i32,
                );
                self.span(y, xo0, xi0.saturating_sub(1), c);
                self.span(y, xi1.saturating_add(1), xo1, c);
            } else {
                self.span(y, xo0, xo1, c);
            }
        }
    }

    /// Fills a convex polygon (any winding) by scanlines.
    fn convex(&mut self, pts: &[(f64, f64)], c: [u8; 3]) {
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
    fn line(&mut self, x0: f64, y0: f64, x1: f64, y1: f64, t: f64, c: [u8; 3]) {
        let t = t.max(1.0);
        let (dx, dy) = (x1 - x0, y1 - y0);
        let len = dx.hypot(dy);
        if !(len > 1e-9) {
            self.disc(x0, y0, t / 2.0 + 0.5, c);
            return;
        }
        let (nx, ny) = (-dy / len * t / 2.0, dx / len * t / 2.0);
        self.convex(
            &[
                (x0 + nx, y0 + ny),
                (x1 + nx, y1 + ny),
                (x1 - nx, y1 - ny),
                (x0 - nx, y0 - ny),
            ],
            c,
        );
        if t > 2.0 {
            self.disc(x0, y0, t / 2.0, c);
            self.disc(x1, y1, t / 2.0, c);
        }
    }

    /// Draws `text` with its top-left corner at (`x`, `y`).
    fn text(&mut self, x: f64, y: f64, text: &str, scale: u32, c: [u8; 3]) {
        font::draw_text(
            self.img,
            x.round() as i32,
            y.round() as i32,
            text,
            scale,
            Rgb(c),
        );
    }

    /// Draws `text` centred horizontally on `cx` with its top at `y`.
    fn text_top(&mut self, cx: f64, y: f64, text: &str, scale: u32, c: [u8; 3]) {
        let tw = f64::from(font::text_width(text, scale));
        self.text((cx - tw / 2.0).floor(), y, text, scale, c);
    }

    /// Draws `text` centred on (`cx`, `cy`).
    fn text_centred(&mut self, cx: f64, cy: f64, text: &str, scale: u32, c: [u8; 3]) {
        let th = f64::from(font::text_height(scale));
        self.text_top(cx, (cy - th / 2.0).floor(), text, scale, c);
    }
}

/// Size-dependent layout constants.
struct Frame {
    w: f64,
    h: f64,
    /// Preferred font scale.
    scale: u32,
    /// Line width in pixels.
    lw: f64,
    margin: f64,
}

impl Frame {
    fn new(width: u32, height: u32) -> Self {
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
fn th(scale: u32) -> f64 {
    f64::from(font::text_height(scale))
}

/// Width at scale 1 of the widest of `texts`.
fn widest<'s>(texts: impl IntoIterator<Item = &'s str>) -> u32 {
    texts
        .into_iter()
        .map(|t| font::text_width(t, 1))
        .max()
        .unwrap_or(0)
}

/// The largest scale up to `pref` at which text `width1` pixels wide at scale 1 fits in
/// `max_w` x `max_h`; never below 1 (text may then overflow and is clipped).
fn fit_scale(width1: u32, max_w: f64, max_h: f64, pref: u32) -> u32 {
    let by_w = if width1 == 0 {
        u32::MAX
    } else {
        (max_w / f64::from(width1)).floor().max(0.0) as u32
    };
    let by_h = (max_h / f64::from(font::GLYPH_H)).floor().max(0.0) as u32;
    pref.min(by_w).min(by_h).max(1)
}

/// A light background: white 30% of the time, otherwise a faint random tint.
fn background(rng: &mut Rng) -> [u8; 3] {
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
fn filled(width: u32, height: u32, bg: [u8; 3]) -> RgbImage {
    let n = width as usize * height as usize;
    RgbImage::from_raw(width, height, bg.repeat(n))
        .unwrap_or_else(|| RgbImage::from_pixel(width, height, Rgb(bg)))
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// Renders `scene` at `width` x `height` on a light background. `rng` only jitters the
/// layout and background; the same scene and `rng` state always give the same pixels. Any
/// size is accepted (text is scaled to the image; below about 64x64 it is cramped).
pub fn render(scene: &Scene, width: u32, height: u32, rng: &mut Rng) -> RgbImage {
    let bg = background(rng);
    let mut img = filled(width, height, bg);
    let f = Frame::new(width, height);
    let mut cv = Canvas::new(&mut img);
    match scene {
        Scene::BarChart {
            title,
            labels,
            values,
        } => draw_bar_chart(&mut cv, &f, rng, title, labels, values),
        Scene::Shapes { items } => draw_shapes(&mut cv, &f, rng, items),
        Scene::Table { headers, rows } => draw_table(&mut cv, &f, headers, rows),
        Scene::Clock { hour, minute } => draw_clock(&mut cv, &f, *hour, *minute),
        Scene::Geometry { kind, sides } => draw_geometry(&mut cv, &f, rng, *kind, sides),
        Scene::ArithBoxes { numbers } => draw_arith_boxes(&mut cv, numbers),
    }
    img
}

/// Colours used for bars (black is kept for text and axes).
const BAR_COLOURS: [Colour; 5] = [
    Colour::Red,
    Colour::Blue,
    Colour::Green,
    Colour::Orange,
    Colour::Purple,
];

fn draw_bar_chart(
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
        let ts = fit_scale(
            font::text_width(title, 1),
            f.w - 2.0 * m,
            f.h * 0.12,
            f.scale,
        );
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
    let ls = fit_scale(
        widest(labels.iter().map(String::as_str)),
        slot * 0.92,
        f.h * 0.1,
        f.scale,
    );
    let vs = fit_scale(
        widest(value_text.iter().map(String::as_str)),
        slot * 0.92,
        f.h * 0.1,
        f.scale,
    );

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
const MAX_SHAPES: usize = 400;

fn draw_shapes(cv: &mut Canvas, f: &Frame, rng: &mut Rng, items: &[(Shape, Colour, u32)]) {
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

fn draw_table(cv: &mut Canvas, f: &Frame, headers: &[String], rows: &[Vec<i64>]) {
    let ncols = rows
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(0)
        .max(headers.len());
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

    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect())
        .collect();
    let w1 = widest(
        headers
            .iter()
            .chain(cells.iter().flatten())
            .map(String::as_str),
    );
    let ts = fit_scale(w1, cw * 0.85, ch * 0.7, f.scale);

    cv.rect(x0, y0, tw, ch, HEADER_FILL);
    for (c, h) in headers.iter().enumerate() {
        cv.text_centred(x0 + cw * (c as f64 + 0.5), y0 + ch * 0.5, h, ts, INK);
    }
    for (r, row) in cells.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            cv.text_centred(
                x0 + cw * (c as f64 + 0.5),
                y0 + ch * (r as f64 + 1.5),
                v,
                ts,
                INK,
            );
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

fn draw_clock(cv: &mut Canvas, f: &Frame, hour: u32, minute: u32) {
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
        cv.line(
            cx + sx * outer,
            cy + sy * outer,
            cx + sx * inner,
            cy + sy * inner,
            t,
            INK,
        );
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
    cv.line(
        cx,
        cy,
        cx + mx * r * 0.78,
        cy + my * r * 0.78,
        (r * 0.03).max(1.0),
        INK,
    );
    cv.disc(cx, cy, hour_t * 0.9, INK);
}

fn draw_geometry(cv: &mut Canvas, f: &Frame, rng: &mut Rng, kind: GeoKind, sides: &[u32]) {
    let label = |i: usize| {
        sides
            .get(i)
            .map_or_else(|| "?".to_string(), |v| v.to_string())
    };
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
            (
                vec![(0.0, 0.0), (a, 0.0), (x, y)],
                vec![(0, 1, label(0)), (1, 2, label(1)), (2, 0, label(2))],
            )
        }
        GeoKind::Rectangle => {
            let w = if side(0) > 0.0 { side(0) } else { 1.0 };
            let h = if side(1) > 0.0 { side(1) } else { 1.0 };
            (
                vec![(0.0, 0.0), (w, 0.0), (w, -h), (0.0, -h)],
                vec![(0, 1, label(0)), (1, 2, label(1))],
            )
        }
        GeoKind::RightTriangle => {
            let a = if side(0) > 0.0 { side(0) } else { 1.0 };
            let b = if side(1) > 0.0 { side(1) } else { 1.0 };
            let s = if rng.chance(0.5) { 1.0 } else { -1.0 }; // right angle bottom-left or bottom-right
            right_angle = Some(0);
            (
                vec![(0.0, 0.0), (s * a, 0.0), (0.0, -b)],
                vec![(0, 1, label(0)), (2, 0, label(1)), (1, 2, label(2))],
            )
        }
    };

    let m = f.margin;
    let ls = f.scale;
    let lab_w = f64::from(widest(edges.iter().map(|e| e.2.as_str()))) * f64::from(ls);
    let lab_h = th(ls);
    let pad = (lab_h * 0.5).max(2.0) + f.lw;
    let aw = (f.w - 2.0 * (m + lab_w + pad)).max(f.w * 0.3);
    let ah = (f.h - 2.0 * (m + lab_h + pad)).max(f.h * 0.3);
    let (minx, maxx) = verts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
    let (miny, maxy) = verts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let k = (aw / (maxx - minx).max(1e-9)).min(ah / (maxy - miny).max(1e-9));
    let (mx, my) = ((minx + maxx) / 2.0, (miny + maxy) / 2.0);
    let pts: Vec<(f64, f64)> = verts
        .iter()
        .map(|&(x, y)| (f.w / 2.0 + (x - mx) * k, f.h / 2.0 + (y - my) * k))
        .collect();

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
    let centroid = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
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

/// The arithmetic task's box colours, left to right.
pub const ARITH_COLOURS: [Colour; 4] = [Colour::Red, Colour::Blue, Colour::Green, Colour::Orange];

/// The largest digit in an arithmetic box: 1-5 keeps the task's tables (25 sums, 45 products)
/// small enough for a tiny model to learn on a CPU in minutes, and leaves 125 questions to
/// split between train and test.
pub const ARITH_MAX_DIGIT: i64 = 5;

/// Boxes in equal cells across the whole image, each inset by a tenth of the cell, with its
/// number in white at the largest scale that fits.
fn draw_arith_boxes(cv: &mut Canvas, numbers: &[(Colour, i64)]) {
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

/// PNG bytes of `img` (fast compression, `Sub` filter: a third of the time of adaptive
/// filtering on these flat synthetic images, for files about twice as large). Returns an empty vector if the
/// image cannot be encoded (a zero width or height).
pub fn encode_png(img: &RgbImage) -> Vec<u8> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut out = Vec::new();
    let encoder =
        PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Sub);
    match encoder.write_image(
        img.as_raw(),
        img.width(),
        img.height(),
        image::ExtendedColorType::Rgb8,
    ) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

/// JPEG bytes of `img` at `quality` (clamped to 1-100). Returns an empty vector if the image
/// cannot be encoded (a zero side, or a side over 65535 pixels).
pub fn encode_jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    use image::codecs::jpeg::JpegEncoder;
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100));
    match encoder.encode_image(img) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZES: [(u32, u32); 3] = [(64, 64), (300, 200), (1280, 960)];

    fn scene_and_image(seed: u64, kind: SceneKind, w: u32, h: u32) -> (Scene, RgbImage) {
        let mut rng = Rng::new(seed);
        let scene = random_scene(&mut rng, kind);
        let img = render(&scene, w, h, &mut rng);
        (scene, img)
    }

    fn is_flat(img: &RgbImage) -> bool {
        match img.pixels().next() {
            Some(first) => img.pixels().all(|p| p == first),
            None => true,
        }
    }

    #[test]
    fn every_kind_renders_at_every_size() {
        for kind in SceneKind::ALL {
            for seed in 0..4 {
                for (w, h) in SIZES {
                    let (scene, img) = scene_and_image(seed, kind, w, h);
                    assert_eq!(scene.kind(), kind);
                    assert_eq!(img.dimensions(), (w, h), "{kind:?} at {w}x{h}");
                    assert!(
                        !is_flat(&img),
                        "{kind:?} at {w}x{h} (seed {seed}) is a single flat colour"
                    );
                }
            }
        }
    }

    #[test]
    fn odd_sizes_and_odd_scenes_do_not_panic() {
        let scenes = vec![
            Scene::BarChart {
                title: String::new(),
                labels: vec![],
                values: vec![],
            },
            Scene::BarChart {
                title: "T".into(),
                labels: vec!["only one".into()],
                values: vec![-5, 0, 1_000_000, i64::MIN],
            },
            Scene::Shapes { items: vec![] },
            Scene::Shapes {
                items: vec![
                    (Shape::Circle, Colour::Red, u32::MAX),
                    (Shape::Triangle, Colour::Black, 0),
                ],
            },
            Scene::Table {
                headers: vec![],
                rows: vec![],
            },
            Scene::Table {
                headers: vec!["A".into()],
                rows: vec![vec![1, 2, 3], vec![], vec![i64::MAX]],
            },
            Scene::Clock {
                hour: 99,
                minute: 12345,
            },
            Scene::Geometry {
                kind: GeoKind::Triangle,
                sides: vec![1, 1, 10],
            },
            Scene::Geometry {
                kind: GeoKind::Triangle,
                sides: vec![],
            },
            Scene::Geometry {
                kind: GeoKind::Rectangle,
                sides: vec![0, 1000],
            },
            Scene::Geometry {
                kind: GeoKind::RightTriangle,
                sides: vec![3],
            },
            Scene::ArithBoxes { numbers: vec![] },
            Scene::ArithBoxes {
                numbers: vec![(Colour::Red, i64::MIN); 9],
            },
        ];
        let sizes = [
            (0, 0),
            (1, 1),
            (0, 50),
            (50, 0),
            (7, 3),
            (64, 64),
            (2000, 12),
            (12, 900),
        ];
        for scene in &scenes {
            for (w, h) in sizes {
                let img = render(scene, w, h, &mut Rng::new(7));
                assert_eq!(img.dimensions(), (w, h));
            }
        }
        for kind in SceneKind::ALL {
            for (w, h) in sizes {
                let (_, img) = scene_and_image(3, kind, w, h);
                assert_eq!(img.dimensions(), (w, h));
            }
        }
    }

    #[test]
    fn same_seed_same_pixels_different_seed_different_pixels() {
        for kind in SceneKind::ALL {
            let (sa, a) = scene_and_image(11, kind, 300, 200);
            let (sb, b) = scene_and_image(11, kind, 300, 200);
            assert_eq!(sa, sb);
            assert_eq!(a, b, "{kind:?} is not deterministic");
            let (_, c) = scene_and_image(12, kind, 300, 200);
            assert_ne!(a, c, "{kind:?}: seeds 11 and 12 gave identical images");
        }
    }

    #[test]
    fn random_scenes_respect_their_ranges() {
        let mut rng = Rng::new(5);
        for _ in 0..300 {
            for kind in SceneKind::ALL {
                match random_scene(&mut rng, kind) {
                    Scene::BarChart {
                        title,
                        labels,
                        values,
                    } => {
                        assert!(!title.is_empty());
                        assert!((3..=7).contains(&values.len()));
                        assert_eq!(labels.len(), values.len());
                        assert!(values.iter().all(|v| (1..=99).contains(v)));
                    }
                    Scene::Shapes { items } => {
                        assert!((2..=4).contains(&items.len()));
                        assert!(items.iter().map(|i| i.2).sum::<u32>() <= 20);
                        assert!(items.iter().all(|i| i.2 >= 1));
                        for (i, a) in items.iter().enumerate() {
                            assert!(
                                items[i + 1..].iter().all(|b| (a.0, a.1) != (b.0, b.1)),
                                "duplicate group"
                            );
                        }
                    }
                    Scene::Table { headers, rows } => {
                        assert!((2..=4).contains(&headers.len()));
                        assert!((2..=5).contains(&rows.len()));
                        assert!(rows.iter().all(|r| r.len() == headers.len()));
                        assert!(rows.iter().flatten().all(|v| (0..=999).contains(v)));
                    }
                    Scene::Clock { hour, minute } => {
                        assert!((1..=12).contains(&hour));
                        assert!(minute < 60 && minute % 5 == 0);
                    }
                    Scene::Geometry { kind, sides } => match kind {
                        GeoKind::Triangle => {
                            assert_eq!(sides.len(), 3);
                            let s: Vec<f64> = sides.iter().map(|&v| f64::from(v)).collect();
                            assert!(heron(s[0], s[1], s[2]).is_some());
                        }
                        GeoKind::Rectangle => assert_eq!(sides.len(), 2),
                        GeoKind::RightTriangle => {
                            assert_eq!(sides.len(), 3);
                            let (a, b, c) = (sides[0], sides[1], sides[2]);
                            assert_eq!(a * a + b * b, c * c);
                            assert!(c <= 40);
                        }
                    },
                    Scene::ArithBoxes { numbers } => {
                        let colours: Vec<Colour> = numbers.iter().map(|n| n.0).collect();
                        assert_eq!(colours, ARITH_COLOURS);
                        assert!(numbers.iter().all(|(_, v)| (1..=ARITH_MAX_DIGIT).contains(v)));
                    }
                }
            }
        }
    }

    /// Heights (in pixels) of the bar-coloured columns, one per bar, left to right.
    fn bar_heights(img: &RgbImage) -> Vec<u32> {
        let bar_colours: Vec<Rgb<u8>> = BAR_COLOURS.iter().map(Colour::rgb).collect();
        let mut heights = Vec::new();
        let mut current = 0u32;
        for x in 0..img.width() {
            let n = (0..img.height())
                .filter(|&y| bar_colours.contains(img.get_pixel(x, y)))
                .count() as u32;
            if n > 0 {
                current = current.max(n);
            } else if current > 0 {
                heights.push(current);
                current = 0;
            }
        }
        if current > 0 {
            heights.push(current);
        }
        heights
    }

    #[test]
    fn bar_heights_are_proportional_to_values() {
        let scene = Scene::BarChart {
            title: "Test chart".into(),
            labels: vec!["Low".into(), "Mid".into(), "High".into()],
            values: vec![20, 50, 80],
        };
        for (w, h) in [(300, 200), (640, 480), (1280, 960)] {
            for seed in 0..3 {
                let img = render(&scene, w, h, &mut Rng::new(seed));
                let hs = bar_heights(&img);
                assert_eq!(hs.len(), 3, "{w}x{h}: expected 3 bars, found {hs:?}");
                let ratio = f64::from(hs[2]) / f64::from(hs[0]);
                assert!(
                    (3.6..=4.4).contains(&ratio),
                    "{w}x{h}: 80/20 bars measure {hs:?}"
                );
                let ratio = f64::from(hs[1]) / f64::from(hs[0]);
                assert!(
                    (2.25..=2.75).contains(&ratio),
                    "{w}x{h}: 50/20 bars measure {hs:?}"
                );
            }
        }
    }

    #[test]
    fn shapes_are_drawn_in_their_colours() {
        let scene = Scene::Shapes {
            items: vec![
                (Shape::Circle, Colour::Red, 3),
                (Shape::Square, Colour::Blue, 2),
                (Shape::Triangle, Colour::Green, 4),
            ],
        };
        let img = render(&scene, 400, 300, &mut Rng::new(1));
        for colour in [Colour::Red, Colour::Blue, Colour::Green] {
            assert!(
                img.pixels().any(|p| *p == colour.rgb()),
                "no {} pixels",
                colour.name()
            );
        }
        for colour in [Colour::Orange, Colour::Purple, Colour::Black] {
            assert!(
                !img.pixels().any(|p| *p == colour.rgb()),
                "unexpected {} pixels",
                colour.name()
            );
        }
    }

    #[test]
    fn clock_hands_point_the_right_way() {
        // At 3:00 the minute hand points straight up and the hour hand straight right, so
        // ink is found above and right of the centre, but not below or left inside the numbers.
        let img = render(
            &Scene::Clock { hour: 3, minute: 0 },
            401,
            401,
            &mut Rng::new(0),
        );
        let ink = |x: u32, y: u32| img.get_pixel(x, y).0 == INK;
        let (c, r) = (200u32, 200.0 - Frame::new(401, 401).margin);
        let along = |dx: f64, dy: f64, frac: f64| {
            ink(
                (200.5 + dx * r * frac) as u32,
                (200.5 + dy * r * frac) as u32,
            )
        };
        assert!(ink(c, c));
        assert!(
            along(0.0, -1.0, 0.3) && along(0.0, -1.0, 0.6),
            "minute hand not at 12"
        );
        assert!(along(1.0, 0.0, 0.3), "hour hand not at 3");
        assert!(
            !along(-1.0, 0.0, 0.3) && !along(0.0, 1.0, 0.3),
            "ink where no hand should be"
        );
    }

    #[test]
    fn png_round_trips_and_jpeg_decodes() {
        for kind in SceneKind::ALL {
            let (_, img) = scene_and_image(2, kind, 300, 200);
            let png = encode_png(&img);
            let decoded = image::load_from_memory(&png).map(|d| d.to_rgb8());
            assert_eq!(
                decoded.as_ref().ok(),
                Some(&img),
                "{kind:?} PNG did not round-trip"
            );
            let jpeg = encode_jpeg(&img, 85);
            let decoded = image::load_from_memory(&jpeg).map(|d| d.to_rgb8());
            assert_eq!(decoded.map(|d| d.dimensions()).ok(), Some((300, 200)));
        }
        assert!(encode_png(&RgbImage::new(0, 0)).is_empty());
        assert!(encode_jpeg(&RgbImage::new(0, 5), 0).is_empty());
    }
}
