//! Inline SVG bar charts for the run report: static markup, no script, no fonts to fetch.
//!
//! Every bar is a `<g class="bar">` with `data-label` and `data-value` attributes (the exact
//! number drawn) and a `<title>` tooltip, so the chart reads in any browser, in a screen reader
//! and in a test that parses the page.

use std::fmt::Write;

/// One bar: a category label, the value it draws and the text printed beside it.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub text: String,
}

impl Bar {
    pub fn count(label: impl Into<String>, n: u64) -> Self {
        Self { label: label.into(), value: n as f64, text: n.to_string() }
    }
}

/// Escape text for HTML and SVG content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number as short text: integers plainly, others with up to 4 significant digits.
pub fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        let s = format!("{:.*}", (3 - x.abs().log10().floor() as i32).clamp(0, 6) as usize, x);
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    }
}

const WIDTH: f64 = 760.0;
const LABEL_W: f64 = 250.0;
const ROW_H: f64 = 22.0;

/// Horizontal bars, one row per bar, labels on the left and values at the bar ends.
pub fn hbars(class: &str, title: &str, bars: &[Bar]) -> String {
    let max = bars.iter().map(|b| b.value).fold(0.0f64, f64::max).max(1e-12);
    let area = WIDTH - LABEL_W - 80.0;
    let h = bars.len() as f64 * ROW_H + 8.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart {class}" role="img" aria-label="{t}" viewBox="0 0 {WIDTH} {h}" width="{WIDTH}" height="{h}"><title>{t}</title>"#,
        t = esc(title)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = 4.0 + i as f64 * ROW_H;
        let w = (b.value / max * area).max(if b.value > 0.0 { 1.0 } else { 0.0 });
        let _ = write!(
            s,
            r#"<g class="bar" data-label="{l}" data-value="{v}"><text class="label" x="{lx}" y="{ty}" text-anchor="end">{l}</text><rect x="{LABEL_W}" y="{ry}" width="{w:.1}" height="{bh}"><title>{l}: {txt}</title></rect><text class="value" x="{vx:.1}" y="{ty}">{txt}</text></g>"#,
            l = esc(&b.label),
            v = num(b.value),
            lx = LABEL_W - 8.0,
            ty = y + 15.0,
            ry = y + 3.0,
            bh = ROW_H - 6.0,
            vx = LABEL_W + w + 6.0,
            txt = esc(&b.text),
        );
    }
    s.push_str("</svg>");
    s
}

/// Vertical bars over ordered categories (a histogram), category labels slanted below.
pub fn columns(class: &str, title: &str, bars: &[Bar]) -> String {
    let max = bars.iter().map(|b| b.value).fold(0.0f64, f64::max).max(1e-12);
    let (top, plot_h, bottom) = (18.0, 150.0, 58.0);
    let left = 48.0;
    let n = bars.len().max(1) as f64;
    let slot = ((WIDTH - left - 12.0) / n).min(44.0);
    let width = left + slot * n + 12.0;
    let h = top + plot_h + bottom;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart {class}" role="img" aria-label="{t}" viewBox="0 0 {width} {h}" width="{width}" height="{h}"><title>{t}</title>"#,
        t = esc(title)
    );
    // axis with the maximum marked
    let base = top + plot_h;
    let _ = write!(
        s,
        r#"<line class="axis" x1="{left}" y1="{base}" x2="{x2:.1}" y2="{base}"/><line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{base}"/><text class="tick" x="{tx}" y="{ty}" text-anchor="end">{m}</text><text class="tick" x="{tx}" y="{base}" text-anchor="end">0</text>"#,
        x2 = left + slot * n,
        tx = left - 4.0,
        ty = top + 4.0,
        m = num(max),
    );
    for (i, b) in bars.iter().enumerate() {
        let x = left + i as f64 * slot;
        let bh = b.value / max * plot_h;
        let bh = if b.value > 0.0 { bh.max(1.0) } else { 0.0 };
        let cx = x + slot / 2.0;
        let _ = write!(
            s,
            r#"<g class="bar" data-label="{l}" data-value="{v}"><rect x="{rx:.1}" y="{ry:.1}" width="{rw:.1}" height="{bh:.1}"><title>{l}: {txt}</title></rect><text class="value" x="{cx:.1}" y="{vy:.1}" text-anchor="middle">{txt}</text><text class="label" x="{cx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-40 {cx:.1} {ly:.1})">{l}</text></g>"#,
            l = esc(&b.label),
            v = num(b.value),
            rx = x + 2.0,
            ry = base - bh,
            rw = (slot - 4.0).max(1.0),
            vy = base - bh - 3.0,
            ly = base + 14.0,
            txt = esc(&b.text),
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_short_and_exact_for_integers() {
        assert_eq!(num(1234.0), "1234");
        assert_eq!(num(0.98054), "0.9805");
        assert_eq!(num(0.002), "0.002");
        assert_eq!(num(12.5), "12.5");
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn bars_scale_to_the_largest_value_and_carry_their_numbers() {
        let svg = hbars("funnel", "t", &[Bar::count("a", 10), Bar::count("b<c", 5), Bar::count("z", 0)]);
        assert_eq!(svg.matches(r#"<g class="bar""#).count(), 3);
        assert!(svg.contains(r#"data-label="b&lt;c" data-value="5""#));
        let area = WIDTH - LABEL_W - 80.0;
        assert!(svg.contains(&format!(r#"width="{:.1}""#, area)), "largest bar spans the area");
        assert!(svg.contains(&format!(r#"width="{:.1}""#, area / 2.0)));
        assert!(svg.contains(r#"width="0.0""#), "a zero bar has no width");
        let col = columns("h", "t", &[Bar::count("0", 3), Bar::count("1", 6)]);
        assert!(col.contains(r#"height="150.0""#) && col.contains(r#"height="75.0""#));
    }
}
