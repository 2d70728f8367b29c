//! Read a SentencePiece `tokenizer.model` (protobuf `ModelProto`) and build the owned tables
//! behind [`picoformer::tokenizer::Vocab`].
//!
//! The protobuf wire format is parsed by hand, reading only the fields the runtime needs:
//!
//! - `ModelProto`: 1 `pieces` (repeated `SentencePiece`), 2 `trainer_spec`, 3 `normalizer_spec`;
//! - `SentencePiece`: 1 `piece`, 2 `score` (f32), 3 `type`;
//! - `TrainerSpec`: 3 `model_type`, 24 `treat_whitespace_as_suffix`, 35 `byte_fallback`,
//!   40 `unk_id`, 41 `bos_id`, 42 `eos_id`, 43 `pad_id`, 44 `unk_surface`;
//! - `NormalizerSpec`: 1 `name`, 2 `precompiled_charsmap`, 3 `add_dummy_prefix`,
//!   4 `remove_extra_whitespaces`, 5 `escape_whitespaces`.
//!
//! Supported: UNIGRAM (`model_type` 1) and BPE (2) models whose pieces are NORMAL, UNKNOWN,
//! CONTROL (exactly bos, eos and pad), UNUSED (unigram only) and, with `byte_fallback` (BPE
//! only), the 256 BYTE pieces `<0x00>`..`<0xFF>`. Rejected, with the option named:
//! USER_DEFINED pieces (`user_defined_symbols`), UNUSED pieces in BPE (SentencePiece merges
//! them and splits them back), unigram `byte_fallback`, `treat_whitespace_as_suffix`,
//! `escape_whitespaces = false`, a custom `unk_surface`, piece strings used twice, and in BPE
//! a CONTROL/UNKNOWN/BYTE piece of one character (SentencePiece would emit it for that
//! character).

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use picoformer::tokenizer::{bpe_score, ModelKind, Vocab, SCORE_SCALE_BITS, UNK_SURFACE};

/// `SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Byte,
    Unused,
}

impl PieceType {
    fn from_proto(v: u64) -> Option<Self> {
        Some(match v {
            1 => Self::Normal,
            2 => Self::Unknown,
            3 => Self::Control,
            4 => Self::UserDefined,
            6 => Self::Byte,
            5 => Self::Unused,
            _ => return None,
        })
    }
}

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// The parts of a `ModelProto` the runtime uses.
#[derive(Debug, Clone)]
pub struct SpmModel {
    /// Indexed by token id.
    pub pieces: Vec<Piece>,
    /// `TrainerSpec.model_type`.
    pub kind: ModelKind,
    /// `TrainerSpec.byte_fallback` (then all 256 BYTE pieces are present).
    pub byte_fallback: bool,
    pub unk: u16,
    pub bos: u16,
    pub eos: u16,
    /// The eos id when the model has no pad piece (`pad_id = -1`).
    pub pad: u16,
    /// `normalizer_spec.name`. Anything but `"identity"` means the runtime's normalization
    /// (identity plus whitespace handling) differs from SentencePiece's: warn.
    pub normalizer_name: String,
    /// `normalizer_spec.precompiled_charsmap` is non-empty (a non-identity rule).
    pub has_charsmap: bool,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
    /// A WordPiece vocabulary (`vocab.txt`, read by `crate::wordpiece`): its normalization
    /// and the Unicode tables the device reads.
    pub wordpiece: Option<WordPieceTables>,
}

/// A WordPiece tokenizer's normalization and its tables ([`Vocab::classes`],
/// [`Vocab::map_from`], `map_offsets`, `map_bytes`), computed when the vocabulary is read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordPieceTables {
    pub lower_case: bool,
    pub strip_accents: bool,
    pub classes: Vec<u32>,
    pub map_from: Vec<u32>,
    pub map_offsets: Vec<u32>,
    pub map_bytes: Vec<u8>,
}

/// The owned tables a [`Vocab`] views.
#[derive(Debug, Clone, Default)]
pub struct VocabTables {
    pub offsets: Vec<u32>,
    pub bytes: Vec<u8>,
    pub scores: Vec<i32>,
    pub sorted: Vec<u16>,
    /// Empty, or with `byte_fallback` the id of `<0xHH>` for each byte.
    pub byte_ids: Vec<u16>,
    /// WordPiece: [`Vocab::classes`], [`Vocab::map_from`], `map_offsets`, `map_bytes`.
    pub classes: Vec<u32>,
    pub map_from: Vec<u32>,
    pub map_offsets: Vec<u32>,
    pub map_bytes: Vec<u8>,
}

/// A protobuf field value.
enum Value<'a> {
    Varint(u64),
    Fixed32(u32),
    /// Skipped: no field this reader needs is a 64-bit fixed value.
    Fixed64,
    Bytes(&'a [u8]),
}

/// Iterate `(field number, value)` over one message's bytes.
struct Fields<'a> {
    buf: &'a [u8],
}

fn varint(buf: &mut &[u8]) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first().context("truncated varint")?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    bail!("varint longer than 10 bytes")
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let r = (|| {
            let key = varint(&mut self.buf)?;
            let (field, wire) = (key >> 3, key & 7);
            let take = |buf: &mut &'a [u8], n: usize| -> Result<&'a [u8]> {
                ensure!(
                    buf.len() >= n,
                    "field {field}: truncated ({n} bytes needed)"
                );
                let (a, b) = buf.split_at(n);
                *buf = b;
                Ok(a)
            };
            let value = match wire {
                0 => Value::Varint(varint(&mut self.buf)?),
                1 => {
                    take(&mut self.buf, 8)?;
                    Value::Fixed64
                }
                2 => {
                    let n = usize::try_from(varint(&mut self.buf)?)?;
                    Value::Bytes(take(&mut self.buf, n)?)
                }
                5 => Value::Fixed32(u32::from_le_bytes(take(&mut self.buf, 4)?.try_into()?)),
                w => bail!("field {field}: unsupported wire type {w}"),
            };
            Ok((field, value))
        })();
        if r.is_err() {
            self.buf = &[];
        }
        Some(r)
    }
}

fn fields(buf: &[u8]) -> Fields<'_> {
    Fields { buf }
}

fn as_varint(v: &Value, name: &str) -> Result<u64> {
    match v {
        Value::Varint(x) => Ok(*x),
        _ => bail!("{name}: expected a varint"),
    }
}

fn as_bytes<'a>(v: &Value<'a>, name: &str) -> Result<&'a [u8]> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => bail!("{name}: expected length-delimited bytes"),
    }
}

fn as_string(v: &Value, name: &str) -> Result<String> {
    let b = as_bytes(v, name)?;
    Ok(std::str::from_utf8(b)
        .with_context(|| format!("{name}: not UTF-8"))?
        .to_owned())
}

/// `int32` fields are sign-extended to 64 bits on the wire.
fn as_i32(v: &Value, name: &str) -> Result<i32> {
    let x = as_varint(v, name)? as i64;
    i32::try_from(x).with_context(|| format!("{name}: {x} out of int32 range"))
}

fn parse_piece(buf: &[u8], index: usize) -> Result<Piece> {
    let mut p = Piece {
        piece: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    for f in fields(buf) {
        let (field, v) = f?;
        match field {
            1 => p.piece = as_string(&v, "piece")?,
            2 => match v {
                Value::Fixed32(bits) => p.score = f32::from_bits(bits),
                _ => bail!("score: expected a float"),
            },
            3 => {
                let t = as_varint(&v, "type")?;
                p.kind = PieceType::from_proto(t).with_context(|| format!("type: unknown {t}"))?;
            }
            _ => {}
        }
    }
    ensure!(
        !p.piece.is_empty() || p.kind != PieceType::Normal,
        "empty NORMAL piece {index}"
    );
    Ok(p)
}

impl SpmModel {
    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let buf = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&buf).with_context(|| format!("parsing SentencePiece model {}", path.display()))
    }

    /// Parse a serialized `ModelProto`. Errors name the message and field.
    pub fn parse(buf: &[u8]) -> Result<Self> {
        let mut pieces = Vec::new();
        let mut model_type = 1u64;
        let (mut unk_id, mut bos_id, mut eos_id, mut pad_id) = (0i32, 1i32, 2i32, -1i32);
        let mut unk_surface = UNK_SURFACE.to_owned();
        let mut suffix = false;
        let mut byte_fallback = false;
        let mut normalizer_name = String::new();
        let mut has_charsmap = false;
        let mut add_dummy_prefix = true;
        let mut remove_extra_whitespaces = true;
        let mut escape_whitespaces = true;

        for f in fields(buf) {
            let (field, v) = f.context("ModelProto")?;
            match field {
                1 => {
                    let i = pieces.len();
                    let b = as_bytes(&v, "ModelProto.pieces")?;
                    pieces.push(
                        parse_piece(b, i).with_context(|| format!("ModelProto.pieces[{i}]"))?,
                    );
                }
                2 => {
                    let b = as_bytes(&v, "ModelProto.trainer_spec")?;
                    for f in fields(b) {
                        let (field, v) = f.context("TrainerSpec")?;
                        let name = |n: &str| format!("TrainerSpec.{n}");
                        match field {
                            3 => model_type = as_varint(&v, &name("model_type"))?,
                            24 => suffix = as_varint(&v, &name("treat_whitespace_as_suffix"))? != 0,
                            35 => byte_fallback = as_varint(&v, &name("byte_fallback"))? != 0,
                            40 => unk_id = as_i32(&v, &name("unk_id"))?,
                            41 => bos_id = as_i32(&v, &name("bos_id"))?,
                            42 => eos_id = as_i32(&v, &name("eos_id"))?,
                            43 => pad_id = as_i32(&v, &name("pad_id"))?,
                            44 => unk_surface = as_string(&v, &name("unk_surface"))?,
                            _ => {}
                        }
                    }
                }
                3 => {
                    let b = as_bytes(&v, "ModelProto.normalizer_spec")?;
                    for f in fields(b) {
                        let (field, v) = f.context("NormalizerSpec")?;
                        let name = |n: &str| format!("NormalizerSpec.{n}");
                        match field {
                            1 => normalizer_name = as_string(&v, &name("name"))?,
                            2 => {
                                has_charsmap =
                                    !as_bytes(&v, &name("precompiled_charsmap"))?.is_empty()
                            }
                            3 => add_dummy_prefix = as_varint(&v, &name("add_dummy_prefix"))? != 0,
                            4 => {
                                remove_extra_whitespaces =
                                    as_varint(&v, &name("remove_extra_whitespaces"))? != 0
                            }
                            5 => {
                                escape_whitespaces =
                                    as_varint(&v, &name("escape_whitespaces"))? != 0
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }

        let kind = match model_type {
            1 => ModelKind::Unigram,
            2 => ModelKind::Bpe,
            t => bail!("TrainerSpec.model_type is {t} (3 WORD, 4 CHAR): only UNIGRAM (1) and BPE (2) are supported"),
        };
        ensure!(
            !byte_fallback || kind == ModelKind::Bpe,
            "TrainerSpec.byte_fallback is set on a UNIGRAM model: byte fallback is supported for BPE only"
        );
        ensure!(
            !suffix,
            "TrainerSpec.treat_whitespace_as_suffix is set: not supported"
        );
        ensure!(
            escape_whitespaces,
            "NormalizerSpec.escape_whitespaces is false: not supported"
        );
        ensure!(
            unk_surface == UNK_SURFACE,
            "TrainerSpec.unk_surface is {unk_surface:?}; the runtime decodes unk as {UNK_SURFACE:?}"
        );
        ensure!(!pieces.is_empty(), "ModelProto.pieces is empty");
        ensure!(
            pieces.len() <= 65536,
            "ModelProto.pieces has {} entries (max 65536)",
            pieces.len()
        );

        let id = |x: i32, name: &str, kind: PieceType| -> Result<u16> {
            let i = usize::try_from(x)
                .ok()
                .filter(|&i| i < pieces.len())
                .with_context(|| format!("TrainerSpec.{name} = {x} is not a piece id"))?;
            let p = &pieces[i];
            ensure!(
                p.kind == kind,
                "TrainerSpec.{name} = {i}: piece {:?} is {:?}, not {kind:?}",
                p.piece,
                p.kind
            );
            Ok(i as u16)
        };
        let unk = id(unk_id, "unk_id", PieceType::Unknown)?;
        let bos = id(bos_id, "bos_id", PieceType::Control)?;
        let eos = id(eos_id, "eos_id", PieceType::Control)?;
        // No pad piece (pad_id = -1, as in Llama): pad aliases eos, which decodes the same
        // (to nothing) and is never produced by encode.
        let pad = if pad_id == -1 { eos } else { id(pad_id, "pad_id", PieceType::Control)? };
        let bpe = kind == ModelKind::Bpe;
        let mut bytes_seen = [false; 256];
        for (i, p) in pieces.iter().enumerate() {
            let at = || format!("ModelProto.pieces[{i}] {:?}", p.piece);
            match p.kind {
                PieceType::Normal => {}
                PieceType::Unused => ensure!(
                    !bpe,
                    "{}: UNUSED pieces in a BPE model are not supported (SentencePiece merges them, then splits them back)",
                    at()
                ),
                PieceType::Unknown => ensure!(i == usize::from(unk), "{}: a second UNKNOWN piece", at()),
                PieceType::Control => ensure!(
                    [bos, eos, pad].contains(&(i as u16)),
                    "{}: CONTROL pieces other than bos/eos/pad (control_symbols) are not supported",
                    at()
                ),
                PieceType::UserDefined => bail!(
                    "{}: USER_DEFINED pieces (TrainerSpec.user_defined_symbols) are not supported",
                    at()
                ),
                PieceType::Byte => {
                    ensure!(byte_fallback, "{}: a BYTE piece without TrainerSpec.byte_fallback", at());
                    let b = byte_of(&p.piece).with_context(|| format!("{}: a BYTE piece not spelled <0xHH>", at()))?;
                    ensure!(!bytes_seen[usize::from(b)], "{}: byte piece defined twice", at());
                    bytes_seen[usize::from(b)] = true;
                }
            }
            ensure!(
                !(bpe && p.kind != PieceType::Normal && p.piece.chars().count() == 1),
                "{}: a {:?} piece of one character in a BPE model is not supported (SentencePiece emits it for that character)",
                at(),
                p.kind
            );
        }
        ensure!(
            !byte_fallback || bytes_seen.iter().all(|&b| b),
            "TrainerSpec.byte_fallback is set but not all 256 BYTE pieces <0x00>..<0xFF> are present"
        );
        let mut names: Vec<&str> = pieces.iter().map(|p| p.piece.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            bail!("ModelProto.pieces: duplicate piece {:?}", w[0]);
        }
        Ok(Self {
            pieces,
            kind,
            byte_fallback,
            unk,
            bos,
            eos,
            pad,
            normalizer_name,
            has_charsmap,
            wordpiece: None,
            add_dummy_prefix,
            remove_extra_whitespaces,
        })
    }

    /// Build the runtime tables: piece bytes and offsets in id order, scores (unigram: fixed
    /// point, [`SCORE_SCALE_BITS`]; BPE: [`bpe_score`]), the NORMAL ids sorted by bytes, and
    /// with `byte_fallback` the 256 byte piece ids.
    pub fn tables(&self) -> Result<VocabTables> {
        let mut t = VocabTables::default();
        t.offsets.push(0);
        let scale = f64::from(1u32 << SCORE_SCALE_BITS);
        for (i, p) in self.pieces.iter().enumerate() {
            t.bytes.extend_from_slice(p.piece.as_bytes());
            t.offsets
                .push(u32::try_from(t.bytes.len()).context("piece bytes exceed 4 GiB")?);
            if self.kind == ModelKind::Bpe {
                ensure!(!p.score.is_nan(), "ModelProto.pieces[{i}] {:?}: score is NaN", p.piece);
                t.scores.push(bpe_score(p.score.to_bits()));
                continue;
            }
            let s = (f64::from(p.score) * scale).round();
            ensure!(
                p.score.is_finite() && s >= f64::from(i32::MIN) && s <= f64::from(i32::MAX),
                "ModelProto.pieces[{i}] {:?}: score {} outside [-128, 128)",
                p.piece,
                p.score
            );
            t.scores.push(s as i32);
        }
        t.sorted = (0..self.pieces.len())
            .filter(|&i| self.pieces[i].kind == PieceType::Normal)
            .map(|i| i as u16)
            .collect();
        t.sorted.sort_by(|&a, &b| {
            self.pieces[usize::from(a)]
                .piece
                .as_bytes()
                .cmp(self.pieces[usize::from(b)].piece.as_bytes())
        });
        for w in t.sorted.windows(2) {
            ensure!(
                self.pieces[usize::from(w[0])].piece != self.pieces[usize::from(w[1])].piece,
                "ModelProto.pieces: duplicate piece {:?}",
                self.pieces[usize::from(w[0])].piece
            );
        }
        if let Some(w) = &self.wordpiece {
            (t.classes, t.map_from, t.map_offsets, t.map_bytes) = (w.classes.clone(), w.map_from.clone(), w.map_offsets.clone(), w.map_bytes.clone());
        }
        if self.byte_fallback {
            t.byte_ids = vec![0; 256];
            for (i, p) in self.pieces.iter().enumerate() {
                if let (PieceType::Byte, Some(b)) = (p.kind, byte_of(&p.piece)) {
                    t.byte_ids[usize::from(b)] = i as u16;
                }
            }
        }
        Ok(t)
    }

    /// A [`Vocab`] viewing `t` (built by [`Self::tables`]) with this model's specials and flags.
    pub fn vocab<'a>(&self, t: &'a VocabTables) -> Vocab<'a> {
        Vocab {
            offsets: &t.offsets,
            bytes: &t.bytes,
            scores: &t.scores,
            sorted: &t.sorted,
            unk: self.unk,
            bos: self.bos,
            eos: self.eos,
            pad: self.pad,
            add_dummy_prefix: self.add_dummy_prefix,
            remove_extra_whitespaces: self.remove_extra_whitespaces,
            kind: self.kind,
            byte_ids: &t.byte_ids,
            classes: &t.classes,
            map_from: &t.map_from,
            map_offsets: &t.map_offsets,
            map_bytes: &t.map_bytes,
        }
    }
}

/// The byte of a BYTE piece spelled `<0xHH>` (uppercase hex, as SentencePiece writes it).
fn byte_of(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2 && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F')))
        .then(|| u8::from_str_radix(hex, 16).ok())
        .flatten()
}
