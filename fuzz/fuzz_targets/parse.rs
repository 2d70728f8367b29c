//! Arbitrary bytes as a blob: `Model::parse` returns a typed error or a model, never panics.
//! Anything that parses is run too (encode, greedy, beam 2).
#![no_main]

use libfuzzer_sys::fuzz_target;
use picoformer_fuzz::{run_if_valid, AlignedBuf};

fuzz_target!(|data: &[u8]| {
    let blob = AlignedBuf::from_bytes(data);
    let _ = run_if_valid(blob.bytes());
});
