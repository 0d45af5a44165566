//! Tokenization for training and generation: the Hugging Face chat template ([`template`]),
//! conversations to token ids with assistant spans and image pad tokens ([`encode`]), the
//! tokens generation stops at, and a small task tokenizer trained on a corpus
//! ([`train_tokenizer`]).

pub mod encode;
pub mod template;
pub mod train_tokenizer;

/// The tokens generation stops at: the chat template's end of turn and the end of text, where
/// the tokenizer has them.
pub fn stop_tokens(tokenizer: &tokenizers::Tokenizer) -> Vec<u32> {
    ["<|im_end|>", "<|endoftext|>"].iter().filter_map(|t| tokenizer.token_to_id(t)).collect()
}
