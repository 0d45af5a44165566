//! `dedup.minhash`: near-duplicate removal with MinHash LSH, image-aware by default.
//!
//! Multimodal questions are templated ("How many squares are there in total?" over thousands of
//! different figures), so by default two rows are near-duplicates only when their texts are
//! near-duplicates AND their images match: the same content ids, or with `image_radius` set,
//! perceptual hashes within that Hamming radius, image by image. `images: ignore` compares text
//! alone.
//!
//! Index pass (map): every row's signature is computed in parallel and appended, in input order,
//! to files of its own input file under the stage's `index/` directory: signatures, band hashes,
//! ids (and shingle sets when `check: exact`). Only small per-row keys stay in memory.
//! Clustering (reduce) reads band files only, as many bands per pass as `memory_mb` allows:
//! rows sharing a band bucket (and image key) are candidates; a candidate joins a cluster when
//! it passes the check (estimated Jaccard from the signatures by default); clusters are
//! union-find sets whose root is the first row in input order, which is kept.

mod index;
use index::*;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};

use rayon::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::{Context, Result};
use crate::image::DEFAULT_THUMB_DISTANCE;
use crate::schema::Trace;
use crate::stages::{IndexContext, Measured, Stage, StageContext, Verdict};
use crate::text::minhash::{MinHasher, ShingleKind, optimal_bands};

/// Text a near-duplicate check looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DedupText {
    Prompt,
    /// The text inside `<think>...</think>` (the whole response when there is no block).
    Reasoning,
    Response,
}

impl DedupText {
    pub fn get<'a>(&self, t: &'a Trace) -> &'a str {
        match self {
            DedupText::Prompt => &t.prompt,
            DedupText::Response => &t.response,
            DedupText::Reasoning => {
                let r = t.response.as_str();
                let start = r.find("<think>").map(|i| i + "<think>".len()).unwrap_or(0);
                let end = r[start..].find("</think>").map(|i| start + i).unwrap_or(r.len());
                &r[start..end]
            }
        }
    }
    fn name(&self) -> &'static str {
        match self {
            DedupText::Prompt => "prompt",
            DedupText::Reasoning => "reasoning",
            DedupText::Response => "response",
        }
    }
}

/// Whether images take part in the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum ImageMatch {
    /// Near-duplicate text AND matching images (default).
    #[default]
    Match,
    /// Text alone.
    Ignore,
}

/// How a candidate pair is confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum PairCheck {
    /// Estimated Jaccard (share of equal signature positions) at least `threshold` (default).
    #[default]
    Signature,
    /// Exact Jaccard of the shingle sets (kept on disk during the stage) at least `threshold`.
    Exact,
    /// Every LSH candidate is a duplicate.
    None,
}

/// Weight of the false-positive area when choosing bands (see [`optimal_bands`]).
pub const BANDING_FP_WEIGHT: f64 = 0.1;

fn default_fields() -> Vec<DedupText> {
    vec![DedupText::Prompt]
}
fn default_num_perm() -> usize {
    128
}
fn default_threshold() -> f64 {
    0.8
}
fn default_true() -> bool {
    true
}
fn default_thumb() -> f64 {
    DEFAULT_THUMB_DISTANCE
}
fn default_memory_mb() -> usize {
    1024
}

/// Parameters of `dedup.minhash`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MinhashConfig {
    /// Texts compared, joined: `prompt` (default), `reasoning`, `response`.
    #[serde(default = "default_fields")]
    pub fields: Vec<DedupText>,
    /// Shingle unit: `chars` (default, for short prompts) or `words`.
    #[serde(default)]
    pub shingle: ShingleKind,
    /// Shingle length in characters or words. Default 5.
    pub ngram: Option<usize>,
    /// Permutations per signature. Default 128.
    #[serde(default = "default_num_perm")]
    pub num_perm: usize,
    /// LSH bands; with `rows`, bands x rows <= num_perm. Default: the pair minimising false
    /// negatives (weight 0.9) plus false positives (0.1) around `threshold`, 14 x 9 for 0.8 and
    /// 128: candidates are confirmed afterwards, so recall is what the banding must give.
    pub bands: Option<usize>,
    /// Rows (signature positions) per band.
    pub rows: Option<usize>,
    /// Jaccard similarity from which two texts are near-duplicates. Default 0.8.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// `match` (default): images must match too; `ignore`: text alone.
    #[serde(default)]
    pub images: ImageMatch,
    /// With `images: match`: compare perceptual hashes within this Hamming radius (confirmed on
    /// thumbnails, see `dedup.image`) instead of content ids; decodes every image once.
    pub image_radius: Option<u32>,
    /// Largest thumbnail distance of an image match with `image_radius`. Default 0.005.
    #[serde(default = "default_thumb")]
    pub max_thumb_distance: f64,
    /// Near-duplicates must contain the same numbers in the same order (default true):
    /// "the clock 20 minutes later" and "35 minutes later" are different problems however
    /// similar the wording.
    #[serde(default = "default_true")]
    pub same_numbers: bool,
    /// How candidates are confirmed: `signature` (default), `exact`, `none`.
    #[serde(default)]
    pub check: PairCheck,
    /// Seed of the permutations. Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Memory for band buckets during clustering, MiB; bands are clustered in several passes
    /// over the on-disk band files when they do not fit. Default 1024.
    #[serde(default = "default_memory_mb")]
    pub memory_mb: usize,
}

impl MinhashConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        if !(1..=1024).contains(&self.num_perm) {
            return Err(format!("num_perm must be in 1..=1024, got {}", self.num_perm));
        }
        match (self.bands, self.rows) {
            (Some(b), Some(r)) if b == 0 || r == 0 || b * r > self.num_perm => {
                return Err(format!("bands x rows ({b} x {r}) must be between 1 and num_perm ({})", self.num_perm));
            }
            (Some(_), None) | (None, Some(_)) => return Err("give both `bands` and `rows`, or neither".into()),
            _ => {}
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(format!("threshold must be in (0, 1], got {}", self.threshold));
        }
        if self.ngram == Some(0) {
            return Err("ngram must be at least 1".into());
        }
        if self.fields.is_empty() {
            return Err("`fields` is empty".into());
        }
        if self.image_radius.is_some_and(|r| r > 32) {
            return Err("image_radius must be at most 32 (of 64 bits)".into());
        }
        if self.image_radius.is_some() && self.images == ImageMatch::Ignore {
            return Err("image_radius needs `images: match`".into());
        }
        if self.memory_mb == 0 {
            return Err("memory_mb must be at least 1".into());
        }
        Ok(())
    }

    /// Bands and rows in use.
    pub fn banding(&self) -> (usize, usize) {
        match (self.bands, self.rows) {
            (Some(b), Some(r)) => (b, r),
            _ => optimal_bands(self.threshold, self.num_perm, BANDING_FP_WEIGHT),
        }
    }
}

pub struct Minhash {
    cfg: MinhashConfig,
    hasher: MinHasher,
    bands: usize,
    rows_per_band: usize,
    ngram: usize,
    /// Chunks of the first image's perceptual hash that key buckets (`image_radius`).
    image_chunks: Vec<(u32, u64)>,
    parts: Vec<Part>,
    /// Each part's signature and shingle files, opened once for clustering.
    readers: Vec<(File, Option<File>)>,
    current_file: Option<String>,
    writers: Option<PartWriters>,
    images: Vec<ImageKey>,
    /// Hash of each row's numbers (0: none, or `same_numbers: false`).
    numbers: Vec<u64>,
    /// Rows with no shingles are never candidates.
    empty: Vec<bool>,
    /// Offsets of each row's shingle set in its part's shingle file (check: exact).
    shingle_offsets: Vec<u64>,
    /// Where the next shingle set goes in the current part's shingle file.
    shingle_write_off: u64,
    total: u64,
    /// Dropped rows: position -> (kept position, similarity).
    dropped: HashMap<u64, (u64, f32)>,
    kept_ids: HashMap<u64, String>,
    /// Split runs with `image_radius`: each row's image ids (map), or the rows whose
    /// fingerprints the reduce still has to look up, by position.
    image_ids: Vec<Vec<String>>,
    unresolved: Vec<(u64, Vec<String>)>,
}

impl Stage for Minhash {
    fn name(&self) -> &'static str {
        "dedup.minhash"
    }

    fn needs_index(&self) -> bool {
        true
    }

    fn index(&mut self, first: u64, batch: &[Trace], ctx: &IndexContext) -> Result<()> {
        let rows: Vec<Row> = batch.par_iter().map(|t| self.compute(t, ctx.images)).collect();
        for (k, (t, row)) in batch.iter().zip(rows).enumerate() {
            let file = origin_file(&t.origin);
            if self.current_file.as_deref() != Some(file) {
                self.open_part(ctx.dir, first + k as u64)?;
                self.current_file = Some(file.to_string());
            }
            let io = |e| crate::Error::io("writing minhash signatures", e);
            let w =
                self.writers.as_mut().ok_or_else(|| crate::Error::Run("internal: no signature part open".into()))?;
            for v in &row.sig {
                w.sig.write_all(&v.to_le_bytes()).map_err(io)?;
            }
            for v in &row.bands {
                w.bands.write_all(&v.to_le_bytes()).map_err(io)?;
            }
            writeln!(w.ids, "{}", t.id).map_err(io)?;
            if let Some(s) = &mut w.shingles {
                let mut set = row.shingles;
                set.sort_unstable();
                set.dedup();
                s.write_all(&(set.len() as u32).to_le_bytes()).map_err(io)?;
                for v in &set {
                    s.write_all(&v.to_le_bytes()).map_err(io)?;
                }
                self.shingle_offsets.push(self.shingle_write_off);
                self.shingle_write_off += 4 + set.len() as u64 * 8;
            }
            self.empty.push(row.sig.iter().all(|&v| v == u32::MAX));
            if ctx.partial && matches!(row.image, ImageKey::Prints(_)) {
                self.image_ids.push(t.images.iter().map(|i| i.id.clone()).collect());
            }
            self.images.push(row.image);
            self.numbers.push(row.numbers);
            if let Some(p) = self.parts.last_mut() {
                p.rows += 1;
            }
            self.total += 1;
        }
        Ok(())
    }

    fn finish_index(&mut self, ctx: &IndexContext) -> Result<()> {
        self.close_part()?;
        for (pos, ids) in std::mem::take(&mut self.unresolved) {
            self.images[pos as usize] = Self::prints_of(&ids, ctx.images);
        }
        self.open_readers()?;
        let mut uf = self.cluster()?;
        let mut cache = SigCache::default();
        let mut need: HashMap<u64, ()> = HashMap::new();
        for pos in 0..self.total {
            let root = uf.find(pos as u32) as u64;
            if root != pos {
                let sim = self.similarity(pos, root, &mut cache)? as f32;
                self.dropped.insert(pos, (root, sim));
                need.insert(root, ());
            }
        }
        for part in &self.parts {
            let r = BufReader::new(File::open(&part.ids).ctx(|| format!("opening {}", part.ids.display()))?);
            for (local, line) in r.lines().enumerate() {
                let pos = part.first + local as u64;
                let line = line.ctx(|| format!("reading {}", part.ids.display()))?;
                if need.contains_key(&pos) {
                    self.kept_ids.insert(pos, line);
                }
            }
        }
        Ok(())
    }

    fn save_partial(&mut self) -> Result<Vec<u8>> {
        self.close_part()?;
        let mut ids = self.image_ids.iter();
        let images = self
            .images
            .iter()
            .map(|k| match k {
                ImageKey::Ignored => SavedImage::Ignored,
                ImageKey::Ids(h) => SavedImage::Ids(*h),
                ImageKey::Prints(_) => SavedImage::Prints(ids.next().cloned().unwrap_or_default()),
            })
            .collect();
        let p = MinhashPartial {
            parts: self
                .parts
                .iter()
                .map(|p| (p.first, p.rows, p.sig.clone(), p.bands.clone(), p.ids.clone(), p.shingles.clone()))
                .collect(),
            images,
            numbers: self.numbers.clone(),
            empty: self.empty.clone(),
            shingle_offsets: self.shingle_offsets.clone(),
            total: self.total,
        };
        crate::stages::encode_state(self.name(), &p)
    }

    fn load_partial(&mut self, bytes: &[u8]) -> Result<()> {
        let p: MinhashPartial = crate::stages::decode_state(self.name(), bytes)?;
        let base = self.images.len() as u64;
        if p.parts.first().is_some_and(|f| f.0 != base) {
            return Err(crate::Error::Run(format!(
                "dedup.minhash: a map output starts at row {} but {base} rows came before",
                p.parts[0].0
            )));
        }
        self.parts.extend(p.parts.into_iter().map(|(first, rows, sig, bands, ids, shingles)| Part {
            first,
            rows,
            sig,
            bands,
            ids,
            shingles,
        }));
        for (k, img) in p.images.into_iter().enumerate() {
            self.images.push(match img {
                SavedImage::Ignored => ImageKey::Ignored,
                SavedImage::Ids(h) => ImageKey::Ids(h),
                SavedImage::Prints(ids) => {
                    self.unresolved.push((base + k as u64, ids));
                    ImageKey::Prints(Vec::new())
                }
            });
        }
        self.numbers.extend(p.numbers);
        self.empty.extend(p.empty);
        self.shingle_offsets.extend(p.shingle_offsets);
        self.total += p.total;
        Ok(())
    }

    fn save_decisions(&mut self) -> Result<Vec<u8>> {
        let mut dropped: Vec<(u64, u64, f32)> = self.dropped.iter().map(|(&p, &(r, s))| (p, r, s)).collect();
        dropped.sort_unstable_by_key(|d| d.0);
        let mut kept: Vec<(u64, &str)> = self.kept_ids.iter().map(|(&p, id)| (p, id.as_str())).collect();
        kept.sort_unstable();
        crate::stages::encode_state(self.name(), &(dropped, kept))
    }

    fn load_decisions(&mut self, bytes: &[u8]) -> Result<()> {
        let (dropped, kept): (Vec<(u64, u64, f32)>, Vec<(u64, String)>) =
            crate::stages::decode_state(self.name(), bytes)?;
        self.dropped = dropped.into_iter().map(|(p, r, s)| (p, (r, s))).collect();
        self.kept_ids = kept.into_iter().collect();
        Ok(())
    }

    fn judge_measured(&self, pos: u64, _t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let Some(&(root, sim)) = self.dropped.get(&pos) else { return Ok(Measured::only(Verdict::Keep)) };
        let kept = self.kept_ids.get(&root).cloned().unwrap_or_default();
        let what = self.cfg.fields.iter().map(|f| f.name()).collect::<Vec<_>>().join("+");
        let how = if self.cfg.check == PairCheck::Exact { "Jaccard" } else { "estimated Jaccard" };
        let images = match (self.cfg.images, self.cfg.image_radius) {
            (ImageMatch::Ignore, _) => String::new(),
            (ImageMatch::Match, None) => ", same images".into(),
            (ImageMatch::Match, Some(r)) => format!(", images within {r} bits"),
        };
        Ok(Measured {
            verdict: Verdict::Drop {
                reason: "near_duplicate",
                detail: format!("{how} {sim:.3} of {what} with {kept}{images}"),
                kept_id: Some(kept),
            },
            values: vec![("jaccard", sim as f64)],
        })
    }
}
