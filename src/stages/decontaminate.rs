//! `decontaminate`: drop rows that contain a benchmark question.
//!
//! Benchmark files (Parquet, JSONL or JSON, mapped like inputs) are loaded when the stage is
//! built. A row's text hits an item when it contains one of the item's word n-grams (default
//! n = 12, on normalised text; an item shorter than n words must appear whole). Multimodal
//! benchmarks ask templated questions ("What is the area of the rectangle?") over different
//! figures, so by default (`images: match`) a hit on an item with images counts only when one of
//! the row's images is that item's image: the same bytes, or a perceptual hash within
//! `image_radius`. `images: any` also drops rows that reuse a benchmark image under any text;
//! `images: ignore` looks at text alone.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

use super::dedup::minhash::DedupText;
use super::{Measured, Stage, StageContext, Verdict};
use crate::error::{Error, Result};
use crate::image::{DEFAULT_THUMB_DISTANCE, Fingerprint, RadiusIndex, thumb_distance_within};
use crate::ingest::{self, ImageStore};
use crate::ingest::{ColumnMap, Format, Input, Layout};
use crate::schema::Trace;
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
}

impl DecontamConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.benchmarks.is_empty() {
            return Err("`benchmarks` is empty".into());
        }
        if self.ngram == 0 {
            return Err("ngram must be at least 1".into());
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
}

pub struct Decontaminate {
    cfg: DecontamConfig,
    items: Vec<Item>,
    /// n-gram hash -> items containing it.
    grams: HashMap<u64, Vec<u32>>,
    /// Items shorter than n words: whole-text hash -> items, and the lengths that occur.
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
                    if words.len() < n {
                        push_unique(self.short.entry(gram_hash(&words)).or_default(), k);
                        self.short_lens.insert(words.len());
                    } else {
                        for w in words.windows(n) {
                            push_unique(self.grams.entry(gram_hash(w)).or_default(), k);
                        }
                    }
                    self.items.push(Item { bench: b, origin: row.origin, has_images });
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Items whose n-grams (or whole short text) occur in the words, with the first matched
    /// n-gram's text.
    fn text_hits(&self, words: &[&str]) -> (BTreeSet<u32>, Option<String>) {
        let mut hits = BTreeSet::new();
        let mut first: Option<String> = None;
        let n = self.cfg.ngram;
        let mut look = |len: usize, table: &HashMap<u64, Vec<u32>>| {
            if words.len() < len {
                return;
            }
            for w in words.windows(len) {
                if let Some(items) = table.get(&gram_hash(w)) {
                    hits.extend(items.iter().copied());
                    first.get_or_insert_with(|| w.join(" "));
                }
            }
        };
        if !self.grams.is_empty() {
            look(n, &self.grams);
        }
        for &len in &self.short_lens {
            look(len, &self.short);
        }
        (hits, first)
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

    fn judge_measured(&self, _pos: u64, t: &Trace, ctx: &StageContext) -> Result<Measured> {
        let text: Vec<String> = self.cfg.fields.iter().map(|f| normalize_for_dedup(f.get(t))).collect();
        let joined = text.join(" ");
        let words: Vec<&str> = joined.split(' ').filter(|w| !w.is_empty()).collect();
        let (hits, gram) = self.text_hits(&words);
        let gram = gram.unwrap_or_default();
        let text_only = |k: &u32| !self.items[*k as usize].has_images;
        let verdict = match self.cfg.images {
            DecontamImages::Ignore => match hits.first() {
                Some(&k) => self.contaminated(k, format!("n-gram `{gram}`")),
                None => Verdict::Keep,
            },
            DecontamImages::Match | DecontamImages::Any => {
                if let Some(&k) = hits.iter().find(|k| text_only(k)) {
                    self.contaminated(k, format!("n-gram `{gram}`"))
                } else if hits.is_empty() && self.cfg.images == DecontamImages::Match {
                    Verdict::Keep
                } else {
                    // images are compared only when the text hit a multimodal item (or always,
                    // with `any`): perceptual hashes cost a decode
                    let imgs = self.image_hits(t, ctx.images, true);
                    let both = imgs.iter().find(|(k, _)| hits.contains(k));
                    match (both, imgs.first(), self.cfg.images) {
                        (Some(&(k, d)), _, _) => {
                            self.contaminated(k, format!("n-gram `{gram}` and its image (distance {d})"))
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
