//! The parameters of one LayerNorm, and the row arithmetic every path shares.

/// The parameters of one LayerNorm, as views into the blob.
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerNorm<'a> {
    /// `(d,)` fixed-point gains: `g_j = round(γ_j / s_y · 2^(shift-16))`.
    pub gain: &'a [i32],
    /// `(d,)` biases in output units: `b_j = round(β_j / s_y)`.
    pub bias: &'a [i32],
    /// Right shift applied to `z · g`, `1..=62`.
    pub shift: i32,
    /// `ε / s_x²`, at least 1.
    pub eps: u32,
}

/// The parameters of one RMSNorm: LayerNorm without the mean and the bias,
/// `y_j = sat_i16((z_j · g_j + 2^(sh-1)) >> sh)` with `z_j = (x_j · inv) >> 16` and `inv` from
/// the row's mean square.
#[derive(Debug, Clone, Copy, Default)]
pub struct RmsNorm<'a> {
    /// `(d,)` fixed-point gains, as [`LayerNorm::gain`].
    pub gain: &'a [i32],
    /// Right shift applied to `z · g`, `1..=62`.
    pub shift: i32,
    /// `ε / s_x²`, at least 1.
    pub eps: u32,
}

/// `(mean, inv)` of a row from `Σx` and `Σ(x - mean)²` computed by the caller: `inv = ⌊2^40 /
/// ⌊sqrt((⌊Σxc² / d⌋ + eps) · 2^16)⌋⌋`, i.e. `2^32 / std`.
#[inline(always)]
pub fn inv_std(sq: u64, d: usize, eps: u32) -> i64 {
    let var = div_u64_small(sq, d as u32) + eps.max(1) as u64;
    let std8 = isqrt_u64(var << 16).max(1);
    ((1u64 << 40) / std8) as i64
}

/// `⌊(Σx + d/2) / d⌋`, the row's mean rounded half up (`|Σx| < 2^15 · 2^16`: 32 bits suffice).
#[inline(always)]
pub fn mean(sum: i32, d: usize) -> i64 {
    (sum.wrapping_add(d as i32 / 2)).div_euclid(d.max(1) as i32) as i64
}

/// `⌊a / d⌋` for `d ≥ 1`: two 32-bit divisions (`UDIV`) when `a < 2^48` (a row's sum of
/// squares always is), long division in base 2^16; a 64-bit division otherwise.
#[inline]
pub fn div_u64_small(a: u64, d: u32) -> u64 {
    let d = d.max(1);
    if a >> 48 != 0 || d > 1 << 16 {
        return a / d as u64;
    }
    let hi = (a >> 16) as u32; // < 2^32
    let (q1, r1) = (hi / d, hi % d); // r1 < d ≤ 2^16
    let lo = (r1 << 16) | (a as u32 & 0xffff); // < 2^32
    ((q1 as u64) << 16) + (lo / d) as u64
}

/// `⌊sqrt(v)⌋`, bit by bit: exact, no division, no float.
pub fn isqrt_u64(v: u64) -> u64 {
    if v == 0 {
        return 0;
    }
    let mut rem = v;
    let mut root = 0u64;
    // the highest power of 4 not above v
    let mut bit = 1u64 << ((63 - v.leading_zeros()) & !1);
    while bit != 0 {
        if rem >= root + bit {
            rem -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    root
}
