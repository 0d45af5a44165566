//! `cotforge synth`: synthetic multimodal long-CoT corpora: rendered charts, tables, clocks,
//! shapes and figures, questions over them, long reasoning traces, planted labelled defects.
pub mod corpus;
pub mod font;
pub mod render;

pub mod text;
