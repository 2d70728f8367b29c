//! The runtime tokenizer against python SentencePiece on the 1000 Multi30k test_2016 German
//! sentences: ids from `sp.encode(line)` and text from `sp.decode(ids)`, byte for byte.
//!
//! Skips (with a message) only while `models/de-en/export/tokenizer.model` is absent.

#[path = "../src/spm.rs"]
#[allow(dead_code)]
mod spm;

use std::path::{Path, PathBuf};
use std::process::Command;

use picoformer::tokenizer::{Node, Tokenizer};
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
