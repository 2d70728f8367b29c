//! Host tools for picoformer: the converter, the simulator and the evaluator.

pub mod bleu;
pub mod convert;
pub mod export;
pub mod host;
pub mod quantize;
pub mod report;
pub mod spm;
