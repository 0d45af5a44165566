//! Writing shards: pack the kept rows' lengths best-fit-decreasing, scatter each sample to a
//! spill file of the shard its pack goes to (memory stays bounded by one shard per thread),
//! then build each shard's packs and write it as Parquet, atomically, with its sha256.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, FixedSizeListBuilder, ListBuilder, RecordBatch, StringBuilder,
    StructBuilder, UInt32Array, UInt32Builder, UInt64Array,
};
use arrow::datatypes::{DataType, Field};
use parquet::arrow::ArrowWriter;
use rayon::prelude::*;

use super::{Manifest, SHARD_FORMAT, SHARD_SCHEMA_VERSION, ShardFile};
use crate::error::{Context, Error, Result};
use crate::ingest::ImageStore;
use crate::io::{PartReader, atomic_write, tmp_name, writer_properties};
use crate::schema;
use crate::shards::bfd::best_fit_decreasing;
use crate::stages::pack::PackConfig;
use crate::stages::tokenize::LossOn;
use crate::tokenize::encode::{sha256_hex, tokenizer_hashes};

/// One sample on its way to a shard.
struct Sample {
    pack: u32,
    slot: u32,
    id: String,
    ids: Vec<u32>,
    assistant: Vec<(u32, u32)>,
    grids: Vec<[u32; 3]>,
    images: Vec<(String, String)>,
}

fn put_u32(w: &mut impl Write, v: u32) -> std::io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn put_str(w: &mut impl Write, s: &str) -> std::io::Result<()> {
    put_u32(w, s.len() as u32)?;
    w.write_all(s.as_bytes())
}

impl Sample {
    fn write(&self, w: &mut impl Write) -> std::io::Result<()> {
        put_u32(w, self.pack)?;
        put_u32(w, self.slot)?;
        put_str(w, &self.id)?;
        put_u32(w, self.ids.len() as u32)?;
        let bytes: Vec<u8> = self.ids.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.write_all(&bytes)?;
        put_u32(w, self.assistant.len() as u32)?;
        for &(a, b) in &self.assistant {
            put_u32(w, a)?;
            put_u32(w, b)?;
        }
        put_u32(w, self.images.len() as u32)?;
        for ((id, path), g) in self.images.iter().zip(&self.grids) {
            put_str(w, id)?;
            put_str(w, path)?;
            for x in g {
                put_u32(w, *x)?;
            }
        }
        Ok(())
    }

    /// The next sample of a spill file, None at its end.
    fn read(r: &mut impl Read) -> std::io::Result<Option<Sample>> {
        let mut b4 = [0u8; 4];
        match r.read_exact(&mut b4) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let u32_ = |r: &mut dyn Read| -> std::io::Result<u32> {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)?;
            Ok(u32::from_le_bytes(b))
        };
        let string = |r: &mut dyn Read, n: u32| -> std::io::Result<String> {
            let mut b = vec![0u8; n as usize];
            r.read_exact(&mut b)?;
            String::from_utf8(b).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        };
        let pack = u32::from_le_bytes(b4);
        let slot = u32_(r)?;
        let n = u32_(r)?;
        let id = string(r, n)?;
        let n = u32_(r)? as usize;
        let mut raw = vec![0u8; 4 * n];
        r.read_exact(&mut raw)?;
        let ids = raw.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let n = u32_(r)?;
        let mut assistant = Vec::with_capacity(n as usize);
        for _ in 0..n {
            assistant.push((u32_(r)?, u32_(r)?));
        }
        let n = u32_(r)?;
        let (mut images, mut grids) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let k = u32_(r)?;
            let id = string(r, k)?;
            let k = u32_(r)?;
            let path = string(r, k)?;
            images.push((id, path));
            grids.push([u32_(r)?, u32_(r)?, u32_(r)?]);
        }
        Ok(Some(Sample { pack, slot, id, ids, assistant, grids, images }))
    }
}

/// Arrow builders of one shard's columns.
struct Columns {
    pack_index: Vec<u64>,
    num_tokens: Vec<u32>,
    num_loss: Vec<u32>,
    ids: ListBuilder<UInt32Builder>,
    mask: ListBuilder<BooleanBuilder>,
    seg: ListBuilder<UInt32Builder>,
    sample_ids: ListBuilder<StringBuilder>,
    images: ListBuilder<StructBuilder>,
    grids: ListBuilder<FixedSizeListBuilder<UInt32Builder>>,
}

fn image_fields() -> Vec<Field> {
    vec![Field::new("bytes", DataType::Binary, true), Field::new("path", DataType::Utf8, true)]
}

impl Columns {
    fn new() -> Self {
        let img =
            StructBuilder::new(image_fields(), vec![Box::new(BinaryBuilder::new()), Box::new(StringBuilder::new())]);
        Self {
            pack_index: Vec::new(),
            num_tokens: Vec::new(),
            num_loss: Vec::new(),
            ids: ListBuilder::new(UInt32Builder::new()),
            mask: ListBuilder::new(BooleanBuilder::new()),
            seg: ListBuilder::new(UInt32Builder::new()),
            sample_ids: ListBuilder::new(StringBuilder::new()),
            images: ListBuilder::new(img),
            grids: ListBuilder::new(FixedSizeListBuilder::new(UInt32Builder::new(), 3)),
        }
    }

    /// Append one pack of samples (in slot order).
    fn push(&mut self, index: u64, samples: &[Sample], loss: LossOn, store: &ImageStore) -> Result<()> {
        let mut tokens = 0u32;
        let mut loss_tokens = 0u32;
        for s in samples {
            self.ids.values().append_slice(&s.ids);
            let n = s.ids.len();
            let mut m = vec![loss == LossOn::All; n];
            if loss == LossOn::Assistant {
                for &(a, b) in &s.assistant {
                    m[a as usize..(b as usize).min(n)].iter_mut().for_each(|x| *x = true);
                }
            }
            loss_tokens += m.iter().filter(|&&x| x).count() as u32;
            self.mask.values().append_slice(&m);
            self.seg.values().append_value(n as u32);
            self.sample_ids.values().append_value(&s.id);
            tokens += n as u32;
            for ((id, path), g) in s.images.iter().zip(&s.grids) {
                if id.is_empty() {
                    return Err(Error::Run(format!(
                        "sample {}: image `{path}` was missing at ingest; put `validate` before `pack`",
                        s.id
                    )));
                }
                let bytes = store.get(id)?;
                let sb = self.images.values();
                sb.field_builder::<BinaryBuilder>(0).expect("bytes field").append_value(&bytes);
                sb.field_builder::<StringBuilder>(1).expect("path field").append_value(path);
                sb.append(true);
                let gb = self.grids.values();
                gb.values().append_slice(g);
                gb.append(true);
            }
        }
        self.ids.append(true);
        self.mask.append(true);
        self.seg.append(true);
        self.sample_ids.append(true);
        self.images.append(true);
        self.grids.append(true);
        self.pack_index.push(index);
        self.num_tokens.push(tokens);
        self.num_loss.push(loss_tokens);
        Ok(())
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("pack_index", Arc::new(UInt64Array::from(std::mem::take(&mut self.pack_index)))),
            ("num_tokens", Arc::new(UInt32Array::from(std::mem::take(&mut self.num_tokens)))),
            ("num_loss_tokens", Arc::new(UInt32Array::from(std::mem::take(&mut self.num_loss)))),
            ("input_ids", Arc::new(self.ids.finish())),
            ("loss_mask", Arc::new(self.mask.finish())),
            ("segment_lengths", Arc::new(self.seg.finish())),
            ("sample_ids", Arc::new(self.sample_ids.finish())),
            ("images", Arc::new(self.images.finish())),
            ("image_grid_thw", Arc::new(self.grids.finish())),
        ];
        RecordBatch::try_from_iter(cols).map_err(|e| Error::Run(format!("building a shard batch: {e}")))
    }
}

/// What a written shard file holds.
struct Written {
    file: ShardFile,
    samples: u64,
    tokens: u64,
    loss_tokens: u64,
    images: u64,
}

/// Pack the rows in `parts` (the `pack` stage's kept rows) and write `out` (the shard
/// directory): shard files and `manifest.json`. Deterministic: same rows, same bytes.
pub fn write_shards(
    out: &Path,
    parts: &[PathBuf],
    store: &ImageStore,
    cfg: &PackConfig,
    spec_blake3: &str,
    batch_rows: usize,
    progress: &indicatif::ProgressBar,
) -> Result<Manifest> {
    let tok = cfg.tokenize()?;
    if out.exists() {
        std::fs::remove_dir_all(out).ctx(|| format!("removing {}", out.display()))?;
    }
    let spill_dir = out.join(".spill");
    std::fs::create_dir_all(&spill_dir).ctx(|| format!("creating {}", spill_dir.display()))?;
    let input = PartReader::open_dirs(parts)?;
    // 1. lengths, 2. best-fit-decreasing over the whole set
    let mut lengths = Vec::with_capacity(input.rows());
    input.for_each_batch_of(batch_rows.max(4096), Some(&["num_tokens"]), |df| {
        let c = df.column("num_tokens").and_then(|c| c.u32().cloned()).ctx(|| "reading num_tokens")?;
        for v in c.iter() {
            lengths.push(v.ok_or_else(|| Error::Run("pack: a row has no token count".into()))?);
        }
        Ok(())
    })?;
    let packing = best_fit_decreasing(&lengths, cfg.max_length, cfg.max_segments);
    if let Some(&i) = packing.over.first() {
        return Err(Error::Run(format!(
            "internal: row {i} ({} tokens) is over max_length after `pack`",
            lengths[i as usize]
        )));
    }
    let mut place = vec![(0u32, 0u32); lengths.len()];
    for (p, pack) in packing.packs.iter().enumerate() {
        for (slot, &i) in pack.iter().enumerate() {
            place[i as usize] = (p as u32, slot as u32);
        }
    }
    let per_file = cfg.packs_per_file;
    let files = packing.packs.len().div_ceil(per_file);
    // 3. scatter samples to their shard's spill file
    let spill_path = |k: usize| spill_dir.join(format!("{k:05}.bin"));
    let mut spills: Vec<BufWriter<File>> = (0..files)
        .map(|k| {
            File::create(spill_path(k)).map(BufWriter::new).ctx(|| format!("creating {}", spill_path(k).display()))
        })
        .collect::<Result<_>>()?;
    let columns = ["id", "input_ids", "assistant_spans", "image_grid_thw", "image_ids", "image_paths"];
    let mut row = 0usize;
    input.for_each_batch_of(batch_rows, Some(&columns), |df| {
        let traces = schema::traces_from_partial_df(&df)?;
        for t in traces {
            let (pack, slot) = place[row];
            row += 1;
            let tokens = t.tokens.ok_or_else(|| Error::Run(format!("pack: row {} has no tokens", t.id)))?;
            let sample = Sample {
                pack,
                slot,
                id: t.id,
                ids: tokens.ids,
                assistant: tokens.assistant,
                grids: tokens.grids,
                images: t.images.into_iter().map(|i| (i.id, i.path)).collect(),
            };
            let k = pack as usize / per_file;
            sample.write(&mut spills[k]).ctx(|| format!("writing {}", spill_path(k).display()))?;
        }
        progress.inc(df.height() as u64);
        Ok(())
    })?;
    for (k, mut w) in spills.into_iter().enumerate() {
        w.flush().ctx(|| format!("writing {}", spill_path(k).display()))?;
    }
    // 4. each shard: gather its packs, write Parquet
    let written: Vec<Written> = (0..files)
        .into_par_iter()
        .map(|k| {
            let path = spill_path(k);
            let mut r = BufReader::new(File::open(&path).ctx(|| format!("opening {}", path.display()))?);
            let mut samples = Vec::new();
            while let Some(s) = Sample::read(&mut r).ctx(|| format!("reading {}", path.display()))? {
                samples.push(s);
            }
            std::fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
            samples.sort_unstable_by_key(|s| (s.pack, s.slot));
            let mut cols = Columns::new();
            let mut n_samples = 0;
            let mut n_images = 0;
            for group in samples.chunk_by(|a, b| a.pack == b.pack) {
                cols.push(group[0].pack as u64, group, tok.loss, store)?;
                n_samples += group.len() as u64;
                n_images += group.iter().map(|s| s.images.len() as u64).sum::<u64>();
            }
            let tokens: u64 = cols.num_tokens.iter().map(|&x| x as u64).sum();
            let loss_tokens: u64 = cols.num_loss.iter().map(|&x| x as u64).sum();
            let batch = cols.finish()?;
            let name = format!("shard-{k:05}.parquet");
            let dest = out.join(&name);
            let (bytes, sha256, row_groups) =
                write_parquet(&dest, &crate::io::hf::for_datasets(&batch)?, cfg.row_group_packs)?;
            Ok(Written {
                file: ShardFile {
                    path: name,
                    sha256,
                    bytes,
                    packs: batch.num_rows() as u64,
                    row_groups,
                    first_pack: (k * per_file) as u64,
                },
                samples: n_samples,
                tokens,
                loss_tokens,
                images: n_images,
            })
        })
        .collect::<Result<_>>()?;
    std::fs::remove_dir_all(&spill_dir).ctx(|| format!("removing {}", spill_dir.display()))?;
    let (tokenizer_sha256, template_sha256) = tokenizer_hashes(&PathBuf::from(&tok.tokenizer))?;
    let tokens: u64 = written.iter().map(|w| w.tokens).sum();
    let packs = packing.packs.len() as u64;
    let manifest = Manifest {
        format: SHARD_FORMAT.into(),
        schema_version: SHARD_SCHEMA_VERSION,
        max_length: cfg.max_length,
        max_segments: cfg.max_segments,
        loss: tok.loss,
        tokenizer: tok.tokenizer.clone(),
        tokenizer_sha256,
        template_sha256,
        image_token: tok.image_token.clone(),
        system: tok.system.clone(),
        min_pixels: tok.min_pixels,
        max_pixels: tok.max_pixels,
        spec_blake3: spec_blake3.to_string(),
        packs,
        samples: written.iter().map(|w| w.samples).sum(),
        tokens,
        loss_tokens: written.iter().map(|w| w.loss_tokens).sum(),
        images: written.iter().map(|w| w.images).sum(),
        fill: if packs == 0 { 1.0 } else { tokens as f64 / (packs as f64 * cfg.max_length as f64) },
        row_group_packs: cfg.row_group_packs,
        files: written.into_iter().map(|w| w.file).collect(),
    };
    let json = serde_json::to_vec_pretty(&manifest).ctx(|| "serialising the manifest")?;
    atomic_write(&out.join("manifest.json"), &json, 0)?;
    Ok(manifest)
}

/// Write one shard file atomically from consecutive batches of one schema; returns its size,
/// sha256 and row group count.
fn write_parquet(dest: &Path, batches: &[RecordBatch], row_group_packs: usize) -> Result<(u64, String, u64)> {
    let tmp = tmp_name(dest, 0);
    let f = File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
    let schema = batches.first().map(|b| b.schema()).ok_or_else(|| Error::Run("internal: empty shard".into()))?;
    let props = writer_properties(&schema, row_group_packs);
    let mut w = ArrowWriter::try_new(f, schema, Some(props))
        .map_err(|e| Error::Run(format!("starting {}: {e}", dest.display())))?;
    for batch in batches {
        w.write(batch).map_err(|e| Error::Run(format!("writing {}: {e}", dest.display())))?;
    }
    let meta = w.close().map_err(|e| Error::Run(format!("finishing {}: {e}", dest.display())))?;
    let bytes = std::fs::read(&tmp).ctx(|| format!("reading back {}", tmp.display()))?;
    let sha = sha256_hex(&bytes);
    std::fs::rename(&tmp, dest).ctx(|| format!("renaming {}", tmp.display()))?;
    Ok((bytes.len() as u64, sha, meta.num_row_groups() as u64))
}
