//! The index of the first maximum of the logits (greedy decoding), with a core's fast path.
//!
//! [`crate::argmax`] is the plain loop; it asks [`fast`] first, which answers on cores with an
//! assembly path (`mve.rs`, Cortex-M55/M85) and returns `None` elsewhere.

#[cfg(picoformer_core = "mve")]
mod mve;

/// The index of the first maximum of `v` through this core's fast path, or `None` where there
/// is none (or `v` is empty).
#[inline]
pub fn fast(v: &[i32]) -> Option<usize> {
    #[cfg(picoformer_core = "mve")]
    return mve::argmax(v);
    #[cfg(not(picoformer_core = "mve"))]
    {
        let _ = v;
        None
    }
}
