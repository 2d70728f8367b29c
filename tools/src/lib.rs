//! Host tools for picoformer: the converter, the simulator and the evaluator.
//!
//! `convert` runs the stages in order: [`export`] (load) → [`check`] (f32 against PyTorch) →
//! [`calibrate`] → [`clip`] → [`quantize`] → write → [`vectors`] → [`report`] (with [`eval`]'s measures).
//!
//! Host only. On a bare-metal target (`target_os = "none"`: `cargo build --target <MCU>` at the
//! repository root, whose default members include the tools) the library is empty and the
//! binary is skipped (its `required-features`, see Cargo.toml), so such a build is the runtime's.
#![cfg_attr(target_os = "none", no_std)]
#![cfg(not(target_os = "none"))]

pub mod bleu;
pub mod budget;
pub mod calibrate;
pub mod check;
pub mod classify;
pub mod clip;
pub mod convert;
pub mod eval;
pub mod export;
pub mod generate;
pub mod gptq;
pub mod host;
pub mod implied;
pub mod import;
pub mod memory_map;
pub mod quantize;
pub mod report;
pub mod spm;
pub mod translate;
pub mod vectors;
pub mod wordpiece;
