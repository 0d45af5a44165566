//! The scene model: what a picture shows, as the ground truth questions are asked about, and
//! random scenes of each kind drawn from an [`Rng`].

use image::Rgb;

use crate::rng::Rng;

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
    pub const ALL: [Colour; 6] =
        [Colour::Red, Colour::Blue, Colour::Green, Colour::Orange, Colour::Purple, Colour::Black];

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
    pub const ALL: [GeoKind; 3] = [GeoKind::Triangle, GeoKind::Rectangle, GeoKind::RightTriangle];

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
    BarChart { title: String, labels: Vec<String>, values: Vec<i64> },
    /// Coloured shapes scattered without overlap; each tuple is (shape, colour, how many).
    Shapes { items: Vec<(Shape, Colour, u32)> },
    /// A grid with a shaded header row and numeric cells (`rows[r][c]`).
    Table { headers: Vec<String>, rows: Vec<Vec<i64>> },
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
pub(super) const BAR_TOPICS: &[(&str, bool, &[&str])] = &[
    ("Fruit sold", false, &["Apple", "Banana", "Cherry", "Grape", "Lemon", "Mango", "Peach", "Pear", "Plum"]),
    ("Visitors per day", true, &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
    ("Monthly sales", true, &["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]),
    ("Rainfall (mm)", true, &["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]),
    ("Votes per team", false, &["A", "B", "C", "D", "E", "F", "G"]),
    ("Books read", false, &["Ana", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana"]),
    ("Pets owned", false, &["Cats", "Dogs", "Fish", "Birds", "Mice", "Frogs", "Hamsters"]),
    ("Cars sold per year", true, &["2018", "2019", "2020", "2021", "2022", "2023", "2024"]),
    ("Test scores", false, &["Math", "Art", "Music", "Science", "History", "Reading", "Sport"]),
];

/// Table header sets (each has at least four entries).
pub(super) const TABLE_HEADERS: &[&[&str]] = &[
    &["Q1", "Q2", "Q3", "Q4"],
    &["2021", "2022", "2023", "2024"],
    &["Mon", "Tue", "Wed", "Thu"],
    &["A", "B", "C", "D"],
    &["North", "South", "East", "West"],
    &["Red", "Blue", "Green", "Gold"],
    &["Shop 1", "Shop 2", "Shop 3", "Shop 4"],
];

/// Pythagorean triples (legs, hypotenuse) used for right triangles, before scaling.
pub(super) const TRIPLES: &[(u32, u32, u32)] =
    &[(3, 4, 5), (5, 12, 13), (8, 15, 17), (7, 24, 25), (20, 21, 29), (9, 12, 15)];

/// Fisher-Yates shuffle.
pub(super) fn shuffle<T>(rng: &mut Rng, xs: &mut [T]) {
    for i in (1..xs.len()).rev() {
        let j = rng.below(i + 1);
        xs.swap(i, j);
    }
}

/// `n` distinct indices below `len`, in increasing order.
pub(super) fn sample_sorted(rng: &mut Rng, len: usize, n: usize) -> Vec<usize> {
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
            Scene::BarChart { title: title.to_string(), labels, values }
        }
        SceneKind::Shapes => {
            let mut pairs: Vec<(Shape, Colour)> =
                Shape::ALL.iter().flat_map(|&s| Colour::ALL.iter().map(move |&c| (s, c))).collect();
            shuffle(rng, &mut pairs);
            let groups = rng.range(2, 4) as usize;
            let items = pairs[..groups].iter().map(|&(s, c)| (s, c, rng.range(1, 5) as u32)).collect();
            Scene::Shapes { items }
        }
        SceneKind::Table => {
            let headers = *rng.pick(TABLE_HEADERS);
            let ncols = (rng.range(2, 4) as usize).min(headers.len());
            let nrows = rng.range(2, 5) as usize;
            let rows = (0..nrows).map(|_| (0..ncols).map(|_| rng.range(0, 999)).collect()).collect();
            Scene::Table { headers: headers[..ncols].iter().map(|h| h.to_string()).collect(), rows }
        }
        SceneKind::Clock => Scene::Clock { hour: rng.range(1, 12) as u32, minute: 5 * rng.range(0, 11) as u32 },
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
        SceneKind::ArithBoxes => {
            Scene::ArithBoxes { numbers: ARITH_COLOURS.iter().map(|&c| (c, rng.range(1, ARITH_MAX_DIGIT))).collect() }
        }
    }
}

/// Side lengths 2-20 of a clearly non-degenerate triangle (area at least a tenth of the
/// longest side squared), base first.
pub(super) fn random_triangle(rng: &mut Rng) -> [u32; 3] {
    for _ in 0..64 {
        let s = [rng.range(2, 20) as f64, rng.range(2, 20) as f64, rng.range(2, 20) as f64];
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
pub(super) fn heron(a: f64, b: f64, c: f64) -> Option<f64> {
    if a <= 0.0 || b <= 0.0 || c <= 0.0 || a + b <= c || a + c <= b || b + c <= a {
        return None;
    }
    let s = (a + b + c) / 2.0;
    Some((s * (s - a) * (s - b) * (s - c)).sqrt())
}

// ---------------------------------------------------------------------------------------------
// Drawing primitives
// ---------------------------------------------------------------------------------------------

/// The arithmetic task's box colours, left to right.
pub const ARITH_COLOURS: [Colour; 4] = [Colour::Red, Colour::Blue, Colour::Green, Colour::Orange];

/// The largest digit in an arithmetic box: 1-5 keeps the task's tables (25 sums, 45 products)
/// small enough for a tiny model to learn on a CPU in minutes, and leaves 125 questions to
/// split between train and test.
pub const ARITH_MAX_DIGIT: i64 = 5;
