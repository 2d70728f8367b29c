//! What each tensor of a blob is: a [`Tag`], with named parts, stored as one `u32` code.
//!
//! The code is `group << 24 | layer << 16 | item`, with group 0 for the model's own tensors,
//! 1 and 2 for the encoder's and decoder's layers and 3 for the tokenizer. [`Tag::code`] and
//! [`Tag::from_code`] are the only places that know the numbers.

use core::fmt;

/// A stack of layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stack {
    Encoder,
    Decoder,
}

/// A residual sublayer of a layer: `x + f(norm(x))` or `norm(x + f(x))`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Sub {
    SelfAttn,
    /// The encoder-decoder's cross-attention over the encoder output.
    CrossAttn,
    FeedForward,
}

/// A linear layer of a sublayer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proj {
    /// Attention projections.
    Q,
    K,
    V,
    O,
    /// Feed-forward: `down(act(up(x)))`, or `down(silu(gate(x)) · up(x))`.
    Up,
    Gate,
    Down,
}

/// The three tensors of a linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    /// `(n, k)` `i8`, in the entry's layout.
    Weight,
    /// `(n,)` `i32` (zeros for a layer without bias).
    Bias,
    /// `(n,)` [`crate::quant::Requant`].
    Requant,
}

/// The tensors of a norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NormPart {
    /// `(d,)` `i32` fixed-point gains.
    Gain,
    /// `(d,)` `i32` biases (LayerNorm only).
    Bias,
    /// A [`super::NormParams`] record.
    Params,
}

/// Which embedding table: the source side's (encoders) or the target side's (decoders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Source,
    Target,
}

/// The tokenizer's tables ([`crate::tokenizer::Vocab`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TokPart {
    Offsets,
    Bytes,
    Scores,
    Sorted,
    ByteIds,
    /// WordPiece: character class runs, the character map's keys, offsets and bytes.
    Classes,
    MapFrom,
    MapOffsets,
    MapBytes,
}

/// What a tensor is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tag {
    /// `(vocab, d)` `i8` token embedding (one scale per row).
    Embedding(Side),
    /// `(vocab,)` requantizers of the embedding rows into the residual stream.
    EmbeddingRq(Side),
    /// `(max_len, d)` `i16` position table, added to the input (sinusoidal or learned).
    Positions,
    /// `(max_len, d_head / 2)` `i16` Q15 cosines and sines of the rotary positions.
    RopeCos,
    RopeSin,
    /// The linear projection of feature frames into the residual stream.
    InputProj(Part),
    /// `(n_features,)` [`super::FeatureQuant`] records: how a caller quantizes its features.
    FeatureQuant,
    /// The norm after the last layer of a stack.
    FinalNorm(Stack, NormPart),
    /// The output projection: logits over the vocabulary, or the encoder-only head.
    Output(Part),
    /// A [`crate::quant::Requant`] from a logit difference to its Q10 base-2 exponent.
    LogSoftmax,
    /// A [`crate::quant::Requant`] whose real value is one unit of the head's output.
    HeadScale,
    /// The norm over the input rows before the first layer (`FLAG_EMBED_NORM`).
    EmbedNorm(NormPart),
    /// The pooler's `(d, d)` linear (`FLAG_POOLER`).
    Pooler(Part),
    /// The pooler's `(257,)` `i16` tanh table.
    PoolerTable,
    Linear { stack: Stack, layer: u8, sub: Sub, proj: Proj, part: Part },
    Norm { stack: Stack, layer: u8, sub: Sub, part: NormPart },
    /// A [`crate::kernels::attention::AttentionParams`] record.
    Attention { stack: Stack, layer: u8, sub: Sub },
    /// A [`super::RopeParams`] record.
    Rope { stack: Stack, layer: u8 },
    /// A [`crate::kernels::residual::ResidualParams`] record.
    Residual { stack: Stack, layer: u8, sub: Sub },
    /// The `(257,)` `i16` interpolated activation table of a feed-forward sublayer.
    ActTable { stack: Stack, layer: u8 },
    /// A [`crate::quant::Requant`] for SwiGLU's product `silu(gate) · up`.
    GateMul { stack: Stack, layer: u8 },
    Tokenizer(TokPart),
}

const GLOBAL: u32 = 0;
const TOK: u32 = 3;

const fn stack_code(s: Stack) -> u32 {
    match s {
        Stack::Encoder => 1,
        Stack::Decoder => 2,
    }
}

const fn sub_code(s: Sub) -> u32 {
    match s {
        Sub::SelfAttn => 0,
        Sub::CrossAttn => 1,
        Sub::FeedForward => 2,
    }
}

const fn proj_code(p: Proj) -> u32 {
    match p {
        Proj::Q => 0,
        Proj::K => 1,
        Proj::V => 2,
        Proj::O => 3,
        Proj::Up => 4,
        Proj::Gate => 5,
        Proj::Down => 6,
    }
}

const fn part_code(p: Part) -> u32 {
    match p {
        Part::Weight => 0,
        Part::Bias => 1,
        Part::Requant => 2,
    }
}

const fn norm_code(p: NormPart) -> u32 {
    match p {
        NormPart::Gain => 0,
        NormPart::Bias => 1,
        NormPart::Params => 2,
    }
}

const SUBS: [Sub; 3] = [Sub::SelfAttn, Sub::CrossAttn, Sub::FeedForward];
const PROJS: [Proj; 7] = [Proj::Q, Proj::K, Proj::V, Proj::O, Proj::Up, Proj::Gate, Proj::Down];
const PARTS: [Part; 3] = [Part::Weight, Part::Bias, Part::Requant];
const NORM_PARTS: [NormPart; 3] = [NormPart::Gain, NormPart::Bias, NormPart::Params];
const TOK_PARTS: [TokPart; 9] = [TokPart::Offsets, TokPart::Bytes, TokPart::Scores, TokPart::Sorted, TokPart::ByteIds, TokPart::Classes, TokPart::MapFrom, TokPart::MapOffsets, TokPart::MapBytes];

// Items of the model's own tensors (group 0), and of a layer's (groups 1 and 2): the high byte
// is the kind, the low bits the named parts.
const I_EMB: u32 = 0x01;
const I_EMB_RQ: u32 = 0x02;
const I_POS: u32 = 0x03;
const I_ROPE_COS: u32 = 0x04;
const I_ROPE_SIN: u32 = 0x05;
const I_INPUT: u32 = 0x10; // + part
const I_FEATURES: u32 = 0x14;
const I_FINAL: u32 = 0x20; // + stack << 2 + norm part
const I_OUTPUT: u32 = 0x30; // + part
const I_LOG_SOFTMAX: u32 = 0x34;
const I_HEAD_SCALE: u32 = 0x35;
const I_EMBED_NORM: u32 = 0x40; // + norm part
const I_POOLER: u32 = 0x44; // + part
const I_POOLER_TABLE: u32 = 0x47;
const L_LINEAR: u32 = 0x100; // + sub << 6 + proj << 2 + part
const L_NORM: u32 = 0x200; // + sub << 2 + norm part
const L_ATTENTION: u32 = 0x300; // + sub
const L_ROPE: u32 = 0x310;
const L_RESIDUAL: u32 = 0x400; // + sub
const L_ACT: u32 = 0x500;
const L_GATE_MUL: u32 = 0x510;

impl Tag {
    /// The code stored in the tensor table.
    pub const fn code(self) -> u32 {
        const fn side(s: Side) -> u32 {
            match s {
                Side::Source => 0,
                Side::Target => 1,
            }
        }
        const fn layer_tag(stack: Stack, layer: u8, item: u32) -> u32 {
            stack_code(stack) << 24 | (layer as u32) << 16 | item
        }
        match self {
            Tag::Embedding(s) => I_EMB | side(s) << 8,
            Tag::EmbeddingRq(s) => I_EMB_RQ | side(s) << 8,
            Tag::Positions => I_POS,
            Tag::RopeCos => I_ROPE_COS,
            Tag::RopeSin => I_ROPE_SIN,
            Tag::InputProj(p) => I_INPUT + part_code(p),
            Tag::FeatureQuant => I_FEATURES,
            Tag::FinalNorm(s, p) => I_FINAL + (stack_code(s) << 2) + norm_code(p),
            Tag::Output(p) => I_OUTPUT + part_code(p),
            Tag::LogSoftmax => I_LOG_SOFTMAX,
            Tag::HeadScale => I_HEAD_SCALE,
            Tag::EmbedNorm(p) => I_EMBED_NORM + norm_code(p),
            Tag::Pooler(p) => I_POOLER + part_code(p),
            Tag::PoolerTable => I_POOLER_TABLE,
            Tag::Linear { stack, layer, sub, proj, part } => layer_tag(stack, layer, L_LINEAR + (sub_code(sub) << 6) + (proj_code(proj) << 2) + part_code(part)),
            Tag::Norm { stack, layer, sub, part } => layer_tag(stack, layer, L_NORM + (sub_code(sub) << 2) + norm_code(part)),
            Tag::Attention { stack, layer, sub } => layer_tag(stack, layer, L_ATTENTION + sub_code(sub)),
            Tag::Rope { stack, layer } => layer_tag(stack, layer, L_ROPE),
            Tag::Residual { stack, layer, sub } => layer_tag(stack, layer, L_RESIDUAL + sub_code(sub)),
            Tag::ActTable { stack, layer } => layer_tag(stack, layer, L_ACT),
            Tag::GateMul { stack, layer } => layer_tag(stack, layer, L_GATE_MUL),
            Tag::Tokenizer(p) => {
                TOK << 24
                    | match p {
                        TokPart::Offsets => 1,
                        TokPart::Bytes => 2,
                        TokPart::Scores => 3,
                        TokPart::Sorted => 4,
                        TokPart::ByteIds => 5,
                        TokPart::Classes => 6,
                        TokPart::MapFrom => 7,
                        TokPart::MapOffsets => 8,
                        TokPart::MapBytes => 9,
                    }
            }
        }
    }

    /// The tag a code stands for, if any.
    pub fn from_code(code: u32) -> Option<Tag> {
        let (group, layer, item) = (code >> 24, (code >> 16) & 0xff, code & 0xffff);
        let pick = |n: u32, all: &[Tag]| all.get(n as usize).copied();
        match group {
            GLOBAL if layer == 0 => Self::global(item),
            1 | 2 => {
                let stack = if group == 1 { Stack::Encoder } else { Stack::Decoder };
                let layer = layer as u8;
                let sub = |n: u32| SUBS.get(n as usize).copied();
                Some(match item & 0xff00 {
                    L_LINEAR => Tag::Linear {
                        stack,
                        layer,
                        sub: sub((item >> 6) & 3)?,
                        proj: *PROJS.get(((item >> 2) & 0xf) as usize)?,
                        part: *PARTS.get((item & 3) as usize)?,
                    },
                    L_NORM if item & 0xf0 == 0 => Tag::Norm { stack, layer, sub: sub((item >> 2) & 3)?, part: *NORM_PARTS.get((item & 3) as usize)? },
                    L_ATTENTION if item & 0xf0 == 0 => Tag::Attention { stack, layer, sub: sub(item & 0xf)? },
                    L_ATTENTION if item == L_ROPE => Tag::Rope { stack, layer },
                    L_RESIDUAL if item & 0xf0 == 0 => Tag::Residual { stack, layer, sub: sub(item & 0xf)? },
                    L_ACT if item == L_ACT => Tag::ActTable { stack, layer },
                    L_ACT if item == L_GATE_MUL => Tag::GateMul { stack, layer },
                    _ => return None,
                })
                .filter(|t| t.code() == code)
            }
            TOK if layer == 0 => pick(item.wrapping_sub(1), &TOK_PARTS.map(Tag::Tokenizer)),
            _ => None,
        }
    }

    fn global(item: u32) -> Option<Tag> {
        let side = |n: u32| match n {
            0 => Some(Side::Source),
            1 => Some(Side::Target),
            _ => None,
        };
        let t = match item & 0xff {
            I_EMB => Tag::Embedding(side(item >> 8)?),
            I_EMB_RQ => Tag::EmbeddingRq(side(item >> 8)?),
            I_POS => Tag::Positions,
            I_ROPE_COS => Tag::RopeCos,
            I_ROPE_SIN => Tag::RopeSin,
            i @ I_INPUT..=0x12 => Tag::InputProj(*PARTS.get((i - I_INPUT) as usize)?),
            I_FEATURES => Tag::FeatureQuant,
            i @ I_FINAL..=0x2f => {
                let stack = match (i - I_FINAL) >> 2 {
                    1 => Stack::Encoder,
                    2 => Stack::Decoder,
                    _ => return None,
                };
                Tag::FinalNorm(stack, *NORM_PARTS.get(((i - I_FINAL) & 3) as usize)?)
            }
            i @ I_OUTPUT..=0x32 => Tag::Output(*PARTS.get((i - I_OUTPUT) as usize)?),
            I_LOG_SOFTMAX => Tag::LogSoftmax,
            I_HEAD_SCALE => Tag::HeadScale,
            i @ I_EMBED_NORM..=0x42 => Tag::EmbedNorm(*NORM_PARTS.get((i - I_EMBED_NORM) as usize)?),
            i @ I_POOLER..=0x46 => Tag::Pooler(*PARTS.get((i - I_POOLER) as usize)?),
            I_POOLER_TABLE => Tag::PoolerTable,
            _ => return None,
        };
        Some(t).filter(|t| t.code() == item)
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stack = |s: &Stack| match s {
            Stack::Encoder => "enc",
            Stack::Decoder => "dec",
        };
        match self {
            Tag::Linear { stack: s, layer, sub, proj, part } => write!(f, "{}.{layer}.{sub:?}.{proj:?}.{part:?}", stack(s)),
            Tag::Norm { stack: s, layer, sub, part } => write!(f, "{}.{layer}.{sub:?}.norm.{part:?}", stack(s)),
            Tag::Attention { stack: s, layer, sub } => write!(f, "{}.{layer}.{sub:?}.attention", stack(s)),
            Tag::Rope { stack: s, layer } => write!(f, "{}.{layer}.rope", stack(s)),
            Tag::Residual { stack: s, layer, sub } => write!(f, "{}.{layer}.{sub:?}.residual", stack(s)),
            Tag::ActTable { stack: s, layer } => write!(f, "{}.{layer}.act_table", stack(s)),
            Tag::GateMul { stack: s, layer } => write!(f, "{}.{layer}.gate_mul", stack(s)),
            other => write!(f, "{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tag round-trips through its code, and no two tags share one.
    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut all = std::vec::Vec::new();
        for s in [Side::Source, Side::Target] {
            all.extend([Tag::Embedding(s), Tag::EmbeddingRq(s)]);
        }
        all.extend([Tag::Positions, Tag::RopeCos, Tag::RopeSin, Tag::FeatureQuant, Tag::LogSoftmax, Tag::HeadScale, Tag::PoolerTable]);
        for p in PARTS {
            all.extend([Tag::InputProj(p), Tag::Output(p), Tag::Pooler(p)]);
        }
        all.extend(NORM_PARTS.map(Tag::EmbedNorm));
        for stack in [Stack::Encoder, Stack::Decoder] {
            for p in NORM_PARTS {
                all.push(Tag::FinalNorm(stack, p));
            }
            for layer in [0u8, 5, 255] {
                all.extend([Tag::Rope { stack, layer }, Tag::ActTable { stack, layer }, Tag::GateMul { stack, layer }]);
                for sub in SUBS {
                    all.extend([Tag::Attention { stack, layer, sub }, Tag::Residual { stack, layer, sub }]);
                    for part in NORM_PARTS {
                        all.push(Tag::Norm { stack, layer, sub, part });
                    }
                    for proj in PROJS {
                        for part in PARTS {
                            all.push(Tag::Linear { stack, layer, sub, proj, part });
                        }
                    }
                }
            }
        }
        all.extend(TOK_PARTS.map(Tag::Tokenizer));
        let mut codes: std::vec::Vec<u32> = all.iter().map(|t| t.code()).collect();
        for t in &all {
            assert_eq!(Tag::from_code(t.code()), Some(*t), "{t}");
        }
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        // codes no tag has are refused
        for bad in [0, 0x06, 0x13, 0x2f, 0x0100_0000, 0x0100_0103, 0x0300_0000, 0x0300_000a, 0x0400_0001, 0x43, 0x48, 0x0001_0001] {
            assert_eq!(Tag::from_code(bad), None, "{bad:#x}");
        }
    }
}
