//! Host tools for picoformer: the converter, the simulator and the evaluator.
//!
//! `convert` runs the stages in order: [`export`] (load) → [`check`] (f32 against PyTorch) →
//! [`calibrate`] → [`quantize`] → write → [`vectors`] → [`report`] (with [`eval`]'s measures).

pub mod bleu;
pub mod calibrate;
pub mod check;
pub mod classify;
pub mod convert;
pub mod eval;
pub mod export;
pub mod generate;
pub mod host;
pub mod implied;
pub mod quantize;
pub mod report;
pub mod spm;
pub mod translate;
pub mod vectors;
