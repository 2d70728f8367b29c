//! SentencePiece BPE encode, as `bpe::Model::Encode` (no dropout) followed by
//! `PopulateSentencePieceText`.
//!
//! 1. Split the normalized text into characters (UTF-8 code points).
//! 2. While some adjacent pair of symbols concatenates to a NORMAL piece, merge the pair whose
//!    piece has the highest score; ties go to the leftmost pair.
//! 3. Each symbol is its piece; a symbol that is no piece (only single characters can be)
//!    becomes its UTF-8 bytes' BYTE pieces with `byte_fallback`, else `unk`, runs of `unk`
//!    merging into one.
//!
//! Scratch: `nodes[s]` for a byte `s` that starts a symbol holds the symbol's end and its
//! best merge with the next symbol ([`Node`]); the symbols form a list from byte 0.
//!
//! Cost for `c` characters: at most `c − 1` merges, each a scan of the remaining symbols for
//! the best pair (O(c²) node reads in all, ~c²/2) plus two piece lookups, and one lookup per
//! character to start and per final symbol to emit; a lookup is a binary search of the
//! `sorted` pieces, O(log V · L) byte compares for pieces of length L. SentencePiece keeps a
//! heap for O(c log c); the scan needs no memory beyond the 16-byte node per normalized byte
//! that unigram uses too.

use super::{utf8_len, Node, Tokenizer};
use crate::{Error, TokenId};

/// Merge priority of a pair that is not a piece: below every `i32` score.
const NO_PAIR: i64 = i64::MIN;

/// Encode the normalized text in `nodes[..n].byte` into `out`, keeping the first
/// `max_pieces` ids; `nodes` holds at least `n` nodes and `n < u32::MAX`.
pub(super) fn encode(tok: &Tokenizer<'_>, nodes: &mut [Node], n: usize, out: &mut [TokenId], max_pieces: usize) -> Result<usize, Error> {
    // split into characters
    let mut s = 0usize;
    while s < n {
        let len = utf8_len(nodes.get(s).map_or(0, |x| x.byte)).min(n - s);
        if let Some(x) = nodes.get_mut(s) {
            x.start = (s + len) as u32;
        }
        s += len;
    }
    let mut s = 0usize;
    while s < n {
        pair(tok, nodes, n, s);
        s = next(nodes, s);
    }

    // merge the best pair until no pair is a piece
    loop {
        let (mut best, mut best_prev, mut best_score) = (n, n, NO_PAIR);
        let (mut s, mut prev) = (0usize, n);
        while s < n {
            let score = nodes.get(s).map_or(NO_PAIR, |x| x.score);
            if score > best_score {
                (best, best_prev, best_score) = (s, prev, score);
            }
            prev = s;
            s = next(nodes, s);
        }
        if best_score == NO_PAIR {
            break;
        }
        let end = next(nodes, next(nodes, best));
        if let Some(x) = nodes.get_mut(best) {
            x.start = end as u32;
        }
        pair(tok, nodes, n, best);
        if best_prev < n {
            pair(tok, nodes, n, best_prev);
        }
    }

    // emit: pieces, byte fallback or merged unk
    let mut count = 0usize;
    let mut put = |id: TokenId| {
        if count < max_pieces {
            if let Some(o) = out.get_mut(count) {
                *o = id;
            }
        }
        count += 1;
    };
    let (mut s, mut prev_unk) = (0usize, false);
    while s < n {
        let e = next(nodes, s);
        let symbol = nodes.get(s..e).unwrap_or(&[]);
        let found = lookup(tok, symbol);
        match found {
            Some(id) => put(id),
            None if tok.v.byte_fallback() => {
                for x in symbol {
                    put(tok.v.byte_ids.get(usize::from(x.byte)).copied().unwrap_or(tok.v.unk));
                }
            }
            None if !prev_unk => put(tok.v.unk),
            None => {}
        }
        prev_unk = found.is_none();
        s = e;
    }
    let keep = count.min(max_pieces);
    if keep > out.len() {
        return Err(Error::OutputFull { capacity: out.len() });
    }
    Ok(keep)
}

/// The symbol after the one starting at `s` (always past `s`).
fn next(nodes: &[Node], s: usize) -> usize {
    nodes.get(s).map_or(usize::MAX, |x| x.start as usize).max(s + 1)
}

/// Set the merge of the symbol at `s` with the next one: its piece id and priority.
fn pair(tok: &Tokenizer<'_>, nodes: &mut [Node], n: usize, s: usize) {
    let r = next(nodes, s);
    let found = if r < n {
        let e = next(nodes, r);
        lookup(tok, nodes.get(s..e).unwrap_or(&[]))
    } else {
        None
    };
    if let Some(x) = nodes.get_mut(s) {
        (x.id, x.score) = match found {
            Some(id) => (id, i64::from(tok.v.scores.get(usize::from(id)).copied().unwrap_or(0))),
            None => (0, NO_PAIR),
        };
    }
}

/// The NORMAL piece spelled by the bytes of `symbol`, by binary search.
fn lookup(tok: &Tokenizer<'_>, symbol: &[Node]) -> Option<TokenId> {
    let key = symbol.iter().map(|x| x.byte);
    let i = tok
        .v
        .sorted
        .binary_search_by(|&id| tok.piece(id).iter().copied().cmp(key.clone()))
        .ok()?;
    tok.v.sorted.get(i).copied()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::testing::{bpe, vocab, Tables};
    use super::super::{DecodeState, Vocab};
    use super::*;

    /// `(piece, score)`: specials 0..4, then NORMAL pieces; with `bytes`, the 256 byte pieces.
    fn pieces(bytes: bool) -> Vec<(String, f32)> {
        let mut p: Vec<(String, f32)> = ["<pad>", "<unk>", "<s>", "</s>"].iter().map(|s| (s.to_string(), 0.0)).collect();
        if bytes {
            p.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>"), 0.0)));
        }
        let normal = [
            ("▁", -5.0),
            ("a", -5.0),
            ("b", -5.0),
            ("c", -5.0),
            ("ä", -5.0),
            ("ab", -1.0),  // merges first
            ("▁ab", -2.0), // then this one
            ("▁a", -3.0),
            ("cc", -1.0), // ties with itself: leftmost first
            ("bc", -2.0),
            ("abc", -0.0), // -0.0 ties with 0.0
            ("▁▁", -4.0),
        ];
        p.extend(normal.iter().map(|&(s, v)| (s.to_string(), v)));
        p
    }

    fn tables(bytes: bool) -> Tables {
        let p = pieces(bytes);
        let refs: Vec<(&str, f32)> = p.iter().map(|(s, v)| (s.as_str(), *v)).collect();
        bpe(&refs)
    }

    fn enc(tok: &Tokenizer, text: &str) -> Vec<TokenId> {
        let mut scratch = vec![Node::default(); Tokenizer::scratch_len(text.len())];
        let mut out = vec![0; 4 * text.len() + 4];
        let n = tok.encode(text, &mut scratch, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn strs(tok: &Tokenizer, ids: &[TokenId]) -> Vec<String> {
        ids.iter().map(|&i| tok.piece_str(i).unwrap().to_owned()).collect()
    }

    /// The plain algorithm on owned strings: SentencePiece's loop without the heap.
    fn reference(tok: &Tokenizer, text: &str) -> Vec<TokenId> {
        let v = tok.vocab();
        let mut buf = vec![Node::default(); Tokenizer::scratch_len(text.len())];
        let n = tok.normalize(text, &mut buf);
        let norm = String::from_utf8(buf[..n].iter().map(|x| x.byte).collect()).unwrap();
        let mut sym: Vec<String> = norm.chars().map(String::from).collect();
        let score = |s: &str| tok.id_of(s).map(|id| v.scores[usize::from(id)]);
        loop {
            let best = (0..sym.len().saturating_sub(1))
                .filter_map(|i| score(&(sym[i].clone() + &sym[i + 1])).map(|s| (s, i)))
                .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            let Some((_, i)) = best else { break };
            let r = sym.remove(i + 1);
            sym[i] += &r;
        }
        let mut ids = vec![];
        for s in &sym {
            match tok.id_of(s) {
                Some(id) => ids.push(id),
                None if v.byte_fallback() => ids.extend(s.bytes().map(|b| v.byte_ids[usize::from(b)])),
                None if ids.last() == Some(&v.unk) => {}
                None => ids.push(v.unk),
            }
        }
        ids
    }

    #[test]
    fn merges_by_priority_then_leftmost() {
        let t = tables(false);
        let tok = Tokenizer::new(vocab(&t)).unwrap();
        // ▁ a b c: ab (-1) first, then abc (-0.0) beats ▁ab (-2).
        assert_eq!(strs(&tok, &enc(&tok, "abc")), ["▁", "abc"]);
        // ▁ a b: ab, then the new pair ▁ + ab.
        assert_eq!(strs(&tok, &enc(&tok, "ab")), ["▁ab"]);
        assert_eq!(strs(&tok, &enc(&tok, "a")), ["▁a"]);
        // c c c: the two cc pairs tie, the left one merges.
        assert_eq!(strs(&tok, &enc(&tok, "ccc")), ["▁", "cc", "c"]);
        assert_eq!(strs(&tok, &enc(&tok, "a bc")), ["▁a", "▁", "bc"]);
        assert!(enc(&tok, "").is_empty());
        assert!(enc(&tok, "   ").is_empty());
    }

    #[test]
    fn unknown_characters() {
        let t = tables(false);
        let tok = Tokenizer::new(vocab(&t)).unwrap();
        assert_eq!(enc(&tok, "axyb"), [tok.id_of("▁a").unwrap(), 1, tok.id_of("b").unwrap()]);
        assert_eq!(enc(&tok, "x☃"), [tok.id_of("▁").unwrap(), 1]);
        let t = tables(true);
        let tok = Tokenizer::new(vocab(&t)).unwrap();
        assert_eq!(strs(&tok, &enc(&tok, "a☃")), ["▁a", "<0xE2>", "<0x98>", "<0x83>"]);
        let mut text = [0u8; 64];
        assert_eq!(tok.decode(&enc(&tok, "ax ☃ä"), &mut text).unwrap(), "ax ☃ä");
    }

    #[test]
    fn byte_pieces_decode_as_utf8() {
        let t = tables(true);
        let tok = Tokenizer::new(vocab(&t)).unwrap();
        let b = |x: u8| t.byte_ids[usize::from(x)];
        let word = tok.id_of("▁a").unwrap();
        let dec = |ids: &[TokenId]| {
            let mut text = [0u8; 64];
            let whole = tok.decode(ids, &mut text).unwrap().to_owned();
            let mut streamed = String::new();
            let mut st = DecodeState::default();
            for &id in ids {
                tok.decode_piece(id, &mut st, &mut streamed).unwrap();
            }
            st.finish(&mut streamed).unwrap();
            assert_eq!(whole, streamed, "{ids:?}");
            whole
        };
        assert_eq!(dec(&[b(0xC3), b(0xA4)]), "ä");
        assert_eq!(dec(&[b(0xC3)]), "\u{fffd}");
        assert_eq!(dec(&[b(0xE2), b(0x82), word]), "\u{fffd}\u{fffd} a");
        assert_eq!(dec(&[b(0xC3), b(0xC3), b(0xA4)]), "\u{fffd}ä");
        assert_eq!(dec(&[b(0xE0), b(0x80), b(0x80), b(b'x')]), "\u{fffd}\u{fffd}\u{fffd}x");
        assert_eq!(dec(&[b(0xF0), b(0x9F), b(0x98), b(0x80)]), "😀");
        assert_eq!(dec(&[b(0xF0), b(0x9F), 2, b(0x98), b(0x80)]), "\u{fffd}\u{fffd}\u{fffd}\u{fffd}");
        assert_eq!(dec(&[b(0xFF), b(0x80), b(0x41)]), "\u{fffd}\u{fffd}A");
        // the bytes of `▁` are a literal `▁`, and count as visible text for the leading space
        assert_eq!(dec(&[b(0xE2), b(0x96), b(0x81), word]), "▁ a");
        assert_eq!(dec(&[b(b' '), word]), "  a");
    }

    #[test]
    fn bad_byte_tables() {
        let t = tables(true);
        let bad = |v: Vocab| Tokenizer::new(v).is_err();
        let mut v = vocab(&t);
        v.byte_ids = &t.byte_ids[..255];
        assert!(bad(v));
        let mut ids = t.byte_ids.clone();
        ids.swap(1, 2);
        let mut v = vocab(&t);
        v.byte_ids = &ids;
        assert!(bad(v));
        ids.swap(1, 2);
        ids[7] = 1;
        let mut v = vocab(&t);
        v.byte_ids = &ids;
        assert!(bad(v));
        let mut v = vocab(&t);
        v.kind = super::super::ModelKind::Unigram;
        assert!(bad(v));
    }

    #[test]
    fn undersized_buffers() {
        let t = tables(true);
        let tok = Tokenizer::new(vocab(&t)).unwrap();
        let mut scratch = [Node::default(); 4];
        let mut out = [0; 8];
        assert_eq!(tok.encode("abcd", &mut scratch, &mut out), Err(Error::ScratchTooSmall { needed: 8, got: 4 }));
        let mut scratch = [Node::default(); 64];
        assert_eq!(tok.encode("a ☃", &mut scratch, &mut out[..3]), Err(Error::OutputFull { capacity: 3 }));
        assert_eq!(tok.encode_prefix("a ☃", &mut scratch, &mut out[..3], 3), Ok(3));
        assert_eq!(tok.encode_source("a ☃", &mut scratch, &mut out, 3), Ok(3));
        assert_eq!(out[2], 3);
    }

    /// Random texts: never panics, equals the plain reference, and with byte_fallback and
    /// spaces kept decode(encode(s)) is `s` (no literal `▁`).
    #[test]
    fn random_text_matches_reference_and_round_trips() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = ["a", "b", "c", " ", "ä", "☃", "x", "\t", "▁", "😀", "\0", "é"];
        for bytes in [false, true] {
            let t = tables(bytes);
            for keep_spaces in [false, true] {
                let mut v = vocab(&t);
                v.remove_extra_whitespaces = !keep_spaces;
                let tok = Tokenizer::new(v).unwrap();
                let mut scratch = vec![Node::default(); 256];
                let mut out = vec![0; 256];
                let mut text = vec![0u8; 1024];
                for round in 0..if cfg!(miri) { 5 } else { 5_000 } {
                    let len = (next() % 40) as usize;
                    let s: String = if round % 2 == 0 {
                        let raw: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                        String::from_utf8_lossy(&raw).into_owned()
                    } else {
                        (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect()
                    };
                    let n = tok.encode(&s, &mut scratch, &mut out).unwrap();
                    assert_eq!(out[..n], reference(&tok, &s), "{s:?}");
                    let d = tok.decode(&out[..n], &mut text).unwrap();
                    if bytes && keep_spaces && !s.contains('▁') {
                        assert_eq!(d, s);
                    }
                    let _ = tok.encode(&s, &mut scratch[..(next() % 8) as usize], &mut out);
                    let _ = tok.encode(&s, &mut scratch, &mut out[..(next() % 4) as usize]);
                    let random: Vec<TokenId> = (0..12).map(|_| (next() % (t.scores.len() as u64 + 2)) as TokenId).collect();
                    let _ = tok.decode(&random, &mut text);
                }
            }
        }
    }
}
