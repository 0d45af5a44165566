use image::{Rgb, RgbImage};

use crate::rng::Rng;

use super::canvas::*;
use super::draw::*;
use super::encode::*;
use super::scene::*;

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
                assert!(!is_flat(&img), "{kind:?} at {w}x{h} (seed {seed}) is a single flat colour");
            }
        }
    }
}

#[test]
fn odd_sizes_and_odd_scenes_do_not_panic() {
    let scenes = vec![
        Scene::BarChart { title: String::new(), labels: vec![], values: vec![] },
        Scene::BarChart {
            title: "T".into(),
            labels: vec!["only one".into()],
            values: vec![-5, 0, 1_000_000, i64::MIN],
        },
        Scene::Shapes { items: vec![] },
        Scene::Shapes { items: vec![(Shape::Circle, Colour::Red, u32::MAX), (Shape::Triangle, Colour::Black, 0)] },
        Scene::Table { headers: vec![], rows: vec![] },
        Scene::Table { headers: vec!["A".into()], rows: vec![vec![1, 2, 3], vec![], vec![i64::MAX]] },
        Scene::Clock { hour: 99, minute: 12345 },
        Scene::Geometry { kind: GeoKind::Triangle, sides: vec![1, 1, 10] },
        Scene::Geometry { kind: GeoKind::Triangle, sides: vec![] },
        Scene::Geometry { kind: GeoKind::Rectangle, sides: vec![0, 1000] },
        Scene::Geometry { kind: GeoKind::RightTriangle, sides: vec![3] },
        Scene::ArithBoxes { numbers: vec![] },
        Scene::ArithBoxes { numbers: vec![(Colour::Red, i64::MIN); 9] },
    ];
    let sizes = [(0, 0), (1, 1), (0, 50), (50, 0), (7, 3), (64, 64), (2000, 12), (12, 900)];
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
                Scene::BarChart { title, labels, values } => {
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
                        assert!(items[i + 1..].iter().all(|b| (a.0, a.1) != (b.0, b.1)), "duplicate group");
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
        let n = (0..img.height()).filter(|&y| bar_colours.contains(img.get_pixel(x, y))).count() as u32;
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
            assert!((3.6..=4.4).contains(&ratio), "{w}x{h}: 80/20 bars measure {hs:?}");
            let ratio = f64::from(hs[1]) / f64::from(hs[0]);
            assert!((2.25..=2.75).contains(&ratio), "{w}x{h}: 50/20 bars measure {hs:?}");
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
        assert!(img.pixels().any(|p| *p == colour.rgb()), "no {} pixels", colour.name());
    }
    for colour in [Colour::Orange, Colour::Purple, Colour::Black] {
        assert!(!img.pixels().any(|p| *p == colour.rgb()), "unexpected {} pixels", colour.name());
    }
}

#[test]
fn clock_hands_point_the_right_way() {
    // At 3:00 the minute hand points straight up and the hour hand straight right, so
    // ink is found above and right of the centre, but not below or left inside the numbers.
    let img = render(&Scene::Clock { hour: 3, minute: 0 }, 401, 401, &mut Rng::new(0));
    let ink = |x: u32, y: u32| img.get_pixel(x, y).0 == INK;
    let (c, r) = (200u32, 200.0 - Frame::new(401, 401).margin);
    let along = |dx: f64, dy: f64, frac: f64| ink((200.5 + dx * r * frac) as u32, (200.5 + dy * r * frac) as u32);
    assert!(ink(c, c));
    assert!(along(0.0, -1.0, 0.3) && along(0.0, -1.0, 0.6), "minute hand not at 12");
    assert!(along(1.0, 0.0, 0.3), "hour hand not at 3");
    assert!(!along(-1.0, 0.0, 0.3) && !along(0.0, 1.0, 0.3), "ink where no hand should be");
}

#[test]
fn png_round_trips_and_jpeg_decodes() {
    for kind in SceneKind::ALL {
        let (_, img) = scene_and_image(2, kind, 300, 200);
        let png = encode_png(&img);
        let decoded = image::load_from_memory(&png).map(|d| d.to_rgb8());
        assert_eq!(decoded.as_ref().ok(), Some(&img), "{kind:?} PNG did not round-trip");
        let jpeg = encode_jpeg(&img, 85);
        let decoded = image::load_from_memory(&jpeg).map(|d| d.to_rgb8());
        assert_eq!(decoded.map(|d| d.dimensions()).ok(), Some((300, 200)));
    }
    assert!(encode_png(&RgbImage::new(0, 0)).is_empty());
    assert!(encode_jpeg(&RgbImage::new(0, 5), 0).is_empty());
}
