//! Deduplication stages, one file per spec name: `dedup.exact` (normalised fields),
//! `dedup.minhash` (near-duplicate text by MinHash LSH, image-aware) and `dedup.image`
//! (perceptual image hashes within a radius). Each keeps the first row of a group in input
//! order and ledgers the others with the id that was kept.

pub mod exact;
pub mod image;
pub mod minhash;

pub use exact::{ExactConfig, KeyField, key};
