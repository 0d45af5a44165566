//! Column mapping: one raw record (any format, any supported layout) to the canonical fields.
//!
//! A record that cannot be mapped is rejected with a machine-readable reason and a detail that
//! names the source column; the executor writes it to the ledger under the `ingest` stage.

use super::image_value::one_image;
use super::value::Val;
use super::{ImageEncoding, ImageSource};
use super::{Input, Layout};

/// Canonical fields of a record, before its images are stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTrace {
    pub system: Option<String>,
    pub prompt: String,
    pub response: String,
    pub reference: Option<String>,
    pub images: Vec<ImageSource>,
    /// A pass rate computed elsewhere (the `pass_rate` column mapping), in [0, 1].
    pub pass_rate: Option<f64>,
}

/// Why a record could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reason: &'static str,
    pub detail: String,
}

impl Reject {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

type R<T> = Result<T, Reject>;

/// Text of a cell. Null is `None`; binary must be UTF-8; numbers only where `numbers_ok`.
fn text_of(v: &Val, what: &str, numbers_ok: bool) -> R<Option<String>> {
    match v {
        Val::Null => Ok(None),
        Val::Str(s) => Ok(Some(s.clone())),
        Val::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => Ok(Some(s.to_string())),
            Err(e) => Err(Reject::new(
                "invalid_utf8",
                format!("{what} is not valid UTF-8 (bad byte at offset {})", e.valid_up_to()),
            )),
        },
        Val::Int(i) if numbers_ok => Ok(Some(i.to_string())),
        Val::Float(f) if numbers_ok => Ok(Some(f.to_string())),
        Val::Bool(b) if numbers_ok => Ok(Some(b.to_string())),
        other => Err(Reject::new("bad_field_type", format!("{what} is {}; expected a string", other.kind()))),
    }
}

/// A mapped column of the record; absent keys are rejected (a typo in the mapping would
/// otherwise turn every row into an empty one).
fn column<'a>(rec: &'a Val, col: &str, field: &str) -> R<&'a Val> {
    rec.get(col).ok_or_else(|| Reject::new("missing_field", format!("column `{col}` (mapped to {field}) is absent")))
}

fn mapped_text(rec: &Val, col: Option<&String>, field: &str, numbers_ok: bool) -> R<Option<String>> {
    match col {
        None => Ok(None),
        Some(c) => text_of(column(rec, c, field)?, &format!("column `{c}` ({field})"), numbers_ok),
    }
}

/// A pass rate cell: null, or a number in [0, 1].
fn pass_rate_of(rec: &Val, col: Option<&String>) -> R<Option<f64>> {
    let Some(c) = col else { return Ok(None) };
    let what = format!("column `{c}` (pass_rate)");
    let p = match column(rec, c, "pass_rate")? {
        Val::Null => return Ok(None),
        Val::Float(f) => *f,
        Val::Int(i) => *i as f64,
        other => {
            return Err(Reject::new(
                "bad_field_type",
                format!("{what} is {}; expected a number in [0, 1]", other.kind()),
            ));
        }
    };
    if !(0.0..=1.0).contains(&p) {
        return Err(Reject::new("bad_pass_rate", format!("{what} is {p}; a pass rate is in [0, 1]")));
    }
    Ok(Some(p))
}

fn images_of(rec: &Val, col: Option<&String>, enc: ImageEncoding) -> R<Vec<ImageSource>> {
    let Some(c) = col else { return Ok(Vec::new()) };
    let what = format!("column `{c}` (images)");
    match column(rec, c, "images")? {
        Val::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                if let Some(img) = one_image(it, enc, &what)? {
                    out.push(img);
                }
            }
            Ok(out)
        }
        v => Ok(one_image(v, enc, &what)?.into_iter().collect()),
    }
}

/// Who says a turn, normalised over ShareGPT and OpenAI-style names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    System,
    User,
    Assistant,
}

fn role_of(name: &str) -> Option<Role> {
    match name.to_ascii_lowercase().as_str() {
        "system" => Some(Role::System),
        "human" | "user" => Some(Role::User),
        "gpt" | "assistant" | "model" | "bot" => Some(Role::Assistant),
        _ => None,
    }
}

/// Message content: a string, or a list of `{type: text, text}` / `{type: image}` parts.
fn content_text(v: &Val, what: &str) -> R<String> {
    match v {
        Val::List(parts) => {
            let mut s = String::new();
            for p in parts {
                match p.get("type") {
                    Some(Val::Str(t)) if t == "text" => {
                        s.push_str(&text_of(p.get("text").unwrap_or(&Val::Null), what, false)?.unwrap_or_default())
                    }
                    Some(Val::Str(t)) if t == "image" || t == "image_url" => s.push_str("<image>"),
                    _ => {
                        return Err(Reject::new(
                            "bad_field_type",
                            format!("{what}: a content part has no known `type`"),
                        ));
                    }
                }
            }
            Ok(s)
        }
        other => Ok(text_of(other, what, false)?.unwrap_or_default()),
    }
}

/// Single-turn conversation from a list of turns.
fn turns(rec: &Val, col: &str, role_key: &str, text_key: &str) -> R<(Option<String>, String, String)> {
    let what = format!("column `{col}`");
    let items = match column(rec, col, "turns")? {
        Val::List(items) => items,
        other => {
            return Err(Reject::new("bad_field_type", format!("{what} is {}; expected a list of turns", other.kind())));
        }
    };
    let (mut system, mut prompt, mut response) = (None, None, None);
    for (k, t) in items.iter().enumerate() {
        let role_name = match t.get(role_key) {
            Some(Val::Str(r)) => r.as_str(),
            _ => return Err(Reject::new("bad_field_type", format!("{what}[{k}] has no string `{role_key}`"))),
        };
        let role = role_of(role_name)
            .ok_or_else(|| Reject::new("unknown_role", format!("{what}[{k}]: unknown {role_key} `{role_name}`")))?;
        let text = content_text(t.get(text_key).unwrap_or(&Val::Null), &format!("{what}[{k}].{text_key}"))?;
        let multi = || {
            Reject::new(
                "multi_turn",
                format!("{what} has more than one user/assistant exchange; traces are single-turn"),
            )
        };
        match role {
            Role::System if prompt.is_none() && system.is_none() => system = Some(text),
            Role::User if prompt.is_none() => prompt = Some(text),
            Role::Assistant if prompt.is_some() && response.is_none() => response = Some(text),
            _ => return Err(multi()),
        }
    }
    let prompt = prompt.ok_or_else(|| Reject::new("missing_field", format!("{what} has no user turn")))?;
    Ok((system, prompt, response.unwrap_or_default()))
}

/// Map one raw record onto the canonical fields according to the input's layout and columns.
pub fn map_record(rec: &Val, input: &Input) -> R<RawTrace> {
    let c = &input.columns;
    let (system, prompt, response) = match input.layout {
        Layout::Columns => (
            None,
            mapped_text(rec, c.prompt.as_ref(), "prompt", false)?.unwrap_or_default(),
            mapped_text(rec, c.response.as_ref(), "response", false)?.unwrap_or_default(),
        ),
        Layout::Sharegpt => turns(rec, c.conversations_col(), "from", "value")?,
        Layout::Messages => turns(rec, c.messages_col(), "role", "content")?,
    };
    Ok(RawTrace {
        system,
        prompt,
        response,
        reference: mapped_text(rec, c.reference.as_ref(), "reference", true)?,
        images: images_of(rec, c.images.as_ref(), input.image_encoding)?,
        pass_rate: pass_rate_of(rec, c.pass_rate.as_ref())?,
    })
}

/// Source columns an input reads (for Parquet projection and pre-flight checks), with the
/// canonical field each one feeds.
pub fn mapped_columns(input: &Input) -> Vec<(String, &'static str)> {
    let c = &input.columns;
    let mut v: Vec<(String, &'static str)> = Vec::new();
    match input.layout {
        Layout::Columns => {
            v.extend(c.prompt.clone().map(|s| (s, "prompt")));
            v.extend(c.response.clone().map(|s| (s, "response")));
        }
        Layout::Sharegpt => v.push((c.conversations_col().to_string(), "conversations")),
        Layout::Messages => v.push((c.messages_col().to_string(), "messages")),
    }
    v.extend(c.reference.clone().map(|s| (s, "reference")));
    v.extend(c.images.clone().map(|s| (s, "images")));
    v.extend(c.pass_rate.clone().map(|s| (s, "pass_rate")));
    v
}
