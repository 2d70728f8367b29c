//! The index of the first largest logit: greedy decoding's choice over the `(vocab,)` output
//! projection.
//!
//! Files: the plain reference here ([`argmax_ref`]), `x86.rs` (SSE4.1 / AVX / AVX2, chosen at run
//! time). Other cores use the reference. [`argmax`] picks the core's path.

#[cfg(picoformer_core = "x86")]
mod x86;

/// Index of the first maximum of `v` (0 for an empty slice): the plain loop every fast path is
/// checked against.
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

/// Index of the first maximum of `v` (0 for an empty slice), through this core's fast path;
/// equal to [`argmax_ref`].
#[inline]
pub fn argmax(v: &[i32]) -> usize {
    #[cfg(picoformer_core = "x86")]
    return x86::argmax(v);
    #[cfg(not(picoformer_core = "x86"))]
    return argmax_ref(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_of_equal_maxima() {
        assert_eq!(argmax_ref(&[]), 0);
        assert_eq!(argmax_ref(&[i32::MIN, i32::MIN]), 0);
        assert_eq!(argmax_ref(&[3, 9, -1, 9, 4, 8]), 1);
        assert_eq!(argmax(&[3, 9, -1, 9, 4, 8]), 1);
        let mut v = [0i32; 100];
        v[97] = 5;
        v[98] = 5;
        assert_eq!(argmax(&v), 97);
        assert_eq!(argmax(&[i32::MIN; 13]), 0);
    }
}
