#![cfg_attr(not(test), no_std)]
#![doc = include_str!("../README.md")]
// The runtime must not panic on any input: no unwrap, expect, panic or unchecked indexing
// outside tests (issue: untrusted blobs and inputs).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod align;
mod arena;
mod batch;
pub mod beam;
pub mod blob;
mod classify;
mod decoder;
mod error;
mod forward;
mod generate;
pub mod kernels;
mod kv;
pub mod model;
pub mod observe;
pub mod quant;
pub mod sample;
#[cfg(feature = "reference")]
#[allow(clippy::indexing_slicing)] // host/FPU-board reference over converter-checked shapes
pub mod reference;
#[cfg(any(test, feature = "selftest"))]
#[allow(clippy::indexing_slicing)] // fixed-size buffers of its own constants, no outside input
pub mod selftest;
pub mod tokenizer;
mod translate;
pub mod vectors;

pub use arena::{Phase, Region};
pub use error::Error;
pub use model::Model;
pub use blob::integrity::{Integrity, Progress};
pub use batch::{Batch, MAX_LANES};
pub use beam::{argmax, MAX_BEAM};
pub use classify::Classifier;
pub use generate::Generator;
pub use sample::{Rng64, Sampler, Sampling};
pub use translate::Translator;

/// A token id. Vocabularies are at most 65,535 pieces.
pub type TokenId = u16;

#[cfg(target_endian = "big")]
compile_error!("picoformer reads its blob in place and assumes a little-endian target");
