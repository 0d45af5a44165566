//! Pipeline specs: YAML in, a typed and validated [`Spec`] out.
//!
//! All checking happens here, before any data is touched: YAML syntax, unknown keys, wrong
//! types, unknown stages, layouts missing the columns they need, globs that match nothing.
//! Every error names `file:line:column` and says what is allowed. The JSON Schema of the spec
//! (for editors) is generated from the same types by [`json_schema`].

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::error::{Error, Result};
pub use crate::ingest::{ColumnMap, Format, ImageEncoding, Input, Layout};
use crate::stages::StageSpec;

/// Default number of rows a stage handles at once; bounds memory together with trace length.
pub const DEFAULT_BATCH_ROWS: usize = 512;
/// Default number of rows per curated Parquet file.
pub const DEFAULT_ROWS_PER_FILE: usize = 50_000;

/// A cotforge pipeline: where traces come from, what happens to them, where results go.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "cotforge pipeline spec")]
pub struct SpecFile {
    /// Name of the pipeline; recorded in stats.json.
    pub name: String,
    /// Raw datasets to ingest, read in the order given.
    pub inputs: Vec<InputSpec>,
    /// Stages applied in order. Each entry is a single-key map: `- stage.name: {params}`.
    #[serde(default)]
    pub stages: Vec<StageSpec>,
    /// Where the run directory goes.
    pub output: OutputSpec,
    /// Rows handled per batch (bounds memory). Default 512.
    #[serde(default)]
    pub batch_rows: Option<usize>,
}

/// One raw dataset (a glob of files sharing a layout).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// File path or glob, relative to the working directory, e.g. `fixtures/raw/*.parquet`.
    #[schemars(with = "String")]
    pub path: Spanned<String>,
    /// File format.
    pub format: Format,
    /// How a record holds the conversation. Default `columns`.
    #[serde(default)]
    #[schemars(with = "Option<Layout>")]
    pub layout: Option<Spanned<Layout>>,
    /// Which source column holds each canonical field.
    #[serde(default)]
    pub columns: ColumnMap,
    /// Directory (or `.zip` archive) that relative image paths are resolved against (default:
    /// the input file's directory).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub images_root: Option<Spanned<String>>,
    /// How image values are stored: `auto` (default: detected per value), `path`, `base64`
    /// (also `data:` URLs) or `bytes`.
    #[serde(default)]
    pub image_encoding: ImageEncoding,
    /// Name of the source, kept on every trace (e.g. `cold-start`).
    pub source: String,
}

/// Output settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Run directory (overridden by `--out`).
    pub dir: String,
    /// Rows per curated Parquet file. Default 50000.
    #[serde(default)]
    pub rows_per_file: Option<usize>,
}

/// A validated spec, ready to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The spec file it came from.
    pub file: PathBuf,
    /// The exact YAML text (copied into the run directory).
    pub text: String,
    pub name: String,
    pub inputs: Vec<Input>,
    pub stages: Vec<StageSpec>,
    pub out_dir: PathBuf,
    pub rows_per_file: usize,
    pub batch_rows: usize,
}

fn at(file: &Path, loc: serde_saphyr::Location) -> String {
    format!("{}:{}:{}", file.display(), loc.line(), loc.column())
}

/// Load, parse and validate a spec file.
pub fn load(file: &Path) -> Result<Spec> {
    let text =
        std::fs::read_to_string(file).map_err(|e| Error::Spec(format!("cannot read spec {}: {e}", file.display())))?;
    parse(file, &text)
}

/// Parse and validate spec text; `file` is used in error messages.
pub fn parse(file: &Path, text: &str) -> Result<Spec> {
    let raw: SpecFile = serde_saphyr::from_str(text).map_err(|e| {
        let pos = match e.location() {
            Some(loc) => at(file, loc),
            None => file.display().to_string(),
        };
        Error::Spec(format!("{pos}: invalid pipeline spec\n{e}"))
    })?;
    let here = |loc| at(file, loc);
    let bad = |loc, msg: String| Error::Spec(format!("{}: {msg}", here(loc)));
    if raw.name.trim().is_empty() {
        return Err(Error::Spec(format!("{}: `name` must not be empty", file.display())));
    }
    if raw.inputs.is_empty() {
        return Err(Error::Spec(format!("{}: `inputs` is empty; list at least one dataset", file.display())));
    }
    let mut inputs = Vec::new();
    for (i, inp) in raw.inputs.iter().enumerate() {
        let pattern = &inp.path.value;
        let loc = inp.path.referenced;
        let paths =
            glob::glob(pattern).map_err(|e| bad(loc, format!("inputs[{i}].path: bad glob `{pattern}`: {e}")))?;
        let mut files = Vec::new();
        for p in paths {
            let p = p.map_err(|e| bad(loc, format!("inputs[{i}].path: cannot read {e}")))?;
            if p.is_file() {
                files.push(p);
            }
        }
        files.sort();
        if files.is_empty() {
            return Err(bad(loc, format!("inputs[{i}].path: no file matches `{pattern}`")));
        }
        let images_root = match &inp.images_root {
            None => None,
            Some(r) => {
                let p = PathBuf::from(&r.value);
                if !p.is_dir() && !crate::store::archive::is_archive(&p) {
                    return Err(bad(
                        r.referenced,
                        format!("inputs[{i}].images_root: `{}` is neither a directory nor a .zip archive", r.value),
                    ));
                }
                Some(p)
            }
        };
        let layout = inp.layout.as_ref().map(|l| l.value).unwrap_or_default();
        let layout_loc = inp.layout.as_ref().map(|l| l.referenced).unwrap_or(loc);
        let c = &inp.columns;
        let needs = |what: &str, present: bool| -> Result<()> {
            if present {
                Ok(())
            } else {
                Err(bad(layout_loc, format!("inputs[{i}]: layout `{}` needs `columns.{what}`", layout.name())))
            }
        };
        match layout {
            Layout::Columns => {
                needs("prompt", c.prompt.is_some())?;
                for (k, v) in [("conversations", &c.conversations), ("messages", &c.messages)] {
                    if v.is_some() {
                        return Err(bad(
                            inp.path.referenced,
                            format!(
                                "inputs[{i}].columns.{k} is only used with layout `{k}`; \
                                     layout `columns` reads prompt/response/reference/images"
                            ),
                        ));
                    }
                }
            }
            Layout::Sharegpt | Layout::Messages => {
                for (k, v) in [("prompt", &c.prompt), ("response", &c.response)] {
                    if v.is_some() {
                        return Err(bad(
                            inp.path.referenced,
                            format!(
                                "inputs[{i}].columns.{k}: with layout `{}` the prompt and \
                                     response come from the turns; remove this mapping",
                                layout.name()
                            ),
                        ));
                    }
                }
            }
        }
        if inp.source.trim().is_empty() {
            return Err(bad(loc, format!("inputs[{i}].source must not be empty")));
        }
        inputs.push(Input {
            files,
            format: inp.format,
            layout,
            columns: c.clone(),
            images_root,
            image_encoding: inp.image_encoding,
            source: inp.source.clone(),
        });
    }
    let batch_rows = raw.batch_rows.unwrap_or(DEFAULT_BATCH_ROWS);
    if batch_rows == 0 {
        return Err(Error::Spec(format!("{}: `batch_rows` must be at least 1", file.display())));
    }
    let rows_per_file = raw.output.rows_per_file.unwrap_or(DEFAULT_ROWS_PER_FILE);
    if rows_per_file == 0 {
        return Err(Error::Spec(format!("{}: `output.rows_per_file` must be at least 1", file.display())));
    }
    for (i, st) in raw.stages.iter().enumerate() {
        st.check().map_err(|m| Error::Spec(format!("{}: stages[{i}] ({}): {m}", file.display(), st.name())))?;
    }
    let mut stages = raw.stages;
    check_order(&stages).map_err(|m| Error::Spec(format!("{}: {m}", file.display())))?;
    // `pack` writes the tokenizer's hashes and the loss mode into the manifest
    let tokenize = stages.iter().find_map(|s| match s {
        StageSpec::Tokenize(c) => Some(c.clone()),
        _ => None,
    });
    for st in &mut stages {
        if let StageSpec::Pack(c) = st {
            c.tokenize = tokenize.clone();
        }
    }
    Ok(Spec {
        file: file.to_path_buf(),
        text: text.to_string(),
        name: raw.name,
        inputs,
        stages,
        out_dir: PathBuf::from(raw.output.dir),
        rows_per_file,
        batch_rows,
    })
}

/// Order rules of the token stages: one `tokenize` before `bucket`, `mix` and `pack`; `bucket`
/// before a `mix` by source and bucket; `pack` last.
fn check_order(stages: &[StageSpec]) -> std::result::Result<(), String> {
    let pos = |f: fn(&StageSpec) -> bool| stages.iter().position(f);
    let tokenize = pos(|s| matches!(s, StageSpec::Tokenize(_)));
    let bucket = pos(|s| matches!(s, StageSpec::Bucket(_)));
    for (i, st) in stages.iter().enumerate() {
        let needs_tokens = matches!(st, StageSpec::Bucket(_) | StageSpec::Mix(_) | StageSpec::Pack(_));
        if needs_tokens && tokenize.is_none_or(|t| t > i) {
            return Err(format!("stages[{i}] ({}) needs a `tokenize` stage before it", st.name()));
        }
        if let StageSpec::Mix(m) = st {
            if m.by == crate::stages::mix::MixBy::SourceBucket && bucket.is_none_or(|b| b > i) {
                return Err(format!("stages[{i}] (mix) groups by source and bucket; put a `bucket` stage before it"));
            }
        }
        if matches!(st, StageSpec::Pack(_)) && i + 1 != stages.len() {
            return Err(format!("stages[{i}] (pack) must be the last stage"));
        }
    }
    for name in ["tokenize", "bucket", "pack"] {
        if stages.iter().filter(|s| s.name() == name).count() > 1 {
            return Err(format!("`{name}` appears more than once in `stages`"));
        }
    }
    Ok(())
}

/// The JSON Schema of pipeline specs, as committed in `schemas/pipeline-spec.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(SpecFile);
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serialises");
    s.push('\n');
    s
}
