//! The kernels' self-test: every fast path this build compiles against its plain reference, on
//! random shapes and extreme values. One module, two runners: `cargo test` runs it on the host
//! (the portable paths), and every firmware runs it on its core (the assembly), the way
//! CMSIS-NN runs the same unit tests on both. `no_std`, no allocation: the buffers are fixed
//! arrays in each check's own frame (about 8 KiB at most), so a board runs it after its
//! workload, not under it.
//!
//! Each check returns how many calls disagreed; [`run`] runs them all.

use crate::kernels::attention::{attention, attention_ref, AttentionParams, Heads, Mask};
use crate::kernels::layernorm::{layer_norm_ref, rms_norm_ref, LayerNorm, RmsNorm};
use crate::kernels::layout::Layout;
use crate::kernels::linear::{linear_ref, Linear};
use crate::kernels::residual::{add, add_in_place, add_ref, ResidualParams};
use crate::kernels::softmax::{softmax_rows_u8, softmax_u8, softmax_u8_ref};
use crate::quant::{Activation, Requant};

/// xorshift32: the same numbers on every machine (the self-test's and the benchmarks' inputs).
#[derive(Debug, Clone)]
pub struct Rng(pub u32);

impl Rng {
    #[allow(clippy::should_implement_trait)] // an endless stream, not an iterator
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

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        self.next() as usize % n.max(1)
    }

    /// A byte that is an extreme (`MIN`, `MAX`) a quarter of the time.
    pub fn i8_edgy(&mut self) -> i8 {
        match self.next() % 8 {
            0 => i8::MIN,
            1 => i8::MAX,
            _ => self.next() as i8,
        }
    }

    /// A multiplier with a random mantissa and a shift in `lo..lo + span`.
    pub fn requant(&mut self, lo: i32, span: u32) -> Requant {
        Requant { mult: (1 << 30) | (self.next() as i32 & 0x3fff_ffff), shift: lo + (self.next() % span) as i32 }
    }
}

/// Mismatches per kernel family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub linear: usize,
    pub softmax: usize,
    pub layernorm: usize,
    pub attention: usize,
    pub residual: usize,
    pub argmax: usize,
}

impl Report {
    pub fn total(&self) -> usize {
        self.linear + self.softmax + self.layernorm + self.attention + self.residual + self.argmax
    }

    /// Add another report's mismatches to this one.
    pub fn add(&mut self, o: Report) {
        self.linear += o.linear;
        self.softmax += o.softmax;
        self.layernorm += o.layernorm;
        self.attention += o.attention;
        self.residual += o.residual;
        self.argmax += o.argmax;
    }
}

/// Every check, with `trials` random calls each (boards use 200-1000; the host more). On x86-64
/// it runs them at every SIMD level the CPU has ([`run_at`]), and adds the mismatches up.
pub fn run(trials: usize) -> Report {
    #[cfg(picoformer_core = "x86")]
    {
        use crate::kernels::x86_features::{detected, Level};
        let mut total = Report::default();
        for level in Level::ALL.into_iter().filter(|&l| l <= detected()) {
            total.add(run_at(level, trials));
        }
        total
    }
    #[cfg(not(picoformer_core = "x86"))]
    run_once(trials)
}

/// Every check at one x86-64 SIMD level: [`crate::kernels::x86_features::set_cap`] lowers the
/// level every kernel runs at for the duration (the other levels give the same bits, so a
/// kernel called meanwhile from another thread is still right).
#[cfg(picoformer_core = "x86")]
pub fn run_at(level: crate::kernels::x86_features::Level, trials: usize) -> Report {
    use crate::kernels::x86_features::set_cap;
    set_cap(Some(level));
    let mut r = run_once(trials);
    r.linear += check_linear_tiles(trials / 10 + 1);
    set_cap(None);
    r
}

fn run_once(trials: usize) -> Report {
    Report {
        linear: check_linear(trials),
        softmax: check_softmax(trials),
        layernorm: check_layernorm(trials),
        attention: check_attention(trials),
        residual: check_residual(trials),
        argmax: check_argmax(trials),
    }
}

/// `#[repr(align(8))]` buffers, as the blob and the arena are.
#[repr(C, align(8))]
struct Buf<T, const N: usize>([T; N]);

const K_MAX: usize = 160;
const N_MAX: usize = 24;
const ROWS: usize = 3;

/// Random linear layers (Block4 and row-major, `k` past the DSP's 128-input chunk, fused and
/// other shifts, 1-3 rows) through the fast path and the reference, with i32, i16 and i8
/// outputs; then [`check_linear_long`] with a quarter of the trials.
pub fn check_linear(trials: usize) -> usize {
    // one after the other: the two checks' buffers never share the stack
    check_linear_short(trials) + check_linear_long(trials / 4)
}

/// Random layers of up to `K_MAX` inputs and `N_MAX` outputs, both layouts, int8 and int4.
#[inline(never)] // its buffers live only while it runs
fn check_linear_short(trials: usize) -> usize {
    let mut rng = Rng(0x1234_5678);
    let mut w = Buf([0i8; N_MAX * K_MAX]);
    let mut x = Buf([0i16; ROWS * K_MAX]);
    let mut bias = [0i32; N_MAX];
    let mut rq = [Requant::default(); N_MAX];
    let mut mismatches = 0;
    for t in 0..trials {
        let block4 = t % 5 != 4;
        // every third layer has k % 32 == 0, the shape the fused whole-row path takes
        let k = match (block4, t % 3) {
            (true, 0) => 32 * (1 + rng.below(K_MAX / 32)),
            (true, _) => 4 * (1 + rng.below(K_MAX / 4)),
            (false, _) => 1 + rng.below(K_MAX),
        };
        let n = if block4 { 4 * (1 + rng.below(N_MAX / 4)) } else { 1 + rng.below(N_MAX) };
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
        // half the trials keep every shift fused, so the fused-requant paths run
        let fused = (t / 2) % 2 == 0;
        for (b, r) in bias.iter_mut().zip(rq.iter_mut()) {
            *b = (rng.next() as i32) >> (rng.next() % 32);
            *r = if fused { rng.requant(33, 12) } else { rng.requant(20, 24) };
        }
        let layout = if block4 { Layout::Block4 } else { Layout::RowMajor };
        let rows = 1 + t % ROWS;
        let x = &x.0[..rows * k];
        // the same bytes as int8 and as int4 (any byte is two valid nibbles)
        for int4 in [false, true] {
            let l = Linear::new(&w.0[..layout.bytes(n, k, int4)], layout, &bias[..n], &rq[..n], k).with_int4(int4);
            mismatches += (!same_linear::<i32>(&l, x, rows * n)) as usize;
            mismatches += (!same_linear::<i16>(&l, x, rows * n)) as usize;
            mismatches += (!same_linear::<i8>(&l, x, rows * n)) as usize;
        }
    }
    mismatches
}

const LONG_K: usize = 512;
const LONG_N: usize = 8;
const LONG_ROWS: usize = 5;
/// Weight bytes and inputs the check keeps (its frame stays near 5 KiB): `n·k ≤ LONG_W`,
/// `rows·k ≤ LONG_X`.
const LONG_W: usize = 2048;
const LONG_X: usize = 1536;
const _: () = assert!(LONG_ROWS * LONG_N <= ROWS * N_MAX); // `same_linear`'s buffers

/// Longer and more rows than [`check_linear`]: Block4 layers with `k` up to 512 in steps of 32
/// (the loops of the Helium row routines), 1-5 rows (3 past `k = 256`; the many-rows paths
/// from 2 and 4 rows),
/// inputs below 32640 in half the trials (the split-input path) and up to `i16::MAX` in the
/// others, fused shifts in three trials of four.
#[inline(never)]
fn check_linear_long(trials: usize) -> usize {
    let mut rng = Rng(0x0bad_5eed);
    let mut w = Buf([0i8; LONG_W]);
    let mut x = Buf([0i16; LONG_X]);
    let mut bias = [0i32; LONG_N];
    let mut rq = [Requant::default(); LONG_N];
    let mut mismatches = 0;
    for t in 0..trials {
        let k = 32 * (1 + rng.below(LONG_K / 32));
        let n = 4 * (1 + rng.below((LONG_W / k).min(LONG_N) / 4));
        let rows = 1 + rng.below((LONG_X / k).min(LONG_ROWS));
        for v in w.0.iter_mut() {
            *v = rng.i8_edgy();
        }
        let top = if t % 2 == 0 { 32639 } else { i16::MAX };
        for v in x.0.iter_mut() {
            *v = match rng.next() % 8 {
                0 => top,
                1 => i16::MIN,
                _ => (rng.next() as i16).min(top),
            };
        }
        for (b, r) in bias.iter_mut().zip(rq.iter_mut()) {
            *b = (rng.next() as i32) >> (rng.next() % 32);
            *r = if t % 4 != 3 { rng.requant(33, 30) } else { rng.requant(20, 24) };
        }
        let x = &x.0[..rows * k];
        for int4 in [false, true] {
            let l = Linear::new(&w.0[..Layout::Block4.bytes(n, k, int4)], Layout::Block4, &bias[..n], &rq[..n], k).with_int4(int4);
            mismatches += (!same_linear::<i32>(&l, x, rows * n)) as usize;
            mismatches += (!same_linear::<i16>(&l, x, rows * n)) as usize;
            mismatches += (!same_linear::<i8>(&l, x, rows * n)) as usize;
        }
    }
    mismatches
}

/// Host only (x86-64): Block4 layers of the shapes the SIMD tiles take, bigger than a board's
/// stack allows: 1-9 rows (4-row tiles and the rows after them), up to 72 channels (16- and
/// 8-channel sets and the blocks after them; past `k = 228`, AVX2's 32- and 64-channel chunks of
/// many rows and the chunk after them), `k` up to 520, fused and other shifts.
#[cfg(picoformer_core = "x86")]
#[inline(never)]
pub fn check_linear_tiles(trials: usize) -> usize {
    const K: usize = 520;
    const N: usize = 72;
    const R: usize = 9;
    let mut rng = Rng(0x0bad_5eed);
    let mut w = Buf([0i8; N * K]);
    let mut x = Buf([0i16; R * K]);
    let (mut bias, mut rq) = ([0i32; N], [Requant::default(); N]);
    let mut mismatches = 0;
    for t in 0..trials {
        let k = 4 * (1 + rng.below(K / 4));
        let n = 4 * (1 + rng.below(N / 4));
        let rows = 1 + t % R;
        for v in w.0.iter_mut() {
            *v = rng.i8_edgy();
        }
        for v in x.0.iter_mut() {
            *v = match rng.next() % 4 {
                0 => i16::MAX,
                1 => i16::MIN,
                _ => rng.next() as i16,
            };
        }
        let fused = t % 3 != 2;
        for (b, r) in bias.iter_mut().zip(rq.iter_mut()) {
            *b = (rng.next() as i32) >> (rng.next() % 32);
            *r = if fused { rng.requant(33, 30) } else { rng.requant(20, 24) };
        }
        let l = Linear::new(&w.0[..n * k], Layout::Block4, &bias[..n], &rq[..n], k);
        let x = &x.0[..rows * k];
        let check = |len: usize| {
            let (mut a, mut b) = ([0i32; R * N], [0i32; R * N]);
            linear_ref(&l, x, &mut a[..len]);
            l.forward(x, &mut b[..len]);
            let (mut a16, mut b16) = ([0i16; R * N], [0i16; R * N]);
            linear_ref(&l, x, &mut a16[..len]);
            l.forward(x, &mut b16[..len]);
            let (mut a8, mut b8) = ([0i8; R * N], [0i8; R * N]);
            linear_ref(&l, x, &mut a8[..len]);
            l.forward(x, &mut b8[..len]);
            (a != b) as usize + (a16 != b16) as usize + (a8 != b8) as usize
        };
        mismatches += check(rows * n);
    }
    mismatches
}

fn same_linear<O: Activation + PartialEq>(l: &Linear<'_>, x: &[i16], len: usize) -> bool {
    let (mut a, mut b) = ([O::default(); ROWS * N_MAX], [O::default(); ROWS * N_MAX]);
    linear_ref(l, x, &mut a[..len]);
    l.forward(x, &mut b[..len]);
    a == b
}

/// Longest softmax row checked: covers every remainder of the 8- and 4-element loops.
const ROW_MAX: usize = 80;

/// Random softmax rows (every length up to `ROW_MAX`, fused and other shifts, scores from
/// near-uniform to the full `i32` range, outputs at every byte offset); a mismatch in the
/// probabilities or in the exponentials left in `scores` counts.
#[inline(never)]
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
        let mut rq = if t % 4 == 3 { rng.requant(20, 43) } else { rng.requant(33, 30) };
        if t == 0 {
            // e = 2^15, 2^14, ..., 2^7, 2^7: Σe = 2^16 exactly, where ⌊2^32 / Σe⌋ needs the
            // reciprocal's +1 correction, or the last two probabilities round to 0 instead of 1
            for (j, v) in a[..10].iter_mut().enumerate() {
                *v = -4096 * j.min(8) as i32;
            }
            rq = Requant { mult: 1 << 30, shift: 36 };
        }
        let (mut b, mut c) = (a, a);
        let off = t % 4;
        let (mut pa, mut pb) = ([0u8; ROW_MAX + 4], [0u8; ROW_MAX + 4]);
        softmax_u8_ref(&mut a[..n], rq, &mut pa[off..off + n]);
        softmax_u8(&mut b[..n], rq, &mut pb[off..off + n]);
        mismatches += (a != b || pa != pb) as usize;
        // the same scores as rows of 1..=17 (the many-rows routines and the fallback past 16),
        // row by row against the reference
        let len = 1 + t % 17;
        let rows = (n / len).min(5);
        let mut d = c;
        let (mut pc, mut pd) = ([0u8; ROW_MAX + 4], [0u8; ROW_MAX + 4]);
        for r in 0..rows {
            softmax_u8_ref(&mut c[r * len..(r + 1) * len], rq, &mut pc[off + r * len..off + (r + 1) * len]);
        }
        softmax_rows_u8(&mut d[..(rows * len + len / 2).min(ROW_MAX)], len, rq, &mut pd[off..off + rows * len]);
        mismatches += (c != d || pc != pd) as usize;
    }
    mismatches
}

const ATT_D: usize = 128;
const ATT_KEYS: usize = 21;
const ATT_ROWS: usize = 3;

/// Random attention calls: 1, 2 or 4 query heads over as many or fewer key/value heads, head
/// dimensions 1..=64 (multiples of 4 take the DSP path, others fall back), up to `ATT_KEYS` keys,
/// causal and padding masks, extreme values; a mismatch in the contexts or probabilities counts.
#[inline(never)]
pub fn check_attention(trials: usize) -> usize {
    let mut rng = Rng(0x2545_f491);
    let mut mismatches = 0;
    let (mut q, mut k, mut v) = ([0i8; ATT_ROWS * ATT_D], [0i8; ATT_KEYS * ATT_D], [0i8; ATT_KEYS * ATT_D]);
    for t in 0..trials {
        let heads = [1, 2, 4][t % 3];
        let kv = [heads, 1, (heads / 2).max(1)][(t / 3) % 3];
        let dim = if t % 5 == 4 { 1 + rng.below(32) } else { 4 * (1 + rng.below(16)) };
        let dim = dim.min(ATT_D / heads);
        let h = Heads { q: heads, kv, dim };
        let (keys, rows) = (rng.below(ATT_KEYS + 1), 1 + rng.below(ATT_ROWS));
        for x in q.iter_mut().chain(k.iter_mut()).chain(v.iter_mut()) {
            *x = rng.i8_edgy();
        }
        // a softmax scale from sharp to flat, and a context scale from 2^10 (saturating) to
        // 1/2^14: shifts 20..=44, the converter's 30 among them
        let p = AttentionParams { softmax: rng.requant(33, 12), ctx: rng.requant(20, 25) };
        let mask = Mask { key_len: keys - (t % 7 == 0) as usize * keys.min(2), causal: t % 2 == 0, q_pos0: rng.below(keys + 1) };
        let (dq, dkv) = (h.q_width(), h.kv_width());
        let (q, k, v) = (&q[..rows * dq], &k[..keys * dkv], &v[..keys * dkv]);
        let (mut sa, mut sb) = ([0i32; ATT_KEYS], [0i32; ATT_KEYS]);
        let (mut pa, mut pb) = ([0u8; ATT_KEYS], [0u8; ATT_KEYS]);
        let (mut oa, mut ob) = ([0i16; ATT_ROWS * ATT_D], [0i16; ATT_ROWS * ATT_D]);
        attention_ref(&p, h, q, k, v, mask, &mut sa, &mut pa, &mut oa[..rows * dq]);
        attention(&p, h, q, k, v, mask, &mut sb, &mut pb, &mut ob[..rows * dq]);
        mismatches += (oa != ob || pa != pb) as usize;
    }
    mismatches
}

const LN_D: usize = 136;

/// Random LayerNorm and RMSNorm rows (1 or 2, `d` up to `LN_D`, mostly multiples of 8, word-aligned or
/// not), variances from zero to full scale, shifts across `20..=62` (32 included), extreme
/// gains and biases; then [`check_layernorm_scales`] with a quarter of the trials.
#[inline(never)]
pub fn check_layernorm(trials: usize) -> usize {
    let mut rng = Rng(0x6a09_e667);
    let mut mismatches = 0;
    let (mut gain, mut bias) = ([0i32; LN_D], [0i32; LN_D]);
    let mut x = Buf([0i16; 2 * LN_D + 2]);
    for t in 0..trials {
        let d = if t % 4 == 3 { 1 + rng.below(LN_D) } else { 8 * (1 + rng.below(LN_D / 8)) };
        let rows = 1 + t % 2;
        let (spread, base) = (rng.next() % 16, rng.next() as i16 >> (rng.next() % 16));
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
        layer_norm_ref(&ln, x, &mut a[..rows * d]);
        ln.forward(x, &mut b[..rows * d]);
        mismatches += (a != b) as usize;
        // RMSNorm: the same rows and gains, no mean and no bias
        let rms = RmsNorm { gain: ln.gain, shift: ln.shift, eps: ln.eps };
        rms_norm_ref(&rms, x, &mut a[..rows * d]);
        rms.forward(x, &mut b[..rows * d]);
        mismatches += (a != b) as usize;
    }
    mismatches + check_layernorm_scales(trials / 4)
}

/// LayerNorm rows of a residual stream's scales: standard deviations from 2^8 to 2^13 input
/// units, where the last bit of `std8 = ⌊sqrt(var · 2^16)⌋` still moves `inv` (and the
/// outputs); fused shifts, moderate gains.
#[inline(never)]
fn check_layernorm_scales(trials: usize) -> usize {
    let mut rng = Rng(0x3c6e_f372);
    let mut mismatches = 0;
    let (mut gain, mut bias) = ([0i32; LN_D], [0i32; LN_D]);
    let mut x = Buf([0i16; LN_D]);
    for t in 0..trials {
        let d = 8 * (1 + rng.below(LN_D / 8));
        let (bits, base) = (9 + (t % 6) as u32, rng.signed(14));
        for v in x.0.iter_mut() {
            *v = (base + rng.signed(bits)) as i16;
        }
        for (g, b) in gain.iter_mut().zip(bias.iter_mut()) {
            *g = (rng.next() as i32) >> (rng.next() % 8);
            *b = rng.signed(12);
        }
        let ln = LayerNorm { gain: &gain[..d], bias: &bias[..d], shift: 33 + (rng.next() % 12) as i32, eps: 1 + rng.next() % 64 };
        let (mut a, mut b) = ([0i16; LN_D], [0i16; LN_D]);
        layer_norm_ref(&ln, &x.0[..d], &mut a[..d]);
        ln.forward(&x.0[..d], &mut b[..d]);
        mismatches += (a != b) as usize;
    }
    mismatches
}

/// Random residual adds, every shift `1..=62`, extreme inputs and scales, every length up to
/// 32 (the SIMD paths' tails), both the copying and the in-place form.
#[inline(never)]
pub fn check_residual(trials: usize) -> usize {
    let mut rng = Rng(0xbb67_ae85);
    let mut mismatches = 0;
    for t in 0..trials {
        let p = ResidualParams { ma: rng.next() as i32 >> (rng.next() % 32), mb: rng.next() as i32 >> (rng.next() % 32), shift: 1 + (t % 62) as i32 };
        let n = (t / 62 + t) % 33;
        let mut a = [0i16; 32];
        let mut b = [0i16; 32];
        for v in a.iter_mut().chain(b.iter_mut()) {
            *v = match rng.next() % 5 {
                0 => i16::MIN,
                1 => i16::MAX,
                _ => rng.next() as i16,
            };
        }
        let (mut ya, mut yb) = ([0i16; 32], [0i16; 32]);
        add_ref(p, &a[..n], &b[..n], &mut ya[..n]);
        add(p, &a[..n], &b[..n], &mut yb[..n]);
        let mut c = a;
        add_in_place(p, &mut c[..n], &b[..n]);
        mismatches += (ya != yb || c[..n] != ya[..n] || c[n..] != a[n..]) as usize;
    }
    mismatches
}

/// Random logit rows (every length up to 80, ties from a narrow value range, extremes) through
/// the argmax fast path and its reference.
#[inline(never)]
pub fn check_argmax(trials: usize) -> usize {
    use crate::kernels::argmax::{argmax, argmax_ref};
    let mut rng = Rng(0x3c6e_f372);
    let mut mismatches = 0;
    for t in 0..trials {
        let n = t % 81;
        let bits = 1 + rng.next() % 32;
        let mut v = [0i32; 80];
        for x in v[..n].iter_mut() {
            *x = match rng.next() % 16 {
                0 => i32::MAX,
                1 => i32::MIN,
                _ => rng.signed(bits),
            };
        }
        let v = &v[..n];
        let want = argmax_ref(v);
        mismatches += (argmax(v) != want) as usize;
    }
    mismatches
}

#[cfg(test)]
mod tests {
    /// The host runs the same self-test as every board, with more trials.
    #[test]
    fn every_fast_path_matches_its_reference() {
        let trials = if cfg!(miri) { 20 } else { 3000 };
        let r = super::run(trials);
        assert_eq!(r, super::Report::default(), "{r:?}");
    }
}
