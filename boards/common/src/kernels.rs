//! On-target check that every kernel fast path compiled for this core (the Cortex-M4/M7 SMLAD
//! linear kernel, assembly softmax, attention products and LayerNorm, the portable ones
//! elsewhere) is bit-exact with its plain
//! reference, on random shapes and extreme values. Host tests cannot run the DSP code; this
//! does, in QEMU.

use picoformer::kernels::attention::{attention, attention_ref, AttentionParams, Mask};
use picoformer::kernels::layernorm::LayerNorm;
use picoformer::kernels::layout::Layout;
use picoformer::kernels::linear::{linear_block4, linear_ref, Linear};
use picoformer::kernels::softmax::{softmax_u8, softmax_u8_ref};
use picoformer::quant::{Activation, Requant};

const K_MAX: usize = 96;
const N_MAX: usize = 24;
const ROWS: usize = 2;

/// xorshift32: the same numbers on every machine (also the benchmarks' inputs).
pub struct Rng(pub u32);

impl Rng {
    pub fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }

    /// Uniform in `-2^(bits-1) .. 2^(bits-1)`.
    pub fn signed(&mut self, bits: u32) -> i32 {
        (self.next() as i32) >> (32 - bits)
    }
}

#[repr(align(8))]
struct Buf<T, const N: usize>([T; N]);

/// Runs `trials` random linear layers through the reference and the fast path, with i32, i16
/// and i8 outputs; returns how many of those disagreed.
#[inline(never)] // its buffers live only while it runs, not under the translations
pub fn check_linear(trials: usize) -> usize {
    let mut rng = Rng(0x1234_5678);
    let mut w = Buf([0i8; N_MAX * K_MAX]);
    let mut x = Buf([0i16; ROWS * K_MAX]);
    let mut bias = [0i32; N_MAX];
    let mut rq = [Requant::default(); N_MAX];
    let mut mismatches = 0;
    for t in 0..trials {
        // every third layer has k % 32 == 0, the shape the fused whole-row path takes
        let k = if t % 3 == 0 { 32 * (1 + rng.next() as usize % (K_MAX / 32)) } else { 4 * (1 + rng.next() as usize % (K_MAX / 4)) };
        let n = 4 * (1 + rng.next() as usize % (N_MAX / 4));
        for v in w.0.iter_mut() {
            *v = rng.next() as i8;
        }
        for v in x.0.iter_mut() {
            *v = match rng.next() % 4 {
                0 => i16::MAX,
                1 => i16::MIN,
                _ => rng.next() as i16,
            };
        }
        for (b, r) in bias.iter_mut().zip(rq.iter_mut()) {
            *b = (rng.next() as i32) >> (rng.next() % 32);
            // half the trials keep every shift in 33..=44, so the fused-requant row path runs
            let shift = if (t / 2) % 2 == 0 { 33 + (rng.next() % 12) as i32 } else { 20 + (rng.next() % 24) as i32 };
            *r = Requant { mult: (1 << 30) | (rng.next() as i32 & 0x3fff_ffff), shift };
        }
        let l = Linear { w: &w.0[..n * k], layout: Layout::Block4, bias: &bias[..n], rq: &rq[..n], k, fast_rq: rq[..n].iter().all(|r| r.shift >= 33) };
        let rows = 1 + t % ROWS;
        let x = &x.0[..rows * k];
        mismatches += (!same::<i32>(&l, x, rows * n)) as usize;
        mismatches += (!same::<i16>(&l, x, rows * n)) as usize;
        mismatches += (!same::<i8>(&l, x, rows * n)) as usize;
    }
    mismatches
}

/// Reference and fast path agree on `len` outputs of type `O`.
fn same<O: Activation + PartialEq>(l: &Linear<'_>, x: &[i16], len: usize) -> bool {
    let (mut a, mut b) = ([O::default(); ROWS * N_MAX], [O::default(); ROWS * N_MAX]);
    linear_ref(l, x, &mut a[..len]);
    linear_block4(l, x, &mut b[..len]);
    a == b
}

/// Longest softmax row checked: covers every remainder of the 8- and 4-element loops.
const ROW_MAX: usize = 80;

/// Runs `trials` random softmax rows through the reference and the fast path (every length up
/// to `ROW_MAX`, shifts across `20..=62`, scores from near-uniform to the full `i32` range);
/// returns how many rows disagreed in the probabilities or the exponentials left in `scores`.
#[inline(never)] // its buffers live only while it runs, not under the translations
pub fn check_softmax(trials: usize) -> usize {
    let mut rng = Rng(0x9e37_79b9);
    let mut mismatches = 0;
    for t in 0..trials {
        let n = if t == 0 { 10 } else { 1 + t % ROW_MAX };
        let spread = rng.next() % 32;
        let mut a = [0i32; ROW_MAX];
        for v in a[..n].iter_mut() {
            *v = match rng.next() % 16 {
                0 => i32::MAX,
                1 => i32::MIN,
                _ => (rng.next() as i32) >> spread,
            };
        }
        let shift = if t % 4 == 3 { 20 + (rng.next() % 43) as i32 } else { 33 + (rng.next() % 30) as i32 };
        let mut rq = Requant { mult: (1 << 30) | (rng.next() as i32 & 0x3fff_ffff), shift };
        if t == 0 {
            // e = 2^15, 2^14, ..., 2^7, 2^7: Σe = 2^16 exactly, where ⌊2^32 / Σe⌋ needs the
            // reciprocal's +1 correction, or the last two probabilities round to 0 instead of 1
            for (j, v) in a[..10].iter_mut().enumerate() {
                *v = -4096 * j.min(8) as i32;
            }
            rq = Requant { mult: 1 << 30, shift: 36 };
        }
        let mut b = a;
        // the output starts at every byte offset, so the word stores run unaligned too
        let off = t % 4;
        let (mut pa, mut pb) = ([0u8; ROW_MAX + 4], [0u8; ROW_MAX + 4]);
        softmax_u8_ref(&mut a[..n], rq, &mut pa[off..off + n]);
        softmax_u8(&mut b[..n], rq, &mut pb[off..off + n]);
        mismatches += (a != b || pa != pb) as usize;
    }
    mismatches
}

/// Largest attention shapes checked: `d` = heads × d_head, keys, query rows.
const ATT_D: usize = 128;
const ATT_KEYS: usize = 21;
const ATT_ROWS: usize = 3;

/// Runs `trials` random attention calls through [`attention`] and [`attention_ref`]: 1, 2 or 4
/// heads of 1..=64 dimensions (multiples of 4 take the fast path, others must fall back), up to
/// `ATT_KEYS` keys (every remainder mod 4), causal and padding masks, extreme values. Returns
/// how many calls disagreed in the contexts or the probabilities left in `probs`.
#[inline(never)] // its buffers live only while it runs, not under the translations
pub fn check_attention(trials: usize) -> usize {
    let mut rng = Rng(0x2545_f491);
    let mut mismatches = 0;
    let (mut q, mut k, mut v) = ([0i8; ATT_ROWS * ATT_D], [0i8; ATT_KEYS * ATT_D], [0i8; ATT_KEYS * ATT_D]);
    for t in 0..trials {
        let heads = [1, 2, 4][t % 3];
        let dh = if t % 5 == 4 { 1 + rng.next() as usize % 32 } else { 4 * (1 + rng.next() as usize % 16) };
        let d = (heads * dh).min(ATT_D) / heads * heads;
        let (keys, rows) = (rng.next() as usize % (ATT_KEYS + 1), 1 + rng.next() as usize % ATT_ROWS);
        let mut fill = |buf: &mut [i8]| {
            for x in buf.iter_mut() {
                *x = match rng.next() % 8 {
                    0 => i8::MIN,
                    1 => i8::MAX,
                    _ => rng.next() as i8,
                };
            }
        };
        fill(&mut q);
        fill(&mut k);
        fill(&mut v);
        // a softmax scale from sharp to flat, and a context scale from 1/256 to 1/2^14
        let softmax = Requant { mult: (1 << 30) | (rng.next() as i32 & 0x3fff_ffff), shift: 33 + (rng.next() % 12) as i32 };
        let ctx = Requant { mult: (1 << 30) | (rng.next() as i32 & 0x3fff_ffff), shift: 38 + (rng.next() % 7) as i32 };
        let p = AttentionParams { softmax, ctx };
        let mask = Mask { key_len: keys - (t % 7 == 0) as usize * keys.min(2), causal: t % 2 == 0, q_pos0: rng.next() as usize % (keys + 1) };
        let (q, k, v) = (&q[..rows * d], &k[..keys * d], &v[..keys * d]);
        let (mut sa, mut sb) = ([0i32; ATT_KEYS], [0i32; ATT_KEYS]);
        let (mut pa, mut pb) = ([0u8; ATT_KEYS], [0u8; ATT_KEYS]);
        let (mut oa, mut ob) = ([0i16; ATT_ROWS * ATT_D], [0i16; ATT_ROWS * ATT_D]);
        attention_ref(&p, heads, d, q, k, v, mask, &mut sa, &mut pa, &mut oa[..rows * d]);
        attention(&p, heads, d, q, k, v, mask, &mut sb, &mut pb, &mut ob[..rows * d]);
        mismatches += (oa != ob || pa != pb) as usize;
    }
    mismatches
}

/// Longest LayerNorm row checked.
const LN_D: usize = 136;

/// Runs `trials` random LayerNorm rows (1 or 2 of them, `d` up to `LN_D`, a multiple of 8 in
/// most trials, starting word-aligned or not) through `forward` and `forward_ref`, with
/// variances from zero to full scale, shifts across `20..=62` and extreme gains and biases.
/// Returns how many calls disagreed.
#[inline(never)] // its buffers live only while it runs, not under the translations
pub fn check_layernorm(trials: usize) -> usize {
    let mut rng = Rng(0x6a09_e667);
    let mut mismatches = 0;
    let (mut gain, mut bias) = ([0i32; LN_D], [0i32; LN_D]);
    let mut x = Buf([0i16; 2 * LN_D + 2]);
    for t in 0..trials {
        let d = if t % 4 == 3 { 1 + rng.next() as usize % LN_D } else { 8 * (1 + rng.next() as usize % (LN_D / 8)) };
        let rows = 1 + t % 2;
        let (spread, base) = (rng.next() % 17, rng.next() as i16 >> (rng.next() % 16));
        for v in x.0.iter_mut() {
            *v = match rng.next() % 32 {
                0 => i16::MAX,
                1 => i16::MIN,
                _ => base.wrapping_add(((rng.next() as i32) >> (16 + spread)) as i16),
            };
        }
        for (g, b) in gain.iter_mut().zip(bias.iter_mut()) {
            *g = match rng.next() % 16 {
                0 => i32::MAX,
                1 => i32::MIN,
                _ => (rng.next() as i32) >> (rng.next() % 8),
            };
            *b = (rng.next() as i32) >> (rng.next() % 32);
        }
        let shift = match t % 5 {
            4 => 20 + (rng.next() % 43) as i32,
            3 => 32,
            _ => 33 + (rng.next() % 30) as i32,
        };
        let ln = LayerNorm { gain: &gain[..d], bias: &bias[..d], shift, eps: 1 + rng.next() % 64 };
        // odd offsets start the rows off a word boundary: the fast path must step aside
        let off = t % 3 / 2;
        let x = &x.0[off..off + rows * d];
        let (mut a, mut b) = ([0i16; 2 * LN_D], [0i16; 2 * LN_D]);
        ln.forward_ref(x, &mut a[..rows * d]);
        ln.forward(x, &mut b[..rows * d]);
        mismatches += (a != b) as usize;
    }
    mismatches
}
