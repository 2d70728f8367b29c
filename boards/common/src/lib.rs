//! What every picoformer board runs, written once: the blob in flash ([`assets`]), the
//! interactive translator over a UART ([`app`], over the [`uart::Uart`] trait) and, with feature
//! `qemu` (default), the QEMU boards' on-target test.
//!
//! A board crate holds glue only: the entry point, the log sink (a defmt global logger), a
//! counter, its UART if it runs [`app`], and the exit.
//!
//! The on-target test: a QEMU board calls [`run`] with its instruction counter (a [`Platform`])
//! and exits with code 0 if `run` returned `true`, 1 otherwise; a panic exits with code 101 (the
//! handler lives here). The workload ([`workload`]) translates the test-vector sentences with the
//! int8 model and checks source ids, output ids and a digest of every decoder step's logits
//! against the host's. The report: one block per sentence, then totals, RAM and stack.
//!
//! The real boards (NUCLEO-H743ZI, ESP32-C3) use the crate without `qemu`: [`assets::BLOB`],
//! [`app`] and [`uart`] only, with their own panic handlers and arenas.
#![no_std]

pub mod app;
pub mod assets;
#[cfg(all(feature = "qemu", target_arch = "arm"))]
pub mod cmsdk_uart;
#[cfg(feature = "qemu")]
pub mod mem;
#[cfg(feature = "qemu")]
mod on_target;
#[cfg(feature = "qemu")]
pub mod sentence;
#[cfg(all(feature = "qemu", target_arch = "arm"))]
pub mod systick;
pub mod uart;
#[cfg(feature = "qemu")]
pub mod workload;

#[cfg(all(feature = "qemu", target_os = "none"))]
mod panic;

#[cfg(feature = "qemu")]
pub use on_target::{run, Platform, TARGET_CASES};
