//! The runtime's one error type. Every bad blob, bad input or undersized buffer ends here: the
//! runtime never panics on input.

use core::fmt;

/// What went wrong. `#[non_exhaustive]`: match with a wildcard arm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The blob is shorter than its header, or than the length its header states.
    Truncated { needed: usize, got: usize },
    /// The first four bytes are not `PICO`.
    BadMagic,
    /// The blob was written by a format version this runtime does not read.
    UnsupportedVersion { found: u16, supported: u16 },
    /// The CRC-32 over the blob does not match the header.
    ChecksumMismatch { stored: u32, computed: u32 },
    /// The blob does not start on the alignment its tensor views need.
    MisalignedBlob { align: usize },
    /// A config field is zero, out of range, or inconsistent with another one.
    BadConfig { field: &'static str },
    /// The tensor table does not list the tensor the config calls for at this index.
    UnexpectedTensor { index: usize, expected: u32, found: u32 },
    /// A tensor's dtype or shape disagrees with the config.
    BadTensorShape { tag: u32 },
    /// A tensor's byte range is outside the blob, misaligned, or overlaps another tensor.
    BadTensorRange { tag: u32 },
    /// A quantization parameter is outside its documented range.
    BadQuantParam { tag: u32, index: usize },
    /// The tokenizer tables are malformed.
    BadVocab { reason: &'static str },
    /// The caller's arena does not start on an 8-byte boundary.
    MisalignedArena { align: usize },
    /// The caller's arena is smaller than [`crate::Translator::arena_bytes`].
    ArenaTooSmall { needed: usize, got: usize },
    /// A token id is not below the vocabulary size.
    TokenOutOfRange { id: u32, vocab: u32 },
    /// The source sentence has no tokens.
    EmptyInput,
    /// The input is longer than the model or the buffer allows.
    InputTooLong { len: usize, max: usize },
    /// An output buffer is too small for the result.
    OutputFull { capacity: usize },
    /// The requested beam width is zero or above the capacity the arena was sized for.
    BadBeamWidth { requested: usize, capacity: usize },
    /// The requested number of batch lanes is zero or above [`crate::MAX_LANES`].
    BadBatchSize { requested: usize, capacity: usize },
    /// A decoder step was asked for past `max_len`, or before the source was encoded.
    DecoderState,
    /// The session is for another model kind (a translator over a language model, say).
    WrongModelKind,
    /// The model reads feature frames and was given token ids, or the other way round.
    WrongInput,
    /// A feature window whose length is not a whole number of frames.
    BadFeatureCount { len: usize, per_frame: usize },
    /// The tokenizer's scratch is smaller than the text needs.
    ScratchTooSmall { needed: usize, got: usize },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated { needed, got } => {
                write!(f, "blob truncated: need {needed} bytes, got {got}")
            }
            Error::BadMagic => f.write_str("not a picoformer blob (bad magic)"),
            Error::UnsupportedVersion { found, supported } => {
                write!(f, "blob format version {found}, this runtime reads {supported}")
            }
            Error::ChecksumMismatch { stored, computed } => {
                write!(f, "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")
            }
            Error::MisalignedBlob { align } => {
                write!(f, "blob must be aligned to {align} bytes")
            }
            Error::BadConfig { field } => write!(f, "bad config field `{field}`"),
            Error::UnexpectedTensor { index, expected, found } => write!(
                f,
                "tensor table entry {index}: expected tag {expected:#010x}, found {found:#010x}"
            ),
            Error::BadTensorShape { tag } => write!(f, "tensor {tag:#010x}: wrong dtype or shape"),
            Error::BadTensorRange { tag } => {
                write!(f, "tensor {tag:#010x}: byte range out of bounds, misaligned or overlapping")
            }
            Error::BadQuantParam { tag, index } => {
                write!(f, "tensor {tag:#010x}: quantization parameter {index} out of range")
            }
            Error::BadVocab { reason } => write!(f, "bad tokenizer vocabulary: {reason}"),
            Error::MisalignedArena { align } => {
                write!(f, "arena must be aligned to {align} bytes")
            }
            Error::ArenaTooSmall { needed, got } => {
                write!(f, "arena too small: need {needed} bytes, got {got}")
            }
            Error::TokenOutOfRange { id, vocab } => {
                write!(f, "token id {id} out of range (vocabulary {vocab})")
            }
            Error::EmptyInput => f.write_str("empty input"),
            Error::InputTooLong { len, max } => write!(f, "input too long: {len} > {max}"),
            Error::OutputFull { capacity } => write!(f, "output buffer full ({capacity})"),
            Error::BadBeamWidth { requested, capacity } => {
                write!(f, "beam width {requested} not in 1..={capacity}")
            }
            Error::BadBatchSize { requested, capacity } => write!(f, "batch of {requested} not in 1..={capacity}"),
            Error::DecoderState => f.write_str("decoder used out of order or past max_len"),
            Error::WrongModelKind => f.write_str("this session is for another model kind"),
            Error::WrongInput => f.write_str("the model reads the other kind of input (token ids or feature frames)"),
            Error::BadFeatureCount { len, per_frame } => write!(f, "{len} feature values are not whole frames of {per_frame}"),
            Error::ScratchTooSmall { needed, got } => write!(f, "tokenizer scratch too small: need {needed} nodes, got {got}"),
        }
    }
}

impl core::error::Error for Error {}
