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
    Input { files: vec![], format: Format::Jsonl, layout, columns, images_root: None, source: "s".into() }
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
    let two = json(r#"{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}, {"from": "human", "value": "c"}]}"#);
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
    };
    let on = [KeyField::Prompt, KeyField::Images];
    assert_eq!(key(&t("What  is it?", "a"), &on), key(&t("what is it?", "a"), &on));
    assert_ne!(key(&t("What is it?", "a"), &on), key(&t("What is it?", "b"), &on));
    assert_ne!(key(&t("What is it?", "a"), &on), key(&t("What was it?", "a"), &on));
}
