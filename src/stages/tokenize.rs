//! `tokenize`: render each trace as a conversation with the model's chat template and tokenize
//! it (see [`crate::tokenize::encode`]). Sets the token ids, the assistant spans the loss mask is
//! built from, and each image's patch grid; rows whose conversation cannot be rendered (image
//! marks that do not match the images, a template that raises) go to the ledger.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::Deserialize;

use super::{Measured, Stage, StageContext, Verdict};
use crate::error::{Error, Result};
use crate::schema::Trace;
use crate::text::tokens::{DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS};
use crate::tokenize::encode::{ChatEncoder, EncodeOptions};

/// Which tokens the loss is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LossOn {
    /// The assistant turns: content and end-of-turn token (the default).
    #[default]
    Assistant,
    /// Every token, prompt and template included.
    All,
}

/// Parameters of `tokenize`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizeConfig {
    /// Hugging Face tokenizer directory with `tokenizer.json` and `tokenizer_config.json`
    /// (whose `chat_template` renders the conversations), e.g. `fixtures/tokenizers/qwen2.5`.
    pub tokenizer: String,
    /// System prompt for traces without one, e.g. "Think step by step inside <think> </think>,
    /// then give the final answer in \boxed{}." Default: none (the template's own default).
    #[serde(default)]
    pub system: Option<String>,
    /// Use `system` also where a trace has its own system message. Default false.
    #[serde(default)]
    pub replace_system: bool,
    /// Further variables for the chat template (e.g. `default_system_message`).
    #[serde(default)]
    pub template_vars: serde_json::Map<String, serde_json::Value>,
    /// Tokens the loss is computed on: `assistant` (default) or `all`.
    #[serde(default)]
    pub loss: LossOn,
    /// The token the template writes once per image. Default `<|image_pad|>`.
    #[serde(default = "image_token")]
    pub image_token: String,
    /// Qwen2-VL image policy: images are resized to at least this many pixels. Default 3136.
    #[serde(default = "min_pixels")]
    pub min_pixels: u64,
    /// ... and at most this many. Default 1003520 (1280 tokens).
    #[serde(default = "max_pixels")]
    pub max_pixels: u64,
}

fn image_token() -> String {
    "<|image_pad|>".into()
}
fn min_pixels() -> u64 {
    DEFAULT_MIN_PIXELS
}
fn max_pixels() -> u64 {
    DEFAULT_MAX_PIXELS
}

impl TokenizeConfig {
    pub fn check(&self) -> std::result::Result<(), String> {
        let dir = PathBuf::from(&self.tokenizer);
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            if !dir.join(f).is_file() {
                return Err(format!(
                    "`tokenizer: {}` has no {f}; give a Hugging Face tokenizer directory",
                    self.tokenizer
                ));
            }
        }
        if self.min_pixels == 0 || self.min_pixels > self.max_pixels {
            return Err(format!("need 0 < min_pixels <= max_pixels, got {} and {}", self.min_pixels, self.max_pixels));
        }
        Ok(())
    }

    /// The encoder this config describes.
    pub fn encoder(&self) -> Result<ChatEncoder> {
        let opts = EncodeOptions {
            system: self.system.clone(),
            replace_system: self.replace_system,
            template_vars: self.template_vars.clone(),
            image_token: self.image_token.clone(),
            min_pixels: self.min_pixels,
            max_pixels: self.max_pixels,
        };
        ChatEncoder::from_dir(&PathBuf::from(&self.tokenizer), opts).map_err(|e| Error::Spec(format!("tokenize: {e}")))
    }
}

pub struct Tokenize {
    encoder: ChatEncoder,
}

impl Tokenize {
    pub fn new(cfg: &TokenizeConfig) -> Result<Self> {
        Ok(Self { encoder: cfg.encoder()? })
    }
}

impl Stage for Tokenize {
    fn name(&self) -> &'static str {
        "tokenize"
    }

    fn judge_measured(&self, pos: u64, t: &Trace, ctx: &StageContext) -> Result<Measured> {
        self.apply(pos, &mut t.clone(), ctx)
    }

    fn apply(&self, _pos: u64, t: &mut Trace, _ctx: &StageContext) -> Result<Measured> {
        let tokens = match self.encoder.encode_trace(t)? {
            Ok(k) => k,
            Err(r) => return Ok(Measured::only(Verdict::drop(r.reason, r.detail))),
        };
        let image_tokens: u64 = tokens.grids.iter().map(|g| (g[1] * g[2] / 4) as u64).sum();
        let values = vec![
            ("tokens", tokens.ids.len() as f64),
            ("assistant_tokens", tokens.assistant_tokens() as f64),
            ("image_tokens", image_tokens as f64),
        ];
        t.num_tokens = Some(tokens.ids.len() as u32);
        t.tokens = Some(tokens);
        Ok(Measured { verdict: Verdict::Keep, values })
    }
}
