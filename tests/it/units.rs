//! Unit-level checks of pure functions.

use cotforge::ingest::value::Val;
use cotforge::ingest::{ImageSource, map_record};
use cotforge::spec::{ColumnMap, Format, Input, Layout};
use cotforge::text::{normalize, word_count};

#[test]
fn normalisation_ignores_case_and_spacing_only() {
    assert_eq!(normalize("  What is\tthe TOTAL?\n"), "what is the total?");
    assert_ne!(normalize("what is the total?"), normalize("what is the sum?"));
    assert_eq!(word_count("a  b\nc"), 3);
}

fn input(layout: Layout, columns: ColumnMap) -> Input {
    Input {
        files: vec![],
        format: Format::Jsonl,
        layout,
        columns,
        images_root: None,
        image_encoding: Default::default(),
        source: "s".into(),
    }
}

fn json(s: &str) -> Val {
    Val::from(serde_json::from_str::<serde_json::Value>(s).unwrap())
}

#[test]
fn messages_with_content_parts_and_a_system_turn() {
    let rec = json(
        r#"{"messages": [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]},
            {"role": "assistant", "content": "3"}], "images": [{"bytes": null, "path": "a.png"}]}"#,
    );
    let cols = ColumnMap { images: Some("images".into()), ..Default::default() };
    let t = map_record(&rec, &input(Layout::Messages, cols)).unwrap();
    assert_eq!(t.system.as_deref(), Some("Be brief."));
    assert_eq!(t.prompt, "<image>How many?");
    assert_eq!(t.response, "3");
    assert_eq!(t.images, vec![ImageSource::Path("a.png".into())]);
}

#[test]
fn multi_turn_and_unknown_roles_are_rejected_with_reasons() {
    let cols = ColumnMap::default();
    let two = json(
        r#"{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"}]}"#,
    );
    assert_eq!(map_record(&two, &input(Layout::Sharegpt, cols.clone())).unwrap_err().reason, "multi_turn");
    let odd = json(r#"{"conversations": [{"from": "narrator", "value": "a"}]}"#);
    let e = map_record(&odd, &input(Layout::Sharegpt, cols)).unwrap_err();
    assert_eq!(e.reason, "unknown_role");
    assert!(e.detail.contains("narrator"));
}

#[test]
fn dedup_key_depends_on_images_and_normalised_prompt() {
    use cotforge::schema::{ImageRef, Trace};
    use cotforge::stages::dedup::{KeyField, key};
    let img = |id: &str| ImageRef { id: id.into(), path: String::new(), width: 1, height: 1 };
    let t = |p: &str, i: &str| Trace {
        id: "x".into(),
        source: "s".into(),
        origin: "o".into(),
        system: None,
        prompt: p.into(),
        response: "r".into(),
        reference: None,
        images: vec![img(i)],
        tokens: None,
        num_tokens: None,
        bucket: None,
        pass_rate: None,
    };
    let on = [KeyField::Prompt, KeyField::Images];
    assert_eq!(key(&t("What  is it?", "a"), &on), key(&t("what is it?", "a"), &on));
    assert_ne!(key(&t("What is it?", "a"), &on), key(&t("What is it?", "b"), &on));
    assert_ne!(key(&t("What is it?", "a"), &on), key(&t("What was it?", "a"), &on));
}

#[test]
fn bucket_labels_mix_quotas_and_safe_cuts() {
    use cotforge::stages::pack::safe_cut;
    use cotforge::stages::{bucket::BucketConfig, mix::MixConfig};
    use std::collections::BTreeMap;
    let b: BucketConfig = serde_json::from_str(r#"{"boundaries": [2048, 4096]}"#).unwrap();
    assert_eq!(b.labels(), ["0-2048", "2048-4096", "4096+"]);
    assert_eq!(
        [0, 2047, 2048, 4095, 4096, 99999].map(|n| b.label(n)),
        ["0-2048", "0-2048", "2048-4096", "2048-4096", "4096+", "4096+"]
    );
    let counts: BTreeMap<String, u64> = [("a".to_string(), 100), ("b".to_string(), 10), ("c".to_string(), 50)].into();
    let mix = |json: &str| -> BTreeMap<String, u64> {
        serde_json::from_str::<MixConfig>(json).unwrap().quotas(&counts).unwrap()
    };
    // shares: b limits the total to 10 / 0.25 = 40
    assert_eq!(
        mix(r#"{"shares": {"a": 2, "b": 1, "c": 1}}"#),
        [("a".into(), 20), ("b".into(), 10), ("c".into(), 10)].into()
    );
    assert_eq!(
        mix(r#"{"shares": {"a": 1, "b": 0, "c": 1}}"#),
        [("a".into(), 50), ("b".into(), 0), ("c".into(), 50)].into()
    );
    assert_eq!(mix(r#"{"caps": {"a": 30}}"#), [("a".into(), 30), ("b".into(), 10), ("c".into(), 50)].into());
    assert_eq!(mix(r#"{"total": 80}"#), [("a".into(), 50), ("b".into(), 5), ("c".into(), 25)].into());
    let missing =
        serde_json::from_str::<MixConfig>(r#"{"shares": {"a": 1}}"#).unwrap().quotas(&counts).unwrap_err().to_string();
    assert!(missing.contains("group `b` (10 rows) has no entry in `shares`"), "{missing}");
    // cuts fall inside an assistant turn that starts before the limit
    assert_eq!(safe_cut(&[(100, 900)], 500), Some(500));
    assert_eq!(safe_cut(&[(10, 20), (30, 900)], 25), Some(20));
    assert_eq!(safe_cut(&[(10, 20), (30, 900)], 500), Some(500));
    assert_eq!(safe_cut(&[(600, 900)], 500), None);
    assert_eq!(safe_cut(&[(500, 900)], 500), None);
}

#[test]
fn group_sampler_keeps_the_smallest_keys_and_larger_quotas_keep_supersets() {
    use cotforge::stages::sample::{GroupSampler, key};
    use std::collections::BTreeMap;
    let kept = |quota: u64| -> Vec<u64> {
        let mut s = GroupSampler::default();
        for pos in 0..1000u64 {
            s.add(if pos % 3 == 0 { "x" } else { "y" }, key(5, &format!("row{pos}")), pos, 1);
        }
        s.set_quotas(&BTreeMap::from([("x".to_string(), quota)]));
        (0..1000u64).filter(|&p| s.keeps(if p % 3 == 0 { "x" } else { "y" }, key(5, &format!("row{p}")), p)).collect()
    };
    let (small, large) = (kept(50), kept(200));
    let xs = |v: &[u64]| v.iter().filter(|&&p| p % 3 == 0).count();
    assert_eq!((xs(&small), xs(&large)), (50, 200));
    assert_eq!(small.len() - 50, 666, "group y untouched");
    assert!(small.iter().all(|p| large.contains(p)));
    assert_eq!(xs(&kept(0)), 0);
}
