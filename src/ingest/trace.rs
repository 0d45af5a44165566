//! A raw row to a trace: its record mapped by the input's layout, its images put into the
//! store, its content id computed; or a ledger row saying why it could not be.

use std::path::Path;

use rayon::prelude::*;

use super::{Input, RawRow, RawTrace, content_id, map_record};
use crate::error::Result;
use crate::schema::{ImageRef, LedgerEntry, Trace};
use crate::store::ImageStore;

/// Outcome of ingesting one raw row.
enum Ingested {
    Trace(RawTrace, Vec<ImageRef>, [u8; 16], String),
    Rejected(LedgerEntry),
}

fn ingest_row(row: RawRow, input: &Input, root: &Path, store: &ImageStore) -> Result<Ingested> {
    let rejected = |reason: &str, detail: String| {
        Ingested::Rejected(LedgerEntry {
            id: None,
            source: input.source.clone(),
            origin: row.origin.clone(),
            stage: "ingest".into(),
            reason: reason.to_string(),
            detail,
            kept_id: None,
        })
    };
    let rec = match &row.record {
        Ok(r) => r,
        Err(rej) => return Ok(rejected(rej.reason, rej.detail.clone())),
    };
    let raw = match map_record(rec, input) {
        Ok(r) => r,
        Err(rej) => return Ok(rejected(rej.reason, rej.detail)),
    };
    let mut refs = Vec::with_capacity(raw.images.len());
    for src in raw.images.iter().cloned() {
        match store.ingest_readable(src, root)? {
            Ok(r) => refs.push(r),
            Err(why) => return Ok(rejected("unreadable_image", why)),
        }
    }
    let ids: Vec<String> = refs.iter().map(|r| r.id.clone()).collect();
    let cid = content_id(&input.source, &raw, &ids);
    Ok(Ingested::Trace(raw, refs, cid, row.origin))
}

/// The traces and the ledger rows of an ingested batch; `id_of` names each trace from its
/// content id, in order.
fn split_ingested(
    done: Vec<Ingested>,
    source: &str,
    mut id_of: impl FnMut([u8; 16]) -> Result<String>,
) -> Result<(Vec<Trace>, Vec<LedgerEntry>)> {
    let mut kept = Vec::with_capacity(done.len());
    let mut dropped = Vec::new();
    for d in done {
        match d {
            Ingested::Rejected(e) => dropped.push(e),
            Ingested::Trace(raw, images, cid, origin) => kept.push(Trace {
                id: id_of(cid)?,
                source: source.to_string(),
                origin,
                system: raw.system,
                prompt: raw.prompt,
                response: raw.response,
                reference: raw.reference,
                images,
                tokens: None,
                num_tokens: None,
                bucket: None,
                pass_rate: raw.pass_rate,
            }),
        }
    }
    Ok((kept, dropped))
}

/// Ingest a batch of raw rows (in parallel): the traces in order, named by `id_of` from their
/// content ids, and the ledger rows of the rows that were rejected.
pub fn to_traces(
    rows: Vec<RawRow>,
    input: &Input,
    root: &Path,
    store: &ImageStore,
    id_of: impl FnMut([u8; 16]) -> Result<String>,
) -> Result<(Vec<Trace>, Vec<LedgerEntry>)> {
    let done: Vec<Ingested> = rows.into_par_iter().map(|r| ingest_row(r, input, root, store)).collect::<Result<_>>()?;
    split_ingested(done, &input.source, id_of)
}
