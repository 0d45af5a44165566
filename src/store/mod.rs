//! The content-addressed image store of a run: `DIR/images/ab/abcdef...` (blake3, 32 hex).
//!
//! Images are read, hashed and measured once, at ingest; later stages carry only the id and
//! the measured size. Bytes are read back only by stages that must look at pixels and by the
//! final output writer.

pub mod archive;
pub mod fingerprints;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Context, Result};
use crate::image::{Fingerprint, measure};
use crate::io::atomic_write;
use crate::schema::ImageRef;
use crate::store::fingerprints::FingerprintLog;

/// Where the bytes of an image come from, as found in a raw record.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// Bytes embedded in the record (HF `{bytes, path}` struct or a binary column).
    Bytes { bytes: Vec<u8>, path: Option<String> },
    /// A file path, relative to the input's image root.
    Path(String),
}

/// The image store of one run directory.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    counter: AtomicU64,
    fingerprints: FingerprintLog,
    archives: archive::Archives,
}

/// Content id of image bytes: the first 128 bits of blake3, in hex.
pub fn image_id(bytes: &[u8]) -> String {
    let h = blake3::hash(bytes);
    h.to_hex()[..32].to_string()
}

/// Where the store under `root` keeps image `id` (for readers that do not open the store).
pub fn stored_path(root: &Path, id: &str) -> PathBuf {
    root.join(&id[..2.min(id.len())]).join(id)
}

impl ImageStore {
    /// Open (and create) the store under `root`.
    pub fn open(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root).ctx(|| format!("creating image store {}", root.display()))?;
        Ok(Self {
            root: root.to_path_buf(),
            counter: AtomicU64::new(0),
            fingerprints: FingerprintLog::new(&root.join("fingerprints")),
            archives: Default::default(),
        })
    }

    /// Path of an image in the store.
    pub fn path_of(&self, id: &str) -> PathBuf {
        stored_path(&self.root, id)
    }

    /// Read an image's bytes back.
    pub fn get(&self, id: &str) -> Result<Vec<u8>> {
        let p = self.path_of(id);
        std::fs::read(&p).ctx(|| format!("reading stored image {}", p.display()))
    }

    /// The fingerprint (perceptual hash and thumbnail, [`crate::image`]) of a stored image:
    /// computed once per run directory (by whichever stage decodes the image first, usually
    /// `validate`) and kept in the store's fingerprint logs, so later stages, resumed runs and
    /// other tasks never decode it again. None when the image is missing or does not decode.
    pub fn fingerprint(&self, id: &str) -> Option<Arc<Fingerprint>> {
        if id.is_empty() {
            return None;
        }
        self.fingerprint_checked(id).ok()?.ok()
    }

    /// [`Self::fingerprint`] with the reason an image is unusable: the inner error is the
    /// decoder's message, the outer one a failure to read the store.
    pub fn fingerprint_checked(&self, id: &str) -> Result<std::result::Result<Arc<Fingerprint>, String>> {
        let known = self.fingerprints.get(id);
        if let Some(Ok(f)) = known {
            return Ok(Ok(f));
        }
        // unknown, or known not to decode (decode again for the message)
        let bytes = self.get(id)?;
        let f = crate::image::fingerprint(&bytes);
        if known.is_none() {
            self.fingerprints.put(id, f.as_ref().ok());
        }
        Ok(f.map(Arc::new))
    }

    /// Store bytes under their content id (once) and return the reference.
    pub fn put(&self, bytes: &[u8], path: String) -> Result<ImageRef> {
        let id = image_id(bytes);
        let dest = self.path_of(&id);
        if !dest.exists() {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            atomic_write(&dest, bytes, n)?;
        }
        let (width, height) = measure(bytes).unwrap_or((0, 0));
        Ok(ImageRef { id, path, width, height })
    }

    /// Resolve an image found in a record: store its bytes, or record it as missing (empty id)
    /// when the referenced file does not exist. `root` resolves relative paths.
    pub fn ingest(&self, src: ImageSource, root: &Path) -> Result<ImageRef> {
        self.ingest_readable(src, root)?.map_err(crate::Error::Input)
    }

    /// [`ImageStore::ingest`], where an image file that exists but cannot be read (no
    /// permission, a directory, a name the file system refuses) is the inner error, saying
    /// why, for the caller to ledger; failures of the store itself are the outer one.
    pub fn ingest_readable(&self, src: ImageSource, root: &Path) -> Result<std::result::Result<ImageRef, String>> {
        match src {
            ImageSource::Bytes { bytes, path } => self.put(&bytes, path.unwrap_or_default()).map(Ok),
            ImageSource::Path(p) => {
                let not_found = |p: String| Ok(Ok(ImageRef { id: String::new(), path: p, width: 0, height: 0 }));
                // a member of a zip archive: `zip://MEMBER::ARCHIVE`, or a path under a zip root
                let member = match archive::parse_zip_url(&p) {
                    Some((m, a)) => {
                        // relative to the root, or to its directory when the root is an archive
                        let base = if archive::is_archive(root) { root.parent().unwrap_or(root) } else { root };
                        let a = if Path::new(a).is_absolute() { PathBuf::from(a) } else { base.join(a) };
                        Some((m.to_string(), a))
                    }
                    None if archive::is_archive(root) => Some((p.clone(), root.to_path_buf())),
                    None => None,
                };
                if let Some((m, a)) = member {
                    return match self.archives.read(&a, &m) {
                        Ok(Some(bytes)) => self.put(&bytes, p).map(Ok),
                        Ok(None) => not_found(p),
                        Err(why) => Ok(Err(crate::text::clip(&why, 300))),
                    };
                }
                let full = if Path::new(&p).is_absolute() { PathBuf::from(&p) } else { root.join(&p) };
                match std::fs::read(&full) {
                    Ok(bytes) => self.put(&bytes, p).map(Ok),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => not_found(p),
                    Err(e) => Ok(Err(format!("image `{}` cannot be read: {e}", crate::text::clip(&p, 120)))),
                }
            }
        }
    }
}
