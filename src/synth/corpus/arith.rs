//! The arithmetic task (`synth --task arith`): four digits in coloured boxes, (red + blue) x
//! green, with short and long-CoT answers, and a held-out split of questions never trained on.

use crate::error::{Error, Result};
use crate::io::write_parquet;
use crate::rng::Rng;
use crate::synth::render::{self, Scene, SceneKind};
use crate::synth::text::{self};
use polars::prelude::*;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

use super::*;

/// Whether an arithmetic scene's question (its red, blue and green digits) belongs to the
/// held-out test split: a fixed share (about a sixth) of the triples, chosen by hash.
pub fn arith_held_out(numbers: &[(render::Colour, i64)]) -> bool {
    let key: Vec<u8> = numbers.iter().take(3).map(|&(_, v)| v as u8).collect();
    xxhash_rust::xxh3::xxh3_64(&key).is_multiple_of(6)
}

/// `--task arith`: a clean, learnable train/test task. Each row's image holds four digits
/// 1-5 in coloured boxes (112 x 28 pixels: one merged vision token per box); the question asks
/// for (sum of the first two boxes) x (the third box), the fourth is read and left out. Each row has a short-answer and a
/// long-CoT version of the solution (the readings and the two steps, then the boxed answer).
/// The splits hold disjoint (red, blue, green) triples ([`arith_held_out`]): a test answer
/// needs the reading and the arithmetic, not recall of a question seen in training.
pub fn arith_task(seed: u64, train: usize, test: usize, out: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (split, n, stream) in [("train", train, 10u64), ("test", test, 11u64)] {
        let rows: Vec<(Row, String)> = (0..n as u64)
            .into_par_iter()
            .map(|i| {
                let mut rng = Rng::for_item(seed, stream, i);
                let scene = loop {
                    let scene = render::random_scene(&mut rng, SceneKind::ArithBoxes);
                    if let Scene::ArithBoxes { numbers } = &scene {
                        if arith_held_out(numbers) == (split == "test") {
                            break scene;
                        }
                    }
                };
                // one 28 x 28 cell per box: each box is one merged vision token
                let pix = render::render(&scene, 28 * render::ARITH_COLOURS.len() as u32, 28, &mut rng);
                let bytes = render::encode_png(&pix);
                let name = format!("{}.png", &blake3::hash(&bytes).to_hex()[..16]);
                let p = text::problem_for(&scene, &mut rng);
                let long = text::arith_trace(&p, 0, &mut rng);
                // the image last, right before the answer: the readings sit at a fixed, short
                // distance from its cells
                let row = Row {
                    problem: format!("{}\n<image>", p.question),
                    response: long,
                    solution: p.answer.plain(),
                    images: vec![Img { bytes, name }],
                    defect: None,
                    source_row: None,
                };
                (row, text::short_response(&p.answer))
            })
            .collect();
        let (rows, shorts): (Vec<Row>, Vec<String>) = rows.into_iter().unzip();
        let mut df = hf_frame(&rows, ["problem", "answer", "solution"])?;
        df.with_column(Series::new("short_answer".into(), shorts).into_column())
            .map_err(|e| Error::Run(format!("arith task: {e}")))?;
        let dest = out.join(format!("{split}.parquet"));
        write_parquet(&dest, &df)?;
        written.push(dest);
    }
    Ok(written)
}
