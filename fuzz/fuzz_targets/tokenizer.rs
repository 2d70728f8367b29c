//! Arbitrary text through `Tokenizer::encode` (as `&str` when valid UTF-8, and lossily
//! converted), arbitrary id sequences through `decode` and `decode_piece`, with the tiny
//! model's vocabulary, a real one when present (`PICO_FUZZ_BLOB` or the de-en blob), and the
//! two SentencePiece BPE test vocabularies (`tools/tests/data`).
//!
//! Properties: with enough scratch and output, encode is `Ok`; with less, it is `Ok` or
//! `ScratchTooSmall`/`OutputFull`. Encode emits only NORMAL pieces, byte pieces (with
//! byte_fallback) and `unk`, never two `unk` in a row. Without `unk` and literal `▁`,
//! `decode(encode(s))` is `s` with runs of spaces collapsed and trimmed, or exactly `s` when
//! spaces are kept. Decode of in-range ids with a large enough buffer is `Ok` and equals the
//! streamed `decode_piece` text.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use picoformer::tokenizer::{DecodeState, Node, Tokenizer, UNK_SURFACE};
use picoformer::{Error, Model};
use picoformer_fuzz::{bpe_tokenizers, real_blobs, tiny_blob, tiny_config, AlignedBuf};

/// The tokenizers of the tiny model, the real ones present and the BPE test vocabularies,
/// built once. With each, the longest decoded surface of one id.
fn tokenizers() -> &'static [(Tokenizer<'static>, usize)] {
    static M: OnceLock<Vec<(Tokenizer<'static>, usize)>> = OnceLock::new();
    M.get_or_init(|| {
        let tiny: &'static AlignedBuf = Box::leak(Box::new(tiny_blob(&tiny_config(0), 1)));
        let longest = |tok: &Tokenizer<'_>| {
            (0..tok.vocab_size()).map(|i| tok.piece_str(i as u16).map_or(0, str::len)).max().unwrap_or(0).max(UNK_SURFACE.len())
        };
        std::iter::once(tiny.bytes())
            .chain(real_blobs())
            .map(|b| *Model::parse(b).expect("model parses").tokenizer())
            .chain(bpe_tokenizers())
            .map(|tok| (tok, longest(&tok)))
            .collect()
    })
}

fn normalized_for_roundtrip(s: &str) -> String {
    s.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
}

fn check_encode(tok: &Tokenizer<'_>, text: &str, cut: usize) {
    let v = tok.vocab();
    let len = Tokenizer::scratch_len(text.len());
    let mut scratch = vec![Node::default(); len];
    let mut ids = vec![0u16; len];
    let n = tok.encode(text, &mut scratch, &mut ids).expect("encode with scratch_len scratch");
    let ids = &ids[..n];
    for w in ids.windows(2) {
        assert!(!(w[0] == v.unk && w[1] == v.unk), "two unk in a row: {ids:?}");
    }
    for &id in ids {
        assert!(id == v.unk || v.sorted.contains(&id) || v.byte_ids.contains(&id), "encode produced non-normal id {id}");
    }
    // undersized buffers: a typed error or the same result
    let mut small_scratch = vec![Node::default(); cut.min(len)];
    let mut small_ids = vec![0u16; cut.min(n)];
    match tok.encode(text, &mut small_scratch, &mut small_ids) {
        Ok(m) => assert_eq!(&small_ids[..m], ids),
        Err(Error::ScratchTooSmall { .. } | Error::OutputFull { .. }) => {}
        Err(e) => panic!("encode with small buffers: {e:?}"),
    }
    // round trip, when the vocabulary normalizes like that, nothing was unknown and the text
    // has no literal `▁` (which normalization keeps, and decode strips while at the start)
    let mut buf = vec![0u8; 8 * text.len() + 16];
    let decoded = tok.decode(ids, &mut buf).expect("decode of encoded ids");
    if v.add_dummy_prefix && !ids.contains(&v.unk) && !text.contains('\u{2581}') {
        let want = if v.remove_extra_whitespaces { normalized_for_roundtrip(text) } else { text.to_owned() };
        assert_eq!(decoded, want, "round trip of {text:?}: {ids:?}");
    }
}

fn check_decode(tok: &Tokenizer<'_>, longest: usize, ids: &[u16], cut: usize) {
    let vocab = tok.vocab_size();
    let mut buf = vec![0u8; ids.len() * longest];
    let r = tok.decode(ids, &mut buf);
    let mut streamed = String::new();
    let mut state = DecodeState::default();
    let s = ids.iter().try_for_each(|&id| tok.decode_piece(id, &mut state, &mut streamed)).and_then(|()| state.finish(&mut streamed));
    match ids.iter().find(|&&id| usize::from(id) >= vocab) {
        Some(&id) => {
            let e = Error::TokenOutOfRange { id: id.into(), vocab: vocab as u32 };
            assert_eq!(r, Err(e));
            assert_eq!(s, Err(e));
        }
        None => {
            assert_eq!(r.expect("decode of in-range ids"), streamed);
            s.expect("decode_piece of in-range ids");
        }
    }
    let mut small = vec![0u8; cut.min(buf.len())];
    match tok.decode(ids, &mut small) {
        Ok(_) | Err(Error::OutputFull { .. } | Error::TokenOutOfRange { .. }) => {}
        Err(e) => panic!("decode into a small buffer: {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else { return };
    let cut = usize::from(cut);
    for (tok, longest) in tokenizers() {
        // valid UTF-8 as is, anything else lossily converted
        check_encode(tok, &String::from_utf8_lossy(rest), cut);
        // ids: raw u16 pairs (mostly out of range), and the same folded into 0..vocab + 2
        let raw: Vec<u16> = rest.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
        let ids: Vec<u16> = raw.iter().map(|&id| id % (tok.vocab_size() as u16).saturating_add(2)).collect();
        check_decode(tok, *longest, &ids, cut);
        check_decode(tok, *longest, &raw, cut);
    }
});
