//! Hostile blobs: every one gets a typed error from `Model::parse`, never a panic, and any blob
//! that does parse can be run without a panic, for every model kind.

mod common;

use core::mem::offset_of;

use common::{tiny_blob, tiny_classifier, tiny_config, tiny_lm, AlignedBuf, Rng};
use picoformer::blob::{self, reseal, ConfigRecord, Header, ModelKind, Tag, TokPart, ENTRY_LEN, HEADER_LEN};
use picoformer::{Classifier, Error, Generator, Model, Sampler, Sampling, Translator};

/// Where a config field sits in the blob.
fn cfg(field: usize) -> usize {
    offset_of!(Header, config) + field
}

const COUNT: usize = offset_of!(Header, tensor_count);

/// Whatever parses must also run, whatever its kind, without a panic.
fn run_if_valid(b: &[u8]) -> Result<(), Error> {
    let m = Model::parse(b)?;
    let c = *m.config();
    let ids: Vec<u16> = (0..c.max_len.min(5)).map(|i| (i % c.vocab.max(1)) as u16).collect();
    let mut out = vec![0u16; c.max_len];
    match c.kind {
        ModelKind::EncoderDecoder => {
            let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(&m, 2));
            let mut t = Translator::new(&m, arena.bytes_mut(), 2)?;
            t.encode(&ids)?;
            t.greedy(&mut out)?;
            t.beam_search(2, &mut out)?;
        }
        ModelKind::DecoderOnly => {
            let mut arena = AlignedBuf::zeroed(Generator::arena_bytes(&m, 2));
            let mut g = Generator::new(&m, arena.bytes_mut(), 2)?;
            g.prompt(&ids[..ids.len().min(c.max_len - 1)])?;
            while g.next_token()?.is_some() {}
            let mut s = Sampler::new(Sampling::default(), 1);
            g.prompt(&ids[..1])?;
            while g.sample_next(&mut s)?.is_some() {}
            g.beam_search(&ids[..2], 2, 4, &mut out)?;
        }
        ModelKind::EncoderOnly => {
            let mut arena = AlignedBuf::zeroed(Classifier::arena_bytes(&m));
            let mut k = Classifier::new(&m, arena.bytes_mut())?;
            if c.tokens() {
                k.classify_tokens(&ids)?;
            } else {
                k.classify_features(&vec![100i16; 4 * c.n_features])?;
            }
        }
    }
    Ok(())
}

fn table_end(b: &[u8]) -> usize {
    HEADER_LEN + ENTRY_LEN * u32::from_le_bytes(b[COUNT..COUNT + 4].try_into().unwrap()) as usize
}

fn kinds() -> [picoformer::blob::Config; 3] {
    [tiny_config(0), tiny_lm(), tiny_classifier()]
}

#[test]
fn the_tiny_blobs_are_valid() {
    for c in kinds() {
        for seed in [1, 2] {
            run_if_valid(tiny_blob(&c, seed).bytes()).unwrap();
        }
    }
}

#[test]
fn truncation_at_every_byte() {
    for c in kinds() {
        let blob = tiny_blob(&c, 1);
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
    for c in kinds() {
        let blob = tiny_blob(&c, 3);
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
        // only flag bits, ids and a few benign table bits can leave a valid model
        assert!(rejected > 15 * accepted, "{:?}: rejected {rejected}, accepted {accepted}", c.kind);
    }
}

#[test]
fn header_fields_zero_one_and_max() {
    let blob = tiny_blob(&tiny_config(0), 4);
    // (offset, width) of every header field after the checksum
    let mut fields: Vec<(usize, usize)> = (cfg(0)..cfg(8)).map(|o| (o, 1)).collect();
    fields.extend((cfg(8)..cfg(32)).step_by(4).map(|o| (o, 4)));
    fields.extend((cfg(32)..cfg(48)).step_by(2).map(|o| (o, 2)));
    fields.extend([(cfg(48), 4), (COUNT, 4), (COUNT + 4, 4)]);
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
            // values that still describe a consistent model: pooling and head codes (unused by
            // an encoder-decoder), one head, a special id moved onto another
            let f = off - cfg(0);
            let benign = matches!((f, v), (5 | 6, 0 | 1) | (32, 1) | (40, 0 | 1) | (42, 1) | (44, 0) | (46, 0 | 1));
            if r.is_ok() && !benign {
                panic!("config byte {f} = {v:#x} accepted");
            }
        }
    }
}

#[test]
fn wrong_version_and_magic() {
    let blob = tiny_blob(&tiny_config(0), 5);
    let mut a = AlignedBuf::from_bytes(blob.bytes());
    a.bytes_mut()[4..6].copy_from_slice(&1u16.to_le_bytes());
    reseal(a.bytes_mut());
    assert_eq!(Model::parse(a.bytes()).err(), Some(Error::UnsupportedVersion { found: 1, supported: blob::VERSION }));
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

const E_DIMS: usize = offset_of!(blob::Entry, dims);
const E_OFFSET: usize = offset_of!(blob::Entry, offset);
const E_BYTES: usize = offset_of!(blob::Entry, bytes);

fn entry_field(b: &mut [u8], i: usize, field_off: usize, v: u32) {
    let o = HEADER_LEN + ENTRY_LEN * i + field_off;
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn overlapping_out_of_range_and_misaligned_tensors() {
    let blob = tiny_blob(&tiny_config(0), 7);
    let b = blob.bytes();
    let entry = |i: usize| blob::read_entry(b, i).unwrap();
    let cases = [
        (3, entry(2).offset),     // tensor 3 starts where tensor 2 does: overlap
        (3, entry(3).offset + 4), // misaligned
        (3, b.len() as u32),      // past the end
        (3, u32::MAX - 7),        // offset + length overflows
        (0, 0),                   // over the header
    ];
    for (i, off) in cases {
        let mut a = AlignedBuf::from_bytes(b);
        entry_field(a.bytes_mut(), i, E_OFFSET, off);
        reseal(a.bytes_mut());
        assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadTensorRange { tag: entry(i).tag }), "entry {i} offset {off}");
    }
    // a byte length that disagrees with the shape
    let mut a = AlignedBuf::from_bytes(b);
    entry_field(a.bytes_mut(), 2, E_BYTES, 7);
    reseal(a.bytes_mut());
    assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadTensorShape { tag: entry(2).tag }));
    // a shape that disagrees with the config
    let mut a = AlignedBuf::from_bytes(b);
    entry_field(a.bytes_mut(), 0, E_DIMS, 17);
    reseal(a.bytes_mut());
    assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadTensorShape { tag: entry(0).tag }));
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
    let u32s = [
        (offset_of!(ConfigRecord, vocab), 70_000u32, "vocab_size"),
        (offset_of!(ConfigRecord, vocab), u32::MAX, "vocab_size"),
        (offset_of!(ConfigRecord, max_len), 1 << 20, "max_len"),
        (offset_of!(ConfigRecord, d_model), 1 << 30, "d_model"),
        (offset_of!(ConfigRecord, d_ff), u32::MAX, "dim_feedforward"),
        (offset_of!(ConfigRecord, n_outputs), 3, "n_outputs"),
    ];
    for (off, v, field) in u32s {
        let mut a = AlignedBuf::from_bytes(blob.bytes());
        a.bytes_mut()[cfg(off)..cfg(off) + 4].copy_from_slice(&v.to_le_bytes());
        reseal(a.bytes_mut());
        assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadConfig { field }), "{field} = {v}");
    }
    for (off, v, field) in [
        (offset_of!(ConfigRecord, n_enc), 13u16, "num_encoder_layers"),
        (offset_of!(ConfigRecord, n_enc), 11, "num_layers"),
        (offset_of!(ConfigRecord, nhead), 3, "nhead"),
        (offset_of!(ConfigRecord, n_kv_heads), 0, "num_kv_heads"),
        (offset_of!(ConfigRecord, n_kv_heads), 3, "num_kv_heads"),
    ] {
        let mut a = AlignedBuf::from_bytes(blob.bytes());
        a.bytes_mut()[cfg(off)..cfg(off) + 2].copy_from_slice(&v.to_le_bytes());
        reseal(a.bytes_mut());
        assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadConfig { field }), "{field} = {v}");
    }
    for (off, v, field) in [(offset_of!(ConfigRecord, kind), 3u8, "model_type"), (offset_of!(ConfigRecord, act), 9, "activation"), (offset_of!(ConfigRecord, kind), 2, "num_encoder_layers")] {
        let mut a = AlignedBuf::from_bytes(blob.bytes());
        a.bytes_mut()[cfg(off)] = v;
        reseal(a.bytes_mut());
        assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadConfig { field }), "{field} = {v}");
    }
    // a feature model has no vocabulary and no tokenizer: either one alone is refused
    let features = tiny_blob(&tiny_classifier(), 8);
    for (off, v) in [(offset_of!(ConfigRecord, vocab), 5u32), (offset_of!(ConfigRecord, tokenizer), 1)] {
        let mut a = AlignedBuf::from_bytes(features.bytes());
        if off == offset_of!(ConfigRecord, vocab) {
            a.bytes_mut()[cfg(off)..cfg(off) + 4].copy_from_slice(&v.to_le_bytes());
        } else {
            a.bytes_mut()[cfg(off)] = v as u8;
        }
        reseal(a.bytes_mut());
        assert_eq!(Model::parse(a.bytes()).err(), Some(Error::BadConfig { field: "vocab_size" }), "field at {off} = {v}");
    }
    // a tensor count that runs the table past the blob
    let mut a = AlignedBuf::from_bytes(blob.bytes());
    a.bytes_mut()[COUNT..COUNT + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    reseal(a.bytes_mut());
    assert!(matches!(Model::parse(a.bytes()).err(), Some(Error::Truncated { .. } | Error::BadConfig { .. })));
}

#[test]
fn hostile_quantization_parameters_and_vocab() {
    for c in kinds() {
        let blob = tiny_blob(&c, 9);
        let b = blob.bytes();
        let n = u32::from_le_bytes(b[COUNT..COUNT + 4].try_into().unwrap()) as usize;
        let mut checked = 0;
        for i in 0..n {
            let e = blob::read_entry(b, i).unwrap();
            let (off, len) = (e.offset as usize, e.bytes as usize);
            let tag = Tag::from_code(e.tag).unwrap();
            let mut a = AlignedBuf::from_bytes(b);
            let want: fn(&Error) -> bool = match tag {
                _ if e.dtype == 7 => {
                    // a requant shift of 100
                    a.bytes_mut()[off + 4..off + 8].copy_from_slice(&100i32.to_le_bytes());
                    |e| matches!(e, Error::BadQuantParam { .. })
                }
                Tag::Tokenizer(TokPart::Offsets) => {
                    a.bytes_mut()[off + 8..off + 12].copy_from_slice(&u32::MAX.to_le_bytes());
                    |e| matches!(e, Error::BadVocab { .. })
                }
                Tag::Tokenizer(TokPart::Sorted) => {
                    a.bytes_mut()[off..off + 2].copy_from_slice(&999u16.to_le_bytes());
                    |e| matches!(e, Error::BadVocab { .. })
                }
                Tag::Norm { part: blob::NormPart::Params, .. } | Tag::FinalNorm(_, blob::NormPart::Params) | Tag::Residual { .. } | Tag::Attention { .. } | Tag::Rope { .. } | Tag::FeatureQuant => {
                    // every record ends in a shift or a requant's shift, or an eps
                    a.bytes_mut()[off + len - 8..off + len].copy_from_slice(&[0xff; 8]);
                    |e| matches!(e, Error::BadQuantParam { .. })
                }
                _ => continue,
            };
            reseal(a.bytes_mut());
            let e = Model::parse(a.bytes()).err().unwrap_or_else(|| panic!("tensor {tag} accepted"));
            assert!(want(&e), "tensor {tag}: {e:?}");
            checked += 1;
        }
        assert!(checked > 10, "{checked}");
    }
}

#[test]
fn random_weights_never_panic() {
    // Valid structure, arbitrary weight bytes: parse succeeds and running must not panic.
    for c in kinds() {
        let blob = tiny_blob(&c, 10);
        let end = table_end(blob.bytes());
        let mut rng = Rng(99);
        for _ in 0..30 {
            let mut a = AlignedBuf::from_bytes(blob.bytes());
            for _ in 0..200 {
                let i = end + (rng.next() as usize % (a.bytes().len() - end));
                a.bytes_mut()[i] = rng.next() as u8;
            }
            reseal(a.bytes_mut());
            let _ = run_if_valid(a.bytes());
        }
    }
}

/// The largest lengths, FFN widths and output counts are accepted, one more is not.
#[test]
fn config_bounds_are_inclusive() {
    let mut c = tiny_config(0);
    c.validate().unwrap();
    c.max_len = blob::MAX_LEN;
    assert_eq!(c.validate(), Ok(()));
    c.max_len = blob::MAX_LEN + 1;
    assert_eq!(c.validate(), Err(Error::BadConfig { field: "max_len" }));
    let mut c = tiny_config(0);
    c.d_ff = blob::MAX_D_FF;
    assert_eq!(c.validate(), Ok(()));
    c.d_ff = blob::MAX_D_FF + 1;
    assert_eq!(c.validate(), Err(Error::BadConfig { field: "dim_feedforward" }));
    let mut c = tiny_classifier();
    c.n_outputs = blob::MAX_OUTPUTS;
    assert_eq!(c.validate(), Ok(()));
    for n in [blob::MAX_OUTPUTS + 1, blob::MAX_OUTPUTS + 2, 0] {
        c.n_outputs = n;
        assert_eq!(c.validate(), Err(Error::BadConfig { field: "n_outputs" }), "{n}");
    }
}
