//! The fingerprints of a run's stored images ([`crate::image::Fingerprint`]), kept so that
//! each image is decoded once per run directory, whichever stage needs its pixels first.
//!
//! They live in append-only logs under `DIR/images/fingerprints/`, one per process that wrote
//! any (`fp-<pid>-<nanos>.log`), so tasks on several machines or resumed runs never write the
//! same file. A record is fixed-size: the 16-byte image id, a status byte (1: decoded, 0: does not
//! decode), the 64-bit hash, the 32x32 thumbnail, and an xxh3 checksum of all that. Opening
//! reads every log once (a torn record at the end of a log, from a killed process, is ignored)
//! into an id -> location map; records are read back on demand. One file per process instead
//! of a sidecar file per image: creating and renaming 100k small files cost more than decoding.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Context, Result};
use crate::image::{Fingerprint, THUMB_BYTES};

const ID: usize = 16;
const RECORD: usize = ID + 1 + 8 + THUMB_BYTES + 8;

/// What the logs know of an image.
pub type Known = std::result::Result<Arc<Fingerprint>, ()>;

/// Where a record lives: index into the open logs, byte offset.
#[derive(Clone, Copy)]
struct Loc(u32, u64);

#[derive(Default)]
struct Logs {
    files: Vec<File>,
    at: HashMap<[u8; ID], Loc>,
    /// This process's log (index into `files`) and its length, opened on the first write.
    own: Option<(u32, u64)>,
}

/// The fingerprint logs of one image store.
pub struct FingerprintLog {
    dir: PathBuf,
    logs: OnceLock<RwLock<Logs>>,
}

impl std::fmt::Debug for FingerprintLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FingerprintLog").field("dir", &self.dir).finish()
    }
}

/// The 16 bytes of a 32-hex-digit image id; None for any other id.
fn id_bytes(id: &str) -> Option<[u8; ID]> {
    if id.len() != 2 * ID {
        return None;
    }
    let mut out = [0u8; ID];
    for (k, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(id.get(2 * k..2 * k + 2)?, 16).ok()?;
    }
    Some(out)
}

fn encode(id: &[u8; ID], f: Option<&Fingerprint>) -> Vec<u8> {
    let mut b = Vec::with_capacity(RECORD);
    b.extend_from_slice(id);
    match f {
        Some(f) if f.thumb.len() == THUMB_BYTES => {
            b.push(1);
            b.extend_from_slice(&f.hash.to_le_bytes());
            b.extend_from_slice(&f.thumb);
        }
        _ => {
            b.push(0);
            b.resize(RECORD - 8, 0);
        }
    }
    let check = xxh3_64(&b);
    b.extend_from_slice(&check.to_le_bytes());
    b
}

/// A record's id and content; None when the checksum fails.
fn decode(b: &[u8]) -> Option<([u8; ID], Known)> {
    let (body, check) = b.split_at(RECORD - 8);
    if xxh3_64(body) != u64::from_le_bytes(check.try_into().ok()?) {
        return None;
    }
    let id: [u8; ID] = body[..ID].try_into().ok()?;
    let known = match body[ID] {
        1 => {
            let hash = u64::from_le_bytes(body[ID + 1..ID + 9].try_into().ok()?);
            Ok(Arc::new(Fingerprint::new(hash, body[ID + 9..].to_vec())))
        }
        _ => Err(()),
    };
    Some((id, known))
}

impl FingerprintLog {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf(), logs: OnceLock::new() }
    }

    /// Read the logs' indexes on first use.
    fn logs(&self) -> &RwLock<Logs> {
        self.logs.get_or_init(|| {
            let mut logs = Logs::default();
            let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.dir)
                .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "log")).collect())
                .unwrap_or_default();
            paths.sort();
            for p in paths {
                let Ok(f) = File::open(&p) else { continue };
                let Ok(reader) = f.try_clone() else { continue };
                let n = logs.files.len() as u32;
                let mut r = BufReader::with_capacity(1 << 20, reader);
                let mut rec = vec![0u8; RECORD];
                let mut off = 0u64;
                // stop at a torn or damaged record: nothing after it is trusted
                while r.read_exact(&mut rec).is_ok() {
                    let Some((id, _)) = decode(&rec) else { break };
                    logs.at.entry(id).or_insert(Loc(n, off));
                    off += RECORD as u64;
                }
                logs.files.push(f);
            }
            RwLock::new(logs)
        })
    }

    /// What the logs hold for an image: Some(Ok) its fingerprint, Some(Err) that it does not
    /// decode, None nothing.
    pub fn get(&self, id: &str) -> Option<Known> {
        let key = id_bytes(id)?;
        let logs = self.logs().read().ok()?;
        let Loc(file, off) = *logs.at.get(&key)?;
        let mut rec = vec![0u8; RECORD];
        logs.files.get(file as usize)?.read_exact_at(&mut rec, off).ok()?;
        decode(&rec).filter(|(k, _)| *k == key).map(|(_, known)| known)
    }

    /// Record an image's fingerprint (None: it does not decode), unless one is known. Best
    /// effort: a failed write only means a later stage decodes the image again.
    pub fn put(&self, id: &str, f: Option<&Fingerprint>) {
        let _ = self.try_put(id, f);
    }

    fn try_put(&self, id: &str, f: Option<&Fingerprint>) -> Result<()> {
        let Some(key) = id_bytes(id) else { return Ok(()) };
        let rec = encode(&key, f);
        let lock = self.logs();
        if lock.read().map(|l| l.at.contains_key(&key)).unwrap_or(true) {
            return Ok(());
        }
        // one writer at a time appends to this process's log, then publishes the location
        let mut logs = lock.write().map_err(|_| crate::Error::Run("fingerprint log lock poisoned".into()))?;
        if logs.at.contains_key(&key) {
            return Ok(());
        }
        let (file, len) = match logs.own {
            Some(o) => o,
            None => {
                std::fs::create_dir_all(&self.dir).ctx(|| format!("creating {}", self.dir.display()))?;
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let p = self.dir.join(format!("fp-{}-{nanos}.log", std::process::id()));
                let f = std::fs::OpenOptions::new()
                    .create_new(true)
                    .append(true)
                    .read(true)
                    .open(&p)
                    .ctx(|| format!("creating {}", p.display()))?;
                logs.files.push(f);
                ((logs.files.len() - 1) as u32, 0)
            }
        };
        (&logs.files[file as usize])
            .write_all(&rec)
            .ctx(|| format!("appending to a fingerprint log in {}", self.dir.display()))?;
        logs.at.insert(key, Loc(file, len));
        logs.own = Some((file, len + RECORD as u64));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(seed: u8) -> Fingerprint {
        Fingerprint::new(
            0x0123_4567_89ab_cdef ^ seed as u64,
            (0..THUMB_BYTES).map(|i| (i as u8).wrapping_mul(seed)).collect(),
        )
    }

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("fingerprints");
        let (a, b, c) = (
            "00112233445566778899aabbccddeeff",
            "ffeeddccbbaa99887766554433221100",
            "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",
        );
        let log = FingerprintLog::new(&dir);
        assert!(log.get(a).is_none());
        log.put(a, Some(&fp(3)));
        log.put(b, None);
        log.put(a, Some(&fp(9))); // known already: kept as first written
        assert_eq!(log.get(a).unwrap().unwrap().as_ref(), &fp(3));
        assert!(log.get(b).unwrap().is_err());
        assert!(log.get("not-an-id").is_none());
        drop(log);
        // a second process appends its own log; then a torn record at its end
        let log = FingerprintLog::new(&dir);
        assert_eq!(log.get(a).unwrap().unwrap().as_ref(), &fp(3));
        log.put(c, Some(&fp(5)));
        drop(log);
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
        assert_eq!(files.len(), 2);
        for f in &files {
            let mut b = std::fs::read(f).unwrap();
            b.extend_from_slice(&[7u8; 100]);
            std::fs::write(f, b).unwrap();
        }
        let log = FingerprintLog::new(&dir);
        assert_eq!(log.get(c).unwrap().unwrap().as_ref(), &fp(5));
        assert!(log.get(b).unwrap().is_err());
        // a damaged record is not trusted
        let first = files.iter().find(|f| std::fs::metadata(f).unwrap().len() > 2 * RECORD as u64).unwrap();
        let mut bytes = std::fs::read(first).unwrap();
        bytes[ID + 20] ^= 1;
        std::fs::write(first, bytes).unwrap();
        let log = FingerprintLog::new(&dir);
        assert!(log.get(a).is_none(), "a record with a bad checksum was read");
    }
}
