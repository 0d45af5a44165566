//! The results of repro-mini: per arm and seed what the evaluation and the trainers' metrics
//! say, their mean and spread over the seeds, and the markdown table.

use crate::error::{Context, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One arm of one seed, evaluated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmRun {
    pub seed: u64,
    pub correct: usize,
    pub prompts: usize,
    pub accuracy: f64,
    /// Mean generated tokens per held-out prompt.
    pub response_tokens: f64,
    /// Held-out responses cut at `max_new_tokens`.
    pub truncated: usize,
    /// Tokens through SFT (prompts and responses of the packs), from the initialisation.
    pub sft_tokens: u64,
    /// Tokens sampled by GRPO rollouts.
    pub rl_sampled_tokens: u64,
    /// Tokens through GRPO updates.
    pub rl_update_tokens: u64,
}

/// An arm over all seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    pub arm: String,
    pub what: String,
    pub accuracy_mean: f64,
    /// Sample standard deviation over seeds (0 for one seed).
    pub accuracy_sd: f64,
    pub accuracy_min: f64,
    pub accuracy_max: f64,
    pub response_tokens_mean: f64,
    pub sft_tokens_mean: f64,
    pub rl_sampled_tokens_mean: f64,
    pub runs: Vec<ArmRun>,
}

/// `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReproResults {
    pub format: String,
    /// blake3 of the effective config (JSON).
    pub config_blake3: String,
    pub seeds: Vec<u64>,
    pub test_prompts: usize,
    /// The most common held-out answer's share: what always answering it would score.
    pub majority_baseline: f64,
    pub arms: Vec<ArmSummary>,
    /// Mean accuracy differences in points: B - A, C - B, D - A.
    pub b_minus_a: f64,
    pub c_minus_b: f64,
    pub d_minus_a: f64,
}

impl ReproResults {
    pub fn arm(&self, name: &str) -> Option<&ArmSummary> {
        self.arms.iter().find(|a| a.arm == name)
    }
}

/// Sum of a numeric field over the `train` lines of a metrics file.
pub(super) fn metrics_sum(path: &Path, field: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).ctx(|| format!("reading {}", path.display()))?;
    let mut sum = 0u64;
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Error::Run(format!("{} line {}: {e}", path.display(), i + 1)))?;
        if v["split"] == "train" {
            sum += v[field].as_u64().unwrap_or(0);
        }
    }
    Ok(sum)
}

pub(super) fn arm_run(dir: &Path, arm: &str, seed: u64) -> Result<ArmRun> {
    let results = dir.join(format!("eval-{arm}")).join("results.jsonl");
    let text = std::fs::read_to_string(&results).ctx(|| format!("reading {}", results.display()))?;
    let (mut prompts, mut correct, mut truncated, mut tokens) = (0usize, 0usize, 0usize, 0usize);
    for (i, line) in text.lines().enumerate() {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Error::Run(format!("{} line {}: {e}", results.display(), i + 1)))?;
        prompts += 1;
        correct += usize::from(v["correct"].as_bool().unwrap_or(false));
        truncated += usize::from(v["truncated"].as_bool().unwrap_or(false));
        tokens += v["new_tokens"].as_u64().unwrap_or(0) as usize;
    }
    let sft_arm = match arm {
        "C" => "B",
        "D" => "A",
        a => a,
    };
    let sft_tokens = metrics_sum(&dir.join(sft_arm).join("metrics.jsonl"), "tokens")?;
    let (rl_sampled_tokens, rl_update_tokens) = if sft_arm != arm {
        let m = dir.join(arm).join("metrics.jsonl");
        (metrics_sum(&m, "sampled_tokens")?, metrics_sum(&m, "update_tokens")?)
    } else {
        (0, 0)
    };
    Ok(ArmRun {
        seed,
        correct,
        prompts,
        accuracy: correct as f64 / prompts.max(1) as f64,
        response_tokens: tokens as f64 / prompts.max(1) as f64,
        truncated,
        sft_tokens,
        rl_sampled_tokens,
        rl_update_tokens,
    })
}

pub(super) fn summarise(arm: &str, what: &str, runs: Vec<ArmRun>) -> ArmSummary {
    let k = runs.len().max(1) as f64;
    let acc: Vec<f64> = runs.iter().map(|r| r.accuracy).collect();
    let mean = acc.iter().sum::<f64>() / k;
    let sd =
        if runs.len() > 1 { (acc.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (k - 1.0)).sqrt() } else { 0.0 };
    ArmSummary {
        arm: arm.into(),
        what: what.into(),
        accuracy_mean: mean,
        accuracy_sd: sd,
        accuracy_min: acc.iter().copied().fold(f64::INFINITY, f64::min),
        accuracy_max: acc.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        response_tokens_mean: runs.iter().map(|r| r.response_tokens).sum::<f64>() / k,
        sft_tokens_mean: runs.iter().map(|r| r.sft_tokens as f64).sum::<f64>() / k,
        rl_sampled_tokens_mean: runs.iter().map(|r| r.rl_sampled_tokens as f64).sum::<f64>() / k,
        runs,
    }
}

/// `results.md`: the table over seeds, then each seed.
pub fn markdown(r: &ReproResults) -> String {
    let seeds: Vec<String> = r.seeds.iter().map(u64::to_string).collect();
    let mut s = format!(
        "Held-out accuracy on {} arith questions whose (red, blue, green) triples never occur in training; seeds {}; always giving the most common answer scores {:.1}%.\n\n",
        r.test_prompts,
        seeds.join(", "),
        100.0 * r.majority_baseline
    );
    s.push_str("| arm | training | accuracy % (mean ± sd) | min-max | response tokens | SFT tokens | GRPO sampled tokens |\n|---|---|---|---|---|---|---|\n");
    for a in &r.arms {
        s.push_str(&format!(
            "| {} | {} | {:.1} ± {:.1} | {:.1}-{:.1} | {:.1} | {:.0} | {:.0} |\n",
            a.arm,
            a.what,
            100.0 * a.accuracy_mean,
            100.0 * a.accuracy_sd,
            100.0 * a.accuracy_min,
            100.0 * a.accuracy_max,
            a.response_tokens_mean,
            a.sft_tokens_mean,
            a.rl_sampled_tokens_mean
        ));
    }
    s.push_str(&format!(
        "\nB - A: {:+.1} points; C - B: {:+.1} points; D - A: {:+.1} points.\n\n",
        r.b_minus_a, r.c_minus_b, r.d_minus_a
    ));
    s.push_str("| seed | A | B | C | D |\n|---|---|---|---|---|\n");
    for (i, seed) in r.seeds.iter().enumerate() {
        let cell = |a: &ArmSummary| format!("{:.1}", 100.0 * a.runs[i].accuracy);
        s.push_str(&format!("| {seed} | {} |\n", r.arms.iter().map(cell).collect::<Vec<_>>().join(" | ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_give_mean_and_sample_spread() {
        let run = |seed, correct| ArmRun {
            seed,
            correct,
            prompts: 10,
            accuracy: correct as f64 / 10.0,
            response_tokens: 5.0,
            truncated: 0,
            sft_tokens: 100,
            rl_sampled_tokens: 0,
            rl_update_tokens: 0,
        };
        let s = summarise("A", "x", vec![run(0, 2), run(1, 4), run(2, 6)]);
        assert!((s.accuracy_mean - 0.4).abs() < 1e-12);
        assert!((s.accuracy_sd - 0.2).abs() < 1e-12);
        assert_eq!((s.accuracy_min, s.accuracy_max), (0.2, 0.6));
        assert_eq!(summarise("A", "x", vec![run(0, 3)]).accuracy_sd, 0.0);
    }
}
