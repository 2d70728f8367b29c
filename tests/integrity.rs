//! The field integrity check (`Model::integrity`): a pass over an intact blob ends in `Done` for
//! every chunk size, and any flipped bit after `parse` is caught as a typed error.

mod common;

use common::{tiny_blob, tiny_classifier, tiny_config, tiny_lm, Rng};
use picoformer::blob::{self, HEADER_LEN};
use picoformer::{Error, Integrity, Model, Progress};

/// Runs one pass of `check` over `bytes` in chunks of `chunk`; returns the result and the
/// number of steps it took.
fn pass(check: &mut Integrity, bytes: &[u8], chunk: usize) -> (Result<(), Error>, usize) {
    let mut at = None;
    for steps in 1..=bytes.len() + 1 {
        match check.step_bytes(bytes, chunk) {
            Ok(Progress::Done) => return (Ok(()), steps),
            Ok(Progress::Checking { done, total }) => {
                assert_eq!(total, check.pass_bytes() + blob::CRC_START);
                if let Some(prev) = at {
                    assert_eq!(done, prev + chunk.max(1));
                }
                assert!(done < total);
                at = Some(done);
            }
            Err(e) => return (Err(e), steps),
        }
    }
    panic!("no end after {} steps", bytes.len() + 1);
}

#[test]
fn an_intact_blob_passes_in_any_chunk_size_and_again() {
    for c in [tiny_config(0), tiny_lm(), tiny_classifier()] {
        let b = tiny_blob(&c, 3);
        let m = Model::parse(b.bytes()).unwrap();
        let mut check = m.integrity();
        let body = b.len() - blob::CRC_START;
        assert_eq!(check.pass_bytes(), body);
        for chunk in [0, 1, 7, 64, 4096, body - 1, body, body + 1, usize::MAX] {
            let (r, steps) = pass(&mut check, b.bytes(), chunk);
            assert_eq!(r, Ok(()), "chunk {chunk}");
            assert_eq!(steps, body.div_ceil(chunk.max(1)), "chunk {chunk}");
        }
        // through the model itself, twice in a row: a pass restarts after Done
        for _ in 0..2 {
            let mut steps = 0;
            while check.step(&m, 100).unwrap() != Progress::Done {
                steps += 1;
            }
            assert_eq!(steps + 1, body.div_ceil(100));
        }
    }
}

#[test]
fn bytes_past_the_stated_length_are_not_checked() {
    let b = tiny_blob(&tiny_config(0), 5);
    let mut longer = common::AlignedBuf::from_bytes(&[b.bytes(), &[0xa5; 24]].concat());
    let m = Model::parse(longer.bytes()).unwrap();
    let mut check = m.integrity();
    assert_eq!(check.pass_bytes(), b.len() - blob::CRC_START);
    let n = longer.len();
    longer.bytes_mut()[n - 1] ^= 1;
    assert_eq!(pass(&mut check, longer.bytes(), 512).0, Ok(()));
}

#[test]
fn every_flipped_bit_is_caught() {
    let mut rng = Rng(0x1f2e3d4c);
    for c in [tiny_config(0), tiny_lm(), tiny_classifier()] {
        let mut b = tiny_blob(&c, 8);
        let crc = Model::parse(b.bytes()).unwrap().integrity();
        // every bit of the header, then random bits of the body
        let bits: Vec<usize> = (0..HEADER_LEN * 8).chain((0..300).map(|_| rng.range(HEADER_LEN as i64 * 8, b.len() as i64 * 8 - 1) as usize)).collect();
        for bit in bits {
            let (byte, mask) = (bit / 8, 1u8 << (bit % 8));
            b.bytes_mut()[byte] ^= mask;
            let mut check = crc.clone();
            let (r, steps) = pass(&mut check, b.bytes(), 256);
            assert_eq!(steps, (b.len() - blob::CRC_START).div_ceil(256), "bit {bit}: the error comes at the end of the pass");
            let want = match byte {
                0..4 => Err(Error::BadMagic),
                4..6 => Err(Error::UnsupportedVersion { found: u16::from_le_bytes([b.bytes()[4], b.bytes()[5]]), supported: blob::VERSION }),
                6..8 => Err(Error::BadConfig { field: "header length" }),
                8..12 => Err(Error::BadConfig { field: "total length" }),
                _ => {
                    let stored = u32::from_le_bytes(b.bytes()[12..16].try_into().unwrap());
                    let computed = blob::CRC.checksum(&b.bytes()[16..]);
                    assert!(stored != computed, "bit {bit}");
                    Err(Error::ChecksumMismatch { stored, computed })
                }
            };
            assert_eq!(r, want, "bit {bit}");
            // after the error the next pass starts over and fails the same way
            assert_eq!(pass(&mut check, b.bytes(), 4096).0, want, "bit {bit}");
            b.bytes_mut()[byte] ^= mask;
            assert_eq!(pass(&mut check, b.bytes(), 4096).0, Ok(()), "bit {bit} restored");
        }
    }
}

#[test]
fn a_flip_mid_pass_is_caught_by_that_pass() {
    let mut b = tiny_blob(&tiny_lm(), 4);
    let mut check = Model::parse(b.bytes()).unwrap().integrity();
    assert!(matches!(check.step_bytes(b.bytes(), 1000), Ok(Progress::Checking { done: 1016, .. })));
    // a flip behind the pass's position is seen by the next pass, one ahead by this one
    b.bytes_mut()[2000] ^= 0x10;
    assert!(matches!(pass(&mut check, b.bytes(), 1000).0, Err(Error::ChecksumMismatch { .. })));
}

#[test]
fn a_short_or_foreign_blob_is_a_typed_error() {
    let b = tiny_blob(&tiny_config(0), 1);
    let m = Model::parse(b.bytes()).unwrap();
    let mut check = m.integrity();
    let total = b.len();
    assert_eq!(check.step_bytes(&b.bytes()[..total - 1], usize::MAX), Err(Error::Truncated { needed: total, got: total - 1 }));
    assert_eq!(check.step_bytes(&[], 1), Err(Error::Truncated { needed: total, got: 0 }));
    // an empty model has no blob to check
    let empty = Model::default();
    assert_eq!(empty.integrity().step(&empty, 64), Err(Error::Truncated { needed: HEADER_LEN, got: 0 }));
    assert_eq!(empty.integrity().pass_bytes(), 0);
    assert_eq!(format!("{:?}", empty.integrity()), "Integrity { crc: 0, total: 0, pos: 16 }");
    // another model's blob: a different length or a different CRC
    let other = tiny_blob(&tiny_classifier(), 1);
    let r = pass(&mut check, other.bytes(), 1 << 20).0;
    assert!(matches!(r, Err(Error::BadConfig { field: "total length" } | Error::ChecksumMismatch { .. } | Error::Truncated { .. })), "{r:?}");
}

/// The QEMU boards' test (`boards/common/src/on_target.rs`), on the host so Miri checks its
/// `unsafe`: a `'static` view of a RAM copy made from a raw pointer, parsed; the model dropped;
/// a bit flipped through the pointer; a fresh view checked.
#[test]
fn the_firmware_flip_through_a_raw_pointer() {
    let b = tiny_blob(&tiny_classifier(), 2);
    let n = b.len();
    // the boards' arena is a `'static`; a local buffer here, so Miri sees no leak
    let mut ram = common::AlignedBuf::zeroed(n + 64);
    let copy = &mut ram.bytes_mut()[..n];
    copy.copy_from_slice(b.bytes());
    let at = copy.as_mut_ptr();
    // SAFETY: as in on_target.rs: `at..at + n` is `copy`; the view ends with `slot`'s reset.
    let view: &[u8] = unsafe { core::slice::from_raw_parts(at, n) };
    let mut slot = Model::default();
    Model::parse_into(view, &mut slot).unwrap();
    let mut check = slot.integrity();
    let mut later = slot.integrity();
    assert_eq!(pass_model(&mut check, &slot), Ok(()));
    slot = Model::default();
    // SAFETY: `n / 2 < n`; nothing views the copy now.
    unsafe { *at.add(n / 2) ^= 1 << 3 };
    // SAFETY: as above; nothing writes to the copy while this view lives.
    let flipped: &[u8] = unsafe { core::slice::from_raw_parts(at, n) };
    assert!(matches!(pass(&mut later, flipped, 4096).0, Err(Error::ChecksumMismatch { .. })));
    assert_eq!(slot.integrity().pass_bytes(), 0);
}

fn pass_model(check: &mut Integrity, m: &Model<'_>) -> Result<(), Error> {
    loop {
        if check.step(m, 4096)? == Progress::Done {
            return Ok(());
        }
    }
}
