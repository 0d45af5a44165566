//! Reading shards for training: open a shard directory against the tokenizer the trainer
//! uses (a different tokenizer or template is refused), iterate packs in a deterministic
//! shuffled order per (seed, epoch), resume at any position, prefetch in the background.
//!
//! The order shuffles row groups (the unit of random access), then shuffles the packs of each
//! window of `window` consecutive row groups together, so a pass reads every row group once.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, sync_channel};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{UInt32Type, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::Manifest;
use crate::error::{Context, Error, Result};
use crate::rng::Rng;
use crate::tokenize::encode::{sha256_hex, tokenizer_hashes};

/// One pack as the trainer gets it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pack {
    pub index: u64,
    pub input_ids: Vec<u32>,
    pub loss_mask: Vec<bool>,
    pub segment_lengths: Vec<u32>,
    pub sample_ids: Vec<String>,
    pub images: Vec<Vec<u8>>,
    pub image_grid_thw: Vec<[u32; 3]>,
}

/// An opened shard directory.
#[derive(Clone)]
pub struct ShardSet {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// sha256 of the `manifest.json` bytes read (what a checkpoint records of its shards).
    pub manifest_sha256: String,
    /// (file, row group, packs in it).
    groups: Vec<(usize, usize, usize)>,
}

impl ShardSet {
    /// Open a shard directory for a trainer using the tokenizer directory `tokenizer`: its
    /// `tokenizer.json` and chat template must be the ones the shards were made with.
    pub fn open(dir: &Path, tokenizer: &Path) -> Result<Self> {
        let set = Self::open_unchecked(dir)?;
        let (sha, tsha) = tokenizer_hashes(tokenizer)?;
        let m = &set.manifest;
        if sha != m.tokenizer_sha256 {
            return Err(Error::Input(format!(
                "{}: the shards were made with another tokenizer (manifest tokenizer_sha256 {}, {} has {sha}); \
                 their ids would decode to other text. Train with the tokenizer of `{}` or repack",
                dir.join("manifest.json").display(),
                m.tokenizer_sha256,
                tokenizer.join("tokenizer.json").display(),
                m.tokenizer
            )));
        }
        if tsha != m.template_sha256 {
            return Err(Error::Input(format!(
                "{}: the shards were rendered with another chat template (manifest template_sha256 {}, {} has {tsha}); \
                 prompts at inference would not look like training. Use the tokenizer_config.json of `{}` or repack",
                dir.join("manifest.json").display(),
                m.template_sha256,
                tokenizer.join("tokenizer_config.json").display(),
                m.tokenizer
            )));
        }
        Ok(set)
    }

    /// Open without checking the tokenizer (for inspection).
    pub fn open_unchecked(dir: &Path) -> Result<Self> {
        let (manifest, manifest_sha256) = Manifest::read_with_sha256(dir)?;
        let mut groups = Vec::new();
        for (k, f) in manifest.files.iter().enumerate() {
            let path = dir.join(&f.path);
            let file = File::open(&path).ctx(|| format!("opening {} (listed in the manifest)", path.display()))?;
            let len = file.metadata().ctx(|| format!("reading {}", path.display()))?.len();
            if len != f.bytes {
                return Err(Error::Input(format!(
                    "{}: {len} bytes, the manifest says {}; the shard is damaged or was replaced",
                    path.display(),
                    f.bytes
                )));
            }
            let b = ParquetRecordBatchReaderBuilder::try_new(file)
                .map_err(|e| Error::Input(format!("{}: not a readable Parquet file: {e}", path.display())))?;
            for (g, rg) in b.metadata().row_groups().iter().enumerate() {
                groups.push((k, g, rg.num_rows() as usize));
            }
        }
        let total: usize = groups.iter().map(|g| g.2).sum();
        if total as u64 != manifest.packs {
            return Err(Error::Input(format!(
                "{}: the files hold {total} packs, the manifest says {}",
                dir.display(),
                manifest.packs
            )));
        }
        Ok(Self { dir: dir.to_path_buf(), manifest, manifest_sha256, groups })
    }

    /// Check every file's sha256 against the manifest.
    pub fn verify_checksums(&self) -> Result<()> {
        for f in &self.manifest.files {
            let path = self.dir.join(&f.path);
            let bytes = std::fs::read(&path).ctx(|| format!("reading {}", path.display()))?;
            let sha = sha256_hex(&bytes);
            if sha != f.sha256 {
                return Err(Error::Input(format!(
                    "{}: sha256 {sha}, the manifest says {}; the shard is damaged",
                    path.display(),
                    f.sha256
                )));
            }
        }
        Ok(())
    }

    /// Number of packs.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.2).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of row groups.
    pub fn row_groups(&self) -> usize {
        self.groups.len()
    }

    /// The packs of row group `g` (over all files, in file order).
    pub fn read_group(&self, g: usize) -> Result<Vec<Pack>> {
        let (k, rg, _) = self.groups[g];
        let path = self.dir.join(&self.manifest.files[k].path);
        let file = File::open(&path).ctx(|| format!("opening {}", path.display()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_row_groups(vec![rg]).with_batch_size(1 << 20).build())
            .map_err(|e| Error::Input(format!("{}: row group {rg}: {e}", path.display())))?;
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| Error::Input(format!("{}: row group {rg}: {e}", path.display())))?;
            packs_of(&batch, &mut out).map_err(|e| Error::Input(format!("{}: row group {rg}: {e}", path.display())))?;
        }
        Ok(out)
    }

    /// Read every pack in file order.
    pub fn read_all(&self) -> Result<Vec<Pack>> {
        let mut out = Vec::with_capacity(self.len());
        for g in 0..self.groups.len() {
            out.extend(self.read_group(g)?);
        }
        Ok(out)
    }

    /// The order of one epoch: (row group, row within it) for every pack. Depends only on
    /// (seed, epoch) and the shard layout.
    pub fn order(&self, seed: u64, epoch: u64, window: usize) -> Vec<(u32, u32)> {
        let mut rng = Rng::for_item(seed, 0x5348_4152_4453, epoch);
        let mut groups: Vec<usize> = (0..self.groups.len()).collect();
        for i in (1..groups.len()).rev() {
            groups.swap(i, rng.below(i + 1));
        }
        let mut order = Vec::with_capacity(self.len());
        for win in groups.chunks(window.max(1)) {
            let start = order.len();
            for &g in win {
                order.extend((0..self.groups[g].2 as u32).map(|r| (g as u32, r)));
            }
            let slice = &mut order[start..];
            for i in (1..slice.len()).rev() {
                slice.swap(i, rng.below(i + 1));
            }
        }
        order
    }

    /// Iterate the packs of one epoch in [`Self::order`] from position `start` (to resume),
    /// with a background thread reading ahead up to `prefetch` packs.
    pub fn loader(&self, seed: u64, epoch: u64, start: usize, prefetch: usize) -> Loader {
        const WINDOW: usize = 4;
        let order = self.order(seed, epoch, WINDOW);
        let (tx, rx) = sync_channel(prefetch.max(1));
        let set = self.clone();
        let handle = std::thread::spawn(move || {
            let mut cache: HashMap<u32, Vec<Option<Pack>>> = HashMap::new();
            for (pos, &(g, r)) in order.iter().enumerate().skip(start) {
                if !cache.contains_key(&g) {
                    // a new window starts when its first group is needed: drop the old ones
                    if cache.values().all(|v| v.iter().all(Option::is_none)) {
                        cache.clear();
                    }
                    match set.read_group(g as usize) {
                        Ok(p) => {
                            cache.insert(g, p.into_iter().map(Some).collect());
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                let pack = cache.get_mut(&g).and_then(|v| v.get_mut(r as usize)).and_then(Option::take);
                let item =
                    pack.map(|p| (pos, p)).ok_or_else(|| Error::Run(format!("internal: pack {g}/{r} read twice")));
                if tx.send(item).is_err() {
                    return;
                }
            }
        });
        Loader { rx, _handle: handle }
    }
}

/// Packs of one epoch, read ahead in the background; yields (position, pack).
pub struct Loader {
    rx: Receiver<Result<(usize, Pack)>>,
    _handle: std::thread::JoinHandle<()>,
}

impl Iterator for Loader {
    type Item = Result<(usize, Pack)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

fn packs_of(batch: &RecordBatch, out: &mut Vec<Pack>) -> std::result::Result<(), String> {
    let col = |name: &str| batch.column_by_name(name).ok_or_else(|| format!("no column `{name}`"));
    let index = col("pack_index")?.as_primitive_opt::<UInt64Type>().ok_or("pack_index: not u64")?;
    let ids = col("input_ids")?.as_list_opt::<i32>().ok_or("input_ids: not a list")?;
    let mask = col("loss_mask")?.as_list_opt::<i32>().ok_or("loss_mask: not a list")?;
    let seg = col("segment_lengths")?.as_list_opt::<i32>().ok_or("segment_lengths: not a list")?;
    let sids = col("sample_ids")?.as_list_opt::<i32>().ok_or("sample_ids: not a list")?;
    let images = col("images")?.as_list_opt::<i32>().ok_or("images: not a list")?;
    let grids = col("image_grid_thw")?.as_list_opt::<i32>().ok_or("image_grid_thw: not a list")?;
    let u32s = |a: &dyn Array| -> std::result::Result<Vec<u32>, String> {
        Ok(a.as_primitive_opt::<UInt32Type>().ok_or("not u32")?.values().to_vec())
    };
    for i in 0..batch.num_rows() {
        let imgs = images.value(i);
        let imgs = imgs.as_struct_opt().ok_or("images: not structs")?;
        let bytes = imgs.column(0).as_binary_opt::<i32>().ok_or("images.bytes: not binary")?;
        let g = grids.value(i);
        let g = g.as_fixed_size_list_opt().ok_or("image_grid_thw: not fixed-size lists")?;
        let mut grid_thw = Vec::with_capacity(g.len());
        for k in 0..g.len() {
            let v = u32s(g.value(k).as_ref())?;
            grid_thw.push([v[0], v[1], v[2]]);
        }
        let s = sids.value(i);
        let s = s.as_string_opt::<i32>().ok_or("sample_ids: not strings")?;
        let m = mask.value(i);
        let m = m.as_boolean_opt().ok_or("loss_mask: not bool")?;
        out.push(Pack {
            index: index.value(i),
            input_ids: u32s(ids.value(i).as_ref())?,
            loss_mask: m.iter().map(|b| b.unwrap_or(false)).collect(),
            segment_lengths: u32s(seg.value(i).as_ref())?,
            sample_ids: s.iter().map(|x| x.unwrap_or("").to_string()).collect(),
            images: (0..bytes.len()).map(|k| bytes.value(k).to_vec()).collect(),
            image_grid_thw: grid_thw,
        });
    }
    Ok(())
}

/// `cotforge inspect` of a shard directory: the manifest, then the first `packs` packs decoded
/// with the tokenizer (the manifest's, or `tokenizer`), segment boundaries as rule lines, loss
/// spans between `⟦` and `⟧`, and runs of image pad tokens shortened to `<|image_pad|>×N`.
pub fn inspect(dir: &Path, packs: usize, tokenizer: Option<&Path>) -> Result<String> {
    use std::fmt::Write as _;
    let tdir = tokenizer.map(Path::to_path_buf);
    let set = match &tdir {
        Some(t) => ShardSet::open(dir, t)?,
        None => ShardSet::open_unchecked(dir)?,
    };
    let m = &set.manifest;
    let mut out = String::new();
    let _ = writeln!(out, "{} (cotforge packed shards v{})", dir.display(), m.schema_version);
    let _ = writeln!(
        out,
        "packs: {}  samples: {}  tokens: {}  loss tokens: {}  images: {}  max_length: {}  fill: {:.4}%",
        m.packs,
        m.samples,
        m.tokens,
        m.loss_tokens,
        m.images,
        m.max_length,
        100.0 * m.fill
    );
    let _ = writeln!(
        out,
        "tokenizer: {} (sha256 {})  loss: {:?}  files: {}",
        m.tokenizer,
        &m.tokenizer_sha256[..16],
        m.loss,
        m.files.len()
    );
    let tpath = tdir.unwrap_or_else(|| PathBuf::from(&m.tokenizer)).join("tokenizer.json");
    let tok = tokenizers::Tokenizer::from_file(&tpath).map_err(|e| {
        Error::Input(format!("{}: cannot load the tokenizer to decode packs ({e}); pass --tokenizer", tpath.display()))
    })?;
    let pad = tok.token_to_id(&m.image_token);
    let decode = |ids: &[u32]| tok.decode(ids, false).unwrap_or_else(|e| format!("<undecodable: {e}>"));
    let mut shown = 0;
    for g in 0..set.row_groups() {
        for p in set.read_group(g)? {
            if shown == packs {
                return Ok(out);
            }
            shown += 1;
            let loss = p.loss_mask.iter().filter(|&&x| x).count();
            let _ = writeln!(
                out,
                "\n=== pack {}: {} tokens, {} segments, {} loss tokens, {} images ===",
                p.index,
                p.input_ids.len(),
                p.segment_lengths.len(),
                loss,
                p.images.len()
            );
            let mut at = 0usize;
            for (k, (&len, id)) in p.segment_lengths.iter().zip(&p.sample_ids).enumerate() {
                let _ = writeln!(out, "--- segment {}/{}: {id} ({len} tokens) ---", k + 1, p.segment_lengths.len());
                let end = at + len as usize;
                // runs of equal (loss, is-pad)
                let mut i = at;
                while i < end {
                    let l = p.loss_mask[i];
                    let is_pad = Some(p.input_ids[i]) == pad;
                    let mut j = i + 1;
                    while j < end && p.loss_mask[j] == l && (Some(p.input_ids[j]) == pad) == is_pad {
                        j += 1;
                    }
                    let text =
                        if is_pad { format!("{}×{}", m.image_token, j - i) } else { decode(&p.input_ids[i..j]) };
                    if l {
                        let _ = write!(out, "⟦{text}⟧");
                    } else {
                        out.push_str(&text);
                    }
                    i = j;
                }
                if !out.ends_with('\n') {
                    out.push('\n');
                }
                at = end;
            }
        }
    }
    Ok(out)
}
