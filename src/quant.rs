//! Fixed-point requantization: the one rounding rule used everywhere.
//!
//! A real multiplier `M > 0` is stored as `M ≈ mult · 2^-shift` with `mult` a Q31 mantissa in
//! `[2^30, 2^31)` (or 0 for `M = 0`) and `shift` in `1..=62`. Applying it to an integer `x` is
//!
//! ```text
//! y = (x · mult + 2^(shift-1)) >> shift        (i64, arithmetic shift: round half up)
//! ```
//!
//! followed by saturation to the output type. The host computes `mult` and `shift` once; the
//! device never sees a float.

/// A real multiplier in fixed point: `mult · 2^-shift`. See the module doc for the rule.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Requant {
    /// Q31 mantissa, `0` or in `[2^30, 2^31)`.
    pub mult: i32,
    /// Right shift, `1..=62`.
    pub shift: i32,
}

// SAFETY: `Requant` is `repr(C)`, two `i32`s, no padding; every bit pattern is a valid value.
unsafe impl bytemuck::Zeroable for Requant {}
// SAFETY: as above.
unsafe impl bytemuck::Pod for Requant {}
const _: () = assert!(core::mem::size_of::<Requant>() == 8);

impl Requant {
    /// The smallest and largest shifts a valid `Requant` may have.
    pub const SHIFT_MIN: i32 = 1;
    pub const SHIFT_MAX: i32 = 62;

    /// The shifts of the fused 32-bit requantization ([`Requant::apply32`]): a multiplier below
    /// 1/4. Every fast path that requantizes in registers (`SMMLA`, `mulh`) takes only these,
    /// and the converter chooses scales so that every linear layer's multipliers are in it.
    pub const FUSED_SHIFTS: core::ops::RangeInclusive<i32> = 33..=Self::SHIFT_MAX;

    /// Whether this multiplier takes the fused 32-bit path (its shift is in [`Self::FUSED_SHIFTS`]).
    #[inline(always)]
    pub const fn is_fused(self) -> bool {
        self.shift >= *Self::FUSED_SHIFTS.start() && self.shift <= *Self::FUSED_SHIFTS.end()
    }

    /// Whether `mult` and `shift` are in their documented ranges.
    #[inline]
    pub const fn is_valid(self) -> bool {
        self.shift >= Self::SHIFT_MIN
            && self.shift <= Self::SHIFT_MAX
            && (self.mult == 0 || self.mult >= (1 << 30))
    }

    /// `round(x · M)` in 64 bits, unsaturated. `shift` is masked to `0..=63`, so an invalid
    /// `Requant` gives a wrong value, never a panic.
    #[inline(always)]
    pub fn apply(self, x: i64) -> i64 {
        let s = (self.shift & 63) as u32;
        let round = (1i64 << s) >> 1;
        x.wrapping_mul(self.mult as i64).wrapping_add(round) >> s
    }

    /// `round(acc · M)` for a 32-bit accumulator, saturated to `i32`: exactly
    /// `sat_i32(self.apply(acc as i64))`, but for `shift ≥ 33` (every linear layer's
    /// multiplier below 1/4) it takes the high word of the product (`SMMUL`, `mulh`) and one
    /// 32-bit add and shift, since then `(p + 2^(s-1)) >> s == ((p >> 32) + 2^(s-33)) >> (s-32)`
    /// for any 64-bit `p`.
    #[inline(always)]
    pub fn apply32(self, acc: i32) -> i32 {
        let s = self.shift;
        if self.is_fused() {
            // |hi| ≤ 2^30 and the rounding term ≤ 2^29: no overflow
            let hi = (mul_wide(acc, self.mult) >> 32) as i32;
            (hi + (1 << (s - 33))) >> (s - 32)
        } else {
            sat_i32(self.apply(acc as i64))
        }
    }

    /// Requantize an `i32` accumulator to `i8`, saturating to `-128..=127`.
    #[inline(always)]
    pub fn to_i8(self, acc: i32) -> i8 {
        sat_i8(self.apply(acc as i64))
    }

    /// Requantize an `i32` accumulator to `i16`, saturating to `-32768..=32767`.
    #[inline(always)]
    pub fn to_i16(self, acc: i32) -> i16 {
        sat_i16(self.apply(acc as i64))
    }

    /// Requantize an `i32` accumulator to `i32`, saturating.
    #[inline(always)]
    pub fn to_i32(self, acc: i32) -> i32 {
        sat_i32(self.apply(acc as i64))
    }

    /// Host side (converter, tests): the nearest `Requant` to a real multiplier `m ≥ 0`, below
    /// `2^30`. Never called by the forward path.
    pub fn from_real(m: f64) -> Requant {
        if m.is_nan() || m <= 0.0 || !m.is_finite() {
            return Requant { mult: 0, shift: Self::SHIFT_MIN };
        }
        // m = f · 2^e with f in [0.5, 1)
        let mut e = 0i32;
        let mut f = m;
        while f >= 1.0 {
            f /= 2.0;
            e += 1;
        }
        while f < 0.5 {
            f *= 2.0;
            e -= 1;
        }
        let mut mult = libm_round(f * (1u64 << 31) as f64) as i64;
        if mult == 1i64 << 31 {
            mult >>= 1;
            e += 1;
        }
        let mut shift = 31 - e;
        if shift > Self::SHIFT_MAX {
            // Too small to represent: flush towards zero by shifting the mantissa down.
            let extra = shift - Self::SHIFT_MAX;
            mult = if extra >= 63 { 0 } else { mult >> extra };
            shift = Self::SHIFT_MAX;
            if mult < (1 << 30) {
                mult = 0;
            }
        }
        let shift = shift.max(Self::SHIFT_MIN);
        Requant { mult: mult as i32, shift }
    }

    /// Host side: the real value this multiplier stands for.
    pub fn to_real(self) -> f64 {
        self.mult as f64 / (1u64 << self.shift.clamp(0, 62)) as f64
    }
}

fn libm_round(x: f64) -> f64 {
    // round half away from zero, without std
    let t = x as i64 as f64;
    if x - t >= 0.5 {
        t + 1.0
    } else if t - x >= 0.5 {
        t - 1.0
    } else {
        t
    }
}

/// Saturate to `i8`.
#[inline(always)]
pub fn sat_i8(x: i64) -> i8 {
    x.clamp(i8::MIN as i64, i8::MAX as i64) as i8
}

/// Saturate to `i16`.
#[inline(always)]
pub fn sat_i16(x: i64) -> i16 {
    x.clamp(i16::MIN as i64, i16::MAX as i64) as i16
}

/// Saturate to `i32`.
#[inline(always)]
pub fn sat_i32(x: i64) -> i32 {
    x.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

/// `a · b` exactly. Armv6-M (Cortex-M0/M0+) has no 32×32→64 multiply: there it is
/// [`mul_wide_split`], four `MULS` inline instead of a call to `__aeabi_lmul`.
#[inline(always)]
pub fn mul_wide(a: i32, b: i32) -> i64 {
    #[cfg(picoformer_armv6m)]
    return mul_wide_split(a, b);
    #[cfg(not(picoformer_armv6m))]
    return a as i64 * b as i64;
}

/// `a · b` for `u32` operands, as [`mul_wide`].
#[inline(always)]
pub fn mul_wide_u32(a: u32, b: u32) -> u64 {
    #[cfg(picoformer_armv6m)]
    return mul_wide_u32_split(a, b);
    #[cfg(not(picoformer_armv6m))]
    return a as u64 * b as u64;
}

/// `a · b` from 16-bit halves with 32-bit multiplies: `a = ah·2^16 + al` (`al` unsigned), the
/// same for `b`; `al·bl < 2^32` and `|ah·bl|, |al·bh| < 2^31`, `|ah·bh| ≤ 2^30`, so no partial
/// product overflows.
#[inline(always)]
pub fn mul_wide_split(a: i32, b: i32) -> i64 {
    let (al, ah) = (a & 0xffff, a >> 16);
    let (bl, bh) = (b & 0xffff, b >> 16);
    let ll = (al as u32).wrapping_mul(bl as u32) as i64;
    let mid = ah.wrapping_mul(bl) as i64 + al.wrapping_mul(bh) as i64;
    ((ah.wrapping_mul(bh) as i64) << 32) + (mid << 16) + ll
}

/// [`mul_wide_split`] for `u32` operands (every partial product is below 2^32).
#[inline(always)]
pub fn mul_wide_u32_split(a: u32, b: u32) -> u64 {
    let (al, ah) = (a & 0xffff, a >> 16);
    let (bl, bh) = (b & 0xffff, b >> 16);
    let mid = ah.wrapping_mul(bl) as u64 + al.wrapping_mul(bh) as u64;
    ((ah.wrapping_mul(bh) as u64) << 32) + (mid << 16) + al.wrapping_mul(bl) as u64
}

/// The three output types, for kernels that dispatch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutKind {
    I8,
    I16,
    I32,
}

/// An activation type a kernel can write: `i8`, `i16` or `i32`, saturating. Sealed: exactly
/// these three.
pub trait Activation: Copy + Default + bytemuck::Pod + sealed::Sealed {
    const KIND: OutKind;
    /// Saturate a 32-bit value into this type (`SSAT` on Arm).
    fn saturate32(x: i32) -> Self;
    /// `rq(acc)`, saturated: the output stage of every kernel.
    #[inline(always)]
    fn requant(rq: Requant, acc: i32) -> Self {
        Self::saturate32(rq.apply32(acc))
    }
    /// Widen to `i32`.
    fn widen(self) -> i32;
}

impl Activation for i8 {
    const KIND: OutKind = OutKind::I8;
    #[inline(always)]
    fn saturate32(x: i32) -> Self {
        x.clamp(i8::MIN as i32, i8::MAX as i32) as i8
    }
    #[inline(always)]
    fn widen(self) -> i32 {
        self as i32
    }
}

impl Activation for i16 {
    const KIND: OutKind = OutKind::I16;
    #[inline(always)]
    fn saturate32(x: i32) -> Self {
        x.clamp(i16::MIN as i32, i16::MAX as i32) as i16
    }
    #[inline(always)]
    fn widen(self) -> i32 {
        self as i32
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for i8 {}
    impl Sealed for i16 {}
    impl Sealed for i32 {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_up_and_saturates() {
        // M = 0.5: mult 2^30, shift 31
        let half = Requant { mult: 1 << 30, shift: 31 };
        assert_eq!(half.apply(3), 2); // 1.5 -> 2
        assert_eq!(half.apply(-3), -1); // -1.5 -> -1 (half up)
        assert_eq!(half.apply(5), 3);
        assert_eq!(half.to_i8(1000), 127);
        assert_eq!(half.to_i8(-1000), -128);
        assert_eq!(half.to_i8(255), 127); // 127.5 -> 128 -> saturates
        assert_eq!(half.to_i8(-256), -128);
        assert_eq!(half.to_i16(70000), 32767);
        assert_eq!(half.to_i16(-70000), -32768);
    }

    #[test]
    fn from_real_round_trips() {
        for &m in &[1e-9, 3.1e-5, 0.001234, 0.25, 0.5, 0.999, 1.0, 3.7, 1000.5] {
            let r = Requant::from_real(m);
            assert!(r.is_valid(), "{m}: {r:?}");
            assert!((r.to_real() - m).abs() / m < 1e-9, "{m}: {}", r.to_real());
        }
        let z = Requant::from_real(0.0);
        assert!(z.is_valid());
        assert_eq!(z.apply(123456), 0);
    }

    #[test]
    fn split_multiplies_are_exact() {
        let mut s = 0x853c_49e6_748f_ea9bu64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let edges = [0, 1, -1, 0xffff, 0x1_0000, -0x1_0000, i32::MAX, i32::MIN, i32::MIN + 1];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(mul_wide_split(a, b), a as i64 * b as i64, "{a} {b}");
                assert_eq!(mul_wide_u32_split(a as u32, b as u32), a as u32 as u64 * b as u32 as u64, "{a} {b}");
            }
        }
        for _ in 0..100_000 {
            let (a, b) = (next() as i32 >> (next() % 32), next() as i32 >> (next() % 32));
            assert_eq!(mul_wide_split(a, b), a as i64 * b as i64, "{a} {b}");
            assert_eq!(mul_wide_u32_split(a as u32, b as u32), a as u32 as u64 * b as u32 as u64, "{a} {b}");
        }
    }

    #[test]
    fn apply32_equals_apply() {
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for i in 0..200_000 {
            let acc = match i % 5 {
                0 => i32::MIN,
                1 => i32::MAX,
                _ => next() as i32 >> (next() % 32),
            };
            let shift = 1 + (next() % 62) as i32;
            let mult = if i % 7 == 0 { 0 } else { (1 << 30) | (next() as i32 & 0x3fff_ffff) };
            let r = Requant { mult, shift };
            assert_eq!(r.apply32(acc), sat_i32(r.apply(acc as i64)), "{r:?} {acc}");
        }
    }

    #[test]
    fn extreme_multipliers() {
        let big = Requant::from_real(1.0e9);
        assert!(big.is_valid());
        assert_eq!(big.to_i16(1), 32767);
        assert_eq!(big.to_i32(3), i32::MAX);
        let tiny = Requant::from_real(1e-15);
        assert!(tiny.is_valid());
        assert_eq!(tiny.to_i16(i32::MAX), 0);
        // An invalid shift never panics.
        let bad = Requant { mult: i32::MAX, shift: 1000 };
        let _ = bad.to_i8(i32::MIN);
    }
}

impl Activation for i32 {
    const KIND: OutKind = OutKind::I32;
    #[inline(always)]
    fn saturate32(x: i32) -> Self {
        x
    }
    #[inline(always)]
    fn widen(self) -> i32 {
        self
    }
}
