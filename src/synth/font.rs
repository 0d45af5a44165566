//! A tiny built-in 5x7 bitmap font (classic LCD-style glyphs) for labelling synthetic images.
//!
//! Each glyph is seven rows of five pixels, one `u8` per row with the low five bits used
//! (bit 4 is the leftmost column). Glyphs advance six pixels per character at scale 1, so a
//! string of `n` characters is `6 * n - 1` pixels wide. Lowercase ASCII letters are drawn as
//! their uppercase forms; any other unsupported character is drawn as `?`.

use image::{Rgb, RgbImage};

/// Glyph width in font pixels.
pub const GLYPH_W: u32 = 5;
/// Glyph height in font pixels.
pub const GLYPH_H: u32 = 7;
/// Horizontal advance per character in font pixels (glyph width plus one pixel of spacing).
pub const ADVANCE: u32 = 6;

/// Every character with a glyph of its own (lowercase ASCII letters map onto the uppercase ones).
pub const SUPPORTED: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ .,:%/-+=?()$°!'*<>_#";

const QUESTION: [u8; 7] = [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04];

/// The 5x7 bitmap of `c` (lowercase letters give the uppercase glyph), or `None` when the font
/// has no glyph for it.
pub fn glyph(c: char) -> Option<[u8; 7]> {
    Some(match c.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ' ' => [0x00; 7],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        ',' => [0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08],
        ':' => [0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '/' => [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '+' => [0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00],
        '=' => [0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00],
        '?' => QUESTION,
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '$' => [0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04],
        '°' => [0x0C, 0x12, 0x12, 0x0C, 0x00, 0x00, 0x00],
        '!' => [0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04],
        '\'' => [0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00],
        '*' => [0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00],
        '<' => [0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02],
        '>' => [0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08],
        '_' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        _ => return None,
    })
}

/// Width in pixels of `text` drawn at `scale`: `6 * scale` per character, less the trailing
/// spacing column (`0` for an empty string). Saturates at `u32::MAX`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    let n = text.chars().count() as u64;
    if n == 0 {
        return 0;
    }
    let s = u64::from(scale);
    (u64::from(ADVANCE) * s * n - s).min(u64::from(u32::MAX)) as u32
}

/// Height in pixels of a line of text drawn at `scale`.
pub fn text_height(scale: u32) -> u32 {
    GLYPH_H.saturating_mul(scale)
}

/// Draws `text` with its top-left corner at (`x`, `y`), each lit font pixel becoming a
/// `scale` x `scale` square of `color`. Anything outside the image is clipped silently, so any
/// position and scale are accepted (`scale == 0` draws nothing).
pub fn draw_text(img: &mut RgbImage, x: i32, y: i32, text: &str, scale: u32, color: Rgb<u8>) {
    if scale == 0 {
        return;
    }
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let s = i64::from(scale);
    let y0 = i64::from(y);
    if y0 >= h || y0 + i64::from(GLYPH_H) * s <= 0 {
        return;
    }
    let buf: &mut [u8] = img;
    let mut gx = i64::from(x);
    for c in text.chars() {
        if gx >= w {
            break;
        }
        if gx + i64::from(GLYPH_W) * s > 0 {
            let rows = glyph(c).unwrap_or(QUESTION);
            for (r, bits) in rows.iter().enumerate() {
                let py = y0 + r as i64 * s;
                // Fill each horizontal run of lit pixels as one rectangle.
                let mut col = 0i64;
                while col < i64::from(GLYPH_W) {
                    if bits >> (4 - col) & 1 == 0 {
                        col += 1;
                        continue;
                    }
                    let start = col;
                    while col < i64::from(GLYPH_W) && bits >> (4 - col) & 1 == 1 {
                        col += 1;
                    }
                    fill_clipped(buf, w, h, gx + start * s, py, (col - start) * s, s, color);
                }
            }
        }
        gx += i64::from(ADVANCE) * s;
    }
}

/// Fills the `rw` x `rh` rectangle at (`x`, `y`) of a `w` x `h` RGB buffer, clipped to it.
#[allow(clippy::too_many_arguments)]
fn fill_clipped(buf: &mut [u8], w: i64, h: i64, x: i64, y: i64, rw: i64, rh: i64, color: Rgb<u8>) {
    let (x0, x1) = (x.max(0), (x + rw).min(w));
    let (y0, y1) = (y.max(0), (y + rh).min(h));
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    for yy in y0..y1 {
        let row = (yy * w) as usize;
        let start = (row + x0 as usize) * 3;
        let end = (row + x1 as usize) * 3;
        if let Some(slice) = buf.get_mut(start..end) {
            fill_rgb(slice, color.0);
        }
    }
}

/// Paints every pixel of `dst` (a run of packed RGB pixels) with `c`: one pixel is written,
/// then copied forward in doubling blocks, so long runs cost a few `memmove`s.
pub(crate) fn fill_rgb(dst: &mut [u8], c: [u8; 3]) {
    let Some(first) = dst.get_mut(..3) else {
        return;
    };
    first.copy_from_slice(&c);
    let len = dst.len() - dst.len() % 3;
    let mut done = 3;
    while done < len {
        let n = done.min(len - done);
        dst.copy_within(0..n, done);
        done += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INK: Rgb<u8> = Rgb([10, 20, 30]);
    const BG: Rgb<u8> = Rgb([255, 255, 255]);

    fn blank(w: u32, h: u32) -> RgbImage {
        RgbImage::from_pixel(w, h, BG)
    }

    #[test]
    fn every_glyph_is_nonempty_and_distinct() {
        let chars: Vec<char> = SUPPORTED.chars().collect();
        for &c in &chars {
            let g = glyph(c).unwrap_or_else(|| panic!("no glyph for {c:?}"));
            assert!(g.iter().all(|row| row & !0x1F == 0), "{c:?} uses more than 5 columns");
            if c != ' ' {
                assert!(g.iter().any(|&row| row != 0), "{c:?} is empty");
            }
        }
        for (i, &a) in chars.iter().enumerate() {
            for &b in &chars[i + 1..] {
                assert_ne!(glyph(a), glyph(b), "{a:?} and {b:?} share a glyph");
            }
        }
    }

    #[test]
    fn lowercase_maps_to_uppercase_and_unknown_is_question_mark() {
        for c in 'a'..='z' {
            assert_eq!(glyph(c), glyph(c.to_ascii_uppercase()));
        }
        assert_eq!(glyph('~'), None);
        let mut a = blank(20, 10);
        let mut b = blank(20, 10);
        draw_text(&mut a, 1, 1, "~", 1, INK);
        draw_text(&mut b, 1, 1, "?", 1, INK);
        assert_eq!(a, b);
    }

    #[test]
    fn width_formula() {
        assert_eq!(text_width("", 3), 0);
        assert_eq!(text_width("A", 1), 5);
        assert_eq!(text_width("AB", 1), 11);
        assert_eq!(text_width("12:30", 2), 6 * 2 * 5 - 2);
        assert_eq!(text_width("20°", 1), 17, "width counts characters, not bytes");
        assert_eq!(text_height(3), 21);
    }

    #[test]
    fn drawn_text_fills_exactly_its_box() {
        let mut img = blank(40, 20);
        draw_text(&mut img, 2, 3, "H8", 2, INK);
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
        for (x, y, p) in img.enumerate_pixels() {
            if *p == INK {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
        assert_eq!((x0, y0), (2, 3));
        assert_eq!(x1 - x0 + 1, text_width("H8", 2));
        assert_eq!(y1 - y0 + 1, text_height(2));
        // "H" row 3 is fully lit: a solid 10x2 run.
        for x in 2..12 {
            assert_eq!(*img.get_pixel(x, 3 + 6), INK);
        }
    }

    #[test]
    fn clipping_matches_unclipped_drawing() {
        // Drawing partly off a small image must give exactly the corresponding window of the
        // same text drawn fully inside a larger image.
        let (w, h, pad) = (23u32, 11u32, 40u32);
        for &(x, y, scale) in &[(-3, -4, 1), (-7, 5, 2), (15, -9, 3), (20, 8, 2), (-30, -2, 1)] {
            let text = "A1%°x";
            let mut small = blank(w, h);
            draw_text(&mut small, x, y, text, scale, INK);
            let mut big = blank(w + 2 * pad, h + 2 * pad);
            draw_text(&mut big, x + pad as i32, y + pad as i32, text, scale, INK);
            for yy in 0..h {
                for xx in 0..w {
                    assert_eq!(
                        small.get_pixel(xx, yy),
                        big.get_pixel(xx + pad, yy + pad),
                        "pixel ({xx},{yy}) for text at ({x},{y}) scale {scale}"
                    );
                }
            }
        }
    }

    #[test]
    fn off_image_and_extreme_inputs_do_not_panic() {
        let mut img = blank(16, 16);
        let before = img.clone();
        for &(x, y) in &[(-100, 0), (0, -100), (16, 0), (0, 16), (i32::MIN, i32::MIN), (i32::MAX, i32::MAX)] {
            draw_text(&mut img, x, y, "OFF", 1, INK);
        }
        assert_eq!(img, before, "text entirely outside the image changed it");
        draw_text(&mut img, -5, -5, "", 4, INK);
        draw_text(&mut img, 3, 3, "ZERO", 0, INK);
        assert_eq!(img, before);
        draw_text(&mut img, i32::MIN, 0, "WIDE TEXT", u32::MAX, INK);
        draw_text(&mut img, 0, i32::MIN, "TALL", u32::MAX, INK);
        draw_text(&mut img, i32::MAX, i32::MAX, "FAR", u32::MAX, INK);
        img = before.clone();
        draw_text(&mut img, -1000, -1000, "X", 2000, INK);
        assert!(img.pixels().any(|p| *p == INK), "a huge glyph covering the image drew nothing");
        let mut empty = RgbImage::new(0, 0);
        draw_text(&mut empty, 0, 0, "NOTHING", 1, INK);
    }
}
