//! `DIR/report.html`: one self-contained page that shows what a run did.
//!
//! Sections (each a `<section id=...>`): `overview`, `funnel` (rows after each stage), `drops`
//! (rows dropped per stage and reason), `measured` (a histogram of every value a stage
//! measured), `buckets` (length buckets), `packing` (shard summary and pack fill), `samples`
//! (dropped rows per reason with their trace text and image thumbnails, collapsible),
//! `summaries` (what stages reported) and `spec` (the spec and its blake3).
//!
//! The page has no script and loads nothing: charts are inline SVG ([`svg`]), thumbnails are
//! `data:` URIs. Every number drawn is also in a `data-*` attribute. The page holds no wall
//! times, so the same run directory gives the same bytes.

pub mod svg;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use polars::prelude::DataFrame;

use crate::error::{Context, Error, Result};
use crate::io::{atomic_write, parquet_files, parquet_rows, read_parquet_slice};
use crate::pipeline::{RunStats, histogram};
use crate::schema::Trace;
use svg::{Bar, esc, num};

/// What the report shows of the dropped rows.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Dropped rows shown per stage and reason.
    pub samples_per_reason: usize,
    /// Characters of each text field shown (the rest is counted).
    pub max_text_chars: usize,
    /// Longest side of an image thumbnail, in pixels.
    pub thumb_px: u32,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self { samples_per_reason: 5, max_text_chars: 2000, thumb_px: 96 }
    }
}

/// One dropped row as the ledger has it, with its trace when the run kept it.
struct Dropped {
    id: Option<String>,
    source: String,
    origin: String,
    detail: String,
    kept_id: Option<String>,
    trace: Option<Trace>,
}

/// Write `DIR/report.html` atomically; returns its path.
pub fn write(dir: &Path, opts: &ReportOptions) -> Result<PathBuf> {
    let html = render(dir, opts)?;
    let dest = dir.join("report.html");
    atomic_write(&dest, html.as_bytes(), 0)?;
    Ok(dest)
}

/// Stage index of a ledger file from its name (`NN-stage-00000.parquet`).
fn ledger_stage_index(p: &Path) -> Option<usize> {
    p.file_name()?.to_str()?.split('-').next()?.parse().ok()
}

fn opt_str(df: &DataFrame, name: &str, i: usize) -> Option<String> {
    df.column(name).ok()?.str().ok()?.get(i).map(str::to_string)
}

/// The first `n` ledger rows of every (stage index, reason).
fn ledger_samples(dir: &Path, stats: &RunStats, n: usize) -> Result<BTreeMap<(usize, String), Vec<Dropped>>> {
    let mut out: BTreeMap<(usize, String), Vec<Dropped>> = BTreeMap::new();
    let ledger = dir.join("ledger");
    if !ledger.is_dir() || n == 0 {
        return Ok(out);
    }
    let wanted: HashMap<usize, usize> = stats.stages.iter().map(|s| (s.index, s.dropped.len())).collect();
    for p in parquet_files(&ledger)? {
        let Some(idx) = ledger_stage_index(&p) else { continue };
        let rows = parquet_rows(&p)?;
        let mut off = 0;
        while off < rows {
            let full = out.iter().filter(|((i, _), v)| *i == idx && v.len() >= n).count();
            if full >= wanted.get(&idx).copied().unwrap_or(0) {
                break;
            }
            let len = 8192.min(rows - off);
            let df = read_parquet_slice(&p, None, off, len)?;
            for i in 0..df.height() {
                let reason = opt_str(&df, "reason", i).unwrap_or_default();
                let v = out.entry((idx, reason)).or_default();
                if v.len() < n {
                    v.push(Dropped {
                        id: opt_str(&df, "id", i),
                        source: opt_str(&df, "source", i).unwrap_or_default(),
                        origin: opt_str(&df, "origin", i).unwrap_or_default(),
                        detail: opt_str(&df, "detail", i).unwrap_or_default(),
                        kept_id: opt_str(&df, "kept_id", i),
                        trace: None,
                    });
                }
            }
            off += len;
        }
    }
    Ok(out)
}

/// Attach the ingested trace of every sample, found by its origin (file and row, unique per
/// row) in the ingest output: `work/00-ingest`, or its `task-*` directories in a split run.
fn attach_traces(dir: &Path, samples: &mut BTreeMap<(usize, String), Vec<Dropped>>) -> Result<()> {
    let ingest = dir.join("work").join("00-ingest");
    if !ingest.is_dir() {
        return Ok(());
    }
    let mut dirs = vec![ingest.clone()];
    let mut tasks: Vec<PathBuf> = std::fs::read_dir(&ingest)
        .ctx(|| format!("listing {}", ingest.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("task-")))
        .collect();
    tasks.sort();
    dirs.extend(tasks);
    let wanted: HashSet<String> =
        samples.values().flatten().filter(|d| d.id.is_some()).map(|d| d.origin.clone()).collect();
    let mut found: HashMap<String, Trace> = HashMap::new();
    for p in dirs.iter().map(|d| parquet_files(d)).collect::<Result<Vec<_>>>()?.into_iter().flatten() {
        if found.len() == wanted.len() {
            break;
        }
        let rows = parquet_rows(&p)?;
        let origins = read_parquet_slice(&p, Some(vec!["origin".into()]), 0, rows)?;
        let col = origins
            .column("origin")
            .and_then(|c| c.str())
            .map_err(|e| Error::Input(format!("{}: column origin: {e}", p.display())))?;
        for (i, origin) in col.iter().enumerate() {
            let Some(origin) = origin else { continue };
            if wanted.contains(origin) && !found.contains_key(origin) {
                let row = read_parquet_slice(&p, None, i, 1)?;
                if let Some(t) = crate::schema::traces_from_partial_df(&row)?.pop() {
                    found.insert(origin.to_string(), t);
                }
            }
        }
    }
    for d in samples.values_mut().flatten() {
        if d.id.is_some() {
            d.trace = found.get(&d.origin).cloned();
        }
    }
    Ok(())
}

/// A PNG thumbnail of a stored image as a `data:` URI, or why there is none.
fn thumbnail(dir: &Path, id: &str, px: u32) -> std::result::Result<String, String> {
    if id.is_empty() {
        return Err("missing at ingest".into());
    }
    let p = crate::store::stored_path(&dir.join("images"), id);
    let bytes = std::fs::read(&p).map_err(|e| format!("not in the image store: {e}"))?;
    let img = crate::image::decode(&bytes).map_err(|e| format!("does not decode: {e}"))?;
    let small = img.thumbnail(px, px);
    let mut png = Vec::new();
    small
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| format!("cannot encode a thumbnail: {e}"))?;
    Ok(format!("data:image/png;base64,{}", base64::engine::general_purpose::STANDARD.encode(png)))
}

/// The first `max` characters of `s`, and how many were left out.
fn clip(s: &str, max: usize) -> (String, usize) {
    let total = s.chars().count();
    if total <= max { (s.to_string(), 0) } else { (s.chars().take(max).collect(), total - max) }
}

fn text_block(out: &mut String, title: &str, s: &str, max: usize) {
    let (shown, more) = clip(s, max);
    let _ = write!(out, "<h4>{}</h4><pre>{}</pre>", esc(title), esc(&shown));
    if more > 0 {
        let _ = write!(out, r#"<p class="more">… {more} more characters</p>"#);
    }
}

/// A histogram's bars over consecutive 1-2-5 edges, empty buckets between included.
fn histogram_bars(h: &histogram::Histogram) -> Vec<Bar> {
    let edges = histogram::edges();
    let (Some(first), Some(last)) = (h.buckets.first(), h.buckets.last()) else { return Vec::new() };
    let lo = edges.partition_point(|e| *e < first.0);
    let hi = edges.partition_point(|e| *e <= last.0);
    let counts: HashMap<u64, u64> = h.buckets.iter().map(|(l, n)| (l.to_bits(), *n)).collect();
    edges[lo..hi.max(lo + 1)]
        .iter()
        .map(|e| Bar::count(format!("≥{}", short_edge(*e)), counts.get(&e.to_bits()).copied().unwrap_or(0)))
        .collect()
}

/// A bucket edge as a short label (1k, 20k, 5M).
fn short_edge(e: f64) -> String {
    if e >= 1e6 {
        format!("{}M", num(e / 1e6))
    } else if e >= 1e3 {
        format!("{}k", num(e / 1e3))
    } else {
        num(e)
    }
}

/// Numeric lower bound of a bucket name (`1024-2048`, `8192+`) for ordering.
fn bucket_lower(name: &str) -> u64 {
    name.split(['-', '+']).next().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX)
}

const STYLE: &str = "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1d2330;margin:0 auto;max-width:1040px;padding:0 20px 60px}\
h1{font-size:24px;margin:24px 0 4px}h2{font-size:19px;border-bottom:1px solid #d8dce4;padding-bottom:4px;margin-top:34px}\
h3{font-size:15px;margin:18px 0 6px}h4{font-size:13px;margin:10px 0 2px;color:#4a5263}\
nav a{margin-right:12px}code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}\
pre{white-space:pre-wrap;word-break:break-word;background:#f5f6f8;border:1px solid #e3e6ec;padding:8px;max-height:22em;overflow:auto;margin:2px 0}\
table{border-collapse:collapse;margin:8px 0}td,th{border-bottom:1px solid #e3e6ec;padding:3px 10px;text-align:left}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
dl.kv{display:grid;grid-template-columns:max-content auto;gap:2px 14px}dl.kv dt{color:#4a5263}dl.kv dd{margin:0;font-variant-numeric:tabular-nums}\
figure{margin:14px 0}figure.hist{display:inline-block;vertical-align:top;margin-right:28px}figcaption{color:#4a5263;font-size:13px}\
svg.chart text{font:11px system-ui,sans-serif;fill:#1d2330}svg.chart .axis{stroke:#8a93a5}svg.chart .tick{fill:#4a5263}\
svg.funnel rect{fill:#4c78a8}svg.drops rect{fill:#e45756}svg.hist rect{fill:#72b7b2}svg.buckets rect{fill:#b279a2}svg.fill rect{fill:#54a24b}\
details.reason{border:1px solid #e3e6ec;border-radius:4px;margin:6px 0;padding:4px 10px}details.reason>summary{cursor:pointer;font-weight:600}\
article.sample{border-top:1px dashed #d8dce4;padding:8px 0}article.sample .detail{margin:4px 0}.muted{color:#6b7385}\
img.thumb{border:1px solid #d8dce4;margin:4px 6px 4px 0;image-rendering:pixelated;vertical-align:top}.noimg{display:inline-block;border:1px dashed #e45756;color:#a33;padding:4px;margin:4px 6px 4px 0;font-size:12px}\
p.more{color:#6b7385;font-size:12px;margin:0}";

/// The report of a finished run directory as HTML.
pub fn render(dir: &Path, opts: &ReportOptions) -> Result<String> {
    let stats = RunStats::read(dir)?;
    let spec_text = std::fs::read_to_string(dir.join("spec.yaml")).ok();
    let mut samples = ledger_samples(dir, &stats, opts.samples_per_reason)?;
    attach_traces(dir, &mut samples)?;
    let manifest = crate::shards::Manifest::read_if_present(&dir.join("shards"))?;
    let stage_label = |i: usize, name: &str| format!("{i:02} {name}");

    let mut h = String::with_capacity(1 << 16);
    let _ = write!(
        h,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>cotforge run report: {n}</title><style>{STYLE}</style></head><body>"#,
        n = esc(&stats.name)
    );
    // overview
    let _ = write!(
        h,
        r#"<header id="overview"><h1>Run report: {n}</h1><dl class="kv"><dt>spec blake3</dt><dd><code id="spec-hash">{hash}</code></dd><dt>rows in</dt><dd id="rows-in" data-value="{ri}">{ri}</dd><dt>rows kept</dt><dd id="rows-out" data-value="{ro}">{ro}</dd><dt>rows in the ledger</dt><dd id="ledger-rows" data-value="{lr}">{lr}</dd>"#,
        n = esc(&stats.name),
        hash = esc(&stats.spec_blake3),
        ri = stats.rows_in,
        ro = stats.rows_out,
        lr = stats.ledger_rows,
    );
    if let Some(s) = &stats.shards {
        let _ = write!(
            h,
            r#"<dt>packs</dt><dd data-value="{p}">{p}</dd><dt>tokens in packs</dt><dd data-value="{t}">{t}</dd>"#,
            p = s.packs,
            t = s.tokens
        );
    }
    h.push_str(r##"</dl><nav><a href="#funnel">funnel</a><a href="#drops">drops</a><a href="#measured">measured values</a><a href="#buckets">buckets</a><a href="#packing">packing</a><a href="#samples">dropped samples</a><a href="#summaries">stage summaries</a><a href="#spec">spec</a></nav></header>"##);

    // funnel
    let mut bars = vec![Bar::count("raw rows", stats.rows_in)];
    bars.extend(stats.stages.iter().map(|s| Bar::count(stage_label(s.index, &s.stage), s.rows_out)));
    let _ = write!(
        h,
        r#"<section id="funnel"><h2>Rows after each stage</h2><p>Raw rows read, then the rows each stage kept.</p>{}</section>"#,
        svg::hbars("funnel", "rows after each stage", &bars)
    );

    // drops
    h.push_str(r#"<section id="drops"><h2>Drop reasons</h2>"#);
    let drops: Vec<(usize, &str, &str, u64)> = stats
        .stages
        .iter()
        .flat_map(|s| s.dropped.iter().map(move |(r, n)| (s.index, s.stage.as_str(), r.as_str(), *n)))
        .filter(|d| d.3 > 0)
        .collect();
    if drops.is_empty() {
        h.push_str("<p>No row was dropped.</p>");
    } else {
        let bars: Vec<Bar> =
            drops.iter().map(|(i, st, r, n)| Bar::count(format!("{} · {r}", stage_label(*i, st)), *n)).collect();
        h.push_str(&svg::hbars("drops", "rows dropped per stage and reason", &bars));
        h.push_str(r#"<table class="drops"><thead><tr><th>stage</th><th>reason</th><th class="n">rows</th></tr></thead><tbody>"#);
        for (i, st, r, n) in &drops {
            let _ = write!(
                h,
                r#"<tr data-stage-index="{i}" data-stage="{s}" data-reason="{re}" data-rows="{n}"><td>{l}</td><td>{re}</td><td class="n">{n}</td></tr>"#,
                s = esc(st),
                re = esc(r),
                l = esc(&stage_label(*i, st)),
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>");

    // measured values
    h.push_str(r#"<section id="measured"><h2>Measured values</h2><p>What each stage measured, over the rows it judged, in 1-2-5 buckets (a bar counts the values from its edge up to the next).</p>"#);
    let mut any = false;
    for s in &stats.stages {
        for (m, hist) in &s.measured {
            any = true;
            let title = format!("{} · {m}", stage_label(s.index, &s.stage));
            let _ = write!(
                h,
                r#"<figure class="hist" data-stage-index="{i}" data-stage="{st}" data-metric="{me}" data-count="{c}" data-min="{mi}" data-max="{ma}"><h3>{t}</h3>{svg}<figcaption>{c} values, mean {mean}, min {mi}, max {ma}</figcaption></figure>"#,
                i = s.index,
                st = esc(&s.stage),
                me = esc(m),
                c = hist.count,
                mi = num(hist.min),
                ma = num(hist.max),
                mean = num(hist.mean()),
                t = esc(&title),
                svg = svg::columns("hist", &title, &histogram_bars(hist)),
            );
        }
    }
    if !any {
        h.push_str("<p>No stage of this run measures values.</p>");
    }
    h.push_str("</section>");

    // buckets
    h.push_str(r#"<section id="buckets"><h2>Length buckets</h2>"#);
    let mut any = false;
    for s in &stats.stages {
        let Some(b) = s.summary.as_ref().and_then(|v| v.get("buckets")).and_then(|v| v.as_object()) else { continue };
        any = true;
        let mut rows: Vec<(&String, &serde_json::Value)> = b.iter().collect();
        rows.sort_by_key(|(k, _)| (bucket_lower(k), (*k).clone()));
        let get = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        let label = stage_label(s.index, &s.stage);
        let rows_bars: Vec<Bar> = rows.iter().map(|(k, v)| Bar::count(k.as_str(), get(v, "rows_kept"))).collect();
        let token_bars: Vec<Bar> = rows.iter().map(|(k, v)| Bar::count(k.as_str(), get(v, "tokens_kept"))).collect();
        let _ = write!(
            h,
            r#"<figure class="buckets" data-stage-index="{i}"><h3>{l}: rows kept per bucket</h3>{a}</figure><figure class="bucket-tokens" data-stage-index="{i}"><h3>{l}: tokens kept per bucket</h3>{b}</figure>"#,
            i = s.index,
            l = esc(&label),
            a = svg::hbars("buckets", "rows kept per bucket", &rows_bars),
            b = svg::hbars("buckets", "tokens kept per bucket", &token_bars),
        );
        h.push_str(r#"<table class="buckets"><thead><tr><th>bucket</th><th class="n">rows in</th><th class="n">rows kept</th><th class="n">tokens in</th><th class="n">tokens kept</th></tr></thead><tbody>"#);
        for (k, v) in &rows {
            let _ = write!(
                h,
                r#"<tr data-bucket="{b}"><td>{b}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td></tr>"#,
                get(v, "rows_in"),
                get(v, "rows_kept"),
                get(v, "tokens_in"),
                get(v, "tokens_kept"),
                b = esc(k),
            );
        }
        h.push_str("</tbody></table>");
    }
    if !any {
        h.push_str("<p>This run has no length buckets.</p>");
    }
    h.push_str("</section>");

    // packing
    h.push_str(r#"<section id="packing"><h2>Packing</h2>"#);
    match &manifest {
        None => h.push_str("<p>This run wrote no shards.</p>"),
        Some(m) => {
            let fills = pack_fills(dir, m)?;
            let _ = write!(
                h,
                r#"<dl class="kv"><dt>packs</dt><dd id="packs" data-value="{}">{}</dd><dt>samples</dt><dd id="pack-samples" data-value="{}">{}</dd><dt>tokens</dt><dd id="pack-tokens" data-value="{}">{}</dd><dt>loss tokens</dt><dd data-value="{}">{}</dd><dt>max length</dt><dd data-value="{}">{}</dd><dt>fill</dt><dd id="pack-fill" data-value="{}">{:.2}%</dd><dt>files</dt><dd data-value="{}">{}</dd></dl>"#,
                m.packs,
                m.packs,
                m.samples,
                m.samples,
                m.tokens,
                m.tokens,
                m.loss_tokens,
                m.loss_tokens,
                m.max_length,
                m.max_length,
                num(m.fill),
                m.fill * 100.0,
                m.files.len(),
                m.files.len(),
            );
            let mut bins = [0u64; 20];
            for f in &fills {
                bins[((f * 20.0).floor() as usize).min(19)] += 1;
            }
            let first = bins.iter().position(|&n| n > 0).unwrap_or(19);
            let bars: Vec<Bar> =
                (first..20).map(|k| Bar::count(format!("{}-{}%", k * 5, k * 5 + 5), bins[k])).collect();
            let _ = write!(
                h,
                r#"<figure class="fill" data-packs="{}"><h3>Packs by fill (tokens / max length)</h3>{}</figure>"#,
                fills.len(),
                svg::columns("fill", "packs by fill", &bars)
            );
        }
    }
    h.push_str("</section>");

    // dropped samples
    let _ = write!(
        h,
        r#"<section id="samples"><h2>Dropped samples</h2><p>Up to {} rows per stage and reason, in ledger order. Open a reason, then a row's trace text.</p>"#,
        opts.samples_per_reason
    );
    for (i, st, r, n) in &drops {
        let shown = samples.get(&(*i, r.to_string())).map(Vec::as_slice).unwrap_or(&[]);
        let _ = write!(
            h,
            r#"<details class="reason" data-stage-index="{i}" data-reason="{re}" data-rows="{n}"><summary>{l} · {re}: {n} {rows} (showing {k})</summary>"#,
            re = esc(r),
            l = esc(&stage_label(*i, st)),
            k = shown.len(),
            rows = if *n == 1 { "row" } else { "rows" },
        );
        for d in shown {
            sample_html(&mut h, dir, d, opts);
        }
        h.push_str("</details>");
    }
    if drops.is_empty() {
        h.push_str("<p>No row was dropped.</p>");
    }
    h.push_str("</section>");

    // summaries
    h.push_str(r#"<section id="summaries"><h2>Stage summaries</h2>"#);
    let mut any = false;
    for s in &stats.stages {
        if let Some(v) = &s.summary {
            any = true;
            let pretty = serde_json::to_string_pretty(v).unwrap_or_default();
            let _ = write!(h, r#"<h3>{}</h3><pre>{}</pre>"#, esc(&stage_label(s.index, &s.stage)), esc(&pretty));
        }
    }
    if !any {
        h.push_str("<p>No stage reported a summary.</p>");
    }
    h.push_str("</section>");

    // spec
    let _ = write!(
        h,
        r#"<section id="spec"><h2>Spec</h2><p>blake3 <code>{}</code></p><pre id="spec-text">{}</pre></section></body></html>"#,
        esc(&stats.spec_blake3),
        esc(spec_text.as_deref().unwrap_or("(spec.yaml is missing from the run directory)"))
    );
    Ok(h)
}

fn sample_html(h: &mut String, dir: &Path, d: &Dropped, opts: &ReportOptions) {
    let _ = write!(
        h,
        r#"<article class="sample" data-id="{id}"><div><code>{id}</code> <span class="muted">{src} · {origin}</span></div><p class="detail">{detail}</p>"#,
        id = esc(d.id.as_deref().unwrap_or("")),
        src = esc(&d.source),
        origin = esc(&d.origin),
        detail = esc(&d.detail),
    );
    if let Some(k) = &d.kept_id {
        let _ = write!(h, r#"<p class="muted">kept instead: <code>{}</code></p>"#, esc(k));
    }
    match &d.trace {
        None => h.push_str(r#"<p class="muted">No trace: the row did not survive ingest.</p>"#),
        Some(t) => {
            if !t.images.is_empty() {
                h.push_str(r#"<div class="thumbs">"#);
                for img in &t.images {
                    match thumbnail(dir, &img.id, opts.thumb_px) {
                        Ok(uri) => {
                            let _ = write!(
                                h,
                                r#"<img class="thumb" src="{uri}" alt="{p}" title="{p} ({w}×{hh})">"#,
                                p = esc(&img.path),
                                w = img.width,
                                hh = img.height
                            );
                        }
                        Err(why) => {
                            let _ = write!(h, r#"<span class="noimg">{}: {}</span>"#, esc(&img.path), esc(&why));
                        }
                    }
                }
                h.push_str("</div>");
            }
            h.push_str(r#"<details class="trace"><summary>trace text</summary>"#);
            if let Some(s) = &t.system {
                text_block(h, "system", s, opts.max_text_chars);
            }
            text_block(h, "prompt", &t.prompt, opts.max_text_chars);
            text_block(h, "response", &t.response, opts.max_text_chars);
            if let Some(r) = &t.reference {
                text_block(h, "reference", r, opts.max_text_chars);
            }
            h.push_str("</details>");
        }
    }
    h.push_str("</article>");
}

/// Fill (tokens / max length) of every pack, in pack order.
fn pack_fills(dir: &Path, m: &crate::shards::Manifest) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(m.packs as usize);
    for f in &m.files {
        let p = dir.join("shards").join(&f.path);
        let df = read_parquet_slice(&p, Some(vec!["num_tokens".into()]), 0, f.packs as usize)?;
        let col = df
            .column("num_tokens")
            .and_then(|c| c.cast(&polars::prelude::DataType::Float64))
            .map_err(|e| Error::Input(format!("{}: column num_tokens: {e}", p.display())))?;
        let ca = col.f64().map_err(|e| Error::Input(format!("{}: column num_tokens: {e}", p.display())))?;
        out.extend(ca.iter().map(|v| v.unwrap_or(0.0) / m.max_length.max(1) as f64));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bars_fill_the_gaps_between_buckets() {
        let mut h = histogram::Histogram::default();
        for v in [0.0, 0.0, 5.0, 2000.0] {
            h.add(v);
        }
        let bars = histogram_bars(&h);
        let labels: Vec<&str> = bars.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels.first(), Some(&"≥0"));
        assert_eq!(labels.last(), Some(&"≥2k"));
        assert!(labels.contains(&"≥10") && labels.contains(&"≥500"));
        assert_eq!(bars.iter().map(|b| b.value).sum::<f64>(), 4.0);
        assert_eq!(bars[0].value, 2.0);
    }

    #[test]
    fn clipping_counts_what_it_leaves_out_and_buckets_sort_numerically() {
        assert_eq!(clip("abcdef", 4), ("abcd".to_string(), 2));
        assert_eq!(clip("añb", 5), ("añb".to_string(), 0));
        let mut names = vec!["8192+", "16384-32768", "0-1024", "1024-2048"];
        names.sort_by_key(|n| bucket_lower(n));
        assert_eq!(names, ["0-1024", "1024-2048", "8192+", "16384-32768"]);
        assert_eq!(short_edge(20000.0), "20k");
        assert_eq!(short_edge(0.02), "0.02");
    }
}
