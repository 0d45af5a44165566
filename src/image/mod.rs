//! Perceptual image hashes and an index that answers Hamming-radius queries.
//!
//! The perceptual hash of a [`Fingerprint`] is the DCT hash: the image in grey, resized to
//! 32x32, a 2-D DCT-II, and one bit per coefficient of the 8x8 lowest frequencies (DC excluded
//! from the median): set when the coefficient is above the median. Re-encoding, rescaling and
//! mild compression move few bits; different pictures differ in about half of them.
//!
//! Diagrams defeat a 64-bit hash alone: two clocks with different hands, or two rectangles
//! with different side labels, are within 2-4 bits, as close as a JPEG re-encoding of one of
//! them. So a match is confirmed on the 32x32 grey thumbnail the hash is computed from: one minus
//! the normalised cross-correlation of the thumbnails ([`thumb_distance`]) must stay under a
//! threshold ([`DEFAULT_THUMB_DISTANCE`]). A [`Fingerprint`] holds the hash and the thumbnail.
//! What stays out of reach at this resolution: tables or charts of one layout whose only
//! difference is a few small digits look the same.
//!
//! [`RadiusIndex`] is multi-index hashing (Norouzi et al.): a 64-bit hash is cut into `m`
//! chunks, and two hashes within Hamming distance `r` are within `r / m` (rounded down) of each
//! other on at least one chunk (pigeonhole). Each chunk has a hash table; a query looks up its
//! own chunks and their one-bit variants when `r / m = 1`, and checks the full distance of the
//! entries found. Chunks of 16 bits (`m = 4` up to radius 7) keep the buckets small at 100k
//! and more hashes; `radius + 1` chunks of 9 bits would put hundreds of entries in each.

mod decode;
mod hash;
mod radius;
mod resample;
#[cfg(test)]
mod tests;

pub use decode::{decode, decode_check, measure};
pub use hash::{
    DEFAULT_THUMB_DISTANCE, Fingerprint, fingerprint, fingerprint_of, thumb_distance, thumb_distance_within,
};
pub use radius::{RadiusIndex, chunks, distance};
pub use resample::THUMB_BYTES;
