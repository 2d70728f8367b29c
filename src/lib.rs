#![cfg_attr(not(test), no_std)]
#![doc = include_str!("../README.md")]

#[cfg(feature = "alloc")]
extern crate alloc;

mod arena;
pub mod blob;
mod error;
mod forward;
pub mod kernels;
pub mod model;
pub mod observe;
pub mod quant;
#[cfg(feature = "reference")]
pub mod reference;
pub mod tokenizer;
mod translate;
pub mod vectors;

pub use error::Error;
pub use model::Model;
pub use translate::{argmax, Translator, MAX_BEAM};

/// A token id. Vocabularies are at most 65,535 pieces.
pub type TokenId = u16;

#[cfg(target_endian = "big")]
compile_error!("picoformer reads its blob in place and assumes a little-endian target");
