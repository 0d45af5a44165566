//! Packing tokenized samples into fixed-length training sequences.

pub mod bench;
pub mod bfd;
pub mod encode;
pub mod template;
pub mod train_tokenizer;
