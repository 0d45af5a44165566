//! Learning on `cotforge synth --task arith`, through `cotforge repro-mini` (the CI-sized run:
//! one seed): a tiny Qwen2.5-VL initialised from scratch with a task tokenizer, fine-tuned on
//! long-CoT traces (arm B), must answer held-out questions (triples never seen in training) far
//! above chance and above the same model fine-tuned on short answers (arm A): it has to read
//! the digits from the image and do both steps of arithmetic.

use std::path::{Path, PathBuf};

use cotforge::repro::{ReproArgs, ReproConfig, ReproResults};

use crate::common::repo;

/// A byte-level BPE of `vocab_size` learned tokens trained on the task's train split, shaped
/// like the repository's Qwen2.5 tokenizer (special tokens, chat template).
pub(crate) fn task_tokenizer(train: &Path, out: &Path, vocab_size: usize) -> PathBuf {
    let args = cotforge::tokenize::train_tokenizer::TrainTokenizerArgs {
        inputs: vec![train.to_path_buf()],
        columns: vec!["problem".into(), "answer".into()],
        vocab_size,
        min_frequency: 2,
        like: repo().join("fixtures/tokenizers/qwen2.5"),
        out: out.to_path_buf(),
    };
    cotforge::tokenize::train_tokenizer::train_tokenizer(&args).unwrap();
    out.to_path_buf()
}

/// The committed recipe (pipelines/repro-mini.yaml) with `edit` applied.
fn recipe(edit: impl FnOnce(&mut ReproConfig)) -> ReproConfig {
    let mut cfg = ReproConfig::load(&repo().join("pipelines/repro-mini.yaml")).unwrap();
    cfg.template_tokenizer = repo().join("fixtures/tokenizers/qwen2.5");
    edit(&mut cfg);
    cfg
}

fn repro(out: &Path, config: ReproConfig, exe: &Path) -> cotforge::Result<(ReproResults, f64)> {
    cotforge::repro::run(&ReproArgs { out: out.to_path_buf(), config, exe: exe.to_path_buf(), progress: false })
}

#[test]
fn repro_mini_long_cot_sft_beats_short_answer_sft_on_held_out_questions() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("repro");
    let cfg = recipe(|c| {
        c.seeds = vec![0];
        c.jobs = 2;
        c.sft.max_steps = Some(SFT_STEPS);
        c.rl.steps = 3;
        c.rl.prompts_per_step = 4;
    });
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_cotforge"));
    let (r, secs) = repro(&out, cfg.clone(), &exe).unwrap();
    let (a, b, c, d) = (r.arm("A").unwrap(), r.arm("B").unwrap(), r.arm("C").unwrap(), r.arm("D").unwrap());
    eprintln!("{}{secs:.0} s", cotforge::repro::markdown(&r));
    // the claim: long-CoT SFT answers unseen questions, short-answer SFT cannot compose them
    assert!(b.accuracy_mean > a.accuracy_mean, "B {} <= A {}", b.accuracy_mean, a.accuracy_mean);
    assert!(b.accuracy_mean >= MIN_B_ACCURACY, "B {}", b.accuracy_mean);
    assert!(b.accuracy_mean > r.majority_baseline + 0.1, "B {} vs majority {}", b.accuracy_mean, r.majority_baseline);
    // every arm answered every held-out prompt; the long-CoT arms reason at length, the others
    // answer in a few tokens
    for arm in [a, b, c, d] {
        assert_eq!(arm.runs.len(), 1);
        assert_eq!(arm.runs[0].prompts, r.test_prompts);
    }
    assert!(
        b.response_tokens_mean > 40.0 && a.response_tokens_mean < 15.0,
        "B {} A {}",
        b.response_tokens_mean,
        a.response_tokens_mean
    );
    // the GRPO arms continue from their SFT arm: same SFT tokens, plus sampled ones
    assert_eq!((c.sft_tokens_mean, d.sft_tokens_mean), (b.sft_tokens_mean, a.sft_tokens_mean));
    assert!(c.rl_sampled_tokens_mean > 0.0 && d.rl_sampled_tokens_mean > 0.0 && a.rl_sampled_tokens_mean == 0.0);
    let on_disk: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(on_disk["b_minus_a"].as_f64().unwrap(), r.b_minus_a);
    assert!(std::fs::read_to_string(out.join("results.md")).unwrap().contains("| B | SFT on long-CoT traces |"));

    // a rerun of the same config finds every job done and writes the same bytes
    let before = std::fs::read(out.join("results.json")).unwrap();
    let (again, secs_again) = repro(&out, cfg, &exe).unwrap();
    assert_eq!(again, r);
    assert_eq!(std::fs::read(out.join("results.json")).unwrap(), before);
    assert!(secs_again < 60.0, "the rerun trained again ({secs_again:.0} s)");
}

#[test]
fn repro_mini_names_the_failed_job_and_its_log() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = recipe(|c| {
        c.seeds = vec![3];
        c.jobs = 1;
        c.data.train_rows = 60;
        c.data.test_rows = 12;
    });
    // an executable that fails every job
    let e = repro(tmp.path(), cfg.clone(), Path::new("/bin/false")).unwrap_err().to_string();
    assert!(e.contains("job `seed 3 A: sft` failed") && e.contains("log.txt"), "{e}");
    let e = repro(tmp.path(), recipe(|c| c.template_tokenizer = "no/such/dir".into()), Path::new("/bin/false"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("template_tokenizer no/such/dir"), "{e}");
}

/// SFT steps of the CI-sized run; the full recipe trains 3,000.
const SFT_STEPS: usize = 3000;
const MIN_B_ACCURACY: f64 = 0.3;
