//! The runtime tokenizer against python SentencePiece, byte for byte: ids from
//! `sp.encode(line)` and text from `sp.decode(ids)`.
//!
//! - the de-en unigram model on the 1000 Multi30k test_2016 German sentences (skips, with a
//!   message, only while `models/de-en/export/tokenizer.model` is absent);
//! - the BPE models in `tests/data` (`tools/bpe_vectors.py`) on the 1000 test_2016 English
//!   captions and hostile cases, whole and streamed decode.

#[path = "../src/spm.rs"]
#[allow(dead_code)]
mod spm;

use std::path::{Path, PathBuf};
use std::process::Command;

use picoformer::tokenizer::{DecodeState, ModelKind, Node, Tokenizer};
use picoformer::TokenId;

const SOURCE: &str = "/work/shared/data/multi30k/test_2016_flickr.de.gz";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_lines(path: &Path) -> Vec<String> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.lines().map(str::to_owned).collect()
}

fn gunzip_lines(path: &str) -> Vec<String> {
    let out = Command::new("gzip")
        .args(["-dc", path])
        .output()
        .unwrap_or_else(|e| panic!("running gzip -dc {path}: {e}"));
    assert!(out.status.success(), "gzip -dc {path} failed");
    String::from_utf8(out.stdout)
        .expect("source sentences are UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn test2016_matches_sentencepiece() {
    let model_path = root().join("models/de-en/export/tokenizer.model");
    if !model_path.exists() {
        eprintln!(
            "SKIPPED: {} not found (export the tokenizer first)",
            model_path.display()
        );
        return;
    }
    // The golden files sit next to the export; PICOFORMER_TOKENIZER_GOLDEN overrides the dir.
    let golden = std::env::var_os("PICOFORMER_TOKENIZER_GOLDEN")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/de-en"));
    let ids_path = golden.join("tokenizer_test2016.txt");
    let dec_path = golden.join("tokenizer_test2016_decoded.txt");

    let model = spm::SpmModel::load(&model_path).expect("parse tokenizer.model");
    assert_eq!(
        model.normalizer_name, "identity",
        "runtime normalization is identity only"
    );
    let tables = model.tables().expect("build tables");
    let tok = Tokenizer::new(model.vocab(&tables)).expect("validate vocab");

    let sentences = gunzip_lines(SOURCE);
    let want_ids = read_lines(&ids_path);
    let want_text = read_lines(&dec_path);
    assert_eq!(sentences.len(), 1000, "{SOURCE}");
    assert_eq!(want_ids.len(), sentences.len(), "{}", ids_path.display());
    assert_eq!(want_text.len(), sentences.len(), "{}", dec_path.display());

    let mut scratch = vec![Node::default(); 4096];
    let mut ids = vec![0 as TokenId; 1024];
    let mut text = vec![0u8; 4096];
    let (mut enc_ok, mut dec_ok) = (0usize, 0usize);
    let mut failures = Vec::new();
    for (i, s) in sentences.iter().enumerate() {
        let want: Vec<TokenId> = want_ids[i]
            .split_whitespace()
            .map(|t| t.parse().expect("golden ids are integers"))
            .collect();
        let n = tok.encode(s, &mut scratch, &mut ids).expect("encode");
        let got = &ids[..n];
        if got == want.as_slice() {
            enc_ok += 1;
        } else if failures.len() < 10 {
            failures.push(format!(
                "line {}: {s:?}\n  want {want:?}\n  got  {got:?}",
                i + 1
            ));
        }
        let decoded = tok.decode(&want, &mut text).expect("decode");
        if decoded == want_text[i] {
            dec_ok += 1;
        } else if failures.len() < 10 {
            failures.push(format!(
                "line {}: decode\n  want {:?}\n  got  {decoded:?}",
                i + 1,
                want_text[i]
            ));
        }
    }
    eprintln!(
        "encode matched {enc_ok}/{}, decode matched {dec_ok}/{}",
        sentences.len(),
        sentences.len()
    );
    assert!(
        enc_ok == sentences.len() && dec_ok == sentences.len(),
        "encode {enc_ok}/{n}, decode {dec_ok}/{n}:\n{}",
        failures.join("\n"),
        n = sentences.len()
    );
}

/// Decode `ids` piece by piece through `decode_piece`, then `finish`.
fn stream(tok: &Tokenizer<'_>, ids: &[TokenId]) -> String {
    let mut s = String::new();
    let mut state = DecodeState::default();
    for &id in ids {
        tok.decode_piece(id, &mut state, &mut s).expect("decode_piece");
    }
    state.finish(&mut s).expect("finish");
    s
}

/// One comparison: `text` (if any) must encode to `ids`, and `ids` must decode, whole and
/// streamed, to `decoded`. Returns the failures.
fn compare(tok: &Tokenizer<'_>, what: &str, text: Option<&str>, ids: &[TokenId], decoded: &str) -> Vec<String> {
    let mut bad = Vec::new();
    if let Some(text) = text {
        let mut scratch = vec![Node::default(); Tokenizer::scratch_len(text.len())];
        let mut out = vec![0 as TokenId; 4 * text.len() + 4];
        let n = tok.encode(text, &mut scratch, &mut out).expect("encode");
        if &out[..n] != ids {
            bad.push(format!("{what}: encode {text:?}\n  want {ids:?}\n  got  {:?}", &out[..n]));
        }
    }
    let mut buf = vec![0u8; 16 * ids.len() + 16];
    let whole = tok.decode(ids, &mut buf).expect("decode");
    if whole != decoded {
        bad.push(format!("{what}: decode {ids:?}\n  want {decoded:?}\n  got  {whole:?}"));
    }
    let streamed = stream(tok, ids);
    if streamed != decoded {
        bad.push(format!("{what}: streamed decode {ids:?}\n  want {decoded:?}\n  got  {streamed:?}"));
    }
    bad
}

/// A BPE model in `tests/data` (written by `tools/bpe_vectors.py`) against python
/// SentencePiece: the 1000 test2016 English captions and the hostile cases, every line.
fn bpe_matches_sentencepiece(name: &str, byte_fallback: bool) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let model = spm::SpmModel::load(&data.join(format!("{name}.model"))).expect("parse model");
    assert_eq!(model.kind, ModelKind::Bpe);
    assert_eq!(model.byte_fallback, byte_fallback);
    let tables = model.tables().expect("build tables");
    let tok = Tokenizer::new(model.vocab(&tables)).expect("validate vocab");
    assert_eq!(tok.vocab().byte_fallback(), byte_fallback);

    let sentences = read_lines(&root().join("models/de-en/test2016.en"));
    let want_ids = read_lines(&data.join(format!("{name}.test2016.txt")));
    let want_text = read_lines(&data.join(format!("{name}.test2016_decoded.txt")));
    assert_eq!(sentences.len(), 1000);
    assert_eq!(want_ids.len(), 1000);
    assert_eq!(want_text.len(), 1000);
    let mut failures = Vec::new();
    for (i, s) in sentences.iter().enumerate() {
        let ids: Vec<TokenId> = want_ids[i].split_whitespace().map(|t| t.parse().expect("golden ids")).collect();
        failures.extend(compare(&tok, &format!("test2016 line {}", i + 1), Some(s), &ids, &want_text[i]));
    }
    let cases = read_lines(&data.join(format!("{name}.cases.jsonl")));
    let (mut texts, mut id_cases) = (0, 0);
    for (i, line) in cases.iter().enumerate() {
        let case: serde_json::Value = serde_json::from_str(line).expect("cases.jsonl line");
        let text = case.get("text").map(|t| t.as_str().expect("text is a string"));
        let ids: Vec<TokenId> =
            case["ids"].as_array().expect("ids").iter().map(|v| v.as_u64().expect("id") as TokenId).collect();
        let decoded = case["decoded"].as_str().expect("decoded");
        if text.is_some() {
            texts += 1;
        } else {
            id_cases += 1;
        }
        failures.extend(compare(&tok, &format!("case {}", i + 1), text, &ids, decoded));
    }
    eprintln!(
        "{name}: 1000 test2016 lines, {texts} hostile texts, {id_cases} id sequences: {} mismatches",
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.iter().take(10).cloned().collect::<Vec<_>>().join("\n"));
    assert!(texts >= 40 && id_cases >= 300, "{texts} texts, {id_cases} id cases");
}

#[test]
fn bpe_llama_style_matches_sentencepiece() {
    bpe_matches_sentencepiece("bpe_llama", true);
}

#[test]
fn bpe_small_matches_sentencepiece() {
    bpe_matches_sentencepiece("bpe_small", false);
}

/// What the runtime cannot do is refused, naming the option.
#[test]
fn unsupported_models_are_rejected_by_name() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for (name, needle) in [
        ("reject_user_defined_symbols", "user_defined_symbols"),
        ("reject_unigram_byte_fallback", "byte_fallback"),
        ("reject_char_model", "model_type is 4"),
    ] {
        let err = spm::SpmModel::load(&data.join(format!("{name}.model"))).expect_err(name);
        let msg = format!("{err:#}");
        assert!(msg.contains(needle), "{name}: {msg}");
    }
}
