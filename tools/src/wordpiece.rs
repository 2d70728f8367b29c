//! BERT's WordPiece vocabulary (`vocab.txt`, one piece a line, the line number its id) as an
//! [`SpmModel`] of kind [`ModelKind::WordPiece`], and the Unicode tables its device tokenizer
//! reads from the blob ([`picoformer::tokenizer::wordpiece`]), computed here so the device
//! carries none of its own:
//!
//! - the character classes: sorted runs `start << 3 | class` over all of Unicode (whitespace,
//!   control, punctuation, CJK, as `BertTokenizerFast`'s normalizer and pre-tokenizer see them);
//!   Non-spacing marks are removed when accents are stripped.
//! - the character map: each character that lower-casing and accent stripping change (as
//!   `do_lower_case` and `strip_accents` say), with its replacement (UTF-8), kept only where
//!   the replacement can matter: it splits the word (punctuation), or all its characters occur
//!   in some piece (any other replacement leaves the word `[UNK]` either way).

use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Context, Result};
use picoformer::tokenizer::wordpiece::{CharClass, CLASS_SHIFT};
use picoformer::tokenizer::ModelKind;
use unicode_general_category::{get_general_category, GeneralCategory as G};
use unicode_normalization::UnicodeNormalization;

use crate::spm::{Piece, PieceType, SpmModel, WordPieceTables};

/// How the text is normalized before splitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalize {
    pub lower_case: bool,
    pub strip_accents: bool,
}

/// The special pieces by name.
pub struct Specials<'a> {
    pub unk: &'a str,
    pub cls: &'a str,
    pub sep: &'a str,
    pub pad: &'a str,
}

/// Read `vocab.txt`: `vocab_size` lines (else the file is named), the special pieces CONTROL
/// (`unk` UNKNOWN), the rest NORMAL.
pub fn load(path: &Path, vocab_size: usize, specials: &Specials<'_>, norm: Normalize) -> Result<SpmModel> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let words: Vec<&str> = text.lines().collect();
    if words.len() != vocab_size {
        bail!("{}: {} pieces, but config.json's vocab_size is {vocab_size}", path.display(), words.len());
    }
    let mut seen = HashSet::new();
    let id = |name: &str, field: &str| -> Result<u16> {
        match words.iter().position(|w| *w == name) {
            Some(i) => Ok(i as u16),
            None => bail!("{}: no {name:?} piece (tokenizer_config.json's `{field}`)", path.display()),
        }
    };
    let (unk, cls, sep, pad) = (id(specials.unk, "unk_token")?, id(specials.cls, "cls_token")?, id(specials.sep, "sep_token")?, id(specials.pad, "pad_token")?);
    let mut pieces = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        if w.is_empty() || !seen.insert(*w) {
            bail!("{}: line {}: {} piece {w:?}", path.display(), i + 1, if w.is_empty() { "an empty" } else { "a repeated" });
        }
        let special = [cls, sep, pad].contains(&(i as u16)) || (w.starts_with('[') && w.ends_with(']') && !w.starts_with("[unused"));
        let kind = if i == usize::from(unk) {
            PieceType::Unknown
        } else if special {
            PieceType::Control
        } else {
            PieceType::Normal
        };
        pieces.push(Piece { piece: (*w).to_owned(), score: 0.0, kind });
    }
    let mut tables = WordPieceTables { lower_case: norm.lower_case, strip_accents: norm.strip_accents, ..Default::default() };
    build_tables(&pieces, norm, &mut tables);
    Ok(SpmModel {
        pieces,
        kind: ModelKind::WordPiece,
        byte_fallback: false,
        unk,
        bos: cls,
        eos: sep,
        pad,
        normalizer_name: "bert".into(),
        has_charsmap: false,
        add_dummy_prefix: false,
        remove_extra_whitespaces: false,
        wordpiece: Some(tables),
    })
}

/// BERT's class of `c` (`BertNormalizer` and `BertPreTokenizer`): `\t \n \r` and `Zs` are
/// whitespace; other `C*` (and U+FFFD, NUL) are removed, and so are non-spacing marks when
/// accents are stripped; ASCII symbols and `P*` are punctuation; the CJK ideograph blocks split
/// like punctuation.
pub fn class_of(c: char, n: Normalize) -> CharClass {
    let cp = c as u32;
    if matches!(c, '\t' | '\n' | '\r' | ' ') {
        return CharClass::Space;
    }
    if cp == 0 || cp == 0xFFFD {
        return CharClass::Removed;
    }
    let cat = get_general_category(c);
    if cat == G::SpaceSeparator {
        return CharClass::Space;
    }
    if matches!(cat, G::Control | G::Format | G::Surrogate | G::PrivateUse | G::Unassigned) || (n.strip_accents && cat == G::NonspacingMark) {
        return CharClass::Removed;
    }
    if matches!(cp, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F) {
        return CharClass::Cjk;
    }
    let ascii_punct = matches!(cp, 33..=47 | 58..=64 | 91..=96 | 123..=126);
    let punct = matches!(cat, G::ConnectorPunctuation | G::DashPunctuation | G::OpenPunctuation | G::ClosePunctuation | G::InitialPunctuation | G::FinalPunctuation | G::OtherPunctuation);
    if ascii_punct || punct {
        return CharClass::Punct;
    }
    CharClass::Word
}

/// What normalization makes of `c` (lower-case, then NFD without non-spacing marks).
pub fn map_of(c: char, n: Normalize) -> String {
    let mut s: String = if n.lower_case { c.to_lowercase().collect() } else { c.to_string() };
    if n.strip_accents {
        s = s.nfd().filter(|&ch| get_general_category(ch) != G::NonspacingMark).collect();
    }
    s
}

/// The class runs and the character map of a tokenizer with `pieces`, into `t`.
fn build_tables(pieces: &[Piece], n: Normalize, t: &mut WordPieceTables) {
    let mut prev = None;
    for cp in 0..=0x10FFFFu32 {
        let class = char::from_u32(cp).map_or(CharClass::Removed, |c| class_of(c, n));
        if prev != Some(class) {
            t.classes.push(cp << CLASS_SHIFT | class as u32);
            prev = Some(class);
        }
    }
    let alphabet: HashSet<char> = pieces.iter().filter(|p| p.kind == PieceType::Normal).flat_map(|p| p.piece.strip_prefix("##").unwrap_or(&p.piece).chars().collect::<Vec<_>>()).collect();
    t.map_offsets.push(0);
    for cp in 0..=0x10FFFFu32 {
        let Some(c) = char::from_u32(cp) else { continue };
        let class = class_of(c, n);
        if matches!(class, CharClass::Removed | CharClass::Space) {
            continue;
        }
        let m: String = map_of(c, n).chars().filter(|&ch| class_of(ch, n) != CharClass::Removed).collect();
        if m.len() == c.len_utf8() && m.starts_with(c) {
            continue;
        }
        // a character no piece has makes its word `[UNK]` either way, unless the replacement
        // splits differently: it has punctuation, or the character was punctuation
        let splits = class == CharClass::Punct || m.chars().any(|ch| class_of(ch, n) == CharClass::Punct);
        if !splits && !m.chars().all(|ch| alphabet.contains(&ch)) {
            continue;
        }
        // what the device takes (wordpiece::check): spaced out, at most 3× the character
        let spaces = 2 * m.chars().filter(|&ch| class_of(ch, n) == CharClass::Punct).count() + if class == CharClass::Cjk { 2 } else { 0 };
        if m.len() + spaces > 3 * c.len_utf8() || m.chars().any(|ch| class_of(ch, n) == CharClass::Space) {
            eprintln!("warning: the WordPiece map skips U+{cp:04X} ({c}): its normalization {m:?} is too long for the device's scratch");
            continue;
        }
        t.map_from.push(cp);
        t.map_bytes.extend_from_slice(m.as_bytes());
        t.map_offsets.push(t.map_bytes.len() as u32);
    }
}
