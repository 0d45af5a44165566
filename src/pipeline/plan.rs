//! `cotforge plan`: the scheduler jobs of a split run ([`super::split`]), one per step.
//!
//! Slurm: one sbatch script per step (array steps as `--array=0-(N-1)`, the task's rank from
//! `SLURM_ARRAY_TASK_ID`, run in the directory `plan` ran in, logs under its `logs/`) and
//! `submit.sh`, which submits them in order, each with
//! `--dependency=afterok` on the one before. Kubernetes: one Indexed Job per step (the rank
//! from `JOB_COMPLETION_INDEX`) and `submit.sh`, which applies each and waits for it to
//! complete before the next.

use std::path::PathBuf;

use super::split::{Step, steps};
use crate::error::Result;
use crate::spec::Spec;

/// What the jobs need to know.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub world: usize,
    /// The run directory on the shared storage.
    pub run_dir: PathBuf,
    /// The spec as the jobs name it.
    pub spec_path: PathBuf,
    /// The cotforge command.
    pub bin: String,
    pub image: String,
    pub pvc: String,
    pub mount: String,
    /// Slurm: the directory the jobs run in (relative paths in the spec and the commands
    /// resolve against it); `plan` uses its own working directory.
    pub workdir: PathBuf,
}

/// Quote for a POSIX shell.
fn sh(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-=:,+@".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The command a step's task runs (rank from the scheduler's environment).
fn command(o: &PlanOptions, step: &Step) -> Vec<String> {
    let mut c = vec![
        o.bin.clone(),
        "run".into(),
        o.spec_path.display().to_string(),
        "--out".into(),
        o.run_dir.display().to_string(),
        "--world-size".into(),
        o.world.to_string(),
        "--step".into(),
        step.name.clone(),
        "--quiet".into(),
    ];
    if !step.array {
        c.extend(["--rank".into(), "0".into()]);
    }
    c
}

/// A job name from the spec and step (letters, digits and dashes).
fn job_name(spec: &Spec, k: usize, step: &Step) -> String {
    let raw = format!("cotforge-{}-{:02}-{}", spec.name, k + 1, step.name);
    let mut out: String =
        raw.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    out.truncate(63);
    out.trim_end_matches('-').to_string()
}

/// Slurm: `(file name, text)` of each step's sbatch script, then `submit.sh`.
pub fn slurm(spec: &Spec, o: &PlanOptions) -> Result<Vec<(String, String)>> {
    let all = steps(spec)?;
    let mut files = Vec::new();
    let wd = sh(&o.workdir.display().to_string());
    let mut submit = format!(
        "#!/bin/bash\n# Submit the steps of the split run in order; each starts when the one before succeeded.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\nmkdir -p {wd}/logs\n"
    );
    for (k, step) in all.iter().enumerate() {
        let file = format!("step-{:02}-{}.sbatch", k + 1, step.name);
        let mut t = String::from("#!/bin/bash\n");
        t.push_str(&format!("#SBATCH --job-name={}\n#SBATCH --chdir={wd}\n", job_name(spec, k, step)));
        if step.array {
            t.push_str(&format!("#SBATCH --array=0-{}\n#SBATCH --output=logs/%x-%a.out\n", o.world - 1));
        } else {
            t.push_str("#SBATCH --output=logs/%x.out\n");
        }
        t.push_str(&format!(
            "# step {} of {}: {} ({})\nset -euo pipefail\n",
            k + 1,
            all.len(),
            step.name,
            if step.array { format!("array of {} tasks", o.world) } else { "single task".into() }
        ));
        t.push_str(&command(o, step).iter().map(|a| sh(a)).collect::<Vec<_>>().join(" "));
        t.push('\n');
        if k == 0 {
            submit.push_str(&format!("jid=$(sbatch --parsable {file})\n"));
        } else {
            submit.push_str(&format!("jid=$(sbatch --parsable --dependency=afterok:$jid {file})\n"));
        }
        files.push((file, t));
    }
    submit.push_str("echo \"submitted; the last step is job $jid\"\n");
    files.push(("submit.sh".into(), submit));
    Ok(files)
}

/// Kubernetes: `(file name, text)` of each step's Indexed Job manifest, then `submit.sh`.
pub fn k8s(spec: &Spec, o: &PlanOptions) -> Result<Vec<(String, String)>> {
    let all = steps(spec)?;
    let mut files = Vec::new();
    let mut submit = String::from(
        "#!/bin/bash\n# Apply the steps of the split run in order; each starts when the one before completed.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\n",
    );
    for (k, step) in all.iter().enumerate() {
        let file = format!("step-{:02}-{}.yaml", k + 1, step.name);
        let name = job_name(spec, k, step);
        let n = if step.array { o.world } else { 1 };
        let args: Vec<String> = command(o, step).iter().map(|a| serde_json::to_string(a).expect("a string")).collect();
        let t = format!(
            "# step {} of {}: {} ({})\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  labels: {{app: cotforge, run: {run}}}\nspec:\n  completionMode: Indexed\n  completions: {n}\n  parallelism: {n}\n  backoffLimitPerIndex: 2\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: cotforge\n          image: {image}\n          workingDir: {mount}\n          command: [{cmd}]\n          volumeMounts:\n            - {{name: data, mountPath: {mount}}}\n      volumes:\n        - name: data\n          persistentVolumeClaim: {{claimName: {pvc}}}\n",
            k + 1,
            all.len(),
            step.name,
            if step.array { format!("{} indexed tasks", o.world) } else { "single task".into() },
            run = serde_json::to_string(&spec.name).expect("a string"),
            image = o.image,
            mount = o.mount,
            pvc = o.pvc,
            cmd = args.join(", "),
        );
        submit.push_str(&format!(
            "kubectl apply -f {file}\nkubectl wait --for=condition=complete --timeout=-1s job/{name}\n"
        ));
        files.push((file, t));
    }
    files.push(("submit.sh".into(), submit));
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::sh;

    #[test]
    fn shell_quoting_leaves_plain_words_and_quotes_the_rest() {
        assert_eq!(sh("pipelines/demo.yaml"), "pipelines/demo.yaml");
        assert_eq!(sh("a b"), "'a b'");
        assert_eq!(sh("it's"), r"'it'\''s'");
    }
}
