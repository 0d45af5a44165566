//! Chat templates as Hugging Face tokenizers ship them: the Jinja `chat_template` of a
//! `tokenizer_config.json`, rendered with minijinja and Python-compatible string methods
//! (`.strip()`, `.startswith()`, ...), with the variables `apply_chat_template` passes
//! (`messages`, `add_generation_prompt`, `bos_token`, `eos_token`, and any extra ones).

use std::path::Path;

use minijinja::{Environment, Value};
use serde::Serialize;

use crate::error::{Error, Result};

/// One message: a role and either a string or a list of parts (`{"type": "text", "text"}` /
/// `{"type": "image"}`), as `transformers` takes them.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Message {
    pub role: String,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Part {
    Text { text: String },
    Image {},
}

/// A compiled chat template with the special tokens it may refer to.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// The template's source, for hashing into manifests.
    pub source: String,
    bos: Option<String>,
    eos: Option<String>,
}

/// A special token in `tokenizer_config.json`: a plain string or an `AddedToken` object.
fn token_of(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
        _ => None,
    }
}

impl ChatTemplate {
    /// The template of a tokenizer directory (its `tokenizer_config.json`): `chat_template` as
    /// a string, or the one named `default` in a list of named templates.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer_config.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let cfg: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::Input(format!("{}: not JSON: {e}", path.display())))?;
        let source = match cfg.get("chat_template") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template")?.as_str().map(str::to_string))
                .ok_or_else(|| {
                    Error::Input(format!("{}: `chat_template` lists no template named `default`", path.display()))
                })?,
            _ => return Err(Error::Input(format!("{}: no `chat_template`", path.display()))),
        };
        Self::new(source, token_of(cfg.get("bos_token")), token_of(cfg.get("eos_token")))
            .map_err(|e| Error::Input(format!("{}: chat_template: {e}", path.display())))
    }

    /// Compile a template source.
    pub fn new(source: String, bos: Option<String>, eos: Option<String>) -> Result<Self> {
        let mut env = Environment::new();
        // Python's str methods on strings, as transformers' Jinja sandbox allows them
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        // transformers renders with trim_blocks and lstrip_blocks
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_filter("tojson", py_tojson);
        env.add_function("raise_exception", |msg: String| -> std::result::Result<Value, minijinja::Error> {
            Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
        });
        env.add_template_owned("chat", source.clone()).map_err(|e| Error::Input(format!("does not compile: {e}")))?;
        Ok(Self { env, source, bos, eos })
    }

    /// Render a conversation. `extra` holds further variables (e.g. `default_system_message`).
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<String> {
        let t = self.env.get_template("chat").map_err(|e| Error::Run(format!("chat template: {e}")))?;
        let mut ctx: Vec<(String, Value)> = extra.iter().map(|(k, v)| (k.clone(), Value::from_serialize(v))).collect();
        // messages keep their key order (role, then content), as Python dicts do
        ctx.push(("messages".into(), Value::from_serialize(messages)));
        ctx.push(("add_generation_prompt".into(), Value::from(add_generation_prompt)));
        if let Some(b) = &self.bos {
            ctx.push(("bos_token".into(), Value::from(b.as_str())));
        }
        if let Some(e) = &self.eos {
            ctx.push(("eos_token".into(), Value::from(e.as_str())));
        }
        let ctx: Value = ctx.into_iter().collect::<std::collections::BTreeMap<String, Value>>().into();
        t.render(ctx).map_err(|e| Error::Input(format!("rendering the chat template: {e}")))
    }
}

/// Python's `json.dumps` layout, as transformers' `tojson` filter writes it: `", "` between
/// items, `": "` after keys, non-ASCII kept, keys in insertion order.
struct PyFormatter;

impl serde_json::ser::Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

fn py_tojson(v: Value) -> std::result::Result<Value, minijinja::Error> {
    use serde::Serialize;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    v.serialize(&mut ser)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    // safe to emit as is: templates build JSON text with it
    Ok(Value::from_safe_string(String::from_utf8(out).unwrap_or_default()))
}
