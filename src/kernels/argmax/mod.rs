//! The index of the first maximum of `(n,)` `i32` logits (greedy decoding, the classifier's
//! class), with a core's fast path.
//!
//! Files: this one (the dispatch and the plain loop, [`argmax_ref`]), `mve.rs` (Cortex-M55/M85:
//! `VMAXV` over blocks of 16), `x86.rs` (SSE4.1 / AVX / AVX2, chosen at run time). Other cores
//! run the plain loop.

#[cfg(picoformer_core = "mve")]
mod mve;
#[cfg(picoformer_core = "x86")]
mod x86;

/// The index of the first maximum of `v` (0 when `v` is empty), through this core's fast path;
/// equal to [`argmax_ref`].
#[inline]
pub fn argmax(v: &[i32]) -> usize {
    #[cfg(picoformer_core = "mve")]
    if let Some(i) = mve::argmax(v) {
        return i;
    }
    #[cfg(picoformer_core = "x86")]
    return x86::argmax(v);
    #[cfg(not(picoformer_core = "x86"))]
    argmax_ref(v)
}

/// The plain loop every fast path is checked against: the index of the first maximum of `v`
/// (0 when `v` is empty).
pub fn argmax_ref(v: &[i32]) -> usize {
    let mut best = 0;
    let mut max = i32::MIN;
    for (i, &x) in v.iter().enumerate() {
        if x > max || i == 0 {
            best = i;
            max = x;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_of_equal_maxima() {
        for f in [argmax, argmax_ref] {
            assert_eq!(f(&[]), 0);
            assert_eq!(f(&[3]), 0);
            assert_eq!(f(&[1, 5, 5, 2]), 1);
            assert_eq!(f(&[i32::MIN, i32::MIN]), 0);
            assert_eq!(f(&[-7, -3, -3, i32::MAX - 1, i32::MAX]), 4);
            assert_eq!(f(&[3, 9, -1, 9, 4, 8]), 1);
            let mut v = [0i32; 100];
            v[97] = 5;
            v[98] = 5;
            assert_eq!(f(&v), 97);
            assert_eq!(f(&[i32::MIN; 13]), 0);
        }
    }
}
