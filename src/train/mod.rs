//! Training: the trainer core ([`trainer`]); supervised fine-tuning on packed shards ([`sft`]) with the output layer and
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
pub mod trainer;

pub use config::TrainConfig;
pub use sft::SftArgs;
pub use trainer::{Row, Trainer};
