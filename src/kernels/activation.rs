//! FFN activations on the `i16` pre-activation, in place.
//!
//! - ReLU is a clamp at zero: the output keeps the input's scale.
//! - GELU, its tanh form and SiLU (any smooth activation) are a 257-point table over the whole `i16` range with
//!   linear interpolation: `u + 32768 = 256·i + f`, `y = t[i] + ((t[i+1] - t[i])·f + 128) >> 8`.
//!   The host fills `t[i] = round(gelu((256·i - 32768)·s_u) / s_y)`.
//! - SwiGLU's gate is SiLU by the same table, then [`gated_i16`] multiplies it into `up`.

use crate::quant::{Activation, Requant};

/// Entries in an interpolated activation table.
pub const TABLE_LEN: usize = 257;

/// ReLU in place.
#[inline]
pub fn relu_i16(x: &mut [i16]) {
    for v in x {
        *v = (*v).max(0);
    }
}

/// Table activation in place; `table` has [`TABLE_LEN`] entries (a shorter one leaves values
/// past its end unchanged).
pub fn table_i16(x: &mut [i16], table: &[i16]) {
    for v in x {
        let u = (*v as i32 + 32768) as u32; // 0..=65535
        let i = (u >> 8) as usize;
        let f = (u & 255) as i32;
        if let (Some(&a), Some(&b)) = (table.get(i), table.get(i + 1)) {
            let (a, b) = (a as i32, b as i32);
            *v = (a + (((b - a) * f + 128) >> 8)).clamp(-32768, 32767) as i16;
        }
    }
}

/// SwiGLU's product, in place: `up[j] = sat_i16(rq(gate[j] · up[j]))`. The product of two
/// `i16` is below 2^30 in magnitude, exact in `i32`.
pub fn gated_i16(gate: &[i16], up: &mut [i16], rq: Requant) {
    for (u, &g) in up.iter_mut().zip(gate) {
        *u = i16::requant(rq, g as i32 * *u as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_clamps() {
        let mut x = [-32768i16, -1, 0, 1, 32767];
        relu_i16(&mut x);
        assert_eq!(x, [0, 0, 0, 1, 32767]);
    }

    #[test]
    fn identity_table_is_identity() {
        let t: [i16; TABLE_LEN] = core::array::from_fn(|i| (256 * i as i32 - 32768).clamp(-32768, 32767) as i16);
        let mut x = [-32768i16, -32767, -1, 0, 1, 255, 256, 32512, 32766, 32767];
        let before = x;
        table_i16(&mut x, &t);
        // Exact everywhere but the top cell, where t[256] is clamped to 32767 instead of 32768.
        assert_eq!(&x[..8], &before[..8]);
        assert_eq!(x[8], 32765);
        assert_eq!(x[9], 32766);
    }

    #[test]
    fn interpolates_between_points() {
        let mut t = [0i16; TABLE_LEN];
        t[128] = 0;
        t[129] = 256; // u in [0, 256) maps to y = u
        t[130] = 1256; // u in [256, 512): y = 256 + (u-256)·1000/256
        let mut x = [0i16, 100, 256, 384];
        table_i16(&mut x, &t);
        assert_eq!(x, [0, 100, 256, 756]);
    }

    #[test]
    fn gated_product_requantizes_and_saturates() {
        let mut up = [100i16, -100, 32767, 3];
        gated_i16(&[2, 3, 32767, -32768], &mut up, Requant::from_real(0.5));
        assert_eq!(up, [100, -150, 32767, -32768]);
    }
}
