//! The runtime on tiny synthetic models of every kind: decoding, generation and classification
//! work, every bad input gets its typed error, and every arena is exactly what `arena_bytes`
//! says.

mod common;

use common::{tiny_blob, tiny_classifier, tiny_config, tiny_lm, with_act, AlignedBuf};
use picoformer::blob::{ActKind, Config, FLAG_NORM_FIRST, FLAG_TIED};
use picoformer::tokenizer::Node;
use picoformer::{Classifier, Error, Generator, Model, Sampler, Sampling, Translator};

fn variants() -> [Config; 5] {
    [
        tiny_config(0),
        tiny_config(FLAG_NORM_FIRST),
        with_act(tiny_config(FLAG_TIED), ActKind::Gelu),
        with_act(tiny_config(FLAG_NORM_FIRST), ActKind::Gelu),
        // Marian's block: post-norm, tied, an ungated SiLU table
        with_act(tiny_config(FLAG_TIED), ActKind::Silu),
    ]
}

#[test]
fn greedy_stream_and_beam_agree_in_shape_and_are_deterministic() {
    // odd seeds store weights row-major, even seeds Block4
    for (c, seed) in variants().into_iter().flat_map(|c| [(c, 7), (c, 8)]) {
        let flags = c.flags;
        let blob = tiny_blob(&c, seed);
        let m = Model::parse(blob.bytes()).unwrap();
        let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 3));
        let mut t = Translator::new(&m, arena.bytes_mut(), 3).unwrap();
        let src = [4, 5, 3];
        t.encode(&src).unwrap();
        let mut greedy = [0u16; 8];
        let n = t.greedy(&mut greedy).unwrap();
        assert!((1..c.max_len).contains(&n), "{n}");
        // streaming gives the same tokens (eos not yielded)
        t.encode(&src).unwrap();
        let mut streamed = Vec::new();
        while let Some(tok) = t.next_token().unwrap() {
            streamed.push(tok);
        }
        let expect: Vec<u16> = greedy[..n].iter().copied().filter(|&x| x != c.eos).collect();
        assert_eq!(streamed, expect);
        assert_eq!(t.next_token().unwrap(), None);
        // beam 1 equals greedy
        t.encode(&src).unwrap();
        let mut b1 = [0u16; 8];
        let n1 = t.beam_search(1, &mut b1).unwrap();
        assert_eq!(&b1[..n1], &greedy[..n], "flags {flags:#x}");
        // beam 3 runs and is reproducible
        t.encode(&src).unwrap();
        let mut b3 = [0u16; 8];
        let n3 = t.beam_search(3, &mut b3).unwrap();
        t.encode(&src).unwrap();
        let mut again = [0u16; 8];
        assert_eq!(t.beam_search(3, &mut again).unwrap(), n3);
        assert_eq!(b3, again);
    }
}

#[test]
fn arena_exactly_sized_works_and_one_byte_less_fails() {
    let c = tiny_config(0);
    let blob = tiny_blob(&c, 1);
    let m = Model::parse(blob.bytes()).unwrap();
    for beam in [1, 2, 4] {
        let need = Translator::arena_bytes(&m, beam);
        let mut exact = AlignedBuf::zeroed(need);
        let mut t = Translator::new(&m, exact.bytes_mut(), beam).unwrap();
        t.encode(&[4, 3]).unwrap();
        let mut out = [0u16; 8];
        t.beam_search(beam, &mut out).unwrap();
        let mut short = AlignedBuf::zeroed(need - 1);
        assert_eq!(Translator::new(&m, short.bytes_mut(), beam).err(), Some(Error::ArenaTooSmall { needed: need, got: need - 1 }));
    }
    let need = Translator::arena_bytes(&m, 1);
    let mut a = AlignedBuf::zeroed(need + 1);
    assert_eq!(Translator::new(&m, &mut a.bytes_mut()[1..], 1).err(), Some(Error::MisalignedArena { align: 8 }));
}

#[test]
fn bad_inputs_get_typed_errors() {
    let c = tiny_config(0);
    let blob = tiny_blob(&c, 3);
    let m = Model::parse(blob.bytes()).unwrap();
    let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 2));
    let mut t = Translator::new(&m, arena.bytes_mut(), 2).unwrap();
    // decoding before encoding
    assert_eq!(t.next_token(), Err(Error::DecoderState));
    let mut out = [0u16; 8];
    assert_eq!(t.beam_search(1, &mut out), Err(Error::DecoderState));
    assert_eq!(t.encode(&[]), Err(Error::EmptyInput));
    assert_eq!(t.encode(&[4, 16, 3]), Err(Error::TokenOutOfRange { id: 16, vocab: 16 }));
    assert_eq!(t.encode(&[4, u16::MAX]), Err(Error::TokenOutOfRange { id: 65535, vocab: 16 }));
    assert_eq!(t.encode(&[4; 9]), Err(Error::InputTooLong { len: 9, max: 8 }));
    // exactly max_len is fine
    t.encode(&[4; 8]).unwrap();
    assert_eq!(t.beam_search(3, &mut out), Err(Error::BadBeamWidth { requested: 3, capacity: 2 }));
    assert_eq!(t.beam_search(0, &mut out), Err(Error::BadBeamWidth { requested: 0, capacity: 2 }));
    let mut tiny_out = [0u16; 0];
    let r = t.greedy(&mut tiny_out);
    assert_eq!(r, Err(Error::OutputFull { capacity: 0 }));
    assert!(matches!(Translator::new(&m, arena.bytes_mut(), 0), Err(Error::BadBeamWidth { .. })));
    assert!(matches!(Translator::new(&m, arena.bytes_mut(), 17), Err(Error::BadBeamWidth { .. })));
}

#[test]
fn sequences_of_length_one_and_max_len() {
    let c = tiny_config(FLAG_NORM_FIRST);
    let blob = tiny_blob(&c, 11);
    let _ = &blob;
    let m = Model::parse(blob.bytes()).unwrap();
    let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 1));
    let mut t = Translator::new(&m, arena.bytes_mut(), 1).unwrap();
    for src in [&[3u16][..], &[5, 6, 7, 8, 9, 10, 11, 3][..]] {
        t.encode(src).unwrap();
        let mut n = 0;
        while t.next_token().unwrap().is_some() {
            n += 1;
        }
        assert!(n < c.max_len);
    }
}

#[test]
fn tokenizer_maps_unknown_text_to_unk() {
    // the synthetic vocabulary: <pad> <unk> <s> </s>, then ▁a ▁b ▁c …
    let c = tiny_config(0);
    let blob = tiny_blob(&c, 5);
    let m = Model::parse(blob.bytes()).unwrap();
    let tok = m.tokenizer();
    let mut scratch = [Node::default(); 64];
    let mut ids = [0u16; 16];
    let n = tok.encode("a b", &mut scratch, &mut ids).unwrap();
    assert_eq!(&ids[..n], &[4, 5]);
    // 'x', 'ÿ' and '€' are in no piece: one unk for the run
    let n = tok.encode("a xÿ€", &mut scratch, &mut ids).unwrap();
    assert_eq!(&ids[..n], &[4, 1]);
    let mut buf = [0u8; 32];
    assert_eq!(tok.decode(&[4, 5, 3], &mut buf).unwrap(), "a b");
    assert!(matches!(tok.encode("a b a b a b a b", &mut scratch[..8], &mut ids), Err(Error::InputTooLong { .. } | Error::ScratchTooSmall { .. })));
    assert!(matches!(tok.encode("a b", &mut scratch, &mut ids[..1]), Err(Error::OutputFull { .. })));
}

/// Edges: an empty arena is too small, not misaligned; a session over an empty (default,
/// unparsed) model is refused with the config field that is wrong.
#[test]
fn empty_arena_and_empty_model() {
    let c = tiny_config(0);
    let blob = tiny_blob(&c, 1);
    let m = Model::parse(blob.bytes()).unwrap();
    let need = Translator::arena_bytes(&m, 1);
    assert_eq!(Translator::new(&m, &mut [], 1).err(), Some(Error::ArenaTooSmall { needed: need, got: 0 }));
    let empty = Model::default();
    assert_eq!(Translator::new(&empty, &mut [], 1).err(), Some(Error::BadConfig { field: "d_model" }));
    assert_eq!(Error::MisalignedArena { align: 8 }.to_string(), "arena must be aligned to 8 bytes");
    assert_eq!(Error::MisalignedBlob { align: 8 }.to_string(), "blob must be aligned to 8 bytes");
}

/// Each session refuses the other kinds' models.
#[test]
fn sessions_refuse_other_kinds() {
    let (ed, lm, cl) = (tiny_blob(&tiny_config(0), 1), tiny_blob(&tiny_lm(), 1), tiny_blob(&tiny_classifier(), 1));
    let (ed, lm, cl) = (Model::parse(ed.bytes()).unwrap(), Model::parse(lm.bytes()).unwrap(), Model::parse(cl.bytes()).unwrap());
    let mut arena = AlignedBuf::zeroed(1 << 20);
    assert_eq!(Translator::new(&lm, arena.bytes_mut(), 1).err(), Some(Error::WrongModelKind));
    assert_eq!(Generator::new(&cl, arena.bytes_mut(), 1).err(), Some(Error::WrongModelKind));
    assert_eq!(Classifier::new(&ed, arena.bytes_mut()).err(), Some(Error::WrongModelKind));
}

/// The language model: a prompt fed in one pass gives exactly the logits of feeding it token
/// by token; greedy, sampled (same seed, same tokens) and beam continuations; exact arenas;
/// prompts too long are refused.
/// Found by the `generate` fuzz target: a beam search asked for no new tokens returned
/// `DecoderState` (no finished hypothesis) instead of the empty continuation.
#[test]
fn generator_beam_of_zero_new_tokens_is_empty() {
    let blob = tiny_blob(&tiny_lm(), 3);
    let m = Model::parse(blob.bytes()).unwrap();
    let mut arena = AlignedBuf::zeroed(Generator::arena_bytes(&m, 5));
    let mut g = Generator::new(&m, arena.bytes_mut(), 5).unwrap();
    let mut out = [7u16; 7];
    for width in 1..=5 {
        assert_eq!(g.beam_search(&[2, 10, 12, 14], width, 0, &mut out), Ok(0), "width {width}");
        assert_eq!(out, [7; 7]);
        assert_eq!(g.next_token(), Err(Error::DecoderState));
    }
    // the prompt's ids are checked even when no step runs
    assert_eq!(g.beam_search(&[2, 10, 40_000], 2, 0, &mut out), Err(Error::TokenOutOfRange { id: 40_000, vocab: m.config().vocab as u32 }));
    // one new token still works
    assert_eq!(g.beam_search(&[2, 10], 2, 1, &mut out).map(|n| n <= 1), Ok(true));
    // a refused width touches nothing: the stream goes on where it stood
    g.prompt(&[2, 10, 12]).unwrap();
    let first = g.next_token().unwrap();
    for width in [0, 6] {
        assert_eq!(g.beam_search(&[2, 10], width, 1, &mut out), Err(Error::BadBeamWidth { requested: width, capacity: 5 }));
    }
    let second = g.next_token().unwrap();
    g.prompt(&[2, 10, 12]).unwrap();
    assert_eq!([g.next_token().unwrap(), g.next_token().unwrap()], [first, second]);
    assert!(second.is_some(), "{first:?} {second:?}");
}

#[test]
fn generator_prompt_stream_sample_and_beam() {
    let c = tiny_lm();
    for seed in [3, 4] {
        let blob = tiny_blob(&c, seed);
        let m = Model::parse(blob.bytes()).unwrap();
        let need = Generator::arena_bytes(&m, 3);
        let mut arena = AlignedBuf::zeroed(need);
        let mut g = Generator::new(&m, arena.bytes_mut(), 3).unwrap();
        let prompt = [2u16, 7, 9, 4, 11];
        g.prompt(&prompt).unwrap();
        let batch = g.logits().to_vec();
        g.prompt(&prompt[..1]).unwrap();
        let obs = &mut picoformer::observe::NoObserver;
        for &t in &prompt[1..] {
            g.force_observed(t, obs).unwrap();
        }
        assert_eq!(g.logits(), &batch[..], "seed {seed}");

        // greedy stream: deterministic, within the context
        let run = |g: &mut Generator<'_, '_>| {
            g.prompt(&prompt).unwrap();
            let mut out = Vec::new();
            while let Some(t) = g.next_token().unwrap() {
                out.push(t);
            }
            out
        };
        let greedy = run(&mut g);
        assert!(greedy.len() <= c.max_len - prompt.len());
        assert_eq!(run(&mut g), greedy);
        // top-k 1 sampling is greedy; a seed repeats
        let sample = |g: &mut Generator<'_, '_>, s: Sampling, seed: u64| {
            g.prompt(&prompt).unwrap();
            let mut sm = Sampler::new(s, seed);
            let mut out = Vec::new();
            while let Some(t) = g.sample_next(&mut sm).unwrap() {
                out.push(t);
            }
            out
        };
        assert_eq!(sample(&mut g, Sampling { top_k: 1, ..Sampling::default() }, 9), greedy);
        assert_eq!(sample(&mut g, Sampling::default(), 5), sample(&mut g, Sampling::default(), 5));
        // beam 1 is greedy (eos included when produced)
        let mut out = [0u16; 16];
        let n = g.beam_search(&prompt, 1, 16, &mut out).unwrap();
        let want: Vec<u16> = greedy.iter().copied().chain((n > greedy.len()).then_some(c.eos)).collect();
        assert_eq!(&out[..n], &want[..]);
        let n3 = g.beam_search(&prompt, 3, 16, &mut out).unwrap();
        assert!(n3 >= 1);
        // errors
        assert_eq!(g.prompt(&[]), Err(Error::EmptyInput));
        assert_eq!(g.prompt(&[4; 12]), Err(Error::InputTooLong { len: 12, max: 11 }));
        assert_eq!(g.prompt(&[4, 16]), Err(Error::TokenOutOfRange { id: 16, vocab: 16 }));
        assert_eq!(g.next_token(), Err(Error::DecoderState));
        let mut short = AlignedBuf::zeroed(need - 1);
        assert_eq!(Generator::new(&m, short.bytes_mut(), 3).err(), Some(Error::ArenaTooSmall { needed: need, got: need - 1 }));
    }
}

/// The classifier over feature frames: deterministic outputs, its errors, and an exact arena.
#[test]
fn classifier_frames_and_errors() {
    let c = tiny_classifier();
    let blob = tiny_blob(&c, 6);
    let m = Model::parse(blob.bytes()).unwrap();
    let need = Classifier::arena_bytes(&m);
    let mut arena = AlignedBuf::zeroed(need);
    let mut k = Classifier::new(&m, arena.bytes_mut()).unwrap();
    let frames: Vec<i16> = (0..4 * 3).map(|i| (i * 97 % 300) as i16 - 150).collect();
    let a = k.classify_features(&frames).unwrap().to_vec();
    assert_eq!(a.len(), 5);
    assert_eq!(k.classify_features(&frames).unwrap(), &a[..]);
    assert!(k.class() < 5);
    // mean pooling: a window of one frame repeated is the same as that frame alone only up to
    // attention; but a different window gives different outputs
    assert_ne!(k.classify_features(&frames[..6]).unwrap(), &a[..]);
    assert_eq!(k.classify_features(&frames[..7]).err(), Some(Error::BadFeatureCount { len: 7, per_frame: 3 }));
    assert_eq!(k.classify_features(&[]).err(), Some(Error::EmptyInput));
    assert_eq!(k.classify_features(&[0; 3 * 9]).err(), Some(Error::InputTooLong { len: 9, max: 8 }));
    assert_eq!(k.classify_tokens(&[1, 2]).err(), Some(Error::WrongInput));
    let mut short = AlignedBuf::zeroed(need - 1);
    assert_eq!(Classifier::new(&m, short.bytes_mut()).err(), Some(Error::ArenaTooSmall { needed: need, got: need - 1 }));
}
