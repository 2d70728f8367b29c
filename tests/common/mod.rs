//! A tiny hand-made model for the runtime's tests: random int8 weights and valid quantization
//! parameters, built with the blob writer, so bad-blob tests run over every byte quickly.
#![allow(dead_code)]

use picoformer::blob::{self, tag, Config, DType, TensorData, TensorSpec};
use picoformer::quant::Requant;
use picoformer::tokenizer::SCORE_SCALE_BITS;

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

/// The tiny vocabulary: control pieces, then normal pieces.
pub const PIECES: [&str; 16] = [
    "<pad>", "<unk>", "<s>", "</s>", "▁ein", "▁hund", "▁a", "▁dog", "e", "i", "n", "h", "u", "d", "▁", "s",
];

pub fn tiny_config(flags: u32) -> Config {
    Config {
        d_model: 8,
        nhead: 2,
        n_enc: 1,
        n_dec: 2,
        d_ff: 16,
        vocab: PIECES.len(),
        max_len: 8,
        pad: 0,
        unk: 1,
        bos: 2,
        eos: 3,
        flags: flags | blob::FLAG_ADD_DUMMY_PREFIX | blob::FLAG_REMOVE_EXTRA_WS,
    }
}

fn rq_bytes(r: Requant) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&r.mult.to_le_bytes());
    b[4..].copy_from_slice(&r.shift.to_le_bytes());
    b
}

fn i32s(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A valid blob for `c` with random weights from `seed`.
pub fn tiny_blob(c: &Config, seed: u64) -> AlignedBuf {
    let mut rng = Rng(seed | 1);
    // tokenizer tables
    let mut offsets = vec![0u32];
    let mut bytes = Vec::new();
    for p in PIECES {
        bytes.extend_from_slice(p.as_bytes());
        offsets.push(bytes.len() as u32);
    }
    let scores: Vec<i32> = (0..PIECES.len()).map(|i| if i < 4 { 0 } else { -((i as i32) << SCORE_SCALE_BITS) / 4 }).collect();
    let mut sorted: Vec<u16> = (4..PIECES.len() as u16).collect();
    sorted.sort_by_key(|&i| PIECES[i as usize].as_bytes());

    let mut specs = Vec::new();
    blob::expected_tensors(c, bytes.len(), sorted.len(), |s| {
        specs.push(s);
        Ok(())
    })
    .unwrap();
    let d = c.d_model;
    let data: Vec<Vec<u8>> = specs
        .iter()
        .map(|s: &TensorSpec| {
            let n = s.dims[0] * s.dims[1];
            let kind = s.tag & 0xffff;
            let group = s.tag >> 24;
            match (group, kind, s.dtype) {
                (tag::TOK, tag::TOK_OFFSETS, _) => offsets.iter().flat_map(|x| x.to_le_bytes()).collect(),
                (tag::TOK, tag::TOK_BYTES, _) => bytes.clone(),
                (tag::TOK, tag::TOK_SCORES, _) => i32s(&scores),
                (tag::TOK, tag::TOK_SORTED, _) => sorted.iter().flat_map(|x| x.to_le_bytes()).collect(),
                (_, tag::SCALARS, _) => {
                    // requant pairs and residual triples, in the layout model.rs reads
                    let rq = |m: f64| {
                        let r = Requant::from_real(m);
                        [r.mult, r.shift]
                    };
                    let res = [3 << 20, 2 << 20, 22];
                    let v: Vec<i32> = match (group, n) {
                        (tag::GLOBAL, _) => rq(0.05).to_vec(),
                        (tag::ENC, _) => [rq(0.02), rq(0.5)].concat().into_iter().chain(res).chain(res).collect(),
                        _ => [rq(0.02), rq(0.5)].concat().into_iter().chain(res).chain(rq(0.03)).chain(rq(0.4)).chain(res).chain(res).collect(),
                    };
                    assert_eq!(v.len(), n, "scalars of {:#x}", s.tag);
                    i32s(&v)
                }
                (_, tag::LN1 | tag::LN2 | tag::LN3 | tag::ENC_NORM | tag::DEC_NORM, DType::I32) => {
                    let mut v: Vec<i32> = (0..d).map(|_| rng.range(1 << 20, 3 << 20) as i32).collect();
                    v.extend((0..d).map(|_| rng.range(-500, 500) as i32));
                    v.push(24);
                    v.push(1);
                    i32s(&v)
                }
                (_, _, DType::I8) => (0..n).map(|_| rng.range(-127, 127) as u8).collect(),
                (_, _, DType::I16) => (0..n).flat_map(|_| (rng.range(-3000, 3000) as i16).to_le_bytes()).collect(),
                (_, _, DType::I32) => i32s(&(0..n).map(|_| rng.range(-2000, 2000) as i32).collect::<Vec<_>>()),
                (_, _, DType::Requant) => (0..n).flat_map(|_| rq_bytes(Requant::from_real(rng.range(1, 100) as f64 * 1e-4))).collect(),
                _ => vec![0; s.bytes()],
            }
        })
        .collect();
    // int8 matrices whose shape allows it are stored Block4, as the converter does
    let tensors: Vec<TensorData<'_>> = specs
        .iter()
        .zip(&data)
        .map(|(&spec, d)| {
            let block = spec.dtype == DType::I8 && spec.dims[0] % 4 == 0 && spec.dims[1] % 4 == 0 && seed % 2 == 0;
            TensorData { spec, layout: block as u16, data: d }
        })
        .collect();
    let mut out = vec![0u8; blob::blob_len(&tensors)];
    let n = blob::write(c, &tensors, &mut out).unwrap();
    out.truncate(n);
    AlignedBuf::from_bytes(&out)
}
