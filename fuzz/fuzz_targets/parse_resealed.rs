//! Mutations of a valid tiny blob (the seed corpus) with the checksum recomputed, so the
//! fuzzer gets past the CRC into the verifier and, when the verifier accepts, through the
//! whole forward pass: encode, greedy and beam 2 in an exactly sized arena. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picoformer_fuzz::{reseal_in_place, run_if_valid, AlignedBuf};

fuzz_target!(|data: &[u8]| {
    let mut blob = AlignedBuf::from_bytes(data);
    reseal_in_place(blob.bytes_mut());
    let _ = run_if_valid(blob.bytes());
});
