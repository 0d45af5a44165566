//! `dedup.image`: rows whose images repeat an earlier kept row's images, by perceptual hash
//! within a Hamming radius, confirmed on the grey thumbnails (re-encoded, rescaled or
//! recompressed copies included; see [`crate::imagehash`]).
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

use super::{IndexContext, Measured, Stage, StageContext, Verdict};
use crate::error::Result;
use crate::imagehash::{DEFAULT_THUMB_DISTANCE, Fingerprint, RadiusIndex, thumb_distance};
use std::sync::Arc;
use crate::schema::Trace;
use crate::text::minhash::normalize_for_dedup;

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
}

impl ImageDedupConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.radius > 32 {
            return Err(format!("radius must be at most 32 (of 64 bits), got {}", self.radius));
        }
        if !(0.0..=2.0).contains(&self.max_thumb_distance) {
            return Err(format!("max_thumb_distance must be in [0, 2], got {}", self.max_thumb_distance));
        }
        Ok(())
    }
}

pub struct ImageDedup {
    cfg: ImageDedupConfig,
    /// Kept rows' images: payload is the kept row (index into `kept`) and the image.
    index: RadiusIndex<(u32, Arc<Fingerprint>)>,
    kept: Vec<String>,
    /// Dropped rows: position -> (index into `kept`, largest distance).
    dropped: HashMap<u64, (u32, u32)>,
}

impl ImageDedup {
    pub fn new(cfg: ImageDedupConfig) -> Self {
        Self { index: RadiusIndex::new(cfg.radius), cfg, kept: Vec::new(), dropped: HashMap::new() }
    }

    /// The hash and its namespace in the index: the prompt's hash in mode `image_prompt`, so
    /// rows with different prompts never meet.
    fn namespaced(&self, phash: u64, prompt: u64) -> (u64, u64) {
        match self.cfg.on {
            ImageDedupOn::Image => (phash, 0),
            ImageDedupOn::ImagePrompt => (phash, prompt),
        }
    }
}

impl Stage for ImageDedup {
    fn name(&self) -> &'static str {
        "dedup.image"
    }

    fn needs_index(&self) -> bool {
        true
    }

    fn index(&mut self, first: u64, batch: &[Trace], ctx: &IndexContext) -> Result<()> {
        // perceptual hashes in parallel (decoding is the cost), decisions in input order
        let keys: Vec<(Vec<Option<Arc<Fingerprint>>>, u64)> = batch
            .par_iter()
            .map(|t| {
                let prompt = match self.cfg.on {
                    ImageDedupOn::Image => 0,
                    ImageDedupOn::ImagePrompt => xxh3_64(normalize_for_dedup(&t.prompt).as_bytes()),
                };
                (t.images.iter().map(|i| ctx.images.fingerprint(&i.id)).collect(), prompt)
            })
            .collect();
        for (k, (t, (hashes, prompt))) in batch.iter().zip(keys).enumerate() {
            let prints: Vec<Arc<Fingerprint>> = hashes.into_iter().flatten().collect();
            if prints.is_empty() {
                continue; // nothing to compare (no images, or none decodes)
            }
            let mut matched: Option<(u32, u32)> = None;
            let max_thumb = self.cfg.max_thumb_distance;
            for fp in &prints {
                let (h, ns) = self.namespaced(fp.hash, prompt);
                match self.index.first_within_ns(h, ns, |(_, kept)| thumb_distance(kept, fp) <= max_thumb) {
                    Some((&(row, _), d)) => {
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
                    self.dropped.insert(first + k as u64, m);
                }
                None => {
                    let row = self.kept.len() as u32;
                    self.kept.push(t.id.clone());
                    for fp in prints {
                        let (h, ns) = self.namespaced(fp.hash, prompt);
                        self.index.insert_ns(h, ns, (row, fp));
                    }
                }
            }
        }
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
