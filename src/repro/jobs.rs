//! The job runner: cotforge subprocesses, `parallel` at a time, each leaving a marker with the
//! hash of its inputs so that a rerun skips the jobs that finished.

use crate::error::{Context, Error, Result};
use crate::io::atomic_write;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

/// A job: a cotforge subprocess writing into `out`.
pub(super) struct Job {
    pub(super) name: String,
    pub(super) args: Vec<OsString>,
    pub(super) out: PathBuf,
    /// What the job's result depends on; the marker holds it.
    pub(super) key: String,
    pub(super) deps: Vec<usize>,
}

pub(super) const MARKER: &str = "repro-done";

impl Job {
    /// The wall seconds of the finished run whose marker holds this job's key.
    fn finished(&self) -> Option<f64> {
        let text = std::fs::read_to_string(self.out.join(MARKER)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        (v["key"] == self.key.as_str()).then(|| v["seconds"].as_f64().unwrap_or(0.0))
    }
}

/// Run the jobs `parallel` at a time in dependency order (each after its `deps`), skipping
/// those whose marker matches. A training job's final checkpoint is linked as
/// `checkpoints/last`. Returns each job's wall seconds (those of the earlier run when skipped).
pub(super) fn run_jobs(exe: &Path, jobs: &mut [Job], parallel: usize, progress: bool) -> Result<Vec<(String, f64)>> {
    let n = jobs.len();
    let bar = crate::progress::bar(progress, Some(n as u64), "repro-mini", "jobs");
    let mut secs = vec![0.0f64; n];
    let mut done = vec![false; n];
    let mut started = vec![false; n];
    // a job whose dependency reruns must rerun too
    for i in 0..n {
        let dep_redone = jobs[i].deps.iter().any(|&d| !done[d]);
        if let (false, Some(s)) = (dep_redone, jobs[i].finished()) {
            secs[i] = s;
            done[i] = true;
            started[i] = true;
            bar.inc(1);
        }
    }
    let (tx, rx) = mpsc::channel::<(usize, Result<f64>)>();
    let mut running: Vec<usize> = Vec::new();
    let mut failure: Option<Error> = None;
    std::thread::scope(|scope| {
        loop {
            while failure.is_none() && running.len() < parallel {
                let Some(i) = (0..n).find(|&i| !started[i] && jobs[i].deps.iter().all(|&d| done[d])) else { break };
                started[i] = true;
                running.push(i);
                let job = &jobs[i];
                let tx = tx.clone();
                scope.spawn(move || {
                    let _ = tx.send((i, run_one(exe, job)));
                });
            }
            bar.set_message(running.iter().map(|&i| jobs[i].name.as_str()).collect::<Vec<_>>().join(", "));
            if running.is_empty() {
                break;
            }
            let (i, r) = rx.recv().expect("a running job reports");
            running.retain(|&j| j != i);
            match r {
                Ok(s) => {
                    secs[i] = s;
                    done[i] = true;
                    bar.inc(1);
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
    });
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(jobs.iter().zip(secs).map(|(j, s)| (j.name.clone(), s)).collect())
}

pub(super) fn run_one(exe: &Path, job: &Job) -> Result<f64> {
    let t = Instant::now();
    if job.out.exists() {
        std::fs::remove_dir_all(&job.out).ctx(|| format!("clearing {}", job.out.display()))?;
    }
    std::fs::create_dir_all(&job.out).ctx(|| format!("creating {}", job.out.display()))?;
    let log_path = job.out.join("log.txt");
    let log = std::fs::File::create(&log_path).ctx(|| format!("creating {}", log_path.display()))?;
    let err = log.try_clone().ctx(|| format!("opening {}", log_path.display()))?;
    let status = Command::new(exe)
        .args(&job.args)
        .env("RAYON_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .status()
        .ctx(|| format!("starting {}", exe.display()))?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(Error::Run(format!(
            "repro-mini: job `{}` failed ({status}); log {}:\n{}",
            job.name,
            log_path.display(),
            tail.join("\n")
        )));
    }
    let ckpts = job.out.join("checkpoints");
    if ckpts.is_dir() {
        let last = crate::train::checkpoint::latest(&ckpts)?
            .ok_or_else(|| Error::Run(format!("repro-mini: job `{}` wrote no checkpoint", job.name)))?;
        let name = last.file_name().expect("a checkpoint has a name").to_owned();
        let link = ckpts.join("last");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(name, &link).ctx(|| format!("linking {}", link.display()))?;
    }
    let seconds = t.elapsed().as_secs_f64();
    let marker = serde_json::json!({"key": job.key, "seconds": seconds});
    atomic_write(&job.out.join(MARKER), marker.to_string().as_bytes(), 0)?;
    Ok(seconds)
}
