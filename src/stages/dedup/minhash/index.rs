//! The on-disk index of `dedup.minhash`: per input file, signatures, band hashes, ids (and
//! shingle sets) appended in input order by the map pass, and the banded clustering that reads
//! them back, as many bands per pass as the memory budget allows.

use crate::error::{Context, Result};
use crate::image::{Fingerprint, chunks};
use crate::schema::Trace;
use crate::text::minhash::{
    MinHasher, UnionFind, band_hash, estimate_jaccard, exact_jaccard, normalize_for_dedup, shingle_hashes,
};
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use xxhash_rust::xxh3::xxh3_64;

use super::*;

/// The images of a row as the comparison sees them.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ImageKey {
    /// `images: ignore`.
    Ignored,
    /// Hash of the content ids in order (0 for a row without images).
    Ids(u64),
    /// Fingerprints in order (an image that does not decode gets its id's hash and no
    /// thumbnail, so it matches only itself).
    Prints(Vec<Arc<Fingerprint>>),
}

/// Signature files of one input file (in input order).
pub(super) struct Part {
    pub(super) first: u64,
    pub(super) rows: u64,
    pub(super) sig: PathBuf,
    pub(super) bands: PathBuf,
    pub(super) ids: PathBuf,
    pub(super) shingles: PathBuf,
}

pub(super) struct PartWriters {
    pub(super) sig: BufWriter<File>,
    pub(super) bands: BufWriter<File>,
    pub(super) ids: BufWriter<File>,
    pub(super) shingles: Option<BufWriter<File>>,
}

/// One row, computed in the index pass.
pub(super) struct Row {
    pub(super) numbers: u64,
    pub(super) sig: Vec<u32>,
    pub(super) bands: Vec<u64>,
    pub(super) shingles: Vec<u64>,
    pub(super) image: ImageKey,
}

/// A row's images in a saved index: fingerprints travel as image ids (the reduce finds them
/// in the image store's fingerprint logs).
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) enum SavedImage {
    Ignored,
    Ids(u64),
    Prints(Vec<String>),
}

/// What the map step of `dedup.minhash` hands to the reduce.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct MinhashPartial {
    /// first, rows, then the signature, band, id and shingle files
    pub(super) parts: Vec<(u64, u64, PathBuf, PathBuf, PathBuf, PathBuf)>,
    pub(super) images: Vec<SavedImage>,
    pub(super) numbers: Vec<u64>,
    pub(super) empty: Vec<bool>,
    pub(super) shingle_offsets: Vec<u64>,
    pub(super) total: u64,
}

impl Minhash {
    pub fn new(cfg: MinhashConfig) -> Self {
        let (bands, rows_per_band) = cfg.banding();
        let ngram = cfg.ngram.unwrap_or(5);
        let image_chunks = chunks(cfg.image_radius.unwrap_or(0) as usize + 1);
        Self {
            hasher: MinHasher::new(cfg.num_perm, cfg.seed),
            cfg,
            bands,
            rows_per_band,
            ngram,
            image_chunks,
            parts: Vec::new(),
            readers: Vec::new(),
            current_file: None,
            writers: None,
            images: Vec::new(),
            numbers: Vec::new(),
            empty: Vec::new(),
            shingle_offsets: Vec::new(),
            shingle_write_off: 0,
            total: 0,
            dropped: HashMap::new(),
            kept_ids: HashMap::new(),
            image_ids: Vec::new(),
            unresolved: Vec::new(),
        }
    }

    /// The image key of a row from its image ids (fingerprints from the store).
    pub(super) fn prints_of(ids: &[String], store: &crate::ingest::ImageStore) -> ImageKey {
        ImageKey::Prints(
            ids.iter()
                .map(|id| {
                    store
                        .fingerprint(id)
                        .unwrap_or_else(|| Arc::new(Fingerprint::new(xxh3_64(id.as_bytes()), Vec::new())))
                })
                .collect(),
        )
    }

    pub(super) fn compute(&self, t: &Trace, store: &crate::ingest::ImageStore) -> Row {
        let mut shingles = Vec::new();
        let mut numbers = String::new();
        for f in &self.cfg.fields {
            let norm = normalize_for_dedup(f.get(t));
            shingle_hashes(&norm, self.cfg.shingle, self.ngram, &mut shingles);
            if self.cfg.same_numbers {
                for w in norm.split(' ').filter(|w| w.bytes().any(|b| b.is_ascii_digit())) {
                    numbers.push_str(w);
                    numbers.push(' ');
                }
            }
        }
        let numbers = if numbers.is_empty() { 0 } else { xxh3_64(numbers.as_bytes()) };
        let mut sig = vec![0u32; self.cfg.num_perm];
        self.hasher.signature(&shingles, &mut sig);
        let bands = (0..self.bands).map(|b| band_hash(&sig, b, self.rows_per_band)).collect();
        let image = match (self.cfg.images, self.cfg.image_radius) {
            (ImageMatch::Ignore, _) => ImageKey::Ignored,
            (ImageMatch::Match, None) => {
                let joined: Vec<&str> = t.images.iter().map(|i| i.id.as_str()).collect();
                ImageKey::Ids(if joined.is_empty() { 0 } else { xxh3_64(joined.join(",").as_bytes()) })
            }
            (ImageMatch::Match, Some(_)) => {
                Self::prints_of(&t.images.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), store)
            }
        };
        if self.cfg.check != PairCheck::Exact {
            shingles = Vec::new();
        }
        Row { numbers, sig, bands, shingles, image }
    }

    pub(super) fn open_part(&mut self, dir: &std::path::Path, first: u64) -> Result<()> {
        self.close_part()?;
        let k = self.parts.len();
        let path = |ext: &str| dir.join(format!("part-{k:05}.{ext}"));
        let create = |p: &PathBuf| -> Result<BufWriter<File>> {
            Ok(BufWriter::with_capacity(1 << 20, File::create(p).ctx(|| format!("creating {}", p.display()))?))
        };
        let part = Part {
            first,
            rows: 0,
            sig: path("sig"),
            bands: path("bands"),
            ids: path("ids"),
            shingles: path("shingles"),
        };
        self.writers = Some(PartWriters {
            sig: create(&part.sig)?,
            bands: create(&part.bands)?,
            ids: create(&part.ids)?,
            shingles: if self.cfg.check == PairCheck::Exact { Some(create(&part.shingles)?) } else { None },
        });
        self.parts.push(part);
        self.shingle_write_off = 0;
        Ok(())
    }

    pub(super) fn close_part(&mut self) -> Result<()> {
        if let Some(mut w) = self.writers.take() {
            let io = |e| crate::Error::io("writing minhash signatures", e);
            w.sig.flush().map_err(io)?;
            w.bands.flush().map_err(io)?;
            w.ids.flush().map_err(io)?;
            if let Some(s) = &mut w.shingles {
                s.flush().map_err(io)?;
            }
        }
        Ok(())
    }

    /// The part holding row `pos`, its index, and the row's place in it.
    pub(super) fn part_of(&self, pos: u64) -> (usize, &Part, u64) {
        let k = self.parts.partition_point(|p| p.first <= pos) - 1;
        (k, &self.parts[k], pos - self.parts[k].first)
    }

    /// Open every part's signature (and shingle) file once, for the reads of clustering.
    pub(super) fn open_readers(&mut self) -> Result<()> {
        let open = |p: &PathBuf| File::open(p).ctx(|| format!("opening {}", p.display()));
        self.readers = self
            .parts
            .iter()
            .map(|part| {
                let shingles = if self.cfg.check == PairCheck::Exact { Some(open(&part.shingles)?) } else { None };
                Ok((open(&part.sig)?, shingles))
            })
            .collect::<Result<_>>()?;
        Ok(())
    }

    pub(super) fn read_sig(&self, pos: u64) -> Result<Vec<u32>> {
        let (k, part, local) = self.part_of(pos);
        let n = self.cfg.num_perm;
        let mut bytes = vec![0u8; n * 4];
        self.readers[k]
            .0
            .read_exact_at(&mut bytes, local * n as u64 * 4)
            .ctx(|| format!("reading {}", part.sig.display()))?;
        Ok(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    pub(super) fn read_shingles(&self, pos: u64) -> Result<Vec<u64>> {
        let (k, part, _) = self.part_of(pos);
        let f =
            self.readers[k].1.as_ref().ok_or_else(|| crate::Error::Run("internal: shingle file not open".into()))?;
        let off = self.shingle_offsets[pos as usize];
        let mut len = [0u8; 4];
        f.read_exact_at(&mut len, off).ctx(|| format!("reading {}", part.shingles.display()))?;
        let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize * 8];
        f.read_exact_at(&mut bytes, off + 4).ctx(|| format!("reading {}", part.shingles.display()))?;
        Ok(bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
    }

    /// Similarity of two rows by the configured check (signature estimate unless exact).
    pub(super) fn similarity(&self, a: u64, b: u64, cache: &mut SigCache) -> Result<f64> {
        if self.cfg.check == PairCheck::Exact {
            return Ok(exact_jaccard(&mut self.read_shingles(a)?, &mut self.read_shingles(b)?));
        }
        let sa = cache.get(self, a)?;
        let sb = cache.get(self, b)?;
        Ok(estimate_jaccard(&sa, &sb))
    }

    pub(super) fn images_match(&self, a: u64, b: u64) -> bool {
        match (&self.images[a as usize], &self.images[b as usize]) {
            (ImageKey::Ignored, ImageKey::Ignored) => true,
            (ImageKey::Ids(x), ImageKey::Ids(y)) => x == y,
            (ImageKey::Prints(x), ImageKey::Prints(y)) => {
                let r = self.cfg.image_radius.unwrap_or(0);
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.matches(q, r, self.cfg.max_thumb_distance))
            }
            _ => false,
        }
    }

    pub(super) fn confirmed(&self, a: u64, b: u64, cache: &mut SigCache) -> Result<bool> {
        if self.numbers[a as usize] != self.numbers[b as usize] || !self.images_match(a, b) {
            return Ok(false);
        }
        Ok(self.cfg.check == PairCheck::None || self.similarity(a, b, cache)? >= self.cfg.threshold - 1e-9)
    }

    /// Bucket keys of a row in one band: the band hash, joined with the numbers and the image
    /// key so that only rows whose numbers and images can match meet (for perceptual hashes, one key per chunk of the first
    /// image: multi-index hashing).
    pub(super) fn bucket_keys(&self, pos: u64, band_hash: u64, out: &mut Vec<u64>) {
        let mix = |a: u64, b: u64| xxh3_64(&[a.to_le_bytes(), b.to_le_bytes()].concat());
        let band_hash = match self.numbers[pos as usize] {
            0 => band_hash,
            n => mix(band_hash, n),
        };
        match &self.images[pos as usize] {
            ImageKey::Ignored => out.push(band_hash),
            ImageKey::Ids(k) => out.push(mix(band_hash, *k)),
            ImageKey::Prints(h) if h.is_empty() => out.push(mix(band_hash, 0)),
            ImageKey::Prints(h) => {
                for (i, &(shift, mask)) in self.image_chunks.iter().enumerate() {
                    out.push(mix(band_hash, mix(i as u64 + 1, (h[0].hash >> shift) & mask)));
                }
            }
        }
    }

    pub(super) fn cluster(&mut self) -> Result<UnionFind> {
        let n = self.total as usize;
        let mut uf = UnionFind::new(n);
        let keys_per_row = match self.cfg.image_radius {
            Some(r) if self.cfg.images == ImageMatch::Match => r as usize + 1,
            _ => 1,
        };
        let per_band = (n * keys_per_row * 16).max(1);
        let bands_per_pass = ((self.cfg.memory_mb << 20) / per_band).clamp(1, self.bands);
        let mut cache = SigCache::default();
        let mut band0 = 0;
        while band0 < self.bands {
            let band1 = (band0 + bands_per_pass).min(self.bands);
            let mut entries: Vec<Vec<(u64, u32)>> = vec![Vec::with_capacity(n * keys_per_row); band1 - band0];
            let mut keys = Vec::new();
            for part in &self.parts {
                let f = File::open(&part.bands).ctx(|| format!("opening {}", part.bands.display()))?;
                let mut r = BufReader::with_capacity(1 << 20, f);
                let mut buf = vec![0u8; self.bands * 8];
                for local in 0..part.rows {
                    r.read_exact(&mut buf).ctx(|| format!("reading {}", part.bands.display()))?;
                    let pos = part.first + local;
                    if self.empty[pos as usize] {
                        continue;
                    }
                    for b in band0..band1 {
                        let h = u64::from_le_bytes(buf[b * 8..b * 8 + 8].try_into().unwrap_or([0; 8]));
                        keys.clear();
                        self.bucket_keys(pos, h, &mut keys);
                        entries[b - band0].extend(keys.iter().map(|&k| (k, pos as u32)));
                    }
                }
            }
            for mut e in entries {
                e.par_sort_unstable();
                let mut i = 0;
                while i < e.len() {
                    let mut j = i + 1;
                    while j < e.len() && e[j].0 == e[i].0 {
                        j += 1;
                    }
                    if j - i > 1 {
                        self.join_bucket(&e[i..j], &mut uf, &mut cache)?;
                    }
                    i = j;
                }
            }
            band0 = band1;
        }
        Ok(uf)
    }

    /// Join the members of one bucket (sorted by position) that pass the check, comparing each
    /// with the first member of every cluster met so far in the bucket (at most 64 of them).
    pub(super) fn join_bucket(&self, members: &[(u64, u32)], uf: &mut UnionFind, cache: &mut SigCache) -> Result<()> {
        const MAX_REPS: usize = 64;
        let mut reps: Vec<u32> = Vec::new();
        for &(_, m) in members {
            let root = uf.find(m);
            if reps.iter().any(|&r| uf.find(r) == root) {
                continue;
            }
            let mut joined = false;
            for &r in &reps {
                if self.confirmed(r as u64, m as u64, cache)? {
                    uf.union(r, m);
                    joined = true;
                    break;
                }
            }
            if !joined && reps.len() < MAX_REPS {
                reps.push(m);
            }
        }
        Ok(())
    }
}

/// Signatures read back during clustering, a few thousand at a time.
#[derive(Default)]
pub(super) struct SigCache {
    pub(super) map: HashMap<u64, Vec<u32>>,
}

impl SigCache {
    pub(super) fn get(&mut self, s: &Minhash, pos: u64) -> Result<Vec<u32>> {
        if let Some(v) = self.map.get(&pos) {
            return Ok(v.clone());
        }
        if self.map.len() > 4096 {
            self.map.clear();
        }
        let v = s.read_sig(pos)?;
        self.map.insert(pos, v.clone());
        Ok(v)
    }
}

/// The input file of an origin (`file#row` or `file:line`).
pub(super) fn origin_file(origin: &str) -> &str {
    origin.rsplit_once('#').or_else(|| origin.rsplit_once(':')).map(|(f, _)| f).unwrap_or(origin)
}
