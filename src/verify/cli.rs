//! Batch verification of JSONL cases, for the `verify` command line.
//!
//! Input: one JSON object per line, `{"id": <any JSON>, "gold": "...", "prediction": "..."}`;
//! blank lines are skipped, `id` defaults to `null`. Output: one JSON line per case,
//! `{"id", "equal", "gold_extracted", "pred_extracted"}`, in input order. Cases are verified in
//! parallel (rayon) in chunks, so memory stays bounded on large files.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Verdict, verify};

/// Cases verified per parallel batch.
const CHUNK: usize = 16 * 1024;

#[derive(Deserialize)]
struct CaseIn {
    #[serde(default)]
    id: serde_json::Value,
    gold: String,
    prediction: String,
}

#[derive(Serialize)]
struct CaseOut<'a> {
    id: &'a serde_json::Value,
    equal: bool,
    gold_extracted: &'a Option<String>,
    pred_extracted: &'a Option<String>,
}

fn flush(cases: &mut Vec<CaseIn>, out: &mut dyn Write, equal: &mut usize) -> Result<(), String> {
    let verdicts: Vec<Verdict> = cases.par_iter().map(|c| verify(&c.gold, &c.prediction)).collect();
    let mut buf = Vec::with_capacity(cases.len() * 64);
    for (c, v) in cases.iter().zip(&verdicts) {
        *equal += usize::from(v.equal);
        let rec =
            CaseOut { id: &c.id, equal: v.equal, gold_extracted: &v.gold_extracted, pred_extracted: &v.pred_extracted };
        serde_json::to_writer(&mut buf, &rec).map_err(|e| format!("cannot encode a verdict: {e}"))?;
        buf.push(b'\n');
    }
    out.write_all(&buf).map_err(|e| format!("cannot write verdicts: {e}"))?;
    cases.clear();
    Ok(())
}

/// Verify every case of the JSONL file `input`, writing one verdict line per case to `out`.
/// Returns `(cases, equal)`. A line that is not a JSON object with string `gold` and
/// `prediction` fields is an error naming the file and the 1-based line number.
pub fn run_cases(input: &Path, out: &mut dyn Write) -> Result<(usize, usize), String> {
    let f = std::fs::File::open(input).map_err(|e| format!("{}: cannot open: {e}", input.display()))?;
    let reader = BufReader::new(f);
    let mut batch: Vec<CaseIn> = Vec::with_capacity(CHUNK);
    let (mut total, mut equal) = (0usize, 0usize);
    for (n, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| format!("{}:{}: cannot read: {e}", input.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let case: CaseIn =
            serde_json::from_str(&line).map_err(|e| format!("{}:{}: malformed case: {e}", input.display(), n + 1))?;
        batch.push(case);
        total += 1;
        if batch.len() >= CHUNK {
            flush(&mut batch, out, &mut equal)?;
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, out, &mut equal)?;
    }
    out.flush().map_err(|e| format!("cannot write verdicts: {e}"))?;
    Ok((total, equal))
}
