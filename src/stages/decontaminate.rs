//! `decontaminate`: drop rows that contain a benchmark question.
//!
//! Benchmark files (Parquet, JSONL or JSON, mapped like inputs) are loaded when the stage is
//! built. Items and rows are compared by word n-grams (default n = 12) of normalised text.
//! Benchmarks and training sets share boilerplate: the instruction every question ends with
//! ("Please reason step by step, and put your final answer within \boxed{}.") and template
//! openings ("The bar chart shows the ..."). An n-gram is no evidence when it occurs in more
//! than `boilerplate_items` benchmark items, or in more than `boilerplate_rows` training rows
//! (counted in the index pass, which makes this a global stage). An item's content is the words
//! no boilerplate n-gram covers; a row's text hits an item when the n-grams it shares with the
//! item cover at least `min_coverage` of that content (its coverage); an item
//! shorter than n words, or one whose every n-gram is boilerplate, must appear whole (the
//! latter as the longest run of its words outside the boilerplate, when that has at least
//! `min_short_words` words). The boilerplate found is in the stage summary. Multimodal
//! benchmarks ask templated questions ("What is the area of the rectangle?") over different
//! figures, so by default (`images: match`) a hit on an item with images counts only when one of
//! the row's images is that item's image: the same bytes, or a perceptual hash within
//! `image_radius`. `images: any` also drops rows that reuse a benchmark image under any text;
//! `images: ignore` looks at text alone.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

use super::dedup::minhash::DedupText;
use rayon::prelude::*;

use super::{IndexContext, Measured, Stage, StageContext, Verdict};
use crate::error::{Error, Result};
use crate::image::{DEFAULT_THUMB_DISTANCE, Fingerprint, RadiusIndex, thumb_distance_within};
use crate::ingest::{self, ImageStore};
use crate::ingest::{ColumnMap, Format, ImageEncoding, Input, Layout};
use crate::schema::Trace;
use crate::text::clip;
use crate::text::minhash::normalize_for_dedup;
use std::sync::Arc;

/// A benchmark to decontaminate against, mapped like an input.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BenchmarkSpec {
    /// Name written in the ledger, e.g. `mathvista-testmini`.
    pub name: String,
    /// File path or glob.
    pub path: String,
    pub format: Format,
    /// Default `columns`.
    #[serde(default)]
    pub layout: Layout,
    /// Which columns hold the question (`prompt`) and `images`.
    #[serde(default)]
    pub columns: ColumnMap,
    /// Directory relative image paths resolve against (default: the file's directory).
    pub images_root: Option<String>,
    /// How image values are stored (default `auto`), as for inputs.
    #[serde(default)]
    pub image_encoding: ImageEncoding,
}

/// How images take part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum DecontamImages {
    /// A text hit on an item with images counts only if an image matches too (default).
    #[default]
    Match,
    /// Text hits count alone, and so does any image matching a benchmark image.
    Any,
    /// Text alone.
    Ignore,
}

fn default_ngram() -> usize {
    12
}
fn default_fields() -> Vec<DedupText> {
    vec![DedupText::Prompt]
}
fn default_radius() -> u32 {
    6
}
fn default_thumb() -> f64 {
    DEFAULT_THUMB_DISTANCE
}

/// Parameters of `decontaminate`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecontamConfig {
    pub benchmarks: Vec<BenchmarkSpec>,
    /// Word n-gram length. Default 12.
    #[serde(default = "default_ngram")]
    pub ngram: usize,
    /// Row texts searched. Default `[prompt]`.
    #[serde(default = "default_fields")]
    pub fields: Vec<DedupText>,
    /// `match` (default), `any` or `ignore`.
    #[serde(default)]
    pub images: DecontamImages,
    /// Hamming radius of perceptual-hash image matches (identical bytes always match).
    /// Default 6.
    #[serde(default = "default_radius")]
    pub image_radius: u32,
    /// Largest thumbnail distance of an image match (see `dedup.image`). Default 0.005.
    #[serde(default = "default_thumb")]
    pub max_thumb_distance: f64,
    /// An n-gram in more than this many benchmark items is boilerplate. Default 3.
    #[serde(default = "default_boilerplate_items")]
    pub boilerplate_items: usize,
    /// An n-gram in more than this many training rows is boilerplate. Default 10.
    #[serde(default = "default_boilerplate_rows")]
    pub boilerplate_rows: u64,
    /// Share of an item's content words (those outside the boilerplate) that the n-grams one
    /// row shares with it must cover for the row to count as a copy. Default 0.5.
    #[serde(default = "default_min_coverage")]
    pub min_coverage: f64,
    /// Shortest run of non-boilerplate words matched whole for items all of whose n-grams are
    /// boilerplate. Default 4.
    #[serde(default = "default_min_short_words")]
    pub min_short_words: usize,
}

fn default_boilerplate_items() -> usize {
    3
}
fn default_boilerplate_rows() -> u64 {
    10
}
fn default_min_coverage() -> f64 {
    0.5
}
fn default_min_short_words() -> usize {
    4
}

impl DecontamConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.benchmarks.is_empty() {
            return Err("`benchmarks` is empty".into());
        }
        if self.ngram == 0 {
            return Err("ngram must be at least 1".into());
        }
        if !(self.min_coverage > 0.0 && self.min_coverage <= 1.0) {
            return Err(format!("min_coverage must be in (0, 1], got {}", self.min_coverage));
        }
        if self.min_short_words == 0 {
            return Err("min_short_words must be at least 1".into());
        }
        if self.image_radius > 32 {
            return Err(format!("image_radius must be at most 32 (of 64 bits), got {}", self.image_radius));
        }
        let mut names = HashSet::new();
        for b in &self.benchmarks {
            if !names.insert(&b.name) {
                return Err(format!("benchmark name `{}` is used twice", b.name));
            }
            if b.layout == Layout::Columns && b.columns.prompt.is_none() {
                return Err(format!("benchmark `{}`: layout `columns` needs `columns.prompt`", b.name));
            }
        }
        Ok(())
    }
}

/// One benchmark question.
struct Item {
    bench: u16,
    /// Where it came from (`file#row`).
    origin: String,
    has_images: bool,
    /// The normalised words of the question.
    words: Vec<String>,
    /// The hash of the n-gram starting at each word (none for items shorter than n words).
    gram_at: Vec<u64>,
}

pub struct Decontaminate {
    cfg: DecontamConfig,
    items: Vec<Item>,
    /// n-gram hash -> items containing it.
    grams: HashMap<u64, Vec<u32>>,
    /// Training rows holding each benchmark n-gram (the index pass).
    row_counts: HashMap<u64, u64>,
    /// n-grams that are no evidence; per item, which words no boilerplate n-gram covers (its
    /// content), and how many.
    boilerplate: HashSet<u64>,
    content: Vec<Vec<bool>>,
    evidence: Vec<u32>,
    /// Whole texts that must appear (short items, and the content of all-boilerplate items):
    /// hash -> items, and the lengths that occur.
    short: HashMap<u64, Vec<u32>>,
    short_lens: BTreeSet<usize>,
    /// Benchmark images: content id -> items, and perceptual hashes.
    image_ids: HashMap<String, Vec<u32>>,
    phashes: RadiusIndex<(u32, Arc<Fingerprint>)>,
}

fn gram_hash(words: &[&str]) -> u64 {
    xxh3_64(words.join(" ").as_bytes())
}

impl Decontaminate {
    /// Load every benchmark; its images go into the run's image store (content-addressed).
    pub fn new(cfg: DecontamConfig, store: &ImageStore) -> Result<Self> {
        let mut me = Self {
            items: Vec::new(),
            grams: HashMap::new(),
            row_counts: HashMap::new(),
            boilerplate: HashSet::new(),
            content: Vec::new(),
            evidence: Vec::new(),
            short: HashMap::new(),
            short_lens: BTreeSet::new(),
            image_ids: HashMap::new(),
            phashes: RadiusIndex::new(cfg.image_radius),
            cfg,
        };
        for (b, spec) in me.cfg.benchmarks.clone().iter().enumerate() {
            me.load(b as u16, spec, store)?;
        }
        Ok(me)
    }

    fn load(&mut self, b: u16, spec: &BenchmarkSpec, store: &ImageStore) -> Result<()> {
        let what = |m: String| Error::Spec(format!("decontaminate: benchmark `{}`: {m}", spec.name));
        let mut files: Vec<PathBuf> = glob::glob(&spec.path)
            .map_err(|e| what(format!("bad glob `{}`: {e}", spec.path)))?
            .filter_map(|p| p.ok())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(what(format!("no file matches `{}`", spec.path)));
        }
        let input = Input {
            files: files.clone(),
            format: spec.format,
            layout: spec.layout,
            columns: spec.columns.clone(),
            images_root: spec.images_root.as_ref().map(PathBuf::from),
            image_encoding: spec.image_encoding,
            source: spec.name.clone(),
        };
        for file in &files {
            let root = ingest::images_root(&input, file).to_path_buf();
            ingest::read_batches(&input, file, 1024, |rows| {
                for row in rows {
                    let rec = row.record.map_err(|r| what(format!("{}: {} ({})", row.origin, r.detail, r.reason)))?;
                    let raw = ingest::map_record(&rec, &input)
                        .map_err(|r| what(format!("{}: {} ({})", row.origin, r.detail, r.reason)))?;
                    let k = self.items.len() as u32;
                    let mut has_images = false;
                    for src in raw.images {
                        let img = store.ingest(src, &root)?;
                        if img.id.is_empty() {
                            return Err(what(format!("{}: image `{}` not found", row.origin, img.path)));
                        }
                        has_images = true;
                        if let Some(fp) = store.fingerprint(&img.id) {
                            self.phashes.insert(fp.hash, (k, fp));
                        }
                        self.image_ids.entry(img.id).or_default().push(k);
                    }
                    let norm = normalize_for_dedup(&raw.prompt);
                    let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
                    if words.is_empty() {
                        return Err(what(format!("{}: the question is empty", row.origin)));
                    }
                    let n = self.cfg.ngram;
                    let mut gram_at = Vec::new();
                    if words.len() < n {
                        push_unique(self.short.entry(gram_hash(&words)).or_default(), k);
                        self.short_lens.insert(words.len());
                    } else {
                        for w in words.windows(n) {
                            let h = gram_hash(w);
                            let items = self.grams.entry(h).or_default();
                            push_unique(items, k);
                            gram_at.push(h);
                        }
                    }
                    let words = words.iter().map(|w| w.to_string()).collect();
                    self.items.push(Item { bench: b, origin: row.origin, has_images, words, gram_at });
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The n-grams that are no evidence, from both counts; then each item's content (the words
    /// no boilerplate n-gram covers), and the whole-text patterns of items whose every n-gram
    /// is boilerplate.
    fn settle(&mut self) {
        let (bi, br) = (self.cfg.boilerplate_items, self.cfg.boilerplate_rows);
        self.boilerplate = self
            .grams
            .iter()
            .filter(|(h, items)| items.len() > bi || self.row_counts.get(*h).copied().unwrap_or(0) > br)
            .map(|(h, _)| *h)
            .collect();
        let n = self.cfg.ngram;
        self.content = self
            .items
            .iter()
            .map(|it| {
                let mut content = vec![!it.gram_at.is_empty(); it.words.len()];
                for (i, h) in it.gram_at.iter().enumerate() {
                    if self.boilerplate.contains(h) {
                        content[i..i + n].iter_mut().for_each(|c| *c = false);
                    }
                }
                content
            })
            .collect();
        self.evidence = self.content.iter().map(|c| c.iter().filter(|&&x| x).count() as u32).collect();
        for (k, it) in self.items.iter().enumerate() {
            let evidence_grams = it.gram_at.iter().filter(|h| !self.boilerplate.contains(h)).count();
            if it.gram_at.is_empty() || evidence_grams > 0 {
                continue;
            }
            // the longest run of content words must appear whole
            let c = &self.content[k];
            let (mut best, mut start) = ((0, 0), 0);
            for i in 0..=c.len() {
                if i == c.len() || !c[i] {
                    if i - start > best.1 - best.0 {
                        best = (start, i);
                    }
                    start = i + 1;
                }
            }
            if best.1 - best.0 >= self.cfg.min_short_words {
                let words: Vec<&str> = it.words[best.0..best.1].iter().map(String::as_str).collect();
                push_unique(self.short.entry(gram_hash(&words)).or_default(), k as u32);
                self.short_lens.insert(words.len());
            }
        }
    }

    /// Items the words copy: the item's content words covered by the evidence n-grams the
    /// words share with it, at least `min_coverage` of them (its coverage); or its whole text
    /// (short items). With each item, how it was matched for the ledger.
    /// `hashes` are the row's n-gram hashes ([`Self::row_grams`]).
    fn text_hits(&self, words: &[&str], hashes: &[u64]) -> BTreeMap<u32, String> {
        let n = self.cfg.ngram;
        // item -> (evidence n-grams found, first and last word of the row matched)
        let mut found: HashMap<u32, (HashSet<u64>, usize, usize)> = HashMap::new();
        for (i, &h) in hashes.iter().enumerate() {
            if self.boilerplate.contains(&h) {
                continue;
            }
            if let Some(items) = self.grams.get(&h) {
                for &k in items {
                    let e = found.entry(k).or_insert_with(|| (HashSet::new(), i, i + n));
                    e.0.insert(h);
                    e.2 = i + n;
                }
            }
        }
        let span = |a: usize, b: usize| clip(&words[a..b].join(" "), 160);
        let mut hits = BTreeMap::new();
        for (k, (grams, a, b)) in found {
            let it = &self.items[k as usize];
            let content = &self.content[k as usize];
            let mut covered = vec![false; it.words.len()];
            for (i, h) in it.gram_at.iter().enumerate() {
                if grams.contains(h) {
                    covered[i..i + n].iter_mut().for_each(|c| *c = true);
                }
            }
            let total = self.evidence[k as usize].max(1);
            let got = covered.iter().zip(content).filter(|(c, x)| **c && **x).count();
            let coverage = got as f64 / total as f64;
            if coverage >= self.cfg.min_coverage {
                let how = format!("coverage {coverage:.2} ({got} of {total} words), `{}`", span(a, b));
                hits.insert(k, how);
            }
        }
        for &len in &self.short_lens {
            if words.len() < len {
                continue;
            }
            for (i, w) in words.windows(len).enumerate() {
                if let Some(items) = self.short.get(&gram_hash(w)) {
                    for &k in items {
                        hits.entry(k).or_insert_with(|| format!("the whole question, `{}`", span(i, i + len)));
                    }
                }
            }
        }
        hits
    }

    /// The hash of the n-gram starting at each word of the row (none when it is shorter),
    /// computed once per row for every use.
    fn row_grams(&self, words: &[&str]) -> Vec<u64> {
        if self.grams.is_empty() {
            return Vec::new();
        }
        words.windows(self.cfg.ngram).map(gram_hash).collect()
    }

    /// Of the row's n-gram hashes, those some benchmark item has.
    fn bench_grams(&self, hashes: &[u64]) -> HashSet<u64> {
        hashes.iter().copied().filter(|h| self.grams.contains_key(h)).collect()
    }

    fn row_words(&self, t: &Trace) -> String {
        let text: Vec<String> = self.cfg.fields.iter().map(|f| normalize_for_dedup(f.get(t))).collect();
        text.join(" ")
    }

    /// Items one of whose images is one of the row's images (same bytes or perceptual hash
    /// within the radius), with the distance.
    fn image_hits(&self, t: &Trace, store: &ImageStore, by_hash: bool) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        for img in &t.images {
            if let Some(items) = self.image_ids.get(&img.id) {
                out.extend(items.iter().map(|&k| (k, 0)));
            } else if by_hash {
                if let Some(fp) = store.fingerprint(&img.id) {
                    let near =
                        |(_, b): &(u32, Arc<Fingerprint>)| thumb_distance_within(b, &fp, self.cfg.max_thumb_distance);
                    out.extend(self.phashes.all_within_where(fp.hash, near).into_iter().map(|(&(k, _), d)| (k, d)));
                }
            }
        }
        out
    }

    fn contaminated(&self, item: u32, how: String) -> Verdict {
        let it = &self.items[item as usize];
        Verdict::drop(
            "contaminated",
            format!("benchmark `{}` item {} ({}): {how}", self.cfg.benchmarks[it.bench as usize].name, item, it.origin),
        )
    }
}

fn push_unique(v: &mut Vec<u32>, k: u32) {
    if v.last() != Some(&k) {
        v.push(k);
    }
}

impl Stage for Decontaminate {
    fn name(&self) -> &'static str {
        "decontaminate"
    }

    fn needs_index(&self) -> bool {
        true
    }

    fn index_columns(&self) -> Option<Vec<&'static str>> {
        let mut cols = vec!["id"];
        for f in &self.cfg.fields {
            cols.push(match f {
                DedupText::Prompt => "prompt",
                DedupText::Reasoning | DedupText::Response => "response",
            });
        }
        cols.dedup();
        Some(cols)
    }

    fn index(&mut self, _first: u64, batch: &[Trace], _ctx: &IndexContext) -> Result<()> {
        let sets: Vec<HashSet<u64>> = batch
            .par_iter()
            .map(|t| {
                let joined = self.row_words(t);
                let words: Vec<&str> = joined.split(' ').filter(|w| !w.is_empty()).collect();
                self.bench_grams(&self.row_grams(&words))
            })
            .collect();
        for set in sets {
            for h in set {
                *self.row_counts.entry(h).or_default() += 1;
            }
        }
        Ok(())
    }

    fn finish_index(&mut self, _ctx: &IndexContext) -> Result<()> {
        self.settle();
        Ok(())
    }

    fn save_partial(&mut self) -> Result<Vec<u8>> {
        let mut counts: Vec<(u64, u64)> = self.row_counts.iter().map(|(h, n)| (*h, *n)).collect();
        counts.sort_unstable();
        crate::stages::encode_state(self.name(), &counts)
    }

    fn load_partial(&mut self, bytes: &[u8]) -> Result<()> {
        let counts: Vec<(u64, u64)> = crate::stages::decode_state(self.name(), bytes)?;
        for (h, n) in counts {
            *self.row_counts.entry(h).or_default() += n;
        }
        Ok(())
    }

    fn save_decisions(&mut self) -> Result<Vec<u8>> {
        self.save_partial()
    }

    fn load_decisions(&mut self, bytes: &[u8]) -> Result<()> {
        self.row_counts.clear();
        self.load_partial(bytes)?;
        self.settle();
        Ok(())
    }

    fn summary(&self) -> Option<serde_json::Value> {
        // the text of each boilerplate n-gram, from the first item holding it
        let n = self.cfg.ngram;
        let mut text: HashMap<u64, String> = HashMap::new();
        for it in &self.items {
            for (i, h) in it.gram_at.iter().enumerate() {
                if self.boilerplate.contains(h) {
                    text.entry(*h).or_insert_with(|| it.words[i..i + n].join(" "));
                }
            }
        }
        let mut common: Vec<(usize, u64, &String)> = text
            .iter()
            .map(|(h, t)| (self.grams.get(h).map_or(0, Vec::len), self.row_counts.get(h).copied().unwrap_or(0), t))
            .collect();
        common.sort_by(|a, b| (b.0 as u64 + b.1).cmp(&(a.0 as u64 + a.1)).then_with(|| a.2.cmp(b.2)));
        let examples: Vec<serde_json::Value> = common
            .iter()
            .take(10)
            .map(|(items, rows, t)| serde_json::json!({"ngram": t, "benchmark_items": items, "training_rows": rows}))
            .collect();
        let by_items = self.grams.iter().filter(|(_, v)| v.len() > self.cfg.boilerplate_items).count();
        Some(serde_json::json!({
            "benchmark_items": self.items.len(),
            "benchmark_ngrams": self.grams.len(),
            "boilerplate_ngrams": self.boilerplate.len(),
            "boilerplate_by_items": by_items,
            "boilerplate_by_rows": self.boilerplate.len() - by_items,
            "items_without_evidence": self.evidence.iter().filter(|&&e| e == 0).count(),
            "most_common_boilerplate": examples,
        }))
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, ctx: &StageContext) -> Result<Measured> {
        let joined = self.row_words(t);
        let words: Vec<&str> = joined.split(' ').filter(|w| !w.is_empty()).collect();
        let hashes = self.row_grams(&words);
        let found = self.text_hits(&words, &hashes);
        let hits: BTreeSet<u32> = found.keys().copied().collect();
        let how = |k: u32| found.get(&k).cloned().unwrap_or_default();
        let text_only = |k: &u32| !self.items[*k as usize].has_images;
        let verdict = match self.cfg.images {
            DecontamImages::Ignore => match hits.first() {
                Some(&k) => self.contaminated(k, how(k)),
                None => Verdict::Keep,
            },
            DecontamImages::Match | DecontamImages::Any => {
                if let Some(&k) = hits.iter().find(|k| text_only(k)) {
                    self.contaminated(k, how(k))
                } else {
                    // The image is the independent signal: an item whose image the row shows
                    // needs only some text in common (boilerplate included, since a templated
                    // question over the benchmark's own figure is a copy). Images are compared
                    // only when the row shares an n-gram or a whole question with the
                    // benchmark (or always, with `any`): perceptual hashes cost a decode.
                    let shared = self.bench_grams(&hashes);
                    let related = !hits.is_empty() || !shared.is_empty() || self.cfg.images == DecontamImages::Any;
                    let imgs = if related { self.image_hits(t, ctx.images, true) } else { Vec::new() };
                    let weak = |k: u32| self.items[k as usize].gram_at.iter().any(|h| shared.contains(h));
                    let both = imgs.iter().find(|(k, _)| hits.contains(k) || weak(*k));
                    match (both, imgs.first(), self.cfg.images) {
                        (Some(&(k, d)), _, _) if hits.contains(&k) => {
                            self.contaminated(k, format!("{} and its image (distance {d})", how(k)))
                        }
                        (Some(&(k, d)), _, _) => {
                            self.contaminated(k, format!("shared text (boilerplate) and its image (distance {d})"))
                        }
                        (None, Some(&(k, d)), DecontamImages::Any) => {
                            self.contaminated(k, format!("its image (distance {d})"))
                        }
                        _ => Verdict::Keep,
                    }
                }
            }
        };
        let hit = if matches!(verdict, Verdict::Keep) { 0.0 } else { 1.0 };
        Ok(Measured { verdict, values: vec![("text_hits", hits.len() as f64), ("contaminated", hit)] })
    }
}
