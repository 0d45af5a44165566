//! Row-local filters, one file per spec name: `filter.length`, `filter.format`,
//! `filter.truncated`, `filter.repetition`, `filter.image`, `filter.correct`,
//! `filter.language` and `filter.pass_rate`. Each drop names the reason and the measured value
//! in the ledger detail.

pub mod correct;
pub mod format;
pub mod image;
pub mod language;
pub mod length;
pub mod pass_rate;
pub mod repetition;
pub mod truncated;

pub use correct::{Correct, CorrectConfig, MissingReference};
pub use format::{Format, FormatConfig};
pub use image::{Image, ImageConfig};
pub use truncated::{Truncated, TruncatedConfig};

/// Default opening tag of the reasoning.
pub(crate) fn default_open() -> String {
    "<think>".into()
}
/// Default closing tag of the reasoning.
pub(crate) fn default_close() -> String {
    "</think>".into()
}
