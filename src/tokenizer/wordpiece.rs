//! BERT's WordPiece encode (`BertTokenizerFast`: `BertNormalizer`, `BertPreTokenizer`, the
//! `WordPiece` model), with no allocation and no Unicode tables of its own: the blob carries
//! them, computed by the converter ([`Vocab::classes`], [`Vocab::map_from`]).
//!
//! 1. normalize each character `c` of the text by its class: control characters vanish,
//!    whitespace becomes `' '`; any other character is replaced by its entry in the character
//!    map (lower-casing and accent stripping), if it has one, each punctuation character of the
//!    result getting a `' '` on each side, and a CJK ideograph's result as a whole. A
//!    replacement, spaced, is at most 3× its character's bytes (the converter keeps it so), so
//!    the text grows at most 3×: [`Tokenizer::scratch_len`] holds.
//! 2. split on `' '`; each word of more than [`MAX_WORD_CHARS`] characters is `unk`, else
//!    greedy longest-match-first over the NORMAL pieces, continuations spelled `##…`; a word
//!    with a part no piece matches is one `unk`.

use super::{Node, Tokenizer};
use crate::{Error, TokenId};

/// Words longer than this (in characters) are `unk` (`max_input_chars_per_word`).
pub const MAX_WORD_CHARS: usize = 100;

/// Bits of a class run entry below the start code point: `entry = start << CLASS_SHIFT | class`.
pub const CLASS_SHIFT: u32 = 3;

/// How the normalizer and pre-tokenizer treat a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CharClass {
    /// Part of a word (mapped through the character map).
    Word = 0,
    /// Splits words.
    Space = 1,
    /// Removed (control and format characters, unassigned code points, NUL, U+FFFD).
    Removed = 2,
    /// A word of its own.
    Punct = 3,
    /// A CJK ideograph: a word of its own.
    Cjk = 4,
}

impl CharClass {
    pub const fn from_code(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Word,
            1 => Self::Space,
            2 => Self::Removed,
            3 => Self::Punct,
            4 => Self::Cjk,
            _ => return None,
        })
    }
}

/// The tables' own checks (called by [`Tokenizer::new`]): class runs start at 0, strictly
/// increasing, known classes; map keys strictly increasing characters, offsets in range and
/// non-decreasing, each replacement UTF-8, no longer than its character, no punctuation.
pub(super) fn check(t: &Tokenizer<'_>) -> Result<(), &'static str> {
    let v = &t.v;
    let mut prev: Option<u32> = None;
    for &e in v.classes {
        if CharClass::from_code(e & ((1 << CLASS_SHIFT) - 1)).is_none() {
            return Err("unknown character class");
        }
        let start = e >> CLASS_SHIFT;
        if prev.map_or(start != 0, |p| start <= p) {
            return Err("character class runs not increasing from 0");
        }
        prev = Some(start);
    }
    if v.classes.is_empty() {
        return Err("no character classes");
    }
    if v.map_offsets.len() != v.map_from.len() + 1 || v.map_offsets.first() != Some(&0) {
        return Err("character map offsets length");
    }
    let mut last: Option<u32> = None;
    for (i, &cp) in v.map_from.iter().enumerate() {
        let Some(c) = char::from_u32(cp) else { return Err("character map key is not a character") };
        if last.is_some_and(|l| cp <= l) {
            return Err("character map keys not increasing");
        }
        last = Some(cp);
        let Some(r) = replacement(v.map_offsets, v.map_bytes, i) else { return Err("character map offsets out of range") };
        let Ok(r) = core::str::from_utf8(r) else { return Err("character map replacement is not UTF-8") };
        let spaces = 2 * r.chars().filter(|&m| t.class(m) == CharClass::Punct).count() + if t.class(c) == CharClass::Cjk { 2 } else { 0 };
        if r.len() + spaces > 3 * c.len_utf8() || r.chars().any(|m| matches!(t.class(m), CharClass::Removed | CharClass::Space)) {
            return Err("character map replacement too long, or with removed or space characters");
        }
    }
    Ok(())
}

fn replacement<'a>(offsets: &[u32], bytes: &'a [u8], i: usize) -> Option<&'a [u8]> {
    let a = usize::try_from(*offsets.get(i)?).ok()?;
    let b = usize::try_from(*offsets.get(i + 1)?).ok()?;
    bytes.get(a..b)
}

impl Tokenizer<'_> {
    /// The class of `c`: the last run starting at or below it.
    pub(super) fn class(&self, c: char) -> CharClass {
        let key = (c as u32) << CLASS_SHIFT | ((1 << CLASS_SHIFT) - 1);
        let i = self.v.classes.partition_point(|&e| e <= key);
        let e = i.checked_sub(1).and_then(|i| self.v.classes.get(i)).copied().unwrap_or(0);
        CharClass::from_code(e & ((1 << CLASS_SHIFT) - 1)).unwrap_or(CharClass::Word)
    }

    /// The character map's replacement of `c`, if it has one.
    fn mapped(&self, c: char) -> Option<&[u8]> {
        let i = self.v.map_from.binary_search(&(c as u32)).ok()?;
        replacement(self.v.map_offsets, self.v.map_bytes, i)
    }

    /// Step 1 into `nodes[..].byte`; returns the normalized length (bytes past the end of
    /// `nodes` counted, not stored).
    pub(super) fn normalize_wordpiece(&self, text: &str, nodes: &mut [Node]) -> usize {
        let mut len = 0usize;
        let mut emit = |bytes: &[u8], nodes: &mut [Node]| {
            for &b in bytes {
                if let Some(n) = nodes.get_mut(len) {
                    n.byte = b;
                }
                len += 1;
            }
        };
        let mut buf = [0u8; 4];
        for c in text.chars() {
            let class = self.class(c);
            if matches!(class, CharClass::Removed | CharClass::Space) {
                if class == CharClass::Space {
                    emit(b" ", nodes);
                }
                continue;
            }
            // a CJK ideograph is a word of its own, and so is each punctuation character of
            // what the character normalizes to
            if class == CharClass::Cjk {
                emit(b" ", nodes);
            }
            let mut own = [0u8; 4];
            let own: &str = c.encode_utf8(&mut own);
            let r = self.mapped(c).and_then(|r| core::str::from_utf8(r).ok()).unwrap_or(own);
            for m in r.chars() {
                let b = m.encode_utf8(&mut buf);
                if self.class(m) == CharClass::Punct {
                    emit(b" ", nodes);
                    emit(b.as_bytes(), nodes);
                    emit(b" ", nodes);
                } else {
                    emit(b.as_bytes(), nodes);
                }
            }
            if class == CharClass::Cjk {
                emit(b" ", nodes);
            }
        }
        len
    }

    /// The NORMAL piece spelled `prefix ++ rest`, by binary search.
    fn lookup(&self, prefix: &[u8], rest: &[u8]) -> Option<TokenId> {
        let i = self.v.sorted.binary_search_by(|&id| self.piece(id).iter().cmp(prefix.iter().chain(rest))).ok()?;
        self.v.sorted.get(i).copied()
    }
}

/// Step 2 over the normalized bytes `nodes[..n]`: ids into `out`, the first `max_pieces`.
pub(super) fn encode(t: &Tokenizer<'_>, nodes: &[Node], n: usize, out: &mut [TokenId], max_pieces: usize) -> Result<usize, Error> {
    let capacity = out.len();
    let mut count = 0usize;
    let mut word = [0u8; 4 * MAX_WORD_CHARS];
    let mut ids = [0 as TokenId; MAX_WORD_CHARS];
    let bytes = nodes.get(..n).unwrap_or(&[]);
    for w in bytes.split(|nd| nd.byte == b' ').filter(|w| !w.is_empty()) {
        let k = segment(t, w, &mut word, &mut ids);
        let pieces: &[TokenId] = match ids.get(..k) {
            Some(p) if k > 0 => p,
            _ => core::slice::from_ref(&t.v.unk),
        };
        for &id in pieces {
            if count >= max_pieces {
                return Ok(count);
            }
            *out.get_mut(count).ok_or(Error::OutputFull { capacity })? = id;
            count += 1;
        }
    }
    Ok(count)
}

/// The pieces of one word into `ids`, greedy longest match first; 0 when the word is `unk`
/// (too long, or a part no piece matches).
fn segment(t: &Tokenizer<'_>, w: &[Node], word: &mut [u8; 4 * MAX_WORD_CHARS], ids: &mut [TokenId; MAX_WORD_CHARS]) -> usize {
    let chars = w.iter().filter(|nd| nd.byte & 0xC0 != 0x80).count();
    let len = w.len();
    let Some(dst) = word.get_mut(..len).filter(|_| chars <= MAX_WORD_CHARS) else { return 0 };
    dst.iter_mut().zip(w).for_each(|(d, nd)| *d = nd.byte);
    let word = &*dst;
    let (mut start, mut k) = (0usize, 0usize);
    while start < len {
        let prefix: &[u8] = if start == 0 { b"" } else { b"##" };
        let mut end = len;
        let mut found = None;
        while end > start {
            if end == len || word.get(end).is_some_and(|&b| b & 0xC0 != 0x80) {
                if let Some(id) = word.get(start..end).and_then(|rest| t.lookup(prefix, rest)) {
                    found = Some(id);
                    break;
                }
            }
            end -= 1;
        }
        let (Some(id), Some(slot)) = (found, ids.get_mut(k)) else { return 0 };
        *slot = id;
        k += 1;
        start = end;
    }
    k
}
