//! Hugging Face `save_pretrained` directories convert (docs/import.md): the tiny random
//! checkpoints of `tools/make_hf_tiny.py` in `models/hf-tiny/` load through their family's
//! importer, their f32 forward pass matches transformers' logits, and the int8 model tracks
//! the float one. Bad checkpoints are refused with the file and the option named.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use picoformer::blob::{ActKind, ModelKind, PosKind};
use picoformer::observe::Site;
use picoformer::tokenizer::Tokenizer;
use picoformer::Model;
use picoformer_tools::calibrate::{calibrate, CalibData};
use picoformer_tools::check::check_reference;
use picoformer_tools::eval::layer_errors;
use picoformer_tools::export::Export;
use picoformer_tools::host::{pieces, read_lines, AlignedBuf, SentencePairs};
use picoformer_tools::quantize::quantize;
use picoformer_tools::vectors::Inputs;

fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

fn tiny(family: &str) -> PathBuf {
    root().join("models/hf-tiny").join(family)
}

/// f32 against transformers, then calibrate, quantize, parse; returns the f32 |Δ| and the
/// logits' SQNR (dB) and cosine of int8 against float on held-out inputs.
fn convert(family: &str) -> (f32, f64, f64) {
    let dir = tiny(family);
    let ex = Export::load(&dir).unwrap_or_else(|e| panic!("{family}: {e:#}"));
    let fm = ex.float_model();
    let c = ex.blob_config;
    let check = check_reference(&fm, &dir).unwrap_or_else(|e| panic!("{family}: {e:#}")).expect("reference vectors");
    let vocab = ex.spm.as_ref().map(|s| s.tables().unwrap());
    let tok = ex.spm.as_ref().map(|s| Tokenizer::new(s.vocab(vocab.as_ref().unwrap())).unwrap());
    let de_en = root().join("models/de-en");
    let calib = match c.kind {
        ModelKind::EncoderDecoder => CalibData::Pairs(SentencePairs::read(&de_en.join("calib.de"), &de_en.join("calib.en"), 60).unwrap()),
        _ => CalibData::Texts(read_lines(&root().join("models/captions-lm/calib.en")).unwrap()[..60].to_vec()),
    };
    let (ranges, features) = calibrate(&fm, tok.as_ref(), &calib).unwrap();
    let quantized = quantize(&fm, &ranges, picoformer_tools::quantize::WeightRule::default(), vocab.as_ref(), features.as_ref()).unwrap();
    let blob = AlignedBuf::from_bytes(&quantized.blob(&c).unwrap());
    let model = Model::parse(blob.bytes()).unwrap();
    assert_eq!(*model.config(), c);
    let texts = match c.kind {
        ModelKind::EncoderDecoder => read_lines(&de_en.join("test2016.de")).unwrap()[10..18].to_vec(),
        _ => read_lines(&root().join("models/captions-lm/prompts.txt")).unwrap()[10..18].to_vec(),
    };
    let errors = layer_errors(&model, &fm, &quantized.scales, Inputs::Texts(&texts)).unwrap();
    for e in &errors {
        println!("{family}: {} {:.1} dB cosine {:.5}", e.site, e.sqnr_db, e.cosine);
    }
    let out = errors.iter().find(|e| e.site == Site::Logits).unwrap();
    (check.max_diff, out.sqnr_db, out.cosine)
}

#[test]
fn llama_maps_onto_the_decoder_only_layout() {
    let ex = Export::load(&tiny("llama")).unwrap();
    let c = ex.blob_config;
    assert_eq!((c.kind, c.act, c.positions, c.nhead, c.n_kv_heads, c.n_dec, c.vocab, c.tied()), (ModelKind::DecoderOnly, ActKind::SwiGlu, PosKind::Rope, 4, 2, 2, 1000, false));
    assert_eq!((ex.rope_theta, ex.norm_eps), (500.0, 1e-6));
    assert_eq!((c.bos, c.eos), (1, 2));
}

#[test]
fn llama_f32_matches_transformers_and_int8_tracks_it() {
    let (diff, sqnr, cosine) = convert("llama");
    println!("llama: f32 max |Δ| {diff:.2e}, int8 logits SQNR {sqnr:.1} dB, cosine {cosine:.5}");
    assert!(diff < 1e-4, "llama f32 vs transformers {diff}");
    assert!(sqnr > 24.0 && cosine > 0.998, "llama int8 logits SQNR {sqnr:.1} dB, cosine {cosine}");
}

#[test]
fn mistral_with_a_tied_head_and_one_kv_head() {
    let ex = Export::load(&tiny("mistral")).unwrap();
    let c = ex.blob_config;
    assert_eq!((c.kind, c.nhead, c.n_kv_heads, c.tied(), ex.rope_theta, ex.norm_eps), (ModelKind::DecoderOnly, 4, 1, true, 10000.0, 1e-5));
    assert!(!ex.tensors.contains_key("lm_head.weight"));
    let (diff, sqnr, cosine) = convert("mistral");
    println!("mistral: f32 max |Δ| {diff:.2e}, int8 logits SQNR {sqnr:.1} dB, cosine {cosine:.5}");
    assert!(diff < 1e-4, "mistral f32 vs transformers {diff}");
    assert!(sqnr > 24.0 && cosine > 0.998, "mistral int8 logits SQNR {sqnr:.1} dB, cosine {cosine}");
}

#[test]
fn a_sliding_window_shorter_than_the_context_is_refused() {
    let d = copy("mistral", "window");
    set(&d, "sliding_window", 16.into());
    let e = error_of(&d);
    assert!(e.contains("field `sliding_window`: 16: the runtime attends to the whole context, so the window must be null or at least the 64 positions"), "{e}");
    set(&d, "sliding_window", 64.into());
    Export::load(&d).unwrap();
}

#[test]
fn marian_maps_onto_the_encoder_decoder_layout() {
    let ex = Export::load(&tiny("marian")).unwrap();
    let c = ex.blob_config;
    assert_eq!((c.kind, c.act, c.positions, c.norm_first(), c.final_norm(), c.tied()), (ModelKind::EncoderDecoder, ActKind::Silu, PosKind::Learned, false, false, true));
    // the pad id starts the decoder; ids are vocab.json's
    assert_eq!((c.pad, c.bos, c.eos, c.unk, c.vocab), (498, 498, 0, 1, 499));
    assert!(ex.scale_embedding);
    let spm = ex.spm.as_ref().unwrap();
    let vocab: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tiny("marian").join("vocab.json")).unwrap()).unwrap();
    for (piece, id) in vocab.as_object().unwrap() {
        assert_eq!(&spm.pieces[id.as_u64().unwrap() as usize].piece, piece);
    }
}

#[test]
fn marian_tokenizer_gives_vocab_json_ids() {
    // the source ids of the reference vectors are MarianTokenizer's own
    let ex = Export::load(&tiny("marian")).unwrap();
    let spm = ex.spm.as_ref().unwrap();
    let tables = spm.tables().unwrap();
    let tok = Tokenizer::new(spm.vocab(&tables)).unwrap();
    let st_bytes = std::fs::read(tiny("marian").join("reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    let lines = read_lines(&root().join("models/de-en/test2016.de")).unwrap();
    for (i, line) in lines.iter().take(4).enumerate() {
        let ids = picoformer_tools::export::ints(&st, &format!("src_ids.{i}"), Path::new("reference")).unwrap();
        let mut ours: Vec<i64> = pieces(&tok, line).unwrap().iter().map(|&t| t as i64).collect();
        ours.push(0); // eos
        assert_eq!(ours, ids, "{line}");
    }
}

#[test]
fn marian_f32_matches_transformers_and_int8_tracks_it() {
    let (diff, sqnr, cosine) = convert("marian");
    println!("marian: f32 max |Δ| {diff:.2e}, int8 logits SQNR {sqnr:.1} dB, cosine {cosine:.5}");
    assert!(diff < 1e-4, "marian f32 vs transformers {diff}");
    assert!(sqnr > 35.0 && cosine > 0.9998, "marian int8 logits SQNR {sqnr:.1} dB, cosine {cosine}");
}

#[test]
fn bert_maps_onto_the_encoder_only_layout_and_matches_transformers() {
    use picoformer::blob::{Pooling, TokenizerKind};
    let ex = Export::load(&tiny("bert")).unwrap();
    let c = ex.blob_config;
    assert_eq!((c.kind, c.act, c.positions, c.norm_first(), c.final_norm(), c.embed_norm(), c.pooler(), c.pooling, c.tokenizer), (ModelKind::EncoderOnly, ActKind::Gelu, PosKind::Learned, false, false, true, true, Pooling::First, TokenizerKind::WordPiece));
    // [PAD] [UNK] [CLS] [SEP]: pad, unk, bos, eos
    assert_eq!((c.vocab, c.n_outputs, c.max_len, c.pad, c.unk, c.bos, c.eos, c.d_model, c.n_enc, c.d_ff), (1204, 3, 64, 0, 1, 2, 3, 32, 2, 64));
    assert_eq!(ex.labels, ["animal", "person", "thing"]);
    assert_eq!(ex.norm_eps, 1e-12);
    let check = check_reference(&ex.float_model(), &tiny("bert")).unwrap().unwrap();
    println!("bert: f32 max |Δ| {:.2e} over {} cases", check.max_diff, check.sentences);
    assert!(check.max_diff < 1e-4 && check.sentences == 6, "{check:?}");
}

#[test]
fn bert_int8_tracks_float() {
    use picoformer::reference::FSource;
    use picoformer_tools::calibrate::text_ids;
    let (diff, sqnr, cosine) = convert("bert");
    println!("bert: f32 max |Δ| {diff:.2e}, int8 logits SQNR {sqnr:.1} dB, cosine {cosine:.5}");
    assert!(diff < 1e-4, "bert f32 vs transformers {diff}");
    assert!(sqnr > 24.0 && cosine > 0.998, "bert int8 logits SQNR {sqnr:.1} dB, cosine {cosine}");
    // classes and logits of int8 against float on 200 test captions (English and German)
    let ex = Export::load(&tiny("bert")).unwrap();
    let fm = ex.float_model();
    let tables = ex.spm.as_ref().unwrap().tables().unwrap();
    let tok = Tokenizer::new(ex.spm.as_ref().unwrap().vocab(&tables)).unwrap();
    let calib = CalibData::Texts(read_lines(&root().join("models/captions-lm/calib.en")).unwrap()[..60].to_vec());
    let (ranges, _) = calibrate(&fm, Some(&tok), &calib).unwrap();
    let q = quantize(&fm, &ranges, picoformer_tools::quantize::WeightRule::default(), Some(&tables), None).unwrap();
    let blob = AlignedBuf::from_bytes(&q.blob(&ex.blob_config).unwrap());
    let model = Model::parse(blob.bytes()).unwrap();
    let unit = model.output_scale().to_real();
    let mut arena = vec![0u64; picoformer::Classifier::arena_bytes(&model).div_ceil(8)];
    let mut clf = picoformer::Classifier::new(&model, bytemuck::cast_slice_mut(&mut arena)).unwrap();
    let de_en = root().join("models/de-en");
    let mut texts = read_lines(&de_en.join("test2016.en")).unwrap()[..100].to_vec();
    texts.extend(read_lines(&de_en.join("test2016.de")).unwrap()[..100].iter().cloned());
    let mut fl = picoformer_tools::host::Float::new(&fm).unwrap();
    let (mut agree, mut worst, mut span, mut tie) = (0, 0f64, 0f64, 0f64);
    for t in &texts {
        let ids = text_ids(&tok, t, 64, false).unwrap();
        assert_eq!((ids[0], *ids.last().unwrap()), (2, 3), "[CLS] … [SEP]");
        let mut st = fl.state().unwrap();
        let f: Vec<f32> = fm.classify(FSource::Tokens(&ids), &mut st, &mut picoformer::observe::NoObserver).unwrap().to_vec();
        let out = clf.classify_tokens(&ids).unwrap().to_vec();
        let fc = f.iter().enumerate().fold(0, |b, (i, &v)| if v > f[b] { i } else { b });
        agree += usize::from(clf.class() == fc);
        if clf.class() != fc {
            // a flip is a near-tie: the float margin between the two classes
            tie = tie.max((f[fc] - f[clf.class()]) as f64);
        }
        for (&o, &v) in out.iter().zip(&f) {
            worst = worst.max((o as f64 * unit - v as f64).abs());
            span = span.max(v.abs() as f64);
        }
    }
    println!("bert int8: classes agree with float on {agree}/{} captions, logits max |Δ| {worst:.4} (float logits up to {span:.2})", texts.len());
    println!("bert int8: the widest float margin a flip had: {tie:.4}");
    assert!(agree >= 190, "{agree}/200");
    assert!(tie <= 2.0 * worst, "a class flipped at a float margin of {tie}, beyond twice the logit error {worst}");
    assert!(worst < 0.1 * span, "logit error {worst} of {span}");
}

/// `tokenizer_vectors.json`: BertTokenizer's ids for each string.
fn bert_vectors() -> Vec<(String, Vec<u16>)> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(tiny("bert").join("tokenizer_vectors.json")).unwrap()).unwrap();
    v.as_array().unwrap().iter().map(|c| (c["text"].as_str().unwrap().to_owned(), c["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u16).collect())).collect()
}

#[test]
fn wordpiece_gives_bert_tokenizer_ids() {
    let ex = Export::load(&tiny("bert")).unwrap();
    let spm = ex.spm.as_ref().unwrap();
    let tables = spm.tables().unwrap();
    println!("bert tokenizer tables: {} class runs, {} mapped characters ({} bytes)", tables.classes.len(), tables.map_from.len(), tables.map_bytes.len());
    let tok = Tokenizer::new(spm.vocab(&tables)).unwrap();
    let cases = bert_vectors();
    assert!(cases.len() >= 20);
    for (text, want) in &cases {
        let mut scratch = vec![picoformer::tokenizer::Node::default(); Tokenizer::scratch_len(text.len())];
        let mut out = vec![0u16; 512];
        let n = tok.encode_prompt(text, &mut scratch, &mut out, 512).unwrap();
        assert_eq!(&out[..n], &want[..], "{text:?}");
    }
    // unknown words and accents are among them
    assert!(cases.iter().any(|(_, ids)| ids.contains(&1)) && cases.iter().any(|(t, _)| t.contains('é')));
    // truncation keeps [CLS] … [SEP] around the first pieces
    let (text, want) = &cases[0];
    let mut scratch = vec![picoformer::tokenizer::Node::default(); Tokenizer::scratch_len(text.len())];
    let mut out = [0u16; 6];
    assert_eq!(tok.encode_prompt(text, &mut scratch, &mut out, 6).unwrap(), 6);
    assert_eq!(out, [want[0], want[1], want[2], want[3], want[4], 3]);
}

// ---- bad checkpoints ----

/// A copy of a tiny checkpoint in a fresh temp dir.
fn copy(family: &str, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("picoformer-hf-{family}-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(tiny(family)).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    dir
}

/// Set `field` of config.json to `value` (JSON).
fn set(dir: &Path, field: &str, value: serde_json::Value) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v[field] = value;
    std::fs::write(&p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn error_of(dir: &Path) -> String {
    match Export::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn unsupported_model_type_lists_the_supported_ones() {
    let d = copy("llama", "type");
    set(&d, "model_type", "gpt2".into());
    let e = error_of(&d);
    assert!(e.contains("config.json: field `model_type`: unsupported \"gpt2\"") && e.contains("\"llama\" (LlamaForCausalLM)") && e.contains("\"marian\" (MarianMTModel)") && e.contains("\"mistral\" (MistralForCausalLM)") && e.contains("\"decoder-only\""), "{e}");
}

#[test]
fn unsupported_architecture_is_named() {
    let d = copy("llama", "arch");
    set(&d, "architectures", serde_json::json!(["LlamaForSequenceClassification"]));
    let e = error_of(&d);
    assert!(e.contains("field `architectures`") && e.contains("LlamaForSequenceClassification") && e.contains("reads LlamaForCausalLM only"), "{e}");
}

#[test]
fn unsupported_hidden_act_names_the_option_and_the_supported_one() {
    let d = copy("llama", "act");
    set(&d, "hidden_act", "gelu".into());
    let e = error_of(&d);
    assert!(e.contains("field `hidden_act`: unsupported \"gelu\" (supported: \"silu\")"), "{e}");
}

#[test]
fn rope_scaling_is_refused() {
    let d = copy("llama", "rope4");
    set(&d, "rope_scaling", serde_json::json!({"rope_type": "linear", "factor": 2.0}));
    let e = error_of(&d);
    assert!(e.contains("field `rope_scaling`") && e.contains("not supported") && e.contains("rope_type \"default\""), "{e}");
    let d = copy("llama", "rope5");
    set(&d, "rope_parameters", serde_json::json!({"rope_type": "yarn", "rope_theta": 500.0, "factor": 4.0}));
    let e = error_of(&d);
    assert!(e.contains("field `rope_parameters`") && e.contains("unsupported \"yarn\" (supported: \"default\")"), "{e}");
}

#[test]
fn mixed_biases_are_refused() {
    let d = copy("llama", "bias");
    set(&d, "attention_bias", true.into());
    let e = error_of(&d);
    assert!(e.contains("field `mlp_bias`") && e.contains("every linear or on none"), "{e}");
}

#[test]
fn marian_activation_and_pre_norm_are_checked() {
    let d = copy("marian", "act");
    set(&d, "activation_function", "gelu_new".into());
    let e = error_of(&d);
    assert!(e.contains("field `activation_function`: unsupported \"gelu_new\" (supported: \"swish\", \"silu\", \"relu\", \"gelu\")"), "{e}");
    let d = copy("marian", "prenorm");
    set(&d, "normalize_before", true.into());
    let e = error_of(&d);
    assert!(e.contains("field `normalize_before`: true is not supported"), "{e}");
}

#[test]
fn bert_options_the_runtime_lacks_are_named() {
    for (field, value, want) in [
        ("hidden_act", serde_json::json!("gelu_new"), "field `hidden_act`: unsupported \"gelu_new\" (supported: \"gelu\")"),
        ("position_embedding_type", "relative_key".into(), "field `position_embedding_type`: unsupported \"relative_key\" (supported: \"absolute\")"),
        ("problem_type", "regression".into(), "field `problem_type`: unsupported \"regression\" (supported: \"single_label_classification\")"),
        ("problem_type", "multi_label_classification".into(), "unsupported \"multi_label_classification\""),
        ("is_decoder", true.into(), "field `is_decoder`: true is not supported"),
        ("num_labels", 2.into(), "field `num_labels`: 2, but id2label has 3 labels"),
    ] {
        let d = copy("bert", "opt");
        set(&d, field, value.clone());
        let e = error_of(&d);
        assert!(e.contains("config.json") && e.contains(want), "{field} = {value}: {e}");
    }
    // one label is regression
    let d = copy("bert", "one");
    set(&d, "id2label", serde_json::json!({"0": "score"}));
    let e = error_of(&d);
    assert!(e.contains("field `num_labels`: 1: one output is regression, which the bert importer does not map"), "{e}");
    // the tokenizer's options
    let d = copy("bert", "strip");
    let p = d.join("tokenizer_config.json");
    let tc = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, tc.replace("\"strip_accents\": null", "\"strip_accents\": false")).unwrap();
    let e = error_of(&d);
    assert!(e.contains("tokenizer_config.json: field `strip_accents`: false with do_lower_case true"), "{e}");
}

#[test]
fn a_bert_vocabulary_that_disagrees_is_named() {
    let d = copy("bert", "vocab");
    let p = d.join("vocab.txt");
    let v = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, v.lines().take(1200).map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    let e = error_of(&d);
    assert!(e.contains("vocab.txt: 1200 pieces, but config.json's vocab_size is 1204"), "{e}");
    std::fs::write(&p, v.replacen("[CLS]", "[START]", 1)).unwrap();
    let e = error_of(&d);
    assert!(e.contains("vocab.txt: no \"[CLS]\" piece (tokenizer_config.json's `cls_token`)"), "{e}");
    std::fs::write(&p, v.replacen("[MASK]\n", "the\n", 1)).unwrap();
    let e = error_of(&d);
    assert!(e.contains("vocab.txt: line") && e.contains("a repeated piece \"the\""), "{e}");
    std::fs::remove_file(&p).unwrap();
    let e = error_of(&d);
    assert!(e.contains("vocab.txt: not found (the WordPiece vocabulary a BERT checkpoint carries)"), "{e}");
}

#[test]
fn a_missing_shard_is_named() {
    let d = copy("llama", "shard");
    std::fs::remove_file(d.join("model-00002-of-00002.safetensors")).unwrap();
    let e = error_of(&d);
    assert!(e.contains("model-00002-of-00002.safetensors: missing shard") && e.contains("model.safetensors.index.json lists it"), "{e}");
}

#[test]
fn a_shard_without_a_listed_tensor_is_named() {
    let d = copy("llama", "index");
    let p = d.join("model.safetensors.index.json");
    let s = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, s.replace("\"lm_head.weight\": \"model-00002-of-00002.safetensors\"", "\"lm_head.weight\": \"model-00001-of-00002.safetensors\"")).unwrap();
    let e = error_of(&d);
    assert!(e.contains("model-00001-of-00002.safetensors: no tensor `lm_head.weight`"), "{e}");
}

#[test]
fn a_tokenizer_that_disagrees_with_vocab_size_is_named() {
    let d = copy("llama", "vocab");
    std::fs::copy(root().join("tools/tests/data/bpe_llama.model"), d.join("tokenizer.model")).unwrap();
    let e = error_of(&d);
    assert!(e.contains("vocab_size") && e.contains("tokenizer.model has 2000 pieces"), "{e}");
    let d = copy("marian", "vocab");
    let p = d.join("vocab.json");
    let mut v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v.remove("▁black");
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
    let e = error_of(&d);
    assert!(e.contains("vocab.json: 498 pieces, but config.json's vocab_size is 499"), "{e}");
}

#[test]
fn control_ids_that_disagree_with_the_tokenizer_are_named() {
    let d = copy("llama", "bos");
    set(&d, "bos_token_id", 3.into());
    let e = error_of(&d);
    assert!(e.contains("field `bos_token_id`: 3, but") && e.contains("tokenizer.model says 1"), "{e}");
    let d = copy("marian", "start");
    set(&d, "decoder_start_token_id", 0.into());
    let e = error_of(&d);
    assert!(e.contains("field `decoder_start_token_id`: 0: the runtime starts the decoder at the pad id, pad_token_id 498"), "{e}");
}

#[test]
fn missing_tokenizer_files_are_named() {
    let d = copy("marian", "nospm");
    std::fs::remove_file(d.join("target.spm")).unwrap();
    let e = error_of(&d);
    assert!(e.contains("target.spm: not found"), "{e}");
    let d = copy("llama", "notok");
    std::fs::remove_file(d.join("tokenizer.model")).unwrap();
    std::fs::write(d.join("tokenizer.json"), "{}").unwrap();
    let e = error_of(&d);
    assert!(e.contains("tokenizer.model: not found") && e.contains("tokenizer.json (the fast tokenizer) is not read"), "{e}");
}

#[test]
fn a_weight_of_the_wrong_shape_is_named() {
    let d = copy("llama", "shape");
    set(&d, "intermediate_size", 48.into());
    let e = error_of(&d);
    assert!(e.contains("model.safetensors.index.json: tensor `model.layers.0.mlp.gate_proj.weight` has shape [64, 32], config.json implies [48, 32]"), "{e}");
}

#[test]
fn a_hostile_config_gets_an_error_not_a_panic() {
    for (field, value) in [("hidden_size", serde_json::json!(-3)), ("num_attention_heads", 0.into()), ("num_hidden_layers", 1_000_000.into()), ("max_position_embeddings", 1.into()), ("rms_norm_eps", "x".into()), ("eos_token_id", 70000.into()), ("vocab_size", serde_json::json!(null))] {
        let d = copy("llama", "hostile");
        set(&d, field, value.clone());
        let e = error_of(&d);
        assert!(e.contains("config.json") || e.contains("safetensors"), "{field} = {value}: {e}");
    }
}

// ---- the CLI ----

fn picoformer(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_picoformer")).args(args).env("RUST_BACKTRACE", "0").stdin(Stdio::null()).output().unwrap()
}

#[test]
fn convert_takes_a_hugging_face_directory_and_plain_text_calibration() {
    let out = std::env::temp_dir().join(format!("picoformer-hf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let blob = out.join("llama.pico");
    let calib = root().join("models/captions-lm/calib.en");
    let prompts = root().join("models/captions-lm/prompts.txt");
    let test = out.join("test.en");
    std::fs::write(&test, read_lines(&root().join("models/captions-lm/test2016.en")).unwrap()[..40].join("\n") + "\n").unwrap();
    let test = test.display().to_string();
    let o = picoformer(&["convert", tiny("llama").to_str().unwrap(), "--out", blob.to_str().unwrap(), "--calib", calib.to_str().unwrap(), "--calib-count", "25", "--prompts", prompts.to_str().unwrap(), "--test", &test, "--vectors", "2", "--layer-sentences", "4"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("decoder-only: d_model 32, 4 heads over 2 K/V heads, 2 decoder layers, FFN 64 (swiglu), RmsNorm, pre-norm, Rope positions, vocabulary 1000"), "{stdout}");
    assert!(stdout.contains("f32 forward matches PyTorch on 4 reference cases"), "{stdout}");
    println!("{stdout}");
    // perplexity on 40 test captions, int8 against float (a random model: near-uniform, 1899)
    let ppl = |key: &str| -> f64 {
        let at = stdout.find(key).unwrap() + key.len();
        stdout[at..].split([',', ';']).next().unwrap().trim().parse().unwrap()
    };
    let (int8, float) = (ppl("perplexity int8 "), ppl(", float "));
    assert!((int8 / float - 1.0).abs() < 1e-3 && (1800.0..2000.0).contains(&float), "{stdout}");
    let report = std::fs::read_to_string(out.join("llama.report.md")).unwrap();
    assert!(report.contains("25 texts"), "{report}");
    // a missing calibration file is named
    let o = picoformer(&["convert", tiny("llama").to_str().unwrap(), "--out", blob.to_str().unwrap(), "--calib", "/nonexistent/calib.txt"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("/nonexistent/calib.txt: not found (the text file a decoder-only model reads; give it with --calib"), "{stderr}");
}

#[test]
fn convert_and_translate_a_marian_directory() {
    // the first 40 lines of a test set
    let head = |from: &Path, to: &Path| {
        std::fs::write(to, read_lines(from).unwrap()[..40].join("\n") + "\n").unwrap();
        to.display().to_string()
    };
    let out = std::env::temp_dir().join(format!("picoformer-hf-cli-marian-{}", std::process::id()));
    std::fs::create_dir_all(&out).unwrap();
    let blob = out.join("marian.pico");
    let de_en = root().join("models/de-en");
    let p = |f: &str| de_en.join(f).display().to_string();
    let o = picoformer(&["convert", tiny("marian").to_str().unwrap(), "--out", blob.to_str().unwrap(), "--calib-src", &p("calib.de"), "--calib-tgt", &p("calib.en"), "--calib-count", "30", "--test-src", &head(&de_en.join("test2016.de"), &out.join("test.de")), "--test-ref", &head(&de_en.join("test2016.en"), &out.join("test.en")), "--vectors", "2", "--layer-sentences", "4"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("encoder-decoder: d_model 32, 4 heads, 2 encoder + 1 decoder layers, FFN 64 (silu), LayerNorm, post-norm, Learned positions, vocabulary 499"), "{stdout}");
    println!("{stdout}");
    // int8 greedy translations (up to 63 tokens of a random model) against float's
    assert!(stdout.contains("identical 38/40 (95.0%)"), "{stdout}");
    let o = picoformer(&["translate", "--model", blob.to_str().unwrap(), "Ein Hund rennt."]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // source sentences alone: the float model translates them for the targets
    let o = picoformer(&["convert", tiny("marian").to_str().unwrap(), "--out", blob.to_str().unwrap(), "--calib", &p("calib.de"), "--calib-count", "10", "--vectors", "1", "--layer-sentences", "2"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("calibration targets: the float model's greedy translations of 10 sentences"), "{stdout}");
    let report = std::fs::read_to_string(out.join("marian.report.md")).unwrap();
    assert!(report.contains("Calibration: 10 sentence pairs"), "{report}");
    // a missing calibration file is named
    let o = picoformer(&["convert", tiny("marian").to_str().unwrap(), "--out", blob.to_str().unwrap(), "--calib-src", "/nonexistent/calib.de", "--calib-tgt", &p("calib.en")]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("/nonexistent/calib.de: not found (a translator calibrates on parallel text files"), "{stderr}");
}

/// A directory with the export fuzz target's fixed tokenizer files.
fn fuzz_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("picoformer-hf-seed-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    for (family, file) in [("llama", "tokenizer.model"), ("marian", "source.spm"), ("marian", "target.spm"), ("marian", "vocab.json"), ("bert", "vocab.txt"), ("bert", "tokenizer_config.json")] {
        std::fs::copy(tiny(family).join(file), d.join(file)).unwrap();
    }
    d
}

/// Write one input of the export fuzz target into `d`: `n` (u16 LE), `n` bytes of config.json,
/// the safetensors file.
fn write_input(d: &Path, data: &[u8]) {
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    std::fs::write(d.join("config.json"), &data[2..2 + n]).unwrap();
    std::fs::write(d.join("model.safetensors"), &data[2 + n..]).unwrap();
}

fn seed(name: &str) -> Vec<u8> {
    std::fs::read(root().join("fuzz/seeds/export").join(name)).unwrap()
}

#[test]
fn the_export_fuzz_seeds_load() {
    for (name, loads) in [("llama", true), ("marian", true), ("bert", true), ("generic", true), ("transformer", false)] {
        let d = fuzz_dir(name);
        write_input(&d, &seed(name));
        match Export::load(&d) {
            Ok(ex) => {
                assert!(loads, "{name} loaded");
                assert!(ex.float_model().config.validate().is_ok());
            }
            Err(e) => assert!(!loads && format!("{e:#}").contains("model.safetensors: not a safetensors file"), "{name}: {e:#}"),
        }
    }
}

#[test]
fn mutated_seeds_give_errors_not_panics() {
    // a deterministic sweep in the spirit of the fuzz target: bytes of the config and of the
    // safetensors header overwritten, and the file cut short
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let (mut ok, mut err) = (0, 0);
    for name in ["llama", "marian", "bert", "generic"] {
        let d = fuzz_dir(&format!("mut-{name}"));
        let base = seed(name);
        let n = u16::from_le_bytes([base[0], base[1]]) as usize;
        for i in 0..150 {
            let mut data = base.clone();
            // the config and the first 400 bytes of the safetensors file (its header)
            let span = 2 + n + 400.min(data.len() - 2 - n);
            for _ in 0..1 + i % 4 {
                let at = 2 + (next() as usize) % (span - 2);
                data[at] = match next() % 4 {
                    0 => b'9',
                    1 => b'-',
                    2 => b'"',
                    _ => next() as u8,
                };
            }
            if i % 10 == 9 {
                data.truncate(2 + n + (next() as usize) % (data.len() - 2 - n));
            }
            write_input(&d, &data);
            match Export::load(&d) {
                Ok(ex) => {
                    assert!(ex.float_model().config.validate().is_ok());
                    ok += 1;
                }
                Err(_) => err += 1,
            }
        }
    }
    println!("mutated seeds: {ok} loaded, {err} refused");
    assert!(err > 400, "{ok} loaded, {err} refused");
}

#[test]
fn half_precision_weights_are_read() {
    // the llama shards rewritten as BF16 and F16: each tensor loads as its rounded f32 value
    let full = Export::load(&tiny("llama")).unwrap();
    for (dtype, round) in [(safetensors::Dtype::BF16, (|x: f32| half::bf16::from_f32(x).to_f32()) as fn(f32) -> f32), (safetensors::Dtype::F16, |x: f32| half::f16::from_f32(x).to_f32())] {
        let d = copy("llama", &format!("{dtype:?}"));
        for shard in ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"] {
            let p = d.join(shard);
            let bytes = std::fs::read(&p).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let data: Vec<(String, Vec<usize>, Vec<u8>)> = st
                .tensors()
                .into_iter()
                .map(|(n, v)| {
                    let b = v.data().chunks_exact(4).flat_map(|c| {
                        let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                        if dtype == safetensors::Dtype::BF16 { half::bf16::from_f32(x).to_le_bytes() } else { half::f16::from_f32(x).to_le_bytes() }
                    });
                    (n, v.shape().to_vec(), b.collect())
                })
                .collect();
            let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data.iter().map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap())).collect();
            safetensors::serialize_to_file(views, None, &p).unwrap();
        }
        let ex = Export::load(&d).unwrap_or_else(|e| panic!("{dtype:?}: {e:#}"));
        assert_eq!(ex.tensors.len(), full.tensors.len());
        for (name, t) in &full.tensors {
            let want: Vec<f32> = t.iter().map(|&x| round(x)).collect();
            assert_eq!(ex.tensors[name], want, "{dtype:?} {name}");
        }
    }
}
