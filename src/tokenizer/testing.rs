//! Hand-made vocabularies for the tokenizer's unit tests.
#![allow(clippy::indexing_slicing)]

use super::{bpe_score, ModelKind, Vocab, SCORE_SCALE_BITS};

/// Owned tables behind a [`Vocab`].
pub struct Tables {
    pub offsets: Vec<u32>,
    pub bytes: Vec<u8>,
    pub scores: Vec<i32>,
    pub sorted: Vec<u16>,
    pub byte_ids: Vec<u16>,
    pub kind: ModelKind,
}

/// Unigram tables from `(piece, score in units of 1/4)`: ids 0..4 are `<pad>`, `<unk>`, `<s>`,
/// `</s>` (pad 0, unk 1, bos 2, eos 3) and every later piece is NORMAL.
pub fn unigram(pieces: &[(&str, i32)]) -> Tables {
    build(pieces, ModelKind::Unigram, |s| s * (1 << SCORE_SCALE_BITS) / 4)
}

/// BPE tables, same layout, scores as `f32` merge priorities; pieces spelled `<0xHH>` after
/// the first four are BYTE pieces (byte_fallback when there are 256).
pub fn bpe(pieces: &[(&str, f32)]) -> Tables {
    build(pieces, ModelKind::Bpe, |s| bpe_score(s.to_bits()))
}

fn build<S: Copy>(pieces: &[(&str, S)], kind: ModelKind, score: impl Fn(S) -> i32) -> Tables {
    let mut t = Tables { offsets: vec![0], bytes: vec![], scores: vec![], sorted: vec![], byte_ids: vec![], kind };
    let mut bytes = vec![None; 256];
    for (i, &(p, s)) in pieces.iter().enumerate() {
        t.bytes.extend_from_slice(p.as_bytes());
        t.offsets.push(t.bytes.len() as u32);
        t.scores.push(score(s));
        let byte = p.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')).and_then(|h| u8::from_str_radix(h, 16).ok());
        match byte {
            Some(b) if i >= 4 => bytes[usize::from(b)] = Some(i as u16),
            _ if i >= 4 => t.sorted.push(i as u16),
            _ => {}
        }
    }
    if bytes.iter().all(Option::is_some) {
        t.byte_ids = bytes.into_iter().flatten().collect();
    }
    t.sorted.sort_by_key(|&i| pieces[usize::from(i)].0.as_bytes());
    t
}

/// A [`Vocab`] viewing `t`, with dummy prefix and `remove_extra_whitespaces` on.
pub fn vocab(t: &Tables) -> Vocab<'_> {
    Vocab {
        offsets: &t.offsets,
        bytes: &t.bytes,
        scores: &t.scores,
        sorted: &t.sorted,
        unk: 1,
        bos: 2,
        eos: 3,
        pad: 0,
        add_dummy_prefix: true,
        remove_extra_whitespaces: true,
        kind: t.kind,
        byte_ids: &t.byte_ids,
        ..Vocab::default()
    }
}
