//! The one integration-test binary; a module per area.

mod common;

mod bad_inputs;
mod chat;
mod dedup;
mod filters;
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
