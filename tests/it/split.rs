//! Runs split into tasks (`--rank/--world-size/--step`, `cotforge plan`): the outputs equal a
//! one-process run's byte for byte.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};

use crate::common::{cli, demo_yaml, repo, stderr, tree, write_spec};

/// The files a split run must reproduce exactly: curated rows, ledger and shards.
fn outputs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut t = tree(dir);
    t.retain(|k, _| k.starts_with("curated/") || k.starts_with("ledger/") || k.starts_with("shards/"));
    t
}

fn assert_same_outputs(one: &Path, split: &Path) {
    let (a, b) = (outputs(one), outputs(split));
    assert!(a.keys().any(|k| k.starts_with("ledger/")) && a.keys().any(|k| k.starts_with("curated/")));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>(), "the same files");
    for (k, v) in &a {
        assert!(v == &b[k], "{k} differs between the one-process and the split run");
    }
    // and the same counts per stage
    let stats = |d: &Path| -> cotforge::pipeline::RunStats {
        serde_json::from_slice(&std::fs::read(d.join("stats.json")).unwrap()).unwrap()
    };
    let (sa, sb) = (stats(one), stats(split));
    let counts = |s: &cotforge::pipeline::RunStats| -> Vec<(String, u64, u64, BTreeMap<String, u64>)> {
        s.stages.iter().map(|x| (x.stage.clone(), x.rows_in, x.rows_out, x.dropped.clone())).collect()
    };
    assert_eq!(counts(&sa), counts(&sb));
    for (x, y) in sa.stages.iter().zip(&sb.stages) {
        assert_eq!(x.summary, y.summary, "summary of {}", x.stage);
        for (m, h) in &x.measured {
            assert_eq!((h.count, &h.buckets), (y.measured[m].count, &y.measured[m].buckets), "{} {m}", x.stage);
        }
    }
}

fn spawn(args: &[String], envs: &[(&str, String)]) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cotforge"));
    c.args(args).current_dir(repo());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    c.spawn().expect("cotforge starts")
}

fn wait_ok(c: Child, what: &str) {
    let o = c.wait_with_output().unwrap();
    assert!(o.status.success(), "{what}: {}", String::from_utf8_lossy(&o.stderr));
}

/// Run every step of a split run as separate processes: each array step as `world`
/// processes at once, each single step as one.
fn run_steps(spec: &Path, out: &Path, world: usize) {
    let s = cotforge::spec::load(spec).unwrap();
    for step in cotforge::pipeline::split::steps(&s).unwrap() {
        let ranks = if step.array { world } else { 1 };
        let children: Vec<Child> = (0..ranks)
            .map(|r| {
                let args: Vec<String> = [
                    "run",
                    spec.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "-q",
                    "--no-report",
                    "--world-size",
                    &world.to_string(),
                    "--rank",
                    &r.to_string(),
                    "--step",
                    &step.name,
                ]
                .iter()
                .map(|a| a.to_string())
                .collect();
                spawn(&args, &[])
            })
            .collect();
        for (r, c) in children.into_iter().enumerate() {
            wait_ok(c, &format!("step {} of task {r}", step.name));
        }
    }
}

fn one_process(spec: &Path, out: &Path) {
    let o = cli(&["run", spec.to_str().unwrap(), "--out", out.to_str().unwrap(), "-q", "--no-report"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn the_demo_split_into_four_tasks_step_by_step_equals_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    // small batches, so batches and row groups cross task boundaries
    let spec = write_spec(tmp.path(), &demo_yaml("batch_rows: 16\n"));
    let one = tmp.path().join("one");
    one_process(&spec, &one);
    let s = cotforge::spec::load(&spec).unwrap();
    let names: Vec<String> = cotforge::pipeline::split::steps(&s).unwrap().into_iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "ingest",
            "01-validate",
            "08-dedup.exact.map",
            "08-dedup.exact.reduce",
            "08-dedup.exact",
            "10-bucket.map",
            "10-bucket.reduce",
            "10-bucket",
            "finalize"
        ]
    );
    // input goes to tasks by bytes, in order, every file once (a Parquet file may be cut at
    // row groups)
    let pieces = cotforge::pipeline::split::assign_inputs(&s, 4).unwrap();
    let mut files: Vec<&std::path::PathBuf> = pieces.iter().flatten().map(|p| &p.file).collect();
    files.dedup();
    assert_eq!(files, s.inputs.iter().flat_map(|i| &i.files).collect::<Vec<_>>());
    assert!(pieces.iter().filter(|f| !f.is_empty()).count() >= 2, "{pieces:?}");
    let split = tmp.path().join("split");
    run_steps(&spec, &split, 4);
    assert_same_outputs(&one, &split);
    // the report finds the dropped rows' traces in the tasks' ingest output
    let opts = cotforge::report::ReportOptions::default();
    let (ra, rb) = (cotforge::report::render(&one, &opts).unwrap(), cotforge::report::render(&split, &opts).unwrap());
    assert!(rb.matches(r#"<details class="trace">"#).count() > 20);
    assert!(ra == rb, "the split run's report equals the one-process run's");
    // a finished step does nothing when run again
    let o = cli(
        &[
            "run",
            spec.to_str().unwrap(),
            "--out",
            split.to_str().unwrap(),
            "-q",
            "--world-size",
            "4",
            "--rank",
            "2",
            "--step",
            "01-validate",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_same_outputs(&one, &split);
}

#[test]
fn repeated_rows_in_files_of_different_tasks_are_numbered_and_deduplicated_as_in_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let row = |q: usize| {
        serde_json::json!({"prompt": format!("What is {q} + {q}?"), "response": format!("<think>\n{q} + {q} = {}\n</think>\n\\boxed{{{}}}", 2 * q, 2 * q), "answer": (2 * q).to_string()})
            .to_string()
    };
    // four files of the same size; rows 0..3 repeat in every file, so their copies sit in
    // different tasks
    for f in 0..4 {
        let lines: Vec<String> = (0..3).chain(10 * (f + 1)..10 * (f + 1) + 3).map(row).collect();
        std::fs::write(data.join(format!("part-{f}.jsonl")), lines.join("\n") + "\n").unwrap();
    }
    let spec = write_spec(
        tmp.path(),
        &format!(
            "name: repeats\ninputs:\n  - path: {}/*.jsonl\n    format: jsonl\n    columns: {{prompt: prompt, response: response, reference: answer}}\n    source: s\nstages:\n  - validate: {{}}\n  - dedup.exact: {{on: [prompt]}}\noutput:\n  dir: unused\n",
            data.display()
        ),
    );
    let s = cotforge::spec::load(&spec).unwrap();
    assert!(cotforge::pipeline::split::assign_inputs(&s, 4).unwrap().iter().all(|f| f.len() == 1), "one file per task");
    let one = tmp.path().join("one");
    one_process(&spec, &one);
    let split = tmp.path().join("split");
    run_steps(&spec, &split, 4);
    assert_same_outputs(&one, &split);
    let led = crate::common::ledger(&split);
    assert_eq!(led.len(), 9, "three rows repeated in three later files");
    assert!(led.iter().all(|e| e.reason == "duplicate" && e.id.as_deref().unwrap().contains('-')), "{led:?}");
}

#[test]
fn tasks_without_steps_wait_for_each_other_and_rank_zero_finalizes() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &demo_yaml(""));
    let one = tmp.path().join("one");
    one_process(&spec, &one);
    let split = tmp.path().join("split");
    // ranks from the Kubernetes environment variable, world size from the flag
    let children: Vec<Child> = (0..3)
        .rev()
        .map(|r| {
            let args: Vec<String> = [
                "run",
                spec.to_str().unwrap(),
                "--out",
                split.to_str().unwrap(),
                "-q",
                "--no-report",
                "--world-size",
                "3",
            ]
            .iter()
            .map(|a| a.to_string())
            .collect();
            spawn(&args, &[("JOB_COMPLETION_INDEX", r.to_string())])
        })
        .collect();
    for c in children {
        wait_ok(c, "task");
    }
    assert_same_outputs(&one, &split);
}

#[test]
fn a_task_killed_mid_step_is_rerun_alone_and_the_run_completes_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &demo_yaml("batch_rows: 8\n"));
    let one = tmp.path().join("one");
    one_process(&spec, &one);
    let split = tmp.path().join("split");
    let (sp, out) = (spec.to_str().unwrap(), split.to_str().unwrap());
    let step = |rank: usize, name: &str, envs: &[(&str, &str)]| {
        cli(
            &[
                "run",
                sp,
                "--out",
                out,
                "-q",
                "--no-report",
                "--world-size",
                "2",
                "--rank",
                &rank.to_string(),
                "--step",
                name,
            ],
            envs,
        )
    };
    for r in 0..2 {
        assert!(step(r, "ingest", &[]).status.success());
    }
    // task 1 dies after writing two batches of its validate step
    let o = step(1, "01-validate", &[("COTFORGE_FAULT_EXIT", "filter.truncated:2")]);
    assert_eq!(o.status.code(), Some(99), "{}", stderr(&o));
    assert!(step(0, "01-validate", &[]).status.success());
    // the next step refuses to start and names what is missing
    let o = step(0, "08-dedup.exact.map", &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("task 1") && stderr(&o).contains("has not finished"), "{}", stderr(&o));
    // rerunning only the killed task's step completes it
    let marker0 = std::fs::read(split.join("work/01-validate/task-00000/_DONE.json")).unwrap();
    assert!(step(1, "01-validate", &[]).status.success());
    assert_eq!(
        std::fs::read(split.join("work/01-validate/task-00000/_DONE.json")).unwrap(),
        marker0,
        "task 0 was not redone"
    );
    for name in [
        "08-dedup.exact.map",
        "08-dedup.exact.reduce",
        "08-dedup.exact",
        "10-bucket.map",
        "10-bucket.reduce",
        "10-bucket",
        "finalize",
    ] {
        for r in 0..2 {
            let o = step(r, name, &[]);
            assert!(o.status.success(), "{name} {r}: {}", stderr(&o));
        }
    }
    assert_same_outputs(&one, &split);
}

#[test]
fn the_slurm_plan_chains_its_steps_and_its_scripts_reproduce_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &demo_yaml(""));
    let one = tmp.path().join("one");
    one_process(&spec, &one);
    let split = tmp.path().join("split");
    let plan = tmp.path().join("plan");
    let bin = env!("CARGO_BIN_EXE_cotforge");
    let o = cli(
        &[
            "plan",
            spec.to_str().unwrap(),
            "--world-size",
            "3",
            "--slurm",
            "--out",
            split.to_str().unwrap(),
            "--bin",
            bin,
            "--write",
            plan.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let submit = std::fs::read_to_string(plan.join("submit.sh")).unwrap();
    let scripts: Vec<String> = submit
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .last()
                .map(|f| f.trim_end_matches(')'))
                .filter(|f| f.ends_with(".sbatch"))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(scripts.len(), 9, "{submit}");
    assert_eq!(
        submit.matches("--dependency=afterok:$jid").count(),
        8,
        "every step after the first waits for the one before"
    );
    for (k, f) in scripts.iter().enumerate() {
        let text = std::fs::read_to_string(plan.join(f)).unwrap();
        assert!(text.contains(&format!("#SBATCH --chdir={}", repo().display())), "{text}");
        let array = text.contains("#SBATCH --array=0-2");
        assert_eq!(array, !(f.contains("reduce") || f.contains("finalize")), "{f}");
        // run the script the way Slurm would: each array index with its environment
        for r in 0..if array { 3 } else { 1 } {
            let mut c = Command::new("bash");
            c.arg(plan.join(f)).current_dir(repo());
            if array {
                c.env("SLURM_ARRAY_TASK_ID", r.to_string()).env("SLURM_ARRAY_TASK_COUNT", "3");
            }
            let o = c.output().unwrap();
            assert!(o.status.success(), "step {k} {f} task {r}: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    assert_same_outputs(&one, &split);

    // Kubernetes: one Indexed Job per step, applied and awaited in order
    let o = cli(&["plan", spec.to_str().unwrap(), "--world-size", "3", "--k8s"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(text.matches("completionMode: Indexed").count(), 9);
    assert_eq!(text.matches("completions: 3").count(), 6, "six array steps");
    assert_eq!(text.matches("kubectl wait --for=condition=complete").count(), 9);
}

#[test]
fn a_spec_with_a_stage_that_cannot_split_is_refused_up_front() {
    let tmp = tempfile::tempdir().unwrap();
    // `score` samples from a model per row and does not split yet
    let model = tmp.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(model.join("config.json"), "{}").unwrap();
    let scored = format!("  - validate: {{}}\n  - score: {{model: {}}}\n", model.display());
    let spec = write_spec(tmp.path(), &demo_yaml("").replace("  - validate: {}\n", &scored));
    let o = cli(&["plan", spec.to_str().unwrap(), "--world-size", "2", "--slurm"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`score`") && stderr(&o).contains("one process"), "{}", stderr(&o));
    let o = cli(
        &[
            "run",
            spec.to_str().unwrap(),
            "--out",
            tmp.path().join("x").to_str().unwrap(),
            "--world-size",
            "2",
            "--rank",
            "0",
            "--step",
            "ingest",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let o = cli(&["run", spec.to_str().unwrap(), "--step", "ingest"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--world-size"), "{}", stderr(&o));
    let o = cli(&["run", spec.to_str().unwrap(), "--world-size", "2", "--rank", "2"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("rank 2 is outside"), "{}", stderr(&o));
}

/// A synth corpus of `rows` rows in row groups of `group` rows (so tasks cut it at row groups).
fn synth_corpus(
    dir: &Path,
    rows: usize,
    group: usize,
    layout: cotforge::synth::corpus::SynthLayout,
) -> std::path::PathBuf {
    use cotforge::synth::corpus::{self, DefectRates, SynthOptions};
    let out = dir.join("corpus");
    let opts = SynthOptions {
        rows,
        seed: 5,
        out: out.clone(),
        layout,
        defects: DefectRates::default_rates(),
        batch_rows: group,
        bench_items: None,
    };
    corpus::synth(&opts, &indicatif::ProgressBar::hidden()).unwrap();
    out
}

#[test]
fn minhash_image_dedup_and_a_parquet_file_cut_at_row_groups_split_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_corpus(tmp.path(), 600, 64, cotforge::synth::corpus::SynthLayout::Columns);
    let spec = write_spec(
        tmp.path(),
        &format!(
            "name: images\ninputs:\n  - path: {}/data/*.parquet\n    format: parquet\n    columns: {{prompt: problem, response: answer, reference: solution, images: images}}\n    source: synth\nstages:\n  - validate: {{}}\n  - filter.repetition: {{}}\n  - dedup.minhash: {{image_radius: 4, check: exact}}\n  - dedup.image: {{chunk_rows: 50}}\n  - dedup.exact: {{}}\noutput:\n  dir: unused\n",
            data.display()
        ),
    );
    let s = cotforge::spec::load(&spec).unwrap();
    let pieces = cotforge::pipeline::split::assign_inputs(&s, 3).unwrap();
    assert!(
        pieces.iter().all(|p| p.len() == 1 && p[0].rows.is_some()),
        "one file cut into three row ranges: {pieces:?}"
    );
    let one = tmp.path().join("one");
    one_process(&spec, &one);
    let stats: cotforge::pipeline::RunStats =
        serde_json::from_slice(&std::fs::read(one.join("stats.json")).unwrap()).unwrap();
    assert!(
        stats.stages[4].dropped.get("duplicate_image").copied().unwrap_or(0) > 5,
        "the corpus has shared images: {:?}",
        stats.stages[4]
    );
    let near: u64 = stats
        .stages
        .iter()
        .filter(|s| s.stage == "dedup.minhash")
        .map(|s| s.dropped.get("near_duplicate").copied().unwrap_or(0))
        .sum();
    assert!(
        near > 5,
        "and near duplicates: {:?}",
        stats.stages.iter().map(|s| (&s.stage, &s.dropped)).collect::<Vec<_>>()
    );
    let split = tmp.path().join("split");
    run_steps(&spec, &split, 3);
    assert_same_outputs(&one, &split);
}

#[test]
fn a_100k_row_synth_corpus_split_into_four_processes_equals_one_process() {
    let tmp = tempfile::tempdir().unwrap();
    let data = synth_corpus(tmp.path(), 100_000, 256, cotforge::synth::corpus::SynthLayout::Prompts);
    let spec = write_spec(
        tmp.path(),
        &format!(
            "name: prompts100k\ninputs:\n  - path: {}/data/*.parquet\n    format: parquet\n    columns: {{prompt: problem, reference: solution}}\n    source: synth\nstages:\n  - validate: {{require_response: false}}\n  - filter.length: {{field: prompt, min_words: 3}}\n  - dedup.exact: {{on: [prompt]}}\noutput:\n  dir: unused\n",
            data.display()
        ),
    );
    let one = tmp.path().join("one");
    one_process(&spec, &one);
    let split = tmp.path().join("split");
    run_steps(&spec, &split, 4);
    assert_same_outputs(&one, &split);
    let stats: cotforge::pipeline::RunStats =
        serde_json::from_slice(&std::fs::read(split.join("stats.json")).unwrap()).unwrap();
    assert_eq!(stats.rows_in, 100_000);
    assert!(stats.ledger_rows > 10_000, "planted duplicates are dropped across tasks");
}
