//! The runtime on the tiny hand-made model: decoding works, every bad input gets its typed
//! error, and the arena is exactly what `arena_bytes` says.

mod common;

use common::{tiny_blob, tiny_config, AlignedBuf};
use picoformer::blob::{FLAG_GELU, FLAG_NORM_FIRST, FLAG_TIED};
use picoformer::tokenizer::Node;
use picoformer::{Error, Model, Translator};

const VARIANTS: [u32; 4] = [0, FLAG_NORM_FIRST, FLAG_GELU | FLAG_TIED, FLAG_NORM_FIRST | FLAG_GELU];

#[test]
fn greedy_stream_and_beam_agree_in_shape_and_are_deterministic() {
    // odd seeds store weights row-major, even seeds Block4
    for (flags, seed) in VARIANTS.iter().flat_map(|&f| [(f, 7), (f, 8)]) {
        let c = tiny_config(flags);
        let blob = tiny_blob(&c, seed);
        let m = Model::parse(blob.bytes()).unwrap();
        let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 3));
        let mut t = Translator::new(&m, arena.bytes_mut(), 3).unwrap();
        let src = [4, 5, 3];
        t.encode(&src).unwrap();
        let mut greedy = [0u16; 8];
        let n = t.greedy(&mut greedy).unwrap();
        assert!(n >= 1 && n <= c.max_len - 1, "{n}");
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
    let c = tiny_config(0);
    let blob = tiny_blob(&c, 5);
    let m = Model::parse(blob.bytes()).unwrap();
    let tok = m.tokenizer();
    let mut scratch = [Node::default(); 64];
    let mut ids = [0u16; 16];
    let n = tok.encode("ein hund", &mut scratch, &mut ids).unwrap();
    assert_eq!(&ids[..n], &[4, 5]);
    // 'x', 'ÿ' and '€' are in no piece: one unk for the run
    let n = tok.encode("ein xÿ€", &mut scratch, &mut ids).unwrap();
    assert_eq!(&ids[..n], &[4, 14, 1]);
    let mut buf = [0u8; 32];
    assert_eq!(tok.decode(&[4, 5, 3], &mut buf).unwrap(), "ein hund");
    assert!(matches!(tok.encode("ein hund ein hund ein hund", &mut scratch[..8], &mut ids), Err(Error::InputTooLong { .. })));
    assert!(matches!(tok.encode("ein hund", &mut scratch, &mut ids[..1]), Err(Error::OutputFull { .. })));
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
