//! cotforge: curate multimodal long chain-of-thought traces into packed training shards, and
//! train Qwen-family vision-language models on them.
//!
//! The data path, one way through the crate:
//!
//! ```text
//! raw Parquet / JSONL / JSON / Arrow rows
//!   -> ingest      columns mapped by layout, images into the content-addressed store
//!   -> Trace       the canonical row (schema), ids from content
//!   -> stages      filters, dedup, decontamination, score, tokenize, bucket, mix, pack,
//!                  chosen and ordered by a YAML spec; every dropped row to the ledger
//!   -> curated Parquet and packed shards (with manifest.json), run by the pipeline
//!      executor in one process or as tasks of a split run
//!   -> trainer     SFT on the shards, GRPO on the curated prompts with the verifier's reward
//! ```
//!
//! The top-level modules are layers, declared below in order from the bottom up. A module
//! imports only from modules declared before it, so no import cycle forms; the `layering`
//! integration test reads this file and every `crate::` path in `src/` and holds the code to
//! it.
//!
//! 1. [`error`], [`rng`], [`progress`], [`io`]: errors, seeded randomness, progress bars and
//!    peak memory, atomic files and Parquet parts (with the Hugging Face `datasets` features).
//! 2. [`text`], [`image`], [`verify`]: text measures and MinHash, image decoding, resampling,
//!    perceptual hashes and the radius index, the answer verifier.
//! 3. [`schema`]: the data model (trace and ledger columns).
//! 4. [`store`]: the image store and its fingerprint logs.
//! 5. [`ingest`]: inputs, layouts, values, raw row to trace.
//! 6. [`model`], [`tokenize`], [`rollout`]: the candle Qwen2/Qwen2.5-VL model with generation,
//!    presets and side files; chat templates, encoding and stop tokens; prompts from traces,
//!    generation and judging, shared by `score`, `eval` and GRPO.
//! 7. [`stages`], [`spec`]: one file per spec stage name, and the spec that orders them.
//! 8. [`shards`]: the best-fit-decreasing packer, the shard writer and reader, the manifest.
//! 9. [`pipeline`]: the run directory, the segment engine, statistics, one-process and split
//!    runs, scheduler plans.
//! 10. [`train`]: the trainer core, SFT, GRPO, optimizer, checkpoints, evaluation.
//! 11. [`synth`], [`report`], [`export`], [`inspect`], [`repro`]: synthetic corpora, the run
//!     report, public layouts, inspection, and repro-mini.
//! 12. [`cli`]: the command line; `main.rs` only parses and dispatches.

pub mod error;
pub mod rng;
pub mod progress;
pub mod io;
pub mod text;
pub mod image;
pub mod verify;
pub mod schema;
pub mod store;
pub mod ingest;
pub mod model;
pub mod tokenize;
pub mod rollout;
pub mod stages;
pub mod spec;
pub mod shards;
pub mod pipeline;
pub mod train;
pub mod synth;
pub mod report;
pub mod export;
pub mod inspect;
pub mod repro;
pub mod cli;

pub use error::{Error, Result};
