//! Learning on `cotforge synth --task arith`: a tiny Qwen2.5-VL, initialised from scratch with a
//! task tokenizer, is fine-tuned on the long-CoT traces through the whole cotforge path
//! (synth, train-tokenizer, curate and pack, SFT) and must answer held-out questions (triples
//! never seen in training) far above chance: it has to read the digits from the image and do
//! both steps of arithmetic.

use std::path::{Path, PathBuf};

use cotforge::train::TrainConfig;
use cotforge::train::config::{EvalConfig, FreezeConfig};
use cotforge::train::eval::GenEvalConfig;
use cotforge::train::optim::{AdamWConfig, Schedule};

use crate::common::{repo, run, write_spec};

/// The task's data, task tokenizer and a fresh tiny model, under `dir`.
pub(crate) struct ArithSetup {
    pub train_run: PathBuf,
    pub test_run: PathBuf,
    pub model: PathBuf,
}

/// The model's config: hidden 128, 4 layers, 4/2 heads, a 2-block vision tower of width 64.
fn tiny_vl_config() -> serde_json::Value {
    let mut cfg = cotforge::model::init::preset("qwen2.5-vl-tiny").unwrap();
    for (k, v) in [("hidden_size", 128), ("intermediate_size", 384), ("num_hidden_layers", 4), ("num_attention_heads", 4), ("num_key_value_heads", 2)] {
        cfg[k] = v.into();
        cfg["text_config"][k] = v.into();
    }
    // head dim 32: 16 rotary pairs, text positions on all three axes alike
    cfg["rope_scaling"]["mrope_section"] = serde_json::json!([1, 1, 14]);
    cfg["text_config"]["rope_scaling"] = cfg["rope_scaling"].clone();
    let v = &mut cfg["vision_config"];
    v["depth"] = 2.into();
    v["hidden_size"] = 64.into();
    v["intermediate_size"] = 128.into();
    v["num_heads"] = 2.into();
    v["out_hidden_size"] = 128.into();
    v["fullatt_block_indexes"] = serde_json::json!([1]);
    cfg
}

/// A byte-level BPE of `vocab_size` learned tokens trained on the task's train split, shaped
/// like the repository's Qwen2.5 tokenizer (special tokens, chat template).
pub(crate) fn task_tokenizer(train: &Path, out: &Path, vocab_size: usize) -> PathBuf {
    let args = cotforge::pack::train_tokenizer::TrainTokenizerArgs {
        inputs: vec![train.to_path_buf()],
        columns: vec!["problem".into(), "answer".into()],
        vocab_size,
        min_frequency: 2,
        like: repo().join("fixtures/tokenizers/qwen2.5"),
        out: out.to_path_buf(),
    };
    cotforge::pack::train_tokenizer::train_tokenizer(&args).unwrap();
    out.to_path_buf()
}

/// `column` is `answer` (long CoT) or `short_answer`.
pub(crate) fn arith_setup(dir: &Path, train_rows: usize, test_rows: usize, column: &str) -> ArithSetup {
    let data = dir.join("data");
    let files = cotforge::synth::corpus::arith_task(0, train_rows, test_rows, &data).unwrap();
    let tok = task_tokenizer(&files[0], &dir.join("tok"), 512);
    let mut cfg = tiny_vl_config();
    cotforge::pack::train_tokenizer::fit_config(&mut cfg, &tok).unwrap();
    let model = dir.join("model");
    cotforge::model::init::write_random(&model, &cfg, Some(&tok), 1).unwrap();
    let spec = |name: &str, file: &Path| {
        format!(
            "name: {name}\ninputs:\n  - path: {}\n    format: parquet\n    columns: {{prompt: problem, response: {column}, reference: solution, images: images}}\n    source: arith\nstages:\n  - validate: {{}}\n  - filter.correct: {{}}\n  - dedup.exact: {{on: [prompt, images]}}\n  - tokenize:\n      tokenizer: {}\n      system: Reason step by step, then answer in \\boxed{{}}.\n  - pack: {{max_length: 512, row_group_packs: 8}}\noutput:\n  dir: o\n",
            file.display(),
            tok.display()
        )
    };
    let (train_run, test_run) = (dir.join("train-run"), dir.join("test-run"));
    for d in ["train-spec", "test-spec"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    run(&write_spec(&dir.join("train-spec"), &spec("arith-train", &files[0])), &train_run, None);
    run(&write_spec(&dir.join("test-spec"), &spec("arith-test", &files[1])), &test_run, None);
    ArithSetup { train_run, test_run, model }
}

/// SFT settings that learn the task on a CPU in minutes: the vision tower and merger stay at
/// their random initialisation (random features of the digit cells are enough to tell them
/// apart; trained from scratch at the text model's rate they collapse, see `lr_scale`).
pub(crate) fn arith_train_config(steps: usize, eval_run: &Path, eval_prompts: usize) -> TrainConfig {
    TrainConfig {
        lr: 3e-3,
        schedule: Schedule::Cosine,
        warmup_ratio: 0.02,
        max_steps: Some(steps),
        packs_per_step: 1,
        adamw: AdamWConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.01 },
        freeze: FreezeConfig { vision_tower: true, merger: true },
        eval: Some(EvalConfig {
            shards: None,
            generate: Some(GenEvalConfig { run: eval_run.into(), limit: Some(eval_prompts), max_new_tokens: 96, system: None, batch: 25 }),
            every: 0,
        }),
        ..TrainConfig::default()
    }
}

#[test]
fn long_cot_sft_answers_held_out_arith_questions_far_above_chance() {
    let tmp = tempfile::tempdir().unwrap();
    let s = arith_setup(tmp.path(), 4000, 100, "answer");
    let cfg = arith_train_config(STEPS, &s.test_run, 100);
    let args = cotforge::train::SftArgs {
        shards: s.train_run.join("shards"),
        model: s.model,
        tokenizer: None,
        out: tmp.path().join("sft"),
        config: cfg,
        resume: false,
        progress: false,
        device: "cpu".into(),
    };
    let summary = cotforge::train::sft::run(&args).unwrap();
    let acc = summary.eval_accuracy.unwrap();
    // chance: the most common answer of (a + b) x c over digits 1-5 is 12, 8% of questions
    eprintln!("held-out accuracy {acc} after {} steps, {:.0} s", summary.steps, summary.seconds);
    assert!(acc >= MIN_ACCURACY, "held-out accuracy {acc}");
}

const STEPS: usize = 3000;
const MIN_ACCURACY: f64 = 0.3;
