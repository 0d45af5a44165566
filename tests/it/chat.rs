//! Chat-template parity with Hugging Face `transformers` (`apply_chat_template`) on the
//! bundled Qwen2.5 tokenizer: fixtures made by `fixtures/make_chat_fixtures.py`.

use cotforge::pack::template::{ChatTemplate, Message};

use crate::common::repo;

#[test]
fn rendered_conversations_and_ids_match_transformers() {
    let dir = repo().join("fixtures/tokenizers/qwen2.5");
    let template = ChatTemplate::from_dir(&dir).unwrap();
    let tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let text = std::fs::read_to_string(repo().join("tests/data/chat/conversations.jsonl")).unwrap();
    let mut n = 0;
    let mut images = 0;
    for line in text.lines() {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = case["id"].as_str().unwrap();
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        let mut extra = serde_json::Map::new();
        if let Some(v) = case.get("default_system_message") {
            extra.insert("default_system_message".into(), v.clone());
        }
        let agp = case["add_generation_prompt"].as_bool().unwrap();
        let rendered = template.render(&messages, agp, &extra).unwrap();
        assert_eq!(rendered, case["text"].as_str().unwrap(), "{id}: rendering");
        let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(tokenizer.encode(rendered.as_str(), false).unwrap().get_ids(), &ids[..], "{id}: ids");
        images += rendered.matches("<|image_pad|>").count();
        n += 1;
    }
    assert!(n >= 30 && images >= 15, "{n} conversations, {images} images");
}

#[test]
fn template_errors_are_clear() {
    let bad = ChatTemplate::new("{% for m in messages %}".into(), None, None);
    assert!(bad.is_err());
    let raising = ChatTemplate::new("{{ raise_exception('roles must alternate') }}".into(), None, None).unwrap();
    let err = raising.render(&[], false, &serde_json::Map::new()).unwrap_err().to_string();
    assert!(err.contains("roles must alternate"), "{err}");
    // Python string methods, as transformers' templates use them
    let py = ChatTemplate::new("{{ messages[0]['content'].strip().upper() }}|{{ 'a-b'.split('-') | join(',') }}".into(), None, None).unwrap();
    let m: Vec<Message> = serde_json::from_str(r#"[{"role": "user", "content": "  hi  "}]"#).unwrap();
    assert_eq!(py.render(&m, false, &serde_json::Map::new()).unwrap(), "HI|a,b");
    // loop controls, and tojson as transformers writes it (Python's json.dumps layout, key order kept)
    let ctl = ChatTemplate::new("{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m | tojson }}{% endfor %}".into(), None, None).unwrap();
    let m: Vec<Message> = serde_json::from_str(r#"[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]"#).unwrap();
    assert_eq!(ctl.render(&m, false, &serde_json::Map::new()).unwrap(), r#"{"role": "user", "content": "a"}"#);
}
