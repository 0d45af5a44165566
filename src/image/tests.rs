use super::hash::*;
use super::radius::*;
use super::resample::*;

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
                let v = (x * 255 / w) as f64 * 0.5
                    + (y * 255 / h) as f64 * 0.3
                    + disc
                    + (xorshift(&mut s) % 16) as f64
                    + c as f64 * 7.0;
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
    let px16: Vec<u16> =
        picture(300, 200, 3, 4).iter().enumerate().map(|(i, &v)| v as u16 * 257 + (i % 200) as u16).collect();
    let img16 = DynamicImage::ImageRgb16(ImageBuffer::from_raw(300, 200, px16).unwrap());
    let mut png = std::io::Cursor::new(Vec::new());
    img16.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let (a, b) = (fingerprint(png.get_ref()).unwrap(), fingerprint_of(&img16));
    assert!(
        distance(a.hash, b.hash) <= 2 && thumb_distance(&a, &b) < 1e-3,
        "{} bits, {}",
        distance(a.hash, b.hash),
        thumb_distance(&a, &b)
    );
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
        let t: Vec<u8> = base
            .iter()
            .map(|&v| (v as i64 + (xorshift(&mut s) % (2 * amp + 1)) as i64 - amp as i64).clamp(0, 255) as u8)
            .collect();
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
    for &b in &base {
        let mut h = b;
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
            assert_eq!(
                idx.first_within_ns(h, 0, |p| p % 2 == 1).map(|(p, _)| *p),
                want.iter().find(|p| *p % 2 == 1).copied()
            );
            idx.insert(h, i);
        }
    }
}
