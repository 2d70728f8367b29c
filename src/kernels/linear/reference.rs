//! The plain reference of the linear kernel: one output at a time, any layout. Every fast path
//! is checked against it.

use super::weights::Linear;
use crate::quant::Activation;

/// `y[r, o] = sat(rq[o](bias[o] + Σ_j x[r, j] · w[o, j]))`, sums wrapping in 32 bits.
pub fn linear_ref<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    if k == 0 || n == 0 {
        return;
    }
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
        for (o, ((yo, &b), &rq)) in yr.iter_mut().zip(l.bias).zip(l.rq).enumerate() {
            let mut acc = b;
            for (j, &xi) in xr.iter().enumerate() {
                acc = acc.wrapping_add((xi as i32).wrapping_mul(l.weight(o, j) as i32));
            }
            *yo = O::requant(rq, acc);
        }
    }
}
