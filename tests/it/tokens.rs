//! Token counting: the bundled tokenizer against its check vectors, image tokens against
//! transformers' `smart_resize`, and token bounds in `filter.length`.

use cotforge::text::tokens::{TokenCounter, smart_resize};

use crate::common::*;

#[test]
fn bundled_tokenizer_reproduces_the_check_vectors() {
    let tk = TokenCounter::bundled().unwrap();
    let text = std::fs::read_to_string(repo().join("fixtures/tokenizers/qwen2.5/check_vectors.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vectors = v["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 50);
    for case in vectors {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        assert_eq!(tk.ids(text).unwrap(), want, "{text:?}");
        assert_eq!(tk.count(text).unwrap(), want.len());
    }
    // the bundled bytes are the fixture file
    let file = TokenCounter::from_file(&repo().join("fixtures/tokenizers/qwen2.5/tokenizer.json")).unwrap();
    assert_eq!(file.blake3, tk.blake3);
}

#[test]
fn image_tokens_match_transformers_smart_resize() {
    let text = std::fs::read_to_string(repo().join("tests/data/tokens/smart_resize.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let c: serde_json::Value = serde_json::from_str(line).unwrap();
        let g = |k: &str| c[k].as_u64().unwrap();
        let (h, w) = smart_resize(g("height") as u32, g("width") as u32, g("min_pixels"), g("max_pixels"));
        assert_eq!((h as u64, w as u64), (g("resized_height"), g("resized_width")), "{line}");
        assert_eq!(
            cotforge::text::tokens::image_pad_tokens(
                g("height") as u32,
                g("width") as u32,
                g("min_pixels"),
                g("max_pixels")
            ),
            g("tokens")
        );
        n += 1;
    }
    assert!(n > 3000);
}

#[test]
fn length_filter_bounds_tokens_with_images() {
    let tmp = tempfile::tempdir().unwrap();
    let yaml = |stage: &str| {
        format!(
            "name: t\ninputs:\n  - path: {}\n    format: parquet\n    columns: {{prompt: problem, response: answer, reference: solution, images: images}}\n    source: s\nstages:\n  - {stage}\noutput:\n  dir: o\n",
            fixture("layouts/hf/train.parquet")
        )
    };
    // Row 0: prompt "<image>\nWhat is the total shown in the chart?" with a 24x16 image:
    // smart_resize scales it up to 56x84 (min_pixels 3136) = 6 pad tokens, plus vision
    // start/end = 8 image tokens.
    let tk = TokenCounter::bundled().unwrap();
    let text_tokens = tk.count("\nWhat is the total shown in the chart?").unwrap() as u64;
    let out = tmp.path().join("a");
    let spec = write_spec(tmp.path(), &yaml("filter.length: {max_prompt_tokens: 1000}"));
    let stats = run(&spec, &out, None);
    let st = &stats.stages[1];
    assert_eq!(st.rows_out, 4);
    let img = &st.measured["image_tokens"];
    assert_eq!(img.count, 4);
    // red 24x16 -> 56x84: 8; blue 20x20 -> 56x56: 6; red + green 32x12 (-> 56x112: 10) = 18; none
    assert_eq!(img.sum, 8.0 + 6.0 + 18.0);
    assert_eq!(img.max, 18.0);
    let prompt = &st.measured["prompt_tokens"];
    assert!(prompt.min <= text_tokens as f64 + 8.0);
    // a bound just under row 0's prompt drops it with the count in the detail
    let bound = text_tokens + 8 - 1;
    let spec = write_spec(tmp.path(), &yaml(&format!("filter.length: {{max_prompt_tokens: {bound}}}")));
    let out = tmp.path().join("b");
    run(&spec, &out, None);
    let led = ledger(&out);
    let row0 = led.iter().find(|e| e.origin.ends_with("#0")).expect("row 0 dropped");
    assert_eq!(row0.reason, "too_many_tokens");
    assert!(row0.detail.contains(&format!("prompt has {} tokens", text_tokens + 8)), "{}", row0.detail);
    // reasoning and answer bounds
    let spec = write_spec(tmp.path(), &yaml("filter.length: {max_answer_tokens: 3, max_reasoning_tokens: 100000}"));
    let out = tmp.path().join("c");
    let stats = run(&spec, &out, None);
    assert_eq!(stats.stages[1].rows_out, 0, "every answer after </think> is longer than 3 tokens");
    assert!(ledger(&out).iter().all(|e| e.detail.starts_with("answer has")));
    // a missing tokenizer file is a spec error
    let spec = write_spec(tmp.path(), &yaml("filter.length: {max_total_tokens: 10, tokenizer: /no/tokenizer.json}"));
    let err = cotforge::spec::load(&spec).unwrap_err();
    assert!(err.to_string().contains("/no/tokenizer.json"), "{err}");
}

#[test]
fn a_trained_task_tokenizer_keeps_the_template_special_tokens_after_its_vocabulary() {
    use cotforge::tokenize::train_tokenizer::{TrainTokenizerArgs, fit_config, train_tokenizer};
    let tmp = tempfile::tempdir().unwrap();
    let files = cotforge::synth::corpus::arith_task(5, 60, 10, &tmp.path().join("arith")).unwrap();
    let like = repo().join("fixtures/tokenizers/qwen2.5");
    let out = tmp.path().join("tok");
    let args = TrainTokenizerArgs {
        inputs: vec![files[0].clone()],
        columns: vec!["problem".into(), "answer".into()],
        vocab_size: 400,
        min_frequency: 2,
        like: like.clone(),
        out: out.clone(),
    };
    let total = train_tokenizer(&args).unwrap();
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let template = tokenizers::Tokenizer::from_file(like.join("tokenizer.json")).unwrap();
    let learned = tok.get_vocab_size(false);
    assert!(learned > 256 && learned <= 400, "{learned} learned tokens");
    let added = template.get_vocab_size(true) - template.get_vocab_size(false);
    assert_eq!(total, learned + added);
    // the special tokens follow the learned ones, in the template's order, and stay atomic
    let pad = tok.token_to_id("<|image_pad|>").unwrap() as usize;
    assert_eq!(pad - learned, template.token_to_id("<|image_pad|>").unwrap() as usize - template.get_vocab_size(false));
    let enc = tok.encode("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>", false).unwrap();
    assert_eq!(enc.get_tokens()[0], "<|im_start|>");
    assert!(enc.get_ids().contains(&(pad as u32)));
    // byte-level: any text round-trips, the corpus compresses, digits stay single tokens
    let trace = "<think>\nThe red box shows 17 and the blue box shows 4. 17 + 4 = 21.\n</think>\n\\boxed{63} ünïcode";
    let ids = tok.encode(trace, false).unwrap().get_ids().to_vec();
    assert_eq!(tok.decode(&ids, false).unwrap(), trace);
    assert!(ids.len() < trace.len() * 2 / 3, "{} tokens for {} bytes", ids.len(), trace.len());
    let digits = tok.encode("1234", false).unwrap();
    assert_eq!(digits.get_ids().len(), 4);
    // the chat config names the special tokens by their new ids
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("tokenizer_config.json")).unwrap()).unwrap();
    assert_eq!(cfg["added_tokens_decoder"][pad.to_string()]["content"], "<|image_pad|>");
    assert!(cfg["chat_template"].as_str().unwrap().contains("<|im_start|>"));
    // a model config fitted to it: vocabulary rounded up to 64, special ids from the tokenizer
    let mut model = cotforge::model::init::preset("qwen2.5-vl-tiny").unwrap();
    fit_config(&mut model, &out).unwrap();
    let vocab = model["vocab_size"].as_u64().unwrap() as usize;
    assert!(vocab >= total && vocab.is_multiple_of(64) && vocab < total + 64);
    assert_eq!(model["image_token_id"].as_u64(), Some(pad as u64));
    assert_eq!(model["text_config"]["vocab_size"].as_u64(), Some(vocab as u64));
    assert_eq!(model["eos_token_id"].as_u64(), tok.token_to_id("<|im_end|>").map(u64::from));
    // a wrong column is an error naming it
    let bad = TrainTokenizerArgs { columns: vec!["nope".into()], ..args };
    let e = train_tokenizer(&bad).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
}
