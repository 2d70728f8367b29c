//! 8-byte alignment for the blob and the arena, once for every user (boards, tools, tests, fuzz).
//!
//! `Model::parse` reads the blob's tensors in place and `Translator::new` carves typed buffers out
//! of the arena, so both must start on an 8-byte boundary (`Error::MisalignedBlob`,
//! `Error::MisalignedArena` otherwise).
//!
//! - [`Aligned`] wraps any value, sized or not: a static arena
//!   (`static mut ARENA: Aligned<[u8; N]>`) or a blob in flash.
//! - [`include_aligned!`](crate::include_aligned) is `include_bytes!` on an 8-byte boundary:
//!   `static BLOB: &[u8] = picoformer::include_aligned!("model.pico");`.
//! - `AlignedBuf` (feature `alloc`, host side) is a growable, zero-filled buffer: a blob read
//!   from a file, an arena sized at run time.

/// `T` on an 8-byte boundary. `T` may be unsized (`Aligned<[u8]>`), so a `&Aligned<[u8; N]>`
/// coerces to `&Aligned<[u8]>`.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aligned<T: ?Sized>(pub T);

/// The alignment [`Aligned`] gives, in bytes.
pub const ALIGN: usize = core::mem::align_of::<Aligned<u8>>();

const _: () = assert!(ALIGN == 8);

/// `include_bytes!($path)` as a `&'static [u8]` that starts on an 8-byte boundary (a static
/// [`Aligned`] holds the bytes: in flash on a board, zero-copy).
///
/// ```
/// static BLOB: &[u8] = picoformer::include_aligned!("../README.md");
/// assert_eq!(BLOB.as_ptr() as usize % picoformer::align::ALIGN, 0);
/// ```
#[macro_export]
macro_rules! include_aligned {
    ($path:expr) => {{
        static ALIGNED: &$crate::align::Aligned<[u8]> = &$crate::align::Aligned(*include_bytes!($path));
        &ALIGNED.0
    }};
}

#[cfg(feature = "alloc")]
pub use buf::AlignedBuf;

#[cfg(feature = "alloc")]
mod buf {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::Aligned;

    /// A heap buffer of `len` bytes on an 8-byte boundary, zero-filled when made (feature
    /// `alloc`, host side: blobs read from files, arenas sized at run time).
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct AlignedBuf {
        words: Vec<Aligned<[u8; 8]>>,
        len: usize,
    }

    impl AlignedBuf {
        /// `len` zero bytes.
        pub fn zeroed(len: usize) -> AlignedBuf {
            AlignedBuf { words: vec![Aligned([0; 8]); len.div_ceil(8)], len }
        }

        /// A copy of `bytes`.
        pub fn from_bytes(bytes: &[u8]) -> AlignedBuf {
            let mut buf = AlignedBuf::zeroed(bytes.len());
            buf.bytes_mut().copy_from_slice(bytes);
            buf
        }

        /// The bytes, starting on an 8-byte boundary.
        pub fn bytes(&self) -> &[u8] {
            // SAFETY: `words` holds `len.div_ceil(8)` initialized `[u8; 8]` blocks, contiguous
            // and without padding (size 8, align 8), so its first `len` bytes are valid `u8`s.
            unsafe { core::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
        }

        /// The bytes, mutable, starting on an 8-byte boundary.
        pub fn bytes_mut(&mut self) -> &mut [u8] {
            // SAFETY: as in `bytes`, and `&mut self` makes the borrow unique.
            unsafe { core::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
        }

        /// Bytes held.
        pub fn len(&self) -> usize {
            self.len
        }

        /// Whether it holds no bytes.
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }
    }

    impl From<&[u8]> for AlignedBuf {
        fn from(bytes: &[u8]) -> AlignedBuf {
            AlignedBuf::from_bytes(bytes)
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn aligned_and_exact() {
            for len in [0, 1, 7, 8, 9, 1000] {
                let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut buf = AlignedBuf::from_bytes(&bytes);
                assert_eq!(buf.bytes(), &bytes[..]);
                assert_eq!(buf.len(), len);
                assert_eq!(buf.bytes_mut().as_ptr() as usize % super::super::ALIGN, 0);
                assert!(AlignedBuf::zeroed(len).bytes().iter().all(|&b| b == 0));
            }
        }
    }
}
