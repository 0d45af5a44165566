//! Packing tokenized samples into fixed-length training sequences.

pub mod bfd;
