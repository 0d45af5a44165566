//! Conversations to training tokens: render with the model's chat template, tokenize once,
//! find the assistant turns, expand each image to its pad tokens.
//!
//! Assistant spans come from the template itself, so any Hugging Face template works: the
//! conversation up to an assistant turn rendered with `add_generation_prompt` ends where the
//! turn's content starts, and the conversation through the turn ends after its end-of-turn
//! text (trailing whitespace left out). A token belongs to a span when any of its characters
//! do, as `transformers`' `return_assistant_tokens_mask` decides it; the whole text is
//! tokenized once, so the ids are those of the sequence the model sees.
//!
//! Images follow Qwen2-VL: the template writes one `<|image_pad|>` per image, which becomes
//! `h * w / 28^2` of them for the `smart_resize`d size; the grid is `(1, h / 14, w / 14)`.

use std::path::Path;

use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};
use crate::schema::{Tokens, Trace};
use crate::text::tokens::{DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, smart_resize};
use crate::tokenize::template::{ChatTemplate, Content, Message, Part};

/// Qwen2-VL vision patch side in pixels (before 2x2 merging).
pub const PATCH: u32 = 14;

/// How conversations are built and images counted.
#[derive(Debug, Clone)]
pub struct EncodeOptions {
    /// System prompt for traces that have none (None: the template's default).
    pub system: Option<String>,
    /// Use `system` even where a trace has its own system message.
    pub replace_system: bool,
    /// Further template variables (e.g. `default_system_message`).
    pub template_vars: serde_json::Map<String, serde_json::Value>,
    /// The token the template writes once per image.
    pub image_token: String,
    pub min_pixels: u64,
    pub max_pixels: u64,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self {
            system: None,
            replace_system: false,
            template_vars: serde_json::Map::new(),
            image_token: "<|image_pad|>".into(),
            min_pixels: DEFAULT_MIN_PIXELS,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// Why a conversation could not be encoded (a row problem, recorded in the ledger).
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub reason: &'static str,
    pub detail: String,
}

fn reject(reason: &'static str, detail: impl Into<String>) -> Reject {
    Reject { reason, detail: detail.into() }
}

/// For a byte-level BPE tokenizer (decoder `ByteLevel`): the number of text bytes each id
/// stands for. Vocabulary tokens are written in the byte-level alphabet, one char per byte;
/// added tokens stand for their content. None for other tokenizers.
fn byte_level_lengths(tokenizer: &Tokenizer) -> Option<Vec<u32>> {
    if !matches!(tokenizer.get_decoder(), Some(tokenizers::DecoderWrapper::ByteLevel(_))) {
        return None;
    }
    let added = tokenizer.get_added_tokens_decoder();
    let n = tokenizer.get_vocab_size(true);
    Some(
        (0..n as u32)
            .map(|id| match added.get(&id) {
                Some(t) => t.content.len() as u32,
                None => tokenizer.id_to_token(id).map(|t| t.chars().count() as u32).unwrap_or(u32::MAX),
            })
            .collect(),
    )
}

/// sha256 of a tokenizer directory's `tokenizer.json` and of its chat template source: what a
/// shard manifest records and what readers check.
pub fn tokenizer_hashes(dir: &Path) -> Result<(String, String)> {
    let path = dir.join("tokenizer.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(format!("reading tokenizer {}", path.display()), e))?;
    let template = ChatTemplate::from_dir(dir)?;
    Ok((sha256_hex(&bytes), sha256_hex(template.source.as_bytes())))
}

/// A tokenizer directory's tokenizer and chat template, ready to encode conversations.
pub struct ChatEncoder {
    pub template: ChatTemplate,
    pub tokenizer: Tokenizer,
    image_pad: Option<u32>,
    /// Byte-level tokenizers: the bytes each token id stands for (see [`Self::token_ends`]).
    token_bytes: Option<Vec<u32>>,
    pub opts: EncodeOptions,
    /// sha256 of `tokenizer.json`.
    pub tokenizer_sha256: String,
    /// sha256 of the chat template source.
    pub template_sha256: String,
}

/// Hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl ChatEncoder {
    /// Load `tokenizer.json` and `tokenizer_config.json` from a Hugging Face tokenizer directory.
    pub fn from_dir(dir: &Path, opts: EncodeOptions) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io(format!("reading tokenizer {}", path.display()), e))?;
        let tokenizer = Tokenizer::from_bytes(&bytes)
            .map_err(|e| Error::Input(format!("{}: not a usable tokenizer.json: {e}", path.display())))?;
        let template = ChatTemplate::from_dir(dir)?;
        let image_pad = tokenizer.token_to_id(&opts.image_token);
        let token_bytes = byte_level_lengths(&tokenizer);
        Ok(Self {
            token_bytes,
            template_sha256: sha256_hex(template.source.as_bytes()),
            tokenizer_sha256: sha256_hex(&bytes),
            template,
            tokenizer,
            image_pad,
            opts,
        })
    }

    /// Token ids of `text` and each token's byte range. Byte-level BPE tokenizers (Qwen, Llama
    /// 3, GPT-2 family) take the fast path: ids without offset tracking, ranges from the bytes
    /// each id stands for, used only when they add up to the text (a normalizer that changed
    /// the text, e.g. NFC on decomposed accents, sends it to the tracked path).
    pub fn token_ends(&self, text: &str) -> Result<(Vec<u32>, Vec<(usize, usize)>)> {
        if let Some(lens) = &self.token_bytes {
            let enc = self.tokenizer.encode_fast(text, false).map_err(|e| Error::Run(format!("tokenizing: {e}")))?;
            let ids = enc.get_ids();
            let mut offsets = Vec::with_capacity(ids.len());
            let mut at = 0usize;
            for &id in ids {
                let n = lens.get(id as usize).copied().unwrap_or(u32::MAX) as usize;
                offsets.push((at, at.saturating_add(n)));
                at = at.saturating_add(n);
            }
            if at == text.len() {
                return Ok((ids.to_vec(), offsets));
            }
        }
        self.tracked_token_ends(text)
    }

    /// [`Self::token_ends`] with the tokenizer's own offset tracking.
    pub fn tracked_token_ends(&self, text: &str) -> Result<(Vec<u32>, Vec<(usize, usize)>)> {
        let enc = self.tokenizer.encode(text, false).map_err(|e| Error::Run(format!("tokenizing: {e}")))?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().to_vec()))
    }

    /// Id of the image pad token, if the tokenizer has it.
    pub fn image_pad_id(&self) -> Option<u32> {
        self.image_pad
    }

    /// The conversation of a trace: system (per the options), the user prompt with its images
    /// where `<image>` marks them (images without a mark go first), and the response.
    pub fn messages(&self, trace: &Trace) -> std::result::Result<Vec<Message>, Reject> {
        let mut messages = Vec::with_capacity(3);
        let system = match (&trace.system, &self.opts.system) {
            (Some(own), Some(cfg)) => Some(if self.opts.replace_system { cfg } else { own }),
            (own, cfg) => own.as_ref().or(cfg.as_ref()),
        };
        if let Some(s) = system {
            messages.push(Message { role: "system".into(), content: Content::Text(s.clone()) });
        }
        let pieces: Vec<&str> = trace.prompt.split("<image>").collect();
        let marks = pieces.len() - 1;
        let n = trace.images.len();
        if marks > n {
            return Err(reject("image_mismatch", format!("prompt has {marks} <image> marks for {n} images")));
        }
        let content = if n == 0 {
            Content::Text(trace.prompt.clone())
        } else {
            let mut parts: Vec<Part> = (0..n - marks).map(|_| Part::Image {}).collect();
            for (k, piece) in pieces.iter().enumerate() {
                if k > 0 {
                    parts.push(Part::Image {});
                }
                if !piece.is_empty() {
                    parts.push(Part::Text { text: piece.to_string() });
                }
            }
            Content::Parts(parts)
        };
        messages.push(Message { role: "user".into(), content });
        messages.push(Message { role: "assistant".into(), content: Content::Text(trace.response.clone()) });
        Ok(messages)
    }

    /// Encode a trace: its conversation, with the images' sizes from ingest.
    pub fn encode_trace(&self, trace: &Trace) -> Result<std::result::Result<Tokens, Reject>> {
        let messages = match self.messages(trace) {
            Ok(m) => m,
            Err(r) => return Ok(Err(r)),
        };
        let mut sizes = Vec::with_capacity(trace.images.len());
        for (k, im) in trace.images.iter().enumerate() {
            if im.width == 0 || im.height == 0 {
                return Ok(Err(reject(
                    "bad_image_size",
                    format!("image {k} ({}) has no known size; run `validate` first", im.path),
                )));
            }
            sizes.push((im.height, im.width));
        }
        self.encode(&messages, &sizes)
    }

    /// The prompt of a trace for generation: its conversation without the response, rendered
    /// with the generation prompt (the assistant header), images expanded.
    pub fn encode_prompt(&self, trace: &Trace) -> Result<std::result::Result<Tokens, Reject>> {
        let mut messages = match self.messages(trace) {
            Ok(m) => m,
            Err(r) => return Ok(Err(r)),
        };
        messages.pop();
        let sizes: Vec<(u32, u32)> = trace.images.iter().map(|im| (im.height, im.width)).collect();
        if let Some(k) = sizes.iter().position(|&(h, w)| h == 0 || w == 0) {
            return Ok(Err(reject("bad_image_size", format!("image {k} has no known size; run `validate` first"))));
        }
        self.encode_with(&messages, &sizes, true)
    }

    /// Render, tokenize and expand a conversation. `image_sizes` are (height, width) in pixels,
    /// one per image part in order.
    pub fn encode(
        &self,
        messages: &[Message],
        image_sizes: &[(u32, u32)],
    ) -> Result<std::result::Result<Tokens, Reject>> {
        self.encode_with(messages, image_sizes, false)
    }

    fn encode_with(
        &self,
        messages: &[Message],
        image_sizes: &[(u32, u32)],
        add_generation_prompt: bool,
    ) -> Result<std::result::Result<Tokens, Reject>> {
        let vars = &self.opts.template_vars;
        let render = |msgs: &[Message], agp: bool| self.template.render(msgs, agp, vars);
        let text = match render(messages, add_generation_prompt) {
            Ok(t) => t,
            Err(e) => return Ok(Err(reject("template_error", e.to_string()))),
        };
        // byte spans of the assistant turns
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let before = match render(&messages[..i], true) {
                Ok(t) => t,
                Err(e) => return Ok(Err(reject("template_error", e.to_string()))),
            };
            // the conversation through this turn: for the last message, the whole text
            let rendered;
            let through: &str = if i + 1 == messages.len() {
                &text
            } else {
                rendered = match render(&messages[..=i], false) {
                    Ok(t) => t,
                    Err(e) => return Ok(Err(reject("template_error", e.to_string()))),
                };
                &rendered
            };
            if !text.starts_with(&before) || !text.starts_with(through) || through.len() < before.len() {
                return Err(Error::Input(format!(
                    "the chat template renders the start of a conversation differently from the whole \
                     (message {i}); assistant spans cannot be found from it"
                )));
            }
            let end = through.trim_end().len().max(before.len());
            spans.push((before.len(), end));
        }
        let (ids, offsets) = self.token_ends(&text)?;
        let ids = &ids[..];
        let mut assistant = Vec::with_capacity(spans.len());
        let mut t = 0usize;
        for &(a, b) in &spans {
            if a == b {
                continue;
            }
            while t < offsets.len() && offsets[t].1 <= a {
                t += 1;
            }
            let start = t;
            while t < offsets.len() && offsets[t].0 < b {
                t += 1;
            }
            if t > start {
                assistant.push((start as u32, t as u32));
            }
        }
        // expand image pads
        let pads = match self.image_pad {
            Some(p) => ids.iter().filter(|&&x| x == p).count(),
            None => 0,
        };
        if pads != image_sizes.len() {
            if self.image_pad.is_none() && !image_sizes.is_empty() {
                return Err(Error::Input(format!(
                    "the tokenizer has no `{}` token for images; set `image_token` to the token its chat template writes per image",
                    self.opts.image_token
                )));
            }
            return Ok(Err(reject(
                "image_mismatch",
                format!(
                    "the rendered conversation has {pads} `{}` for {} images",
                    self.opts.image_token,
                    image_sizes.len()
                ),
            )));
        }
        if pads == 0 {
            return Ok(Ok(Tokens { ids: ids.to_vec(), assistant, grids: Vec::new() }));
        }
        let pad = self.image_pad.expect("pads counted");
        let mut grids = Vec::with_capacity(pads);
        let mut out = Vec::with_capacity(ids.len());
        // position shift of each original index, for the spans
        let mut shift_at: Vec<(u32, u32)> = Vec::with_capacity(pads);
        let mut shift = 0u32;
        for (k, &id) in ids.iter().enumerate() {
            if id == pad {
                let (h, w) = image_sizes[grids.len()];
                let (rh, rw) = smart_resize(h, w, self.opts.min_pixels, self.opts.max_pixels);
                let grid = [1, rh / PATCH, rw / PATCH];
                let n = grid[1] * grid[2] / 4;
                grids.push(grid);
                out.extend(std::iter::repeat_n(pad, n as usize));
                shift += n - 1;
                shift_at.push((k as u32 + 1, shift));
            } else {
                out.push(id);
            }
        }
        let moved = |pos: u32| -> u32 {
            // shift of the last pad before pos
            let i = shift_at.partition_point(|&(p, _)| p <= pos);
            if i == 0 { pos } else { pos + shift_at[i - 1].1 }
        };
        let assistant = assistant.into_iter().map(|(a, b)| (moved(a), moved(b))).collect();
        Ok(Ok(Tokens { ids: out, assistant, grids }))
    }
}
