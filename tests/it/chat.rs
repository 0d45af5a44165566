//! Chat-template parity with Hugging Face `transformers` (`apply_chat_template`) on the
//! bundled Qwen2.5 tokenizer: fixtures made by `fixtures/make_chat_fixtures.py`.

use cotforge::tokenize::template::{ChatTemplate, Message};

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
    let py = ChatTemplate::new(
        "{{ messages[0]['content'].strip().upper() }}|{{ 'a-b'.split('-') | join(',') }}".into(),
        None,
        None,
    )
    .unwrap();
    let m: Vec<Message> = serde_json::from_str(r#"[{"role": "user", "content": "  hi  "}]"#).unwrap();
    assert_eq!(py.render(&m, false, &serde_json::Map::new()).unwrap(), "HI|a,b");
    // loop controls, and tojson as transformers writes it (Python's json.dumps layout, key order kept)
    let ctl = ChatTemplate::new(
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}{{ m | tojson }}{% endfor %}".into(),
        None,
        None,
    )
    .unwrap();
    let m: Vec<Message> =
        serde_json::from_str(r#"[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]"#).unwrap();
    assert_eq!(ctl.render(&m, false, &serde_json::Map::new()).unwrap(), r#"{"role": "user", "content": "a"}"#);
}

/// Expand `[start, end)` spans into a 0/1 mask of `n` tokens.
fn mask_of(spans: &[(u32, u32)], n: usize) -> Vec<u8> {
    let mut m = vec![0u8; n];
    for &(a, b) in spans {
        for x in &mut m[a as usize..b as usize] {
            *x = 1;
        }
    }
    m
}

#[test]
fn encoded_ids_assistant_masks_and_image_tokens_match_transformers() {
    use cotforge::tokenize::encode::{ChatEncoder, EncodeOptions};
    let dir = repo().join("fixtures/tokenizers/qwen2.5");
    let text = std::fs::read_to_string(repo().join("tests/data/chat/conversations.jsonl")).unwrap();
    let (mut n, mut masked, mut images) = (0, 0, 0);
    for line in text.lines() {
        let case: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = case["id"].as_str().unwrap();
        let mut opts = EncodeOptions::default();
        if let Some(v) = case.get("default_system_message") {
            opts.template_vars.insert("default_system_message".into(), v.clone());
        }
        let enc = ChatEncoder::from_dir(&dir, opts).unwrap();
        let messages: Vec<Message> = serde_json::from_value(case["messages"].clone()).unwrap();
        if case["add_generation_prompt"].as_bool().unwrap() {
            continue; // prompts only: nothing to train on
        }
        let ints =
            |k: &str| -> Vec<u32> { case[k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect() };
        let sizes: Vec<(u32, u32)> = case["image_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s[0].as_u64().unwrap() as u32, s[1].as_u64().unwrap() as u32))
            .collect();
        // without images expanded: transformers' ids and assistant mask
        if sizes.is_empty() {
            let t = enc.encode(&messages, &[]).unwrap().unwrap();
            assert_eq!(t.ids, ints("ids"), "{id}: ids");
            let want: Vec<u8> = ints("assistant_mask").into_iter().map(|x| x as u8).collect();
            assert_eq!(mask_of(&t.assistant, t.ids.len()), want, "{id}: assistant mask");
        }
        let t = enc.encode(&messages, &sizes).unwrap().unwrap();
        assert_eq!(t.ids, ints("expanded_ids"), "{id}: expanded ids");
        let want: Vec<u8> = ints("expanded_mask").into_iter().map(|x| x as u8).collect();
        assert_eq!(mask_of(&t.assistant, t.ids.len()), want, "{id}: expanded assistant mask");
        let grids: Vec<[u32; 3]> = case["image_grid_thw"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| [0, 1, 2].map(|k| g[k].as_u64().unwrap() as u32))
            .collect();
        assert_eq!(t.grids, grids, "{id}: grids");
        masked += want.iter().filter(|&&x| x == 1).count();
        images += grids.len();
        n += 1;
    }
    assert!(n >= 25 && masked > 100 && images >= 12, "{n} conversations, {masked} masked tokens, {images} images");
}

#[test]
fn fast_token_ranges_equal_the_tokenizers_tracked_offsets() {
    use cotforge::tokenize::encode::{ChatEncoder, EncodeOptions};
    let enc = ChatEncoder::from_dir(&repo().join("fixtures/tokenizers/qwen2.5"), EncodeOptions::default()).unwrap();
    let text = std::fs::read_to_string(repo().join("tests/data/chat/conversations.jsonl")).unwrap();
    let mut texts: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["text"].as_str().unwrap().to_string())
        .collect();
    // NFC changes these (decomposed accents, a compatibility-free composition): the fast path must notice
    texts.push("Cafe\u{301} and e\u{301}le\u{300}ve<|im_end|>\n".to_string());
    texts.push("mixed 求 🙂 \u{0915}\u{094D}\u{0937} end".to_string());
    // the two agree on which tokens lie before, and which start before, every character boundary
    // (inside a multi-byte character the tokenizer widens offsets to the character; spans never
    // begin or end there)
    for t in &texts {
        let (fast_ids, fast) = enc.token_ends(t).unwrap();
        let (ids, tracked) = enc.tracked_token_ends(t).unwrap();
        assert_eq!(fast_ids, ids, "{t:?}");
        for p in (0..=t.len()).filter(|&p| t.is_char_boundary(p)) {
            let ended = |o: &[(usize, usize)]| o.iter().filter(|r| r.1 <= p).count();
            let started = |o: &[(usize, usize)]| o.iter().filter(|r| r.0 < p).count();
            assert_eq!((ended(&fast), started(&fast)), (ended(&tracked), started(&tracked)), "{t:?} at byte {p}");
        }
    }
}
