//! `filter.image`: bounds on image sides, aspect ratio, pixels and images per row.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::Result;
use crate::schema::Trace;
use crate::stages::{Measured, Stage, StageContext, Verdict};

/// Parameters of `filter.image`; every bound is optional.
#[derive(Debug, Clone, Deserialize, JsonSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// Smallest allowed shorter side, pixels.
    pub min_side: Option<u32>,
    /// Largest allowed longer side, pixels.
    pub max_side: Option<u32>,
    /// Largest allowed ratio of longer to shorter side.
    pub max_aspect: Option<f64>,
    /// Largest allowed width x height.
    pub max_pixels: Option<u64>,
    /// Fewest images per row (e.g. 1 for multimodal-only sets).
    pub min_images: Option<usize>,
    /// Most images per row.
    pub max_images: Option<usize>,
}

impl ImageConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        if let (Some(a), Some(b)) = (self.min_side, self.max_side) {
            if a > b {
                return Err(format!("min_side ({a}) is greater than max_side ({b})"));
            }
        }
        if let (Some(a), Some(b)) = (self.min_images, self.max_images) {
            if a > b {
                return Err(format!("min_images ({a}) is greater than max_images ({b})"));
            }
        }
        if self.max_aspect.is_some_and(|a| a < 1.0) {
            return Err("max_aspect must be at least 1".into());
        }
        Ok(())
    }
}

pub struct Image {
    cfg: ImageConfig,
}

impl Image {
    pub fn new(cfg: ImageConfig) -> Self {
        Self { cfg }
    }
}

impl Stage for Image {
    fn name(&self) -> &'static str {
        "filter.image"
    }

    fn judge_measured(&self, _pos: u64, t: &Trace, _ctx: &StageContext) -> Result<Measured> {
        let c = &self.cfg;
        let n = t.images.len();
        let mut values = vec![("images", n as f64)];
        let verdict = (|| {
            if let Some(min) = c.min_images {
                if n < min {
                    return Verdict::drop("too_few_images", format!("{n} images < min_images {min}"));
                }
            }
            if let Some(max) = c.max_images {
                if n > max {
                    return Verdict::drop("too_many_images", format!("{n} images > max_images {max}"));
                }
            }
            for (k, i) in t.images.iter().enumerate() {
                let (short, long) = (i.width.min(i.height), i.width.max(i.height));
                let px = i.width as u64 * i.height as u64;
                let what = format!("image {k} ({}x{})", i.width, i.height);
                if c.min_side.is_some_and(|m| short < m) {
                    return Verdict::drop(
                        "image_too_small",
                        format!("{what}: shorter side < min_side {}", c.min_side.unwrap_or(0)),
                    );
                }
                if c.max_side.is_some_and(|m| long > m) {
                    return Verdict::drop(
                        "image_too_large",
                        format!("{what}: longer side > max_side {}", c.max_side.unwrap_or(0)),
                    );
                }
                if let Some(m) = c.max_aspect {
                    let aspect = long as f64 / short.max(1) as f64;
                    if aspect > m {
                        return Verdict::drop("extreme_aspect", format!("{what}: aspect {aspect:.2} > max_aspect {m}"));
                    }
                }
                if c.max_pixels.is_some_and(|m| px > m) {
                    return Verdict::drop(
                        "too_many_pixels",
                        format!("{what}: {px} pixels > max_pixels {}", c.max_pixels.unwrap_or(0)),
                    );
                }
            }
            Verdict::Keep
        })();
        for i in &t.images {
            values.push(("image_pixels", i.width as f64 * i.height as f64));
        }
        Ok(Measured { verdict, values })
    }
}
