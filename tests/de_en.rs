//! The committed de-en int8 model: its test2016 translations as the report gives them, its
//! tokenizer against python `sentencepiece` on all 1,000 test2016 sentences, beam search and
//! the greedy stream's edges. (Its test vectors replay in `tests/models.rs`.)

mod common;

use common::AlignedBuf;
use picoformer::observe::NoObserver;
use picoformer::tokenizer::Node;
use picoformer::{Model, Phase, TokenId, Translator};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/de-en");

fn read(name: &str) -> Vec<u8> {
    let p = format!("{DIR}/{name}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e} (run the converter: see README)"))
}

fn blob() -> AlignedBuf {
    AlignedBuf::from_bytes(&read("de-en.pico"))
}

fn source(m: &Model<'_>, text: &str) -> Vec<TokenId> {
    let mut scratch = vec![Node::default(); picoformer::tokenizer::Tokenizer::scratch_len(text.len())];
    let mut ids = vec![0; m.config().max_len];
    let n = m.tokenizer().encode_source(text, &mut scratch, &mut ids, m.config().max_len).unwrap();
    ids.truncate(n);
    ids
}

#[test]
fn translates_test2016_as_the_report_says() {
    let blob = blob();
    let m = Model::parse(blob.bytes()).unwrap();
    let src = String::from_utf8(read("test2016.de")).unwrap();
    let hyps = String::from_utf8(read("de-en.int8.en")).unwrap();
    let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 1));
    let mut t = Translator::new(&m, arena.bytes_mut(), 1).unwrap();
    let mut buf = vec![0u8; 4096];
    for (i, (s, h)) in src.lines().zip(hyps.lines()).take(100).enumerate() {
        t.encode(&source(&m, s)).unwrap();
        let mut out = vec![0; m.config().max_len];
        let n = t.greedy(&mut out).unwrap();
        let text = m.tokenizer().decode(&out[..n], &mut buf).unwrap();
        assert_eq!(text, h, "sentence {i}: {s}");
    }
}

#[test]
fn tokenizer_matches_sentencepiece_on_all_of_test2016() {
    let blob = blob();
    let m = Model::parse(blob.bytes()).unwrap();
    let src = String::from_utf8(read("test2016.de")).unwrap();
    let ids = String::from_utf8(read("tokenizer_test2016.txt")).unwrap();
    let decoded = String::from_utf8(read("tokenizer_test2016_decoded.txt")).unwrap();
    let mut n = 0;
    let mut buf = vec![0u8; 4096];
    for ((s, want), dec) in src.lines().zip(ids.lines()).zip(decoded.lines()) {
        let want: Vec<TokenId> = want.split_whitespace().map(|x| x.parse().unwrap()).collect();
        let mut scratch = vec![Node::default(); picoformer::tokenizer::Tokenizer::scratch_len(s.len())];
        let mut got = vec![0; s.len() + 2];
        let k = m.tokenizer().encode(s, &mut scratch, &mut got).unwrap();
        assert_eq!(&got[..k], &want[..], "{s}");
        assert_eq!(m.tokenizer().decode(&want, &mut buf).unwrap(), dec);
        n += 1;
    }
    assert_eq!(n, 1000);
}

#[test]
fn beam_search_runs_on_the_real_model() {
    let blob = blob();
    let m = Model::parse(blob.bytes()).unwrap();
    let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 4));
    let mut t = Translator::new(&m, arena.bytes_mut(), 4).unwrap();
    let src = source(&m, "Ein Hund rennt durch den Schnee.");
    t.encode(&src).unwrap();
    let mut greedy = vec![0; 64];
    let g = t.greedy(&mut greedy).unwrap();
    t.encode(&src).unwrap();
    let mut b1 = vec![0; 64];
    let n1 = t.beam_search(1, &mut b1).unwrap();
    assert_eq!(&b1[..n1], &greedy[..g]);
    t.encode(&src).unwrap();
    let mut b4 = vec![0; 64];
    let n4 = t.beam_search(4, &mut b4).unwrap();
    assert_eq!(b4[n4 - 1], m.config().eos);
    let mut buf = vec![0u8; 512];
    let text = m.tokenizer().decode(&b4[..n4], &mut buf).unwrap();
    assert!(text.to_lowercase().contains("dog"), "{text}");
    let _ = NoObserver;
}

/// A full `out` stops greedy decoding before the next step, so no token is lost: the stream
/// continues with the token that did not fit (bug: "runs" was dropped from "A dog runs …").
#[test]
fn greedy_into_a_short_buffer_loses_no_token() {
    let blob = blob();
    let m = Model::parse(blob.bytes()).unwrap();
    let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 1));
    let mut t = Translator::new(&m, arena.bytes_mut(), 1).unwrap();
    let src = source(&m, "Ein Hund rennt durch den Schnee.");
    t.encode(&src).unwrap();
    let mut full = vec![0; m.config().max_len];
    let n = t.greedy(&mut full).unwrap();
    full.truncate(n);
    assert!(n > 3, "{full:?}");

    t.encode(&src).unwrap();
    let mut two = [0u16; 2];
    assert_eq!(t.greedy(&mut two), Err(picoformer::Error::OutputFull { capacity: 2 }));
    let mut rest = two.to_vec();
    while let Some(id) = t.next_token().unwrap() {
        rest.push(id);
    }
    let eos = m.config().eos;
    let want: Vec<u16> = full.iter().copied().filter(|&id| id != eos).collect();
    assert_eq!(rest, want);
    assert_eq!(m.tokenizer().decode(&rest, &mut [0u8; 256]).unwrap(), "A dog runs through the snow.");
}

/// Beam search leaves the source encoded: greedy decoding afterwards starts from its first step.
#[test]
fn greedy_after_beam_search_decodes_the_same_source() {
    let blob = blob();
    let m = Model::parse(blob.bytes()).unwrap();
    let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 4));
    let mut t = Translator::new(&m, arena.bytes_mut(), 4).unwrap();
    let src = source(&m, "Zwei Männer spielen Fußball.");
    t.encode(&src).unwrap();
    let mut greedy = vec![0; m.config().max_len];
    let n = t.greedy(&mut greedy).unwrap();
    let mut beam = vec![0; m.config().max_len];
    let nb = t.beam_search(4, &mut beam).unwrap();
    assert!(nb > 0);
    let mut again = vec![0; m.config().max_len];
    assert_eq!(t.greedy(&mut again).unwrap(), n);
    assert_eq!(again[..n], greedy[..n]);
    let mut beam2 = vec![0; m.config().max_len];
    assert_eq!(t.beam_search(4, &mut beam2).unwrap(), nb);
    assert_eq!(beam2[..nb], beam[..nb]);
}

/// The arena figures docs/memory.md gives: greedy de-en fits a 96 KiB arena (issue: 128 KiB RAM
/// parts), and each beam slot adds its self-attention cache (32 KiB).
#[test]
fn arena_fits_a_128_kib_part() {
    let blob = blob();
    let m = Model::parse(blob.bytes()).unwrap();
    let bytes: Vec<usize> = [1, 2, 4, 8].iter().map(|&w| Translator::arena_bytes(&m, w)).collect();
    assert_eq!(bytes, [94_912, 117_056, 183_360, 315_968]);
    assert!(bytes[0] <= 96 * 1024);
    // the session runs in exactly that many bytes, and one byte less is refused
    let mut arena = AlignedBuf::zeroed(bytes[0]);
    assert!(Translator::new(&m, arena.bytes_mut(), 1).is_ok());
    // the map: the session's buffers, then the work area's, encoding and decoding in turn
    let mut map = Vec::new();
    Translator::arena_map(&m, 1, &mut |r| map.push(r));
    let end = |p: Phase| map.iter().filter(|r| r.phase == p).map(|r| r.offset + r.bytes).max().unwrap();
    let work = map.iter().find(|r| r.name == "work").unwrap();
    assert_eq!((work.offset + work.bytes, end(Phase::Session)), (bytes[0], bytes[0]));
    assert_eq!(map.iter().find(|r| r.name == "cross k").map(|r| (r.offset, r.bytes)), Some((0, 16_384)));
    assert_eq!(end(Phase::Encoding), bytes[0]);
    assert!(end(Phase::Decoding) < bytes[0]);
    for p in [Phase::Encoding, Phase::Decoding] {
        // the buffers of one phase tile the work area from its start, in order
        let mut at = work.offset;
        for r in map.iter().filter(|r| r.phase == p) {
            assert_eq!(r.offset, at, "{}", r.name);
            at += r.bytes;
        }
    }
    assert_eq!(map.iter().find(|r| r.phase == Phase::Decoding).map(|r| r.name), Some("logits"));
    let mut short = AlignedBuf::zeroed(bytes[0] - 1);
    assert!(matches!(Translator::new(&m, short.bytes_mut(), 1), Err(picoformer::Error::ArenaTooSmall { needed: 94_912, .. })));
}
