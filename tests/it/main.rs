//! The one integration-test binary; a module per area.

// `&[x.clone()]` builds one-element inputs in the model checks; `from_ref` would not read better.
#![allow(clippy::cloned_ref_to_slice_refs)]

mod common;

mod bad_inputs;
mod chat;
mod dedup;
mod filters;
mod layering;
mod learn;
mod ingest_layouts;
mod model;
mod packing;
mod pipeline;
mod report;
mod rl;
mod schemas;
mod score;
mod split;
mod synth;
mod train;
mod tokens;
mod units;
mod verify;
