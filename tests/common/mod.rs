//! Tiny models of every kind for the runtime's tests: random int8 weights and valid
//! quantization parameters from the blob format's own generator (`blob::synthetic`), so
//! bad-blob tests run over every byte quickly.
#![allow(dead_code)]

use picoformer::blob::{self, Config};

#[allow(unused_imports)] // each test binary uses some
pub use picoformer::blob::synthetic::{tiny_classifier, tiny_config, tiny_lm, with_act};

pub use picoformer::align::AlignedBuf;

/// A small deterministic generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// A valid blob for `c` with random weights from `seed`: odd seeds row-major, even Block4.
pub fn tiny_blob(c: &Config, seed: u64) -> AlignedBuf {
    AlignedBuf::from_bytes(&blob::synthetic::random_blob(c, seed, seed % 2 == 0).unwrap())
}
