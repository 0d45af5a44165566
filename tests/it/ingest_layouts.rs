//! Every supported raw layout ingests to the same canonical rows.

use crate::common::*;

fn layout_spec(input: &str) -> String {
    format!("name: layout\ninputs:\n{input}    source: same\nstages: []\noutput:\n  dir: unused\n")
}

#[test]
fn each_layout_ingests_to_the_same_canonical_rows() {
    let images = fixture("layouts/images");
    let inputs = [
        format!(
            "  - path: {}\n    format: parquet\n    columns: {{prompt: problem, response: answer, reference: solution, images: images}}\n",
            fixture("layouts/hf/train.parquet")
        ),
        format!(
            "  - path: {}\n    format: jsonl\n    layout: sharegpt\n    columns: {{images: images, reference: answer}}\n",
            fixture("layouts/sharegpt/data.jsonl")
        ),
        format!(
            "  - path: {}\n    format: jsonl\n    layout: messages\n    columns: {{images: images, reference: solution}}\n    images_root: {images}\n",
            fixture("layouts/messages/data.jsonl")
        ),
        format!(
            "  - path: {}\n    format: json\n    columns: {{prompt: question, response: ds_answer, reference: gt, images: image}}\n    images_root: {images}\n",
            fixture("layouts/flat/data.json")
        ),
        format!(
            "  - path: {}\n    format: parquet\n    columns: {{prompt: prompt, response: response, reference: reference, images: image}}\n",
            fixture("layouts/plain/bytes.parquet")
        ),
        format!(
            "  - path: {}\n    format: parquet\n    columns: {{prompt: prompt, response: response, reference: reference, images: image}}\n    images_root: {images}\n",
            fixture("layouts/plain/paths.parquet")
        ),
    ];
    let mut first: Option<Vec<_>> = None;
    for input in &inputs {
        let tmp = tempfile::tempdir().unwrap();
        let spec = write_spec(tmp.path(), &layout_spec(input));
        let out = tmp.path().join("run");
        let stats = run(&spec, &out, None);
        assert_eq!(stats.rows_in, 4, "{input}");
        assert_eq!(stats.ledger_rows, 0, "{input}: {:?}", ledger(&out));
        let rows: Vec<_> = curated(&out)
            .into_iter()
            .map(|t| {
                let imgs: Vec<_> = t.images.iter().map(|i| (i.id.clone(), i.width, i.height)).collect();
                (t.id, t.source, t.system, t.prompt, t.response, t.reference, imgs)
            })
            .collect();
        assert_eq!(rows.len(), 4);
        // images were found, stored and measured (red.png is 24x16, see fixtures/make_layouts.py)
        assert_eq!(rows[0].6.len(), 1);
        assert_eq!((rows[0].6[0].1, rows[0].6[0].2), (24, 16));
        assert_eq!(rows[2].6.len(), 2);
        assert!(rows[3].6.is_empty());
        assert!(rows[0].4.contains("\\boxed{42}"));
        assert_eq!(rows[2].5.as_deref(), Some("1/2"));
        match &first {
            None => first = Some(rows),
            Some(f) => assert_eq!(f, &rows, "layout differs: {input}"),
        }
    }
}

/// Corrupt images planted in the synthetic fixture.
fn fixture_corrupt_images() -> usize {
    synth_labels(&repo().join("fixtures/synth")).values().filter(|(k, _)| k == "corrupt_image").count()
}

#[test]
fn image_store_is_content_addressed_and_holds_each_image_once() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = write_spec(tmp.path(), &demo_yaml(""));
    let out = tmp.path().join("run");
    run(&spec, &out, None);
    let mut files = tree(&out.join("images"));
    files.retain(|k, _| !k.starts_with("fingerprints/"));
    // validate logged the fingerprint of each image it decoded (or that it does not decode)
    let record = 16 + 1 + 8 + 1024 + 8;
    let logs: usize = tree(&out.join("images/fingerprints")).values().map(|v| v.len()).sum();
    assert!(
        logs.is_multiple_of(record) && logs / record <= files.len() && logs > 0,
        "{logs} bytes of fingerprint records"
    );
    let store = cotforge::store::ImageStore::open(&out.join("images")).unwrap();
    let known: Vec<(String, Result<_, String>)> = files
        .keys()
        .map(|k| k.rsplit('/').next().unwrap().to_string())
        .map(|id| (id.clone(), store.fingerprint_checked(&id).unwrap()))
        .collect();
    assert_eq!(known.iter().filter(|(_, f)| f.is_err()).count(), 1 + fixture_corrupt_images());
    // a fresh store answers from the logs (validate's, and the one the lookups above added for
    // images validate never decoded), without the image bytes
    let bare = tempfile::tempdir().unwrap();
    copy_dir(&out.join("images/fingerprints"), &bare.path().join("fingerprints"));
    let cached = cotforge::store::ImageStore::open(bare.path()).unwrap();
    let from_log =
        known.iter().filter(|(id, f)| matches!((f, cached.fingerprint(id)), (Ok(a), Some(b)) if *a == b)).count();
    assert_eq!(
        from_log,
        known.iter().filter(|(_, f)| f.is_ok()).count(),
        "every decoded image is answered from the logs"
    );
    // red, blue, green and the corrupt file of the layouts, plus the synthetic corpus' images;
    // the missing file is not there
    assert!(files.len() > 4, "{:?}", files.keys().collect::<Vec<_>>());
    let red = std::fs::read(repo().join("fixtures/layouts/images/red.png")).unwrap();
    assert!(files.values().any(|b| *b == red));
    for (rel, bytes) in files {
        let id = cotforge::store::image_id(&bytes);
        assert!(rel.ends_with(&id), "{rel} holds content {id}");
        assert!(rel.starts_with(&id[..2]));
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// LLaVA-CoT-style images in a zip archive: `images_root: image.zip` resolves relative paths as
/// members, `zip://MEMBER::ARCHIVE` names one anywhere, and a member the archive lacks is a
/// missing image in the ledger.
#[test]
fn images_inside_a_zip_archive_are_found_by_root_or_zip_url() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let red = std::fs::read(repo().join("fixtures/layouts/images/red.png")).unwrap();
    let blue = std::fs::read(repo().join("fixtures/layouts/images/blue.png")).unwrap();
    let archive = tmp.path().join("image.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
        let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        z.start_file("train/red.png", deflated).unwrap();
        z.write_all(&red).unwrap();
        z.start_file("train/blue.png", zip::write::SimpleFileOptions::default()).unwrap();
        z.write_all(&blue).unwrap();
        z.finish().unwrap();
    }
    let rows = [
        serde_json::json!({"image": "train/red.png", "conversations": [{"from": "human", "value": "<image>q0"}, {"from": "gpt", "value": "a0"}]}),
        serde_json::json!({"image": "zip://train/blue.png::image.zip", "conversations": [{"from": "human", "value": "<image>q1"}, {"from": "gpt", "value": "a1"}]}),
        serde_json::json!({"image": "train/absent.png", "conversations": [{"from": "human", "value": "<image>q2"}, {"from": "gpt", "value": "a2"}]}),
    ];
    let data = tmp.path().join("data.json");
    std::fs::write(&data, serde_json::to_string(&rows).unwrap()).unwrap();
    let go = |root: &str, sub: &str| {
        let input = format!(
            "  - path: {}\n    format: json\n    layout: sharegpt\n    columns: {{images: image}}\n    images_root: {root}\n",
            data.display()
        );
        let spec = write_spec(tmp.path(), &layout_spec(&input).replace("stages: []", "stages:\n  - validate: {}"));
        let out = tmp.path().join(sub);
        run(&spec, &out, None);
        (curated(&out), ledger(&out))
    };
    let (kept, led) = go(&archive.display().to_string(), "zip-root");
    let ids: Vec<Vec<String>> = kept.iter().map(|t| t.images.iter().map(|i| i.id.clone()).collect()).collect();
    // relative paths are members of the root archive; a zip:// archive resolves beside it
    assert_eq!(ids, vec![vec![cotforge::store::image_id(&red)], vec![cotforge::store::image_id(&blue)]], "{led:?}");
    assert_eq!(led.len(), 1, "{led:?}");
    assert_eq!((led[0].reason.as_str(), led[0].origin.ends_with("#2")), ("missing_image", true), "{led:?}");
    // with the archive's directory as the root, the zip:// value still finds its member
    let (kept, led) = go(&tmp.path().display().to_string(), "dir-root");
    let ids: Vec<Vec<String>> = kept.iter().map(|t| t.images.iter().map(|i| i.id.clone()).collect()).collect();
    assert_eq!(ids, vec![vec![cotforge::store::image_id(&blue)]], "{led:?}");
    assert_eq!(led.len(), 2, "{led:?}");
    assert!(led.iter().all(|e| e.reason == "missing_image"), "{led:?}");
}

/// `format: arrow` reads what `datasets.save_to_disk` writes: an Arrow IPC stream of
/// `problem`, `answer` and an `images` list of `{bytes, path}` structs, in record batches.
#[test]
fn arrow_files_as_datasets_saves_them_ingest() {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BinaryArray, ListArray, RecordBatch, StringArray, StructArray};
    use arrow::datatypes::{DataType, Field, Fields, Schema};
    let tmp = tempfile::tempdir().unwrap();
    let red = std::fs::read(repo().join("fixtures/layouts/images/red.png")).unwrap();
    let blue = std::fs::read(repo().join("fixtures/layouts/images/blue.png")).unwrap();
    let img = Fields::from(vec![Field::new("bytes", DataType::Binary, true), Field::new("path", DataType::Utf8, true)]);
    let item = Arc::new(Field::new("item", DataType::Struct(img.clone()), true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("problem", DataType::Utf8, true),
        Field::new("answer", DataType::Utf8, true),
        Field::new("images", DataType::List(item.clone()), true),
    ]));
    let batch = |problems: Vec<&str>, images: Vec<&[u8]>| {
        let n = problems.len();
        let st = StructArray::new(
            img.clone(),
            vec![
                Arc::new(BinaryArray::from(images.clone())) as ArrayRef,
                Arc::new(StringArray::from(vec![Some("x.png"); n])) as ArrayRef,
            ],
            None,
        );
        let offsets = arrow::buffer::OffsetBuffer::from_lengths(vec![1; n]);
        let answers: Vec<String> = (0..n).map(|i| format!("<think>r</think> \\boxed{{{i}}}")).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(problems)) as ArrayRef,
                Arc::new(StringArray::from(answers)) as ArrayRef,
                Arc::new(ListArray::new(item.clone(), offsets, Arc::new(st), None)) as ArrayRef,
            ],
        )
        .unwrap()
    };
    let path = tmp.path().join("data-00000-of-00001.arrow");
    {
        let mut w = arrow::ipc::writer::StreamWriter::try_new(std::fs::File::create(&path).unwrap(), &schema).unwrap();
        w.write(&batch(vec!["<image>q0", "<image>q1"], vec![&red, &blue])).unwrap();
        w.write(&batch(vec!["<image>q2"], vec![&red])).unwrap();
        w.finish().unwrap();
    }
    let input = format!(
        "  - path: {}\n    format: arrow\n    columns: {{prompt: problem, response: answer, images: images}}\n",
        path.display()
    );
    let spec = write_spec(tmp.path(), &layout_spec(&input));
    let out = tmp.path().join("run");
    let stats = run(&spec, &out, Some(2));
    assert_eq!((stats.rows_in, stats.ledger_rows), (3, 0), "{:?}", ledger(&out));
    let kept = curated(&out);
    let got: Vec<(String, String, usize)> = kept
        .iter()
        .map(|t| (t.prompt.clone(), t.origin.rsplit('#').next().unwrap().to_string(), t.images.len()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("<image>q0".into(), "0".into(), 1),
            ("<image>q1".into(), "1".into(), 1),
            ("<image>q2".into(), "2".into(), 1)
        ]
    );
    assert_eq!(kept[1].images[0].id, cotforge::store::image_id(&blue));
    // a mapped column the file lacks is named before the run starts
    let spec = write_spec(tmp.path(), &layout_spec(&input.replace("prompt: problem", "prompt: question")));
    let o = cli(&["check", &spec.display().to_string()], &[]);
    assert!(stderr(&o).contains("column `question`"), "{}", stderr(&o));
}
