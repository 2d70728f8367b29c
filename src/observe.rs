//! Named activation sites, and an observer the forward passes report to.
//!
//! The int8 forward pass and the f32 reference report the same [`Site`]s, so the converter can
//! calibrate each site's scale, the report can compare int8 with f32 site by site, and the test
//! vectors can pin every layer's output. The default observer does nothing and compiles away.

use core::fmt;

/// The sublayer a site belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Block {
    /// Self-attention.
    SelfAttn,
    /// Cross-attention (decoder only).
    CrossAttn,
    /// Feed-forward.
    FeedForward,
}

/// A point inside a sublayer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Point {
    /// LayerNorm output: the sublayer's input (pre-norm) or the new residual stream (post-norm).
    Norm,
    /// Residual sum: the new stream (pre-norm) or the LayerNorm input (post-norm).
    Sum,
    /// Queries and keys before rotary positions (`i16`), when the model has them.
    QPre,
    KPre,
    /// Queries, keys and values as attention reads them (`i8`).
    Q,
    K,
    V,
    /// Attention context `p · v`, the output projection's input.
    Ctx,
    /// Attention output projection, or the second FFN linear.
    Out,
    /// First FFN linear (SwiGLU: the gate), before the activation.
    PreAct,
    /// SwiGLU: the activated gate, `silu(gate(x))`.
    Gate,
    /// SwiGLU: the up projection.
    Up,
    /// FFN activation output (SwiGLU: the product), the second linear's input.
    Hidden,
}

/// An activation site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    /// Source embedding (or projected features) plus positions.
    SrcEmb,
    /// Target embedding plus positions.
    TgtEmb,
    /// Encoder-only with an embedding norm: the norm of [`Site::SrcEmb`], the first layer's
    /// input.
    EmbNorm,
    Enc { layer: u8, block: Block, point: Point },
    /// Final encoder norm: the memory cross-attention reads.
    EncNorm,
    Dec { layer: u8, block: Block, point: Point },
    /// Final decoder norm: the output projection's input.
    DecNorm,
    /// Encoder-only: the pooled vector, the head's (or the pooler's) input.
    Pooled,
    /// Encoder-only with a pooler: its dense layer's output, before tanh.
    PoolerPre,
    /// Encoder-only with a pooler: `tanh` of [`Site::PoolerPre`], the head's input.
    Pooler,
    /// The output projection: logits, or the encoder-only head's outputs.
    Logits,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (stack, layer, block, point) = match *self {
            Site::SrcEmb => return f.write_str("src.emb"),
            Site::TgtEmb => return f.write_str("tgt.emb"),
            Site::EncNorm => return f.write_str("enc.norm"),
            Site::DecNorm => return f.write_str("dec.norm"),
            Site::EmbNorm => return f.write_str("emb.norm"),
            Site::Pooled => return f.write_str("pooled"),
            Site::PoolerPre => return f.write_str("pooler.pre"),
            Site::Pooler => return f.write_str("pooler"),
            Site::Logits => return f.write_str("logits"),
            Site::Enc { layer, block, point } => ("enc", layer, block, point),
            Site::Dec { layer, block, point } => ("dec", layer, block, point),
        };
        let block = match block {
            Block::SelfAttn => "sa",
            Block::CrossAttn => "ca",
            Block::FeedForward => "ff",
        };
        let point = match point {
            Point::Norm => "norm",
            Point::Sum => "sum",
            Point::QPre => "qpre",
            Point::KPre => "kpre",
            Point::Q => "q",
            Point::K => "k",
            Point::V => "v",
            Point::Ctx => "ctx",
            Point::Out => "out",
            Point::PreAct => "preact",
            Point::Gate => "gate",
            Point::Up => "up",
            Point::Hidden => "hidden",
        };
        write!(f, "{stack}.{layer}.{block}.{point}")
    }
}

/// Tensor data at a site, row-major `(rows, features)`. `F32` exists with the `reference`
/// feature, so match with a wildcard arm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy)]
pub enum Data<'b> {
    I8(&'b [i8]),
    I16(&'b [i16]),
    I32(&'b [i32]),
    #[cfg(feature = "reference")]
    F32(&'b [f32]),
}

/// Receives every site's values as a forward pass computes them.
pub trait Observer {
    /// `data` holds whole rows; decoder sites arrive one step (one row per beam) at a time.
    fn observe(&mut self, site: Site, data: Data<'_>);
}

/// The observer that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    #[inline(always)]
    fn observe(&mut self, _: Site, _: Data<'_>) {}
}
