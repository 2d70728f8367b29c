//! The index of the first maximum of `(n,)` `i32` logits (greedy decoding, the classifier's
//! class), with a core's fast path.
//!
//! Files: this one (the dispatch and the plain loop, [`argmax_ref`]), `mve.rs` (Cortex-M55/M85:
//! `VMAXV` over blocks of 16). Other cores run the plain loop.

#[cfg(picoformer_core = "mve")]
mod mve;

/// The index of the first maximum of `v` (0 when `v` is empty), through this core's fast path;
/// equal to [`argmax_ref`].
#[inline]
pub fn argmax(v: &[i32]) -> usize {
    #[cfg(picoformer_core = "mve")]
    if let Some(i) = mve::argmax(v) {
        return i;
    }
    argmax_ref(v)
}

/// The plain loop: the index of the first maximum of `v` (0 when `v` is empty).
pub fn argmax_ref(v: &[i32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v.get(best).copied().unwrap_or(i32::MIN) {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_maximum() {
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax(&[3]), 0);
        assert_eq!(argmax(&[1, 5, 5, 2]), 1);
        assert_eq!(argmax(&[i32::MIN, i32::MIN]), 0);
        assert_eq!(argmax(&[-7, -3, -3, i32::MAX - 1, i32::MAX]), 4);
    }
}
