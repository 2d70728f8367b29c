//! Hostile blobs: every one gets a typed error from `Model::parse`, never a panic, and any blob
//! that does parse can be run without a panic.

mod common;

use common::{tiny_blob, tiny_config, AlignedBuf, Rng};
use picoformer::blob::{self, reseal, ENTRY_LEN, HEADER_LEN};
use picoformer::{Error, Model, Translator};

/// Whatever parses must also run: encode, greedy and beam search without a panic.
fn run_if_valid(b: &[u8]) -> Result<(), Error> {
    let m = Model::parse(b)?;
    let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 2));
    let mut t = Translator::new(&m, arena.bytes_mut(), 2)?;
    let src: Vec<u16> = (0..m.config().max_len.min(5)).map(|i| (i % m.config().vocab) as u16).collect();
    t.encode(&src)?;
    let mut out = vec![0u16; m.config().max_len];
    t.greedy(&mut out)?;
    t.encode(&src)?;
    t.beam_search(2, &mut out)?;
    Ok(())
}

fn table_end(b: &[u8]) -> usize {
    HEADER_LEN + ENTRY_LEN * u32::from_le_bytes(b[56..60].try_into().unwrap()) as usize
}

#[test]
fn the_tiny_blob_is_valid() {
    let blob = tiny_blob(&tiny_config(0), 1);
    run_if_valid(blob.bytes()).unwrap();
}

#[test]
fn truncation_at_every_byte() {
    let blob = tiny_blob(&tiny_config(0), 1);
    let b = blob.bytes();
    for n in 0..b.len() {
        match Model::parse(&b[..n]) {
            Err(Error::Truncated { needed, got }) => {
                assert_eq!(got, n);
                assert!(needed > n);
            }
            other => panic!("truncated to {n}: {other:?}"),
        }
    }
    // trailing bytes (flash padding) are ignored
    let mut longer = b.to_vec();
    longer.extend_from_slice(&[0xff; 13]);
    Model::parse(AlignedBuf::from_bytes(&longer).bytes()).unwrap();
}

#[test]
fn single_bit_flips_in_header_and_table() {
    let blob = tiny_blob(&tiny_config(0), 2);
    let end = table_end(blob.bytes());
    for byte in 0..end {
        for bit in 0..8 {
            let mut a = AlignedBuf::from_bytes(blob.bytes());
            a.bytes_mut()[byte] ^= 1 << bit;
            let e = Model::parse(a.bytes()).err();
            let ok = match byte {
                0..=3 => e == Some(Error::BadMagic),
                4..=5 => matches!(e, Some(Error::UnsupportedVersion { .. })),
                6..=7 => e == Some(Error::BadConfig { field: "header length" }),
                8..=11 => matches!(e, Some(Error::Truncated { .. } | Error::ChecksumMismatch { .. } | Error::BadConfig { .. })),
                _ => matches!(e, Some(Error::ChecksumMismatch { .. })),
            };
            assert!(ok, "flip byte {byte} bit {bit}: {e:?}");
        }
    }
}

#[test]
fn resealed_flips_are_errors_or_harmless() {
    // A valid checksum over hostile content: the verifier itself must catch it.
    let blob = tiny_blob(&tiny_config(0), 3);
    let end = table_end(blob.bytes());
    let (mut rejected, mut accepted) = (0, 0);
    for byte in 16..end {
        for bit in 0..8 {
            let mut a = AlignedBuf::from_bytes(blob.bytes());
            a.bytes_mut()[byte] ^= 1 << bit;
            reseal(a.bytes_mut());
            match run_if_valid(a.bytes()) {
                Ok(()) => accepted += 1,
                Err(_) => rejected += 1,
            }
        }
    }
    // only flag bits (norm_first, gelu…) and a few benign table bits can leave a valid model
    assert!(rejected > 20 * accepted, "rejected {rejected}, accepted {accepted}");
}

#[test]
fn header_fields_zero_one_and_max() {
    let blob = tiny_blob(&tiny_config(0), 4);
    // (offset, width) of every header field after the checksum
    let mut fields: Vec<(usize, usize)> = (16..44).step_by(4).map(|o| (o, 4)).collect();
    fields.extend((44..52).step_by(2).map(|o| (o, 2)));
    fields.extend([(52, 4), (56, 4), (60, 4)]);
    for (off, w) in fields {
        for v in [0u64, 1, u64::MAX] {
            let mut a = AlignedBuf::from_bytes(blob.bytes());
            let bytes = v.to_le_bytes();
            if a.bytes()[off..off + w] == bytes[..w] {
                continue; // the field already holds this value
            }
            a.bytes_mut()[off..off + w].copy_from_slice(&bytes[..w]);
            reseal(a.bytes_mut());
            let r = run_if_valid(a.bytes());
            // values that still describe a consistent model: one head, pad/unk at their own
            // ids or a special id moved onto another one, flags without the tokenizer options
            let benign = matches!((off, v), (20, 1) | (44, 0 | 1) | (46, 1) | (48, 0) | (50, 0 | 1) | (52, 0 | 1));
            if !benign {
                println!("field at {off} = {v:#x}: {r:?}");
            }
            assert!(r.is_err() || benign, "field at {off} = {v:#x} accepted");
        }
    }
}

#[test]
fn wrong_version_and_magic() {
    let blob = tiny_blob(&tiny_config(0), 5);
    let mut a = AlignedBuf::from_bytes(blob.bytes());
    a.bytes_mut()[4..6].copy_from_slice(&2u16.to_le_bytes());
    reseal(a.bytes_mut());
    assert_eq!(Model::parse(a.bytes()).err(), Some(Error::UnsupportedVersion { found: 2, supported: blob::VERSION }));
    let mut a = AlignedBuf::from_bytes(blob.bytes());
    a.bytes_mut()[0] = b'Q';
    assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadMagic));
}

#[test]
fn misaligned_blob() {
    let blob = tiny_blob(&tiny_config(0), 6);
    // the same bytes, one byte past the boundary
    let mut a = AlignedBuf::zeroed(blob.bytes().len() + 1);
    a.bytes_mut()[1..].copy_from_slice(blob.bytes());
    assert_eq!(Model::parse(&a.bytes()[1..]).err(), Some(Error::MisalignedBlob { align: 8 }));
}

fn entry_field(b: &mut [u8], i: usize, field_off: usize, v: u32) {
    let o = HEADER_LEN + ENTRY_LEN * i + field_off;
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn overlapping_out_of_range_and_misaligned_tensors() {
    let blob = tiny_blob(&tiny_config(0), 7);
    let b = blob.bytes();
    let offset_of = |i: usize| u32::from_le_bytes(b[HEADER_LEN + ENTRY_LEN * i + 16..][..4].try_into().unwrap());
    let tag_of = |i: usize| u32::from_le_bytes(b[HEADER_LEN + ENTRY_LEN * i..][..4].try_into().unwrap());
    let cases = [
        (3, offset_of(2)),          // tensor 3 starts where tensor 2 does: overlap
        (3, offset_of(3) + 4),      // misaligned
        (3, b.len() as u32),        // past the end
        (3, u32::MAX - 7),          // offset + length overflows
        (0, 0),                     // over the header
    ];
    for (i, off) in cases {
        let mut a = AlignedBuf::from_bytes(b);
        entry_field(a.bytes_mut(), i, 16, off);
        reseal(a.bytes_mut());
        assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadTensorRange { tag: tag_of(i) }), "entry {i} offset {off}");
    }
    // a byte length that disagrees with the shape
    let mut a = AlignedBuf::from_bytes(b);
    entry_field(a.bytes_mut(), 2, 20, 7);
    reseal(a.bytes_mut());
    assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadTensorShape { tag: tag_of(2) }));
    // a shape that disagrees with the config
    let mut a = AlignedBuf::from_bytes(b);
    entry_field(a.bytes_mut(), 0, 8, 17);
    reseal(a.bytes_mut());
    assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadTensorShape { tag: tag_of(0) }));
    // swapped table entries
    let mut a = AlignedBuf::from_bytes(b);
    let (x, y) = (HEADER_LEN + ENTRY_LEN, HEADER_LEN + 2 * ENTRY_LEN);
    let e1: Vec<u8> = a.bytes()[x..x + ENTRY_LEN].to_vec();
    a.bytes_mut().copy_within(y..y + ENTRY_LEN, x);
    a.bytes_mut()[y..y + ENTRY_LEN].copy_from_slice(&e1);
    reseal(a.bytes_mut());
    assert!(matches!(Model::parse(a.bytes()).err(), Some(Error::UnexpectedTensor { index: 1, .. })));
}

#[test]
fn huge_vocab_and_lengths() {
    let blob = tiny_blob(&tiny_config(0), 8);
    for (off, v, field) in [
        (36, 70_000u32, "vocab_size"),
        (36, u32::MAX, "vocab_size"),
        (40, 1 << 20, "max_len"),
        (16, 1 << 30, "d_model"),
        (32, u32::MAX, "dim_feedforward"),
        (24, 7, "num_encoder_layers"),
        (20, 3, "nhead"),
    ] {
        let mut a = AlignedBuf::from_bytes(blob.bytes());
        a.bytes_mut()[off..off + 4].copy_from_slice(&v.to_le_bytes());
        reseal(a.bytes_mut());
        assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadConfig { field }), "{field} = {v}");
    }
    // a tensor count that runs the table past the blob
    let mut a = AlignedBuf::from_bytes(blob.bytes());
    a.bytes_mut()[56..60].copy_from_slice(&u32::MAX.to_le_bytes());
    reseal(a.bytes_mut());
    assert!(matches!(Model::parse(a.bytes()).err(), Some(Error::Truncated { .. } | Error::BadConfig { .. })));
}

#[test]
fn hostile_quantization_parameters_and_vocab() {
    let blob = tiny_blob(&tiny_config(0), 9);
    let b = blob.bytes();
    let n = u32::from_le_bytes(b[56..60].try_into().unwrap()) as usize;
    let entry = |i: usize| {
        let o = HEADER_LEN + ENTRY_LEN * i;
        let u = |k: usize| u32::from_le_bytes(b[o + k..o + k + 4].try_into().unwrap());
        (u(0), u16::from_le_bytes(b[o + 4..o + 6].try_into().unwrap()), u(16) as usize, u(20) as usize)
    };
    for i in 0..n {
        let (tag, dtype, off, len) = entry(i);
        let kind = tag & 0xffff;
        let group = tag >> 24;
        let mut a = AlignedBuf::from_bytes(b);
        let want: Option<fn(&Error) -> bool> = if dtype == 7 {
            // a requant shift of 100
            a.bytes_mut()[off + 4..off + 8].copy_from_slice(&100i32.to_le_bytes());
            Some(|e| matches!(e, Error::BadQuantParam { .. }))
        } else if group == blob::tag::TOK && kind == blob::tag::TOK_OFFSETS {
            a.bytes_mut()[off + 8..off + 12].copy_from_slice(&u32::MAX.to_le_bytes());
            Some(|e| matches!(e, Error::BadVocab { .. }))
        } else if group == blob::tag::TOK && kind == blob::tag::TOK_SORTED {
            a.bytes_mut()[off..off + 2].copy_from_slice(&999u16.to_le_bytes());
            Some(|e| matches!(e, Error::BadVocab { .. }))
        } else if kind == blob::tag::SCALARS || (dtype == 3 && matches!(kind, 0x40..=0x42 | 6 | 7)) {
            // last scalar of a layer norm is eps, the one before the shift; scalars end in a shift
            a.bytes_mut()[off + len - 8..off + len].copy_from_slice(&[0xff; 8]);
            Some(|e| matches!(e, Error::BadQuantParam { .. }))
        } else {
            None
        };
        let Some(want) = want else { continue };
        reseal(a.bytes_mut());
        let e = Model::parse(a.bytes()).err().unwrap_or_else(|| panic!("tensor {tag:#x} accepted"));
        assert!(want(&e), "tensor {tag:#x}: {e:?}");
    }
}

#[test]
fn random_weights_never_panic() {
    // Valid structure, arbitrary weight bytes: parse succeeds and decoding must not panic.
    let blob = tiny_blob(&tiny_config(0), 10);
    let end = table_end(blob.bytes());
    let mut rng = Rng(99);
    for _ in 0..50 {
        let mut a = AlignedBuf::from_bytes(blob.bytes());
        for _ in 0..200 {
            let i = end + (rng.next() as usize % (a.bytes().len() - end));
            a.bytes_mut()[i] = rng.next() as u8;
        }
        reseal(a.bytes_mut());
        let _ = run_if_valid(a.bytes());
    }
}
