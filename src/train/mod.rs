//! Training on packed shards: supervised fine-tuning ([`sft`]) with the output layer and
//! cross-entropy computed in chunks at loss positions only ([`loss`]), AdamW with f32 state
//! ([`optim`]), and Hugging Face-compatible checkpoints ([`checkpoint`]); GRPO with a
//! verifiable reward ([`rl`], its objective in [`grpo`]).

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod eval;
pub mod grpo;
pub mod loss;
pub mod optim;
pub mod rl;
pub mod sft;

pub use config::TrainConfig;
pub use sft::{Row, SftArgs, Trainer};
