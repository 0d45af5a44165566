//! Stages, named as the spec names them: `filter/` (one file per `filter.*`), `dedup/` (one
//! per `dedup.*`), `validate`, `decontaminate`, `score`, `tokenize`, `bucket`, `mix` and
//! `pack`, all behind the [`Stage`] trait ([`sample`] is the seeded sampling `bucket` and `mix`
//! share).
//!
//! A stage judges rows: keep, or drop with a reason (and for duplicates the id that was kept).
//! Row-local stages judge each row on its own and run in parallel. Global stages
//! (`needs_index`) first see every row once in input order through [`Stage::index`], building a
//! compact index (hashes, never whole rows); the executor then asks them to judge row by row.

pub mod bucket;
pub mod decontaminate;
pub mod dedup;
pub mod filter;
pub mod mix;
pub mod pack;
pub mod sample;
pub mod score;
pub mod tokenize;
pub mod validate;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::Result;
use crate::ingest::ImageStore;
use crate::schema::Trace;

/// A stage entry of the spec: `- name: {params}`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub enum StageSpec {
    /// Decode every image; drop rows with empty prompt/response or missing/corrupt images.
    #[serde(rename = "validate")]
    Validate(validate::ValidateConfig),
    /// Drop rows whose field is shorter or longer than the bounds (characters and words).
    #[serde(rename = "filter.length")]
    FilterLength(filter::length::LengthConfig),
    /// Drop exact duplicates of normalised fields, keeping the first in input order.
    #[serde(rename = "dedup.exact")]
    DedupExact(dedup::exact::ExactConfig),
    /// Require the `<think>...</think>` shape: one pair, non-empty reasoning, a final answer after it.
    #[serde(rename = "filter.format")]
    FilterFormat(filter::FormatConfig),
    /// Drop traces whose reasoning is not closed or that have no extractable final answer.
    #[serde(rename = "filter.truncated")]
    FilterTruncated(filter::TruncatedConfig),
    /// Drop looping traces (a W-word passage repeated K times) and, optionally, traces over
    /// Gopher-style duplicate line / paragraph / top n-gram ratios.
    #[serde(rename = "filter.repetition")]
    FilterRepetition(filter::repetition::RepetitionConfig),
    /// Drop near-duplicates by MinHash LSH on prompt (or reasoning) text, by default only when
    /// their images match too; keeps the first row of each cluster in input order.
    #[serde(rename = "dedup.minhash")]
    DedupMinhash(dedup::minhash::MinhashConfig),
    /// Drop rows whose images repeat an earlier kept row's (perceptual hash within a radius),
    /// optionally only with the same prompt.
    #[serde(rename = "dedup.image")]
    DedupImage(dedup::image::ImageDedupConfig),
    /// Drop rows containing a benchmark question (word n-grams), with its image when the
    /// benchmark item has one.
    #[serde(rename = "decontaminate")]
    Decontaminate(decontaminate::DecontamConfig),
    /// Bounds on image sides, aspect ratio, pixels and images per row.
    #[serde(rename = "filter.image")]
    FilterImage(filter::ImageConfig),
    /// Drop traces written (or drifting) outside the expected script: share of letters in the
    /// expected scripts, and the longest run of letters from other scripts.
    #[serde(rename = "filter.language")]
    FilterLanguage(filter::language::LanguageConfig),
    /// Drop traces whose final answer the verifier finds different from the reference.
    #[serde(rename = "filter.correct")]
    FilterCorrect(filter::CorrectConfig),
    /// Sample k answers per prompt with a model, verify them against the reference and record
    /// the pass rate (`pass_rate` column); rows without a reference keep no pass rate.
    #[serde(rename = "score")]
    Score(score::ScoreConfig),
    /// Keep rows whose pass rate (from `score`, or mapped from the input) lies in a band,
    /// e.g. `{gt: 0, le: 0.5}`: hard but learnable.
    #[serde(rename = "filter.pass_rate")]
    FilterPassRate(filter::pass_rate::PassRateConfig),
    /// Render each trace with the model's chat template and tokenize it: token ids, assistant
    /// spans (the loss mask), images expanded to their pad tokens with their patch grids.
    #[serde(rename = "tokenize")]
    Tokenize(tokenize::TokenizeConfig),
    /// Label each tokenized row with its token-length bucket; optionally keep only a share
    /// (weights) or a number (caps) of rows per bucket, sampled by seed.
    #[serde(rename = "bucket")]
    Bucket(bucket::BucketConfig),
    /// Sample rows to target shares or caps per source (or per source and bucket), by seed;
    /// rows left out go to the ledger as `mix_cap`.
    #[serde(rename = "mix")]
    Mix(mix::MixConfig),
    /// Best-fit-decreasing packing into fixed-length sequences, written as Parquet shards with
    /// a manifest (`DIR/shards`). Must be the last stage; rows over `max_length` are dropped
    /// (`over_length`) or truncated at a safe point.
    #[serde(rename = "pack")]
    Pack(pack::PackConfig),
}

impl StageSpec {
    /// The stage name as written in the spec.
    pub fn name(&self) -> &'static str {
        match self {
            StageSpec::Validate(_) => "validate",
            StageSpec::FilterLength(_) => "filter.length",
            StageSpec::DedupExact(_) => "dedup.exact",
            StageSpec::DedupMinhash(_) => "dedup.minhash",
            StageSpec::DedupImage(_) => "dedup.image",
            StageSpec::Decontaminate(_) => "decontaminate",
            StageSpec::FilterFormat(_) => "filter.format",
            StageSpec::FilterTruncated(_) => "filter.truncated",
            StageSpec::FilterRepetition(_) => "filter.repetition",
            StageSpec::FilterImage(_) => "filter.image",
            StageSpec::FilterCorrect(_) => "filter.correct",
            StageSpec::FilterLanguage(_) => "filter.language",
            StageSpec::Score(_) => "score",
            StageSpec::FilterPassRate(_) => "filter.pass_rate",
            StageSpec::Tokenize(_) => "tokenize",
            StageSpec::Bucket(_) => "bucket",
            StageSpec::Mix(_) => "mix",
            StageSpec::Pack(_) => "pack",
        }
    }

    /// Semantic checks that serde cannot express; the message says what is allowed.
    pub fn check(&self) -> std::result::Result<(), String> {
        match self {
            StageSpec::FilterLength(c) => c.check(),
            StageSpec::FilterRepetition(c) => c.check(),
            StageSpec::FilterImage(c) => c.check(),
            StageSpec::FilterLanguage(c) => c.check(),
            StageSpec::DedupMinhash(c) => c.check(),
            StageSpec::DedupImage(c) => c.check(),
            StageSpec::Decontaminate(c) => c.check(),
            StageSpec::Score(c) => c.check(),
            StageSpec::FilterPassRate(c) => c.check(),
            StageSpec::Tokenize(c) => c.check(),
            StageSpec::Bucket(c) => c.check(),
            StageSpec::Mix(c) => c.check(),
            StageSpec::Pack(c) => c.check(),
            _ => Ok(()),
        }
    }

    /// Whether the stage needs an index pass over all rows first (a global stage).
    pub fn needs_index(&self) -> bool {
        matches!(
            self,
            StageSpec::DedupExact(_)
                | StageSpec::DedupMinhash(_)
                | StageSpec::DedupImage(_)
                | StageSpec::Decontaminate(_)
                | StageSpec::Score(_)
                | StageSpec::Bucket(_)
                | StageSpec::Mix(_)
        )
    }

    /// Whether a run split into tasks can run the stage: row-local stages, and the global
    /// stages that save and merge their index ([`Stage::save_partial`]).
    pub fn splittable(&self) -> bool {
        !self.needs_index()
            || matches!(
                self,
                StageSpec::DedupExact(_)
                    | StageSpec::DedupMinhash(_)
                    | StageSpec::DedupImage(_)
                    | StageSpec::Decontaminate(_)
                    | StageSpec::Bucket(_)
                    | StageSpec::Mix(_)
            )
    }

    /// Build the stage (loading what it needs, e.g. a tokenizer or benchmark files).
    pub fn build(&self, ctx: &StageContext) -> Result<Box<dyn Stage>> {
        Ok(match self {
            StageSpec::Validate(c) => Box::new(validate::Validate::new(c.clone())),
            StageSpec::FilterLength(c) => Box::new(filter::length::Length::new(c.clone())?),
            StageSpec::DedupExact(c) => Box::new(dedup::exact::Exact::new(c.clone())),
            StageSpec::DedupMinhash(c) => Box::new(dedup::minhash::Minhash::new(c.clone())),
            StageSpec::DedupImage(c) => Box::new(dedup::image::ImageDedup::new(c.clone())),
            StageSpec::Decontaminate(c) => Box::new(decontaminate::Decontaminate::new(c.clone(), ctx.images)?),
            StageSpec::FilterFormat(c) => Box::new(filter::Format::new(c.clone())),
            StageSpec::FilterTruncated(c) => Box::new(filter::Truncated::new(c.clone())),
            StageSpec::FilterRepetition(c) => Box::new(filter::repetition::Repetition::new(c.clone())),
            StageSpec::FilterImage(c) => Box::new(filter::Image::new(c.clone())),
            StageSpec::FilterCorrect(c) => Box::new(filter::Correct::new(c.clone())),
            StageSpec::FilterLanguage(c) => Box::new(filter::language::Language::new(c.clone())),
            StageSpec::Score(c) => Box::new(score::Score::new(c.clone())?),
            StageSpec::FilterPassRate(c) => Box::new(filter::pass_rate::PassRate::new(c.clone())),
            StageSpec::Tokenize(c) => Box::new(tokenize::Tokenize::new(c)?),
            StageSpec::Bucket(c) => Box::new(bucket::Bucket::new(c.clone())),
            StageSpec::Mix(c) => Box::new(mix::Mix::new(c.clone())),
            StageSpec::Pack(c) => Box::new(pack::Pack::new(c)?),
        })
    }
}

/// What a stage decided about one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Drop { reason: &'static str, detail: String, kept_id: Option<String> },
}

impl Verdict {
    pub fn drop(reason: &'static str, detail: impl Into<String>) -> Self {
        Verdict::Drop { reason, detail: detail.into(), kept_id: None }
    }
}

/// What stages may look at besides the row.
pub struct StageContext<'a> {
    pub images: &'a ImageStore,
}

/// What a global stage's index pass may use: the images, and a directory of its own for what it
/// writes to disk (signatures), inside the stage's work directory.
pub struct IndexContext<'a> {
    pub images: &'a ImageStore,
    pub dir: &'a std::path::Path,
    /// The map step of a split run: `index` sees one task's rows; what needs all rows in
    /// order waits for the reduce ([`Stage::load_partial`], then [`Stage::finish_index`]).
    pub partial: bool,
}

/// A pipeline stage.
pub trait Stage: Send + Sync {
    /// Name as in the spec (also the ledger's `stage` column).
    fn name(&self) -> &'static str;

    /// Whether [`Stage::index`] must see all rows before any is judged.
    fn needs_index(&self) -> bool {
        false
    }

    /// Index pass: called with consecutive batches in input order; `first` is the position of
    /// the batch's first row in the stage input.
    fn index(&mut self, _first: u64, _batch: &[Trace], _ctx: &IndexContext) -> Result<()> {
        Ok(())
    }

    /// The trace columns [`Stage::index`] reads (None: all). The index pass reads only these
    /// from Parquet; the other fields of the traces it gets are empty.
    fn index_columns(&self) -> Option<Vec<&'static str>> {
        None
    }

    /// Called once after the last [`Stage::index`] call, before any row is judged (e.g. to
    /// cluster the signatures the index pass wrote).
    fn finish_index(&mut self, _ctx: &IndexContext) -> Result<()> {
        Ok(())
    }

    /// Judge one row; `pos` is its position in the stage input. Must be a pure function of
    /// its arguments (and the index), so results do not depend on thread count. Only global
    /// stages may look at `pos`: in a split run, row-local stages after a segment's first
    /// stage see positions counted within their task.
    fn judge(&self, pos: u64, trace: &Trace, ctx: &StageContext) -> Result<Verdict> {
        Ok(self.judge_measured(pos, trace, ctx)?.verdict)
    }

    /// Judge one row and report the values measured on the way (e.g. `max_repeats`), which
    /// the executor collects into per-stage histograms in stats.json.
    fn judge_measured(&self, pos: u64, trace: &Trace, ctx: &StageContext) -> Result<Measured>;

    /// Judge one row and derive data on it (tokens, bucket, truncation). The executor calls
    /// this; stages that only judge keep the default. Same purity rule as [`Stage::judge`].
    fn apply(&self, pos: u64, trace: &mut Trace, ctx: &StageContext) -> Result<Measured> {
        self.judge_measured(pos, trace, ctx)
    }

    /// What the stage wants recorded in stats.json beyond counts and histograms (e.g. rows per
    /// bucket), read after the last row was judged.
    fn summary(&self) -> Option<serde_json::Value> {
        None
    }

    /// Runs split into tasks (global stages), map: what [`Stage::index`] gathered from one
    /// task's rows, which saw their global positions.
    fn save_partial(&mut self) -> Result<Vec<u8>> {
        Err(not_split(self.name()))
    }

    /// Reduce: absorb one task's [`Stage::save_partial`]; called in rank order, then
    /// [`Stage::finish_index`].
    fn load_partial(&mut self, _bytes: &[u8]) -> Result<()> {
        Err(not_split(self.name()))
    }

    /// Reduce, after [`Stage::finish_index`]: what judging (and the summary) needs.
    fn save_decisions(&mut self) -> Result<Vec<u8>> {
        Err(not_split(self.name()))
    }

    /// Apply: take the reduce's [`Stage::save_decisions`] instead of an index pass.
    fn load_decisions(&mut self, _bytes: &[u8]) -> Result<()> {
        Err(not_split(self.name()))
    }
}

fn not_split(stage: &str) -> crate::Error {
    crate::Error::Spec(format!("`{stage}` cannot run split into tasks yet; run this spec in one process"))
}

/// Decode a saved index state (JSON) of `stage`.
pub(crate) fn decode_state<T: serde::de::DeserializeOwned>(stage: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| crate::Error::Run(format!("{stage}: unreadable index state: {e}")))
}

/// Encode an index state (JSON).
pub(crate) fn encode_state<T: serde::Serialize>(stage: &str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| crate::Error::Run(format!("{stage}: cannot save the index state: {e}")))
}

impl Measured {
    /// A verdict with nothing measured.
    pub fn only(verdict: Verdict) -> Self {
        Measured { verdict, values: Vec::new() }
    }
}

/// A verdict with the values measured to reach it.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub verdict: Verdict,
    pub values: Vec<(&'static str, f64)>,
}
