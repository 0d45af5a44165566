//! `dedup.image`: rows whose images repeat an earlier kept row's images, by perceptual hash
//! within a Hamming radius, confirmed on the grey thumbnails (re-encoded, rescaled or
//! recompressed copies included; see [`crate::image`]).
//!
//! `on: image` drops a row when every one of its images is within the radius of an image of
//! an earlier kept row; `on: image_prompt` also requires the same normalised prompt, so the same
//! figure asked about in different ways stays. Rows are decided in input order against a
//! multi-index hash of the kept rows' images, so the first row is kept and results do not depend
//! on batch boundaries or threads.

use std::collections::HashMap;

use rayon::prelude::*;
use schemars::JsonSchema;
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::error::Result;
use crate::image::{DEFAULT_THUMB_DISTANCE, Fingerprint, RadiusIndex, thumb_distance_within};
use crate::schema::Trace;
use crate::stages::{IndexContext, Measured, Stage, StageContext, Verdict};
use crate::text::minhash::normalize_for_dedup;
use std::sync::Arc;

/// What must repeat for a row to be a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum ImageDedupOn {
    /// The images alone (default).
    #[default]
    Image,
    /// The images and the normalised prompt text.
    ImagePrompt,
}

fn default_radius() -> u32 {
    6
}
fn default_thumb() -> f64 {
    DEFAULT_THUMB_DISTANCE
}
fn default_chunk_rows() -> usize {
    4096
}

/// Parameters of `dedup.image`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageDedupConfig {
    /// Hamming radius of the 64-bit perceptual hash. Default 6.
    #[serde(default = "default_radius")]
    pub radius: u32,
    /// Largest thumbnail distance (one minus the correlation of 32x32 grey thumbnails) of a
    /// match. Default 0.005.
    #[serde(default = "default_thumb")]
    pub max_thumb_distance: f64,
    /// `image` (default) or `image_prompt`.
    #[serde(default)]
    pub on: ImageDedupOn,
    /// Rows whose images are decoded together (in parallel, overlapping the decisions on the
    /// chunk before). Results do not depend on it. Default 4096.
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: usize,
}

impl ImageDedupConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.radius > 32 {
            return Err(format!("radius must be at most 32 (of 64 bits), got {}", self.radius));
        }
        if self.chunk_rows == 0 {
            return Err("chunk_rows must be at least 1".into());
        }
        if !(0.0..=2.0).contains(&self.max_thumb_distance) {
            return Err(format!("max_thumb_distance must be in [0, 2], got {}", self.max_thumb_distance));
        }
        Ok(())
    }
}

/// Per row of a chunk, the fingerprints of its images.
type RowPrints = Vec<Vec<Arc<Fingerprint>>>;

/// A row waiting in the current chunk: position, id, image ids, prompt key.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    pos: u64,
    id: String,
    images: Vec<String>,
    prompt: u64,
}

pub struct ImageDedup {
    cfg: ImageDedupConfig,
    /// Kept rows' images: payload is the kept row (index into `kept`) and the image.
    index: RadiusIndex<(u32, Arc<Fingerprint>)>,
    kept: Vec<String>,
    /// Dropped rows: position -> (index into `kept`, largest distance).
    dropped: HashMap<u64, (u32, u32)>,
    pending: Vec<Pending>,
    /// The previous chunk, its images decoded, waiting to be decided.
    fingerprinted: Option<(Vec<Pending>, RowPrints)>,
}

impl ImageDedup {
    pub fn new(cfg: ImageDedupConfig) -> Self {
        Self {
            index: RadiusIndex::new(cfg.radius),
            cfg,
            kept: Vec::new(),
            dropped: HashMap::new(),
            pending: Vec::new(),
            fingerprinted: None,
        }
    }

    /// The hash and its namespace in the index: the prompt's hash in mode `image_prompt`, so
    /// rows with different prompts never meet.
    fn namespaced(&self, phash: u64, prompt: u64) -> (u64, u64) {
        match self.cfg.on {
            ImageDedupOn::Image => (phash, 0),
            ImageDedupOn::ImagePrompt => (phash, prompt),
        }
    }

    /// Queue a batch's rows for the next chunk.
    fn gather(&mut self, first: u64, batch: &[Trace]) {
        for (k, t) in batch.iter().enumerate() {
            let prompt = match self.cfg.on {
                ImageDedupOn::Image => 0,
                ImageDedupOn::ImagePrompt => xxh3_64(normalize_for_dedup(&t.prompt).as_bytes()),
            };
            let images = t.images.iter().map(|i| i.id.clone()).collect();
            self.pending.push(Pending { pos: first + k as u64, id: t.id.clone(), images, prompt });
        }
    }

    /// Decide a chunk of rows whose fingerprints are known, in input order, exactly as one row
    /// at a time against the index would. Each image's first match among rows kept before
    /// the chunk is looked up in parallel; the one sequential step looks only at a small index
    /// of rows kept inside the chunk, which an earlier kept row always precedes. Kept rows go
    /// into the index as they are decided: the lookups before the chunk are already done.
    fn decide(&mut self, chunk: Vec<Pending>, prints: RowPrints) {
        let max_thumb = self.cfg.max_thumb_distance;
        let this = &*self;
        // per row: its images' fingerprints, each with its first match before the chunk
        type Looked = Vec<(Arc<Fingerprint>, Option<(u32, u32)>)>;
        let looked: Vec<Looked> = chunk
            .par_iter()
            .zip(prints)
            .map(|(p, fps)| {
                fps.into_iter()
                    .map(|fp| {
                        let (h, ns) = this.namespaced(fp.hash, p.prompt);
                        let before = this
                            .index
                            .first_within_ns(h, ns, |(_, kept)| thumb_distance_within(kept, &fp, max_thumb))
                            .map(|(&(row, _), d)| (row, d));
                        (fp, before)
                    })
                    .collect()
            })
            .collect();
        let mut local: RadiusIndex<(u32, Arc<Fingerprint>)> = RadiusIndex::new(self.cfg.radius);
        for (p, prints) in chunk.into_iter().zip(looked) {
            if prints.is_empty() {
                continue; // nothing to compare (no images, or none decodes)
            }
            // a row is a duplicate when every image matches an image of an earlier kept row
            let mut matched: Option<(u32, u32)> = None;
            for (fp, before) in &prints {
                let (h, ns) = self.namespaced(fp.hash, p.prompt);
                let hit = before.or_else(|| {
                    local
                        .first_within_ns(h, ns, |(_, kept)| thumb_distance_within(kept, fp, max_thumb))
                        .map(|(&(row, _), d)| (row, d))
                });
                match hit {
                    Some((row, d)) => {
                        let (first_row, worst) = matched.unwrap_or((row, 0));
                        matched = Some((first_row, worst.max(d)));
                    }
                    None => {
                        matched = None;
                        break;
                    }
                }
            }
            match matched {
                Some(m) => {
                    self.dropped.insert(p.pos, m);
                }
                None => {
                    let row = self.kept.len() as u32;
                    self.kept.push(p.id);
                    for (fp, _) in prints {
                        let (h, ns) = self.namespaced(fp.hash, p.prompt);
                        local.insert_ns(h, ns, (row, fp.clone()));
                        self.index.insert_ns(h, ns, (row, fp));
                    }
                }
            }
        }
    }
}

/// The fingerprints of a chunk's images, per row (missing and undecodable images left out),
/// decoded in parallel.
fn fingerprints(chunk: &[Pending], ctx: &IndexContext) -> RowPrints {
    chunk.par_iter().map(|p| p.images.iter().filter_map(|id| ctx.images.fingerprint(id)).collect()).collect()
}

impl Stage for ImageDedup {
    fn name(&self) -> &'static str {
        "dedup.image"
    }

    fn needs_index(&self) -> bool {
        true
    }

    fn index_columns(&self) -> Option<Vec<&'static str>> {
        match self.cfg.on {
            ImageDedupOn::Image => Some(vec!["id", "image_ids"]),
            ImageDedupOn::ImagePrompt => Some(vec!["id", "prompt", "image_ids"]),
        }
    }

    fn index(&mut self, first: u64, batch: &[Trace], ctx: &IndexContext) -> Result<()> {
        self.gather(first, batch);
        if ctx.partial {
            // map step: decode this task's images into the store's fingerprint logs, where
            // the reduce finds them; the decisions need every earlier row and wait for it
            batch.par_iter().flat_map(|t| &t.images).for_each(|i| {
                ctx.images.fingerprint(&i.id);
            });
            return Ok(());
        }
        if self.pending.len() >= self.cfg.chunk_rows {
            // decode the new chunk's images while the previous chunk is decided
            let chunk = std::mem::take(&mut self.pending);
            let previous = self.fingerprinted.take();
            let (prints, ()) = rayon::join(
                || fingerprints(&chunk, ctx),
                || {
                    if let Some((c, p)) = previous {
                        self.decide(c, p)
                    }
                },
            );
            self.fingerprinted = Some((chunk, prints));
        }
        Ok(())
    }

    fn finish_index(&mut self, ctx: &IndexContext) -> Result<()> {
        if let Some((c, p)) = self.fingerprinted.take() {
            self.decide(c, p);
        }
        // what is left (in a reduce: every row of the run), a chunk at a time
        let mut rest = std::mem::take(&mut self.pending).into_iter();
        loop {
            let chunk: Vec<Pending> = rest.by_ref().take(self.cfg.chunk_rows).collect();
            if chunk.is_empty() {
                break;
            }
            let prints = fingerprints(&chunk, ctx);
            self.decide(chunk, prints);
        }
        Ok(())
    }

    fn save_partial(&mut self) -> Result<Vec<u8>> {
        crate::stages::encode_state(self.name(), &self.pending)
    }

    fn load_partial(&mut self, bytes: &[u8]) -> Result<()> {
        let rows: Vec<Pending> = crate::stages::decode_state(self.name(), bytes)?;
        self.pending.extend(rows);
        Ok(())
    }

    fn save_decisions(&mut self) -> Result<Vec<u8>> {
        let mut dropped: Vec<(u64, u32, u32)> = self.dropped.iter().map(|(&p, &(r, d))| (p, r, d)).collect();
        dropped.sort_unstable();
        crate::stages::encode_state(self.name(), &(&self.kept, dropped))
    }

    fn load_decisions(&mut self, bytes: &[u8]) -> Result<()> {
        let (kept, dropped): (Vec<String>, Vec<(u64, u32, u32)>) = crate::stages::decode_state(self.name(), bytes)?;
        self.kept = kept;
        self.dropped = dropped.into_iter().map(|(p, r, d)| (p, (r, d))).collect();
        Ok(())
    }

    fn judge_measured(&self, pos: u64, _t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let Some(&(row, d)) = self.dropped.get(&pos) else { return Ok(Measured::only(Verdict::Keep)) };
        let kept = self.kept[row as usize].clone();
        let what = match self.cfg.on {
            ImageDedupOn::Image => "images",
            ImageDedupOn::ImagePrompt => "images and prompt",
        };
        Ok(Measured {
            verdict: Verdict::Drop {
                reason: "duplicate_image",
                detail: format!("{what} repeat {kept} (perceptual hash distance {d} <= {})", self.cfg.radius),
                kept_id: Some(kept),
            },
            values: vec![("image_distance", d as f64)],
        })
    }
}
