//! GRPO (`cotforge train rl`): the mean reward rises on a small verifiable task, and runs are
//! deterministic: the same seed gives the same metrics, and a resumed run continues
//! identically. The objective's arithmetic is unit-tested in `src/train/grpo.rs`.

use cotforge::train::TrainConfig;
use cotforge::train::optim::Schedule;
use cotforge::train::rl::{RlArgs, RlConfig, run};

use crate::train::{copy_dir, train_lines};

/// A curated run of `rows` prompts of `cotforge synth --task arith` (image, question,
/// reference) and a tiny Qwen2.5-VL with a task tokenizer, fine-tuned on their long-CoT
/// traces for `steps` steps: it has the format some of the time, and sampling finds it.
pub(crate) fn start(dir: &std::path::Path, rows: usize, steps: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    let files = cotforge::synth::corpus::arith_task(5, rows, 1, &data).unwrap();
    let tok = crate::learn::task_tokenizer(&files[0], &dir.join("tok"), 320);
    let tiny = cotforge::repro::TinyModel {
        hidden_size: 64,
        intermediate_size: 128,
        layers: 2,
        heads: 2,
        kv_heads: 1,
        mrope_section: vec![4, 6, 6],
        vision_depth: 2,
        vision_hidden: 32,
    };
    let mut cfg = cotforge::repro::ReproConfig { model: tiny, ..Default::default() }.model_config().unwrap();
    cotforge::tokenize::train_tokenizer::fit_config(&mut cfg, &tok).unwrap();
    let model = dir.join("model");
    cotforge::model::init::write_random(&model, &cfg, Some(&tok), 3).unwrap();
    let spec = format!(
        "name: arith\ninputs:\n  - path: {}\n    format: parquet\n    columns: {{prompt: problem, response: answer, reference: solution, images: images}}\n    source: arith\nstages:\n  - tokenize:\n      tokenizer: {}\n      system: Think step by step.\n  - pack: {{max_length: 512, row_group_packs: 2}}\noutput:\n  dir: o\n",
        files[0].display(),
        tok.display()
    );
    let spec = crate::common::write_spec(dir, &spec);
    crate::common::run(&spec, &dir.join("run"), Some(2));
    let cfg = TrainConfig {
        lr: 3e-3,
        schedule: Schedule::Constant,
        warmup_ratio: 0.0,
        max_steps: Some(steps),
        packs_per_step: 1,
        ..TrainConfig::default()
    };
    let args = cotforge::train::SftArgs {
        shards: dir.join("run/shards"),
        model,
        tokenizer: None,
        out: dir.join("sft"),
        config: cfg,
        resume: false,
        progress: false,
        device: "cpu".into(),
    };
    let s = cotforge::train::sft::run(&args).unwrap();
    (dir.join("run"), s.checkpoint)
}

fn rl_config(steps: usize) -> RlConfig {
    RlConfig {
        steps,
        prompts_per_step: 4,
        group_size: 6,
        max_new_tokens: 64,
        lr: 1e-3,
        pack_length: 512,
        seed: 11,
        ..RlConfig::default()
    }
}

fn rl_args(
    prompts: &std::path::Path,
    model: &std::path::Path,
    out: std::path::PathBuf,
    cfg: &RlConfig,
    resume: bool,
) -> RlArgs {
    RlArgs {
        prompts: prompts.into(),
        model: model.into(),
        tokenizer: None,
        out,
        config: cfg.clone(),
        resume,
        progress: false,
        device: "cpu".into(),
        limit: None,
    }
}

/// Metrics lines without their timings.
fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    train_lines(path)
        .into_iter()
        .map(|mut v| {
            let o = v.as_object_mut().unwrap();
            o.remove("rollout_tokens_per_s");
            o.remove("update_tokens_per_s");
            v
        })
        .collect()
}

#[test]
fn grpo_raises_the_mean_reward() {
    let tmp = tempfile::tempdir().unwrap();
    let (prompts, model) = start(tmp.path(), 16, 150);
    let reward = cotforge::train::rl::RewardConfig { accuracy: 0.5, format: 0.5, ..Default::default() };
    let cfg = RlConfig { reward, ..rl_config(24) };
    let s = run(&rl_args(&prompts, &model, tmp.path().join("rl"), &cfg, false)).unwrap();
    assert_eq!(s.steps, 24);
    let m = lines(&tmp.path().join("rl/metrics.jsonl"));
    assert_eq!(m.len(), 24);
    let mean =
        |xs: &[serde_json::Value], k: &str| xs.iter().map(|l| l[k].as_f64().unwrap()).sum::<f64>() / xs.len() as f64;
    let (first, last) = (mean(&m[..6], "reward"), mean(&m[18..], "reward"));
    eprintln!(
        "reward {first:.3} -> {last:.3}, accuracy {:.3} -> {:.3}, format {:.3} -> {:.3}",
        mean(&m[..6], "accuracy"),
        mean(&m[18..], "accuracy"),
        mean(&m[..6], "format"),
        mean(&m[18..], "format")
    );
    assert!(last > first + 0.1, "mean reward {first:.3} over the first 6 steps, {last:.3} over the last 6");
    assert!(mean(&m[18..], "accuracy") > mean(&m[..6], "accuracy"), "the verified part rises too");
    for l in &m {
        for k in ["accuracy", "clip_fraction", "format", "truncated"] {
            let v = l[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{k} = {v}");
        }
        assert!(l["entropy"].as_f64().unwrap() >= 0.0 && l["response_length"].as_f64().unwrap() > 0.0, "{l}");
        assert_eq!(l["kl"].as_f64(), Some(0.0), "beta 0: no reference");
        // the reward is the weighted sum of its parts
        let want = 0.5 * l["accuracy"].as_f64().unwrap() + 0.5 * l["format"].as_f64().unwrap();
        assert!((l["reward"].as_f64().unwrap() - want).abs() < 1e-9, "{l}");
    }
}

#[test]
fn grpo_runs_repeat_and_resume_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let (prompts, model) = start(tmp.path(), 6, 150);
    let cfg = RlConfig {
        save_every: 2,
        keep_last: 3,
        beta: 0.05,
        updates_per_batch: 2,
        reward: cotforge::train::rl::RewardConfig { accuracy: 0.9, format: 0.1, ..Default::default() },
        ..rl_config(4)
    };
    let a = tmp.path().join("a");
    run(&rl_args(&prompts, &model, a.clone(), &cfg, false)).unwrap();
    let b = tmp.path().join("b");
    run(&rl_args(&prompts, &model, b.clone(), &cfg, false)).unwrap();
    let la = lines(&a.join("metrics.jsonl"));
    assert_eq!(la, lines(&b.join("metrics.jsonl")), "same seed, same metrics");
    assert!(
        la.iter().any(|l| l["kl"].as_f64().unwrap() > 0.0),
        "the second update moves away from the reference: {la:?}"
    );
    let weights = |d: &std::path::Path| std::fs::read(d.join("checkpoints/step-0000004/model.safetensors")).unwrap();
    assert_eq!(weights(&a), weights(&b));
    // resume from step 2 of a copy
    let c = tmp.path().join("c");
    copy_dir(&a, &c);
    std::fs::remove_dir_all(c.join("checkpoints/step-0000004")).unwrap();
    run(&rl_args(&prompts, &model, c.clone(), &cfg, true)).unwrap();
    assert_eq!(lines(&c.join("metrics.jsonl")), la, "the resumed run's metrics");
    assert_eq!(weights(&c), weights(&a), "the resumed run's weights");
    // another seed samples other responses
    let d = tmp.path().join("d");
    run(&rl_args(&prompts, &model, d.clone(), &RlConfig { seed: 12, ..cfg.clone() }, false)).unwrap();
    assert_ne!(lines(&d.join("metrics.jsonl")), la);
    // a changed config is refused on resume
    let e = run(&rl_args(&prompts, &model, c, &RlConfig { lr: 5e-4, ..cfg }, true)).unwrap_err().to_string();
    assert!(e.contains("rl config differs"), "{e}");
}

#[test]
fn rl_configs_are_checked() {
    for (yaml, needle) in [
        ("group_size: 0", "group_size"),
        ("clip_low: 1.5", "clip_low"),
        ("reward: {overlong: penalty}", "overlong_window"),
        ("aggregation: mean", "aggregation"),
        ("nope: 1", "nope"),
    ] {
        let e = RlConfig::parse(yaml).unwrap_err();
        assert!(e.contains(needle), "{yaml}: {e}");
    }
    assert_eq!(RlConfig::parse("").unwrap(), RlConfig::default());
}
