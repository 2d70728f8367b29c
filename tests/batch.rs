//! Batched greedy translation ([`picoformer::Batch`]) against one sentence at a time
//! ([`Translator::greedy`]): the same ids on every de-en test vector and on all 1,000 test2016
//! sentences, with lanes refilled as sentences finish; and its arena, exactly.

mod common;

use common::{tiny_blob, tiny_config, AlignedBuf, Rng};
use picoformer::blob::{ActKind, Config, NormKind, PosKind, FLAG_NORM_FIRST};
use picoformer::tokenizer::{Node, Tokenizer};
use picoformer::vectors::Vectors;
use picoformer::{Batch, Error, Model, Phase, TokenId, Translator, MAX_LANES};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/de-en");

fn read(name: &str) -> Vec<u8> {
    let p = format!("{DIR}/{name}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e} (run the converter: see README)"))
}

fn source(m: &Model<'_>, text: &str) -> Vec<TokenId> {
    let mut scratch = vec![Node::default(); Tokenizer::scratch_len(text.len())];
    let mut ids = vec![0; m.config().max_len];
    let n = m.tokenizer().encode_source(text, &mut scratch, &mut ids, m.config().max_len).unwrap();
    ids.truncate(n);
    ids
}

/// Every source through a batch of `lanes` ([`Batch::greedy_all`]: each freed lane refilled at
/// once): each one's output ids, eos included.
fn batched(m: &Model<'_>, lanes: usize, srcs: &[Vec<TokenId>]) -> Vec<Vec<TokenId>> {
    let mut arena = AlignedBuf::zeroed(Batch::arena_bytes(m, lanes));
    let mut b = Batch::new(m, arena.bytes_mut(), lanes).unwrap();
    let mut outs = vec![Vec::new(); srcs.len()];
    let n = b.greedy_all(srcs.iter().map(|s| s.as_slice()), |i, t| outs[i].push(t)).unwrap();
    assert_eq!(n, srcs.len());
    outs
}

fn one_at_a_time(m: &Model<'_>, srcs: &[Vec<TokenId>]) -> Vec<Vec<TokenId>> {
    let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(m, 1));
    let mut t = Translator::new(m, arena.bytes_mut(), 1).unwrap();
    srcs.iter()
        .map(|s| {
            t.encode(s).unwrap();
            let mut out = vec![0; m.config().max_len];
            let n = t.greedy(&mut out).unwrap();
            out.truncate(n);
            out
        })
        .collect()
}

#[test]
fn batch_matches_greedy_on_the_de_en_vectors() {
    let blob = AlignedBuf::from_bytes(&read("de-en.pico"));
    let m = Model::parse(blob.bytes()).unwrap();
    let compact = read("de-en.vectors.bin");
    let cases: Vec<_> = Vectors::parse(&compact).unwrap().collect();
    assert!(cases.len() >= 8);
    let srcs: Vec<Vec<TokenId>> = cases.iter().map(|c| c.src().collect()).collect();
    let want: Vec<Vec<TokenId>> = cases.iter().map(|c| c.out().collect()).collect();
    // 3 lanes: sentences finish at different steps and the lanes refill mid-decode
    for lanes in [1, 3, srcs.len()] {
        assert_eq!(batched(&m, lanes, &srcs), want, "{lanes} lanes");
    }
}

/// The other blocks a batch may run: rotary positions (each lane's row rotated at its own
/// position) and a Llama block (RMSNorm, SwiGLU, RoPE), on random
/// sources of every length, against one sentence at a time.
#[test]
fn batch_matches_greedy_on_rotary_and_llama_blocks() {
    let rope = Config { positions: PosKind::Rope, ..tiny_config(FLAG_NORM_FIRST) };
    let llama = Config { norm: NormKind::RmsNorm, act: ActKind::SwiGlu, ..tiny_config(FLAG_NORM_FIRST) };
    for c in [rope, Config { positions: PosKind::Rope, ..llama }] {
        for seed in [3, 5, 10] {
            let blob = tiny_blob(&c, seed);
            let m = Model::parse(blob.bytes()).unwrap();
            let mut rng = Rng(seed);
            let srcs: Vec<Vec<TokenId>> = (0..9).map(|i| (0..1 + i % 7).map(|_| rng.range(4, 15) as TokenId).collect()).collect();
            let want = one_at_a_time(&m, &srcs);
            // lanes finish at different steps: at least two outputs differ in length
            // the sources lead to different outputs, so a lane reading another's rows shows
            let mut distinct = want.clone();
            distinct.sort();
            distinct.dedup();
            assert!(distinct.len() >= 4, "{want:?}");
            for lanes in [1, 2, 4] {
                assert_eq!(batched(&m, lanes, &srcs), want, "{c:?} seed {seed}, {lanes} lanes");
            }
        }
    }
}

#[test]
fn batch_matches_greedy_on_all_of_test2016() {
    let blob = AlignedBuf::from_bytes(&read("de-en.pico"));
    let m = Model::parse(blob.bytes()).unwrap();
    let text = String::from_utf8(read("test2016.de")).unwrap();
    let srcs: Vec<Vec<TokenId>> = text.lines().map(|s| source(&m, s)).collect();
    assert_eq!(srcs.len(), 1000);
    let want = one_at_a_time(&m, &srcs);
    let got = batched(&m, 32, &srcs);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "sentence {i}");
    }
    // and the committed translations, as text
    let hyps = String::from_utf8(read("de-en.int8.en")).unwrap();
    let mut buf = vec![0u8; 4096];
    for (i, (g, h)) in got.iter().zip(hyps.lines()).enumerate() {
        let n = g.iter().position(|&t| t == m.config().eos).unwrap_or(g.len());
        assert_eq!(m.tokenizer().decode(&g[..n], &mut buf).unwrap(), h, "sentence {i}");
    }
}

#[test]
fn batch_arena_is_exact() {
    let blob = AlignedBuf::from_bytes(&read("de-en.pico"));
    let m = Model::parse(blob.bytes()).unwrap();
    let c = *m.config();
    let kv = c.n_dec * c.max_len * c.kv_width();
    for lanes in [1, 32] {
        let bytes = Batch::arena_bytes(&m, lanes);
        let mut map = Vec::new();
        Batch::arena_map(&m, lanes, &mut |r| map.push(r));
        let end = |p: Phase| map.iter().filter(|r| r.phase == p).map(|r| r.offset + r.bytes).max().unwrap();
        let work = *map.iter().find(|r| r.name == "work").unwrap();
        assert_eq!((work.offset + work.bytes, end(Phase::Session)), (bytes, bytes));
        // each lane's cross and self keys, then the lane tables
        let at = |name: &str| map.iter().find(|r| r.name == name).map(|r| (r.offset, r.bytes)).unwrap();
        assert_eq!(at("cross k"), (0, lanes * kv));
        assert_eq!(at("self k"), (2 * lanes * kv, lanes * kv));
        assert_eq!(at("lanes").1, (lanes * 8).div_ceil(8) * 8);
        // the work area is the larger of one source's encoder and one step's buffers
        assert_eq!(end(Phase::Encoding).max(end(Phase::Decoding)), bytes);
        for p in [Phase::Encoding, Phase::Decoding] {
            let mut at = work.offset;
            for r in map.iter().filter(|r| r.phase == p) {
                assert_eq!(r.offset, at, "{}", r.name);
                at += r.bytes;
            }
        }
        let logits = map.iter().find(|r| r.phase == Phase::Decoding).unwrap();
        assert_eq!((logits.name, logits.bytes), ("logits", lanes * c.vocab * 4));
        let mut arena = AlignedBuf::zeroed(bytes);
        assert!(Batch::new(&m, arena.bytes_mut(), lanes).is_ok());
        let mut short = AlignedBuf::zeroed(bytes - 1);
        assert_eq!(Batch::new(&m, short.bytes_mut(), lanes).err(), Some(Error::ArenaTooSmall { needed: bytes, got: bytes - 1 }));
    }
    let mut arena = AlignedBuf::zeroed(Batch::arena_bytes(&m, 1));
    for lanes in [0, MAX_LANES + 1] {
        assert_eq!(Batch::new(&m, arena.bytes_mut(), lanes).err(), Some(Error::BadBatchSize { requested: lanes, capacity: MAX_LANES }));
    }
}

#[test]
fn batch_refuses_bad_input_and_frees_lanes() {
    let blob = AlignedBuf::from_bytes(&read("de-en.pico"));
    let m = Model::parse(blob.bytes()).unwrap();
    let c = *m.config();
    let mut arena = AlignedBuf::zeroed(Batch::arena_bytes(&m, 2));
    let mut b = Batch::new(&m, arena.bytes_mut(), 2).unwrap();
    let mut toks = vec![None; 2];
    assert_eq!(b.step(&mut toks), Ok(0));
    assert_eq!(b.encode(0, &[]), Err(Error::EmptyInput));
    assert_eq!(b.encode(0, &vec![5; c.max_len + 1]), Err(Error::InputTooLong { len: c.max_len + 1, max: c.max_len }));
    assert_eq!(b.encode(0, &[c.vocab as TokenId]), Err(Error::TokenOutOfRange { id: c.vocab as u32, vocab: c.vocab as u32 }));
    assert_eq!(b.encode(2, &[5, c.eos]), Err(Error::DecoderState));
    assert_eq!(b.live(), 0);
    let srcs = [source(&m, "Ein Mann schläft auf einer Bank."), source(&m, "Zwei Hunde spielen im Schnee.")];
    let want = one_at_a_time(&m, &srcs);
    b.encode(1, &srcs[0]).unwrap();
    assert!(b.is_live(1) && !b.is_live(0));
    assert_eq!(b.step(&mut toks[..1]), Err(Error::OutputFull { capacity: 1 }));
    let mut got = vec![Vec::new(); 2];
    assert_eq!(b.step(&mut toks), Ok(1));
    assert_eq!(toks[0], None);
    got[0].extend(toks[1]);
    // a second sentence joins in lane 0 while lane 1 decodes
    b.encode(0, &srcs[1]).unwrap();
    let mut steps = 1;
    while b.step(&mut toks).unwrap() > 0 {
        got[0].extend(toks[1]);
        got[1].extend(toks[0]);
        steps += 1;
    }
    assert_eq!(got, want);
    assert!(steps >= 3 && steps < c.max_len, "{steps} steps");
    assert_eq!(b.live(), 0);
}
