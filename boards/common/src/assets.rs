//! Where the models live: their blobs (every board) and test vectors (feature `qemu`) in flash,
//! zero-copy; for the QEMU boards also the arena, the tokenizer's scratch and the feature
//! buffer in RAM statics, so a board that lacks the RAM fails to link. The real boards place
//! their own arenas (AXI SRAM on the H7, DRAM on the C3).
//!
//! The files are chosen at build time (see `build.rs`: `PICOFORMER_MODELS`, or
//! `PICOFORMER_BLOB` and `PICOFORMER_VECTORS`).

/// One embedded model.
#[cfg(feature = "qemu")]
#[derive(Clone, Copy)]
pub struct Embedded {
    /// The file stem (`de-en`).
    pub name: &'static str,
    /// The blob, 8-byte aligned in flash (its tensor views need it), read in place.
    pub blob: &'static [u8],
    /// Its test vectors (`picoformer::vectors`).
    pub vectors: &'static [u8],
}

// BLOB (the first model's blob: the translator, by default) and, with `qemu`, MODELS.
include!(concat!(env!("OUT_DIR"), "/models.rs"));

#[cfg(feature = "qemu")]
pub use qemu::{take_memory, Memory, MAX_TEXT_BYTES, SCRATCH_NODES};

/// The QEMU boards' part: the statics the workload runs in.
#[cfg(feature = "qemu")]
mod qemu {
    use core::mem::MaybeUninit;
    use core::sync::atomic::{AtomicBool, Ordering};

    use picoformer::align::Aligned;
    use picoformer::tokenizer::{Node, Tokenizer};
    use picoformer::Model;

    /// The arena's and the feature buffer's sizes, from the embedded models (build.rs).
    pub use super::{ARENA_BYTES, FEATURE_VALUES};

    /// Longest source text, in bytes, the on-device tokenizer takes (test2016 has at most 201).
    pub const MAX_TEXT_BYTES: usize = 256;

    /// Tokenizer scratch nodes: enough for any text of [`MAX_TEXT_BYTES`].
    pub const SCRATCH_NODES: usize = Tokenizer::scratch_len(MAX_TEXT_BYTES);

    static mut ARENA: Aligned<[u8; ARENA_BYTES]> = Aligned([0; ARENA_BYTES]);
    static mut SCRATCH: [Node; SCRATCH_NODES] = [Node::EMPTY; SCRATCH_NODES];
    static mut FEATURES: [i16; FEATURE_VALUES] = [0; FEATURE_VALUES];
    static mut MODEL: MaybeUninit<Model<'static>> = MaybeUninit::uninit();
    static TAKEN: AtomicBool = AtomicBool::new(false);

    /// The RAM the workload runs in.
    pub struct Memory {
        /// [`ARENA_BYTES`], 8-byte aligned, for a session.
        pub arena: &'static mut [u8],
        /// [`SCRATCH_NODES`] nodes for `Tokenizer::encode`.
        pub scratch: &'static mut [Node],
        /// [`FEATURE_VALUES`] values for a classifier's window.
        pub features: &'static mut [i16],
        /// The slot `Model::parse_into` fills: the model's views (a few KiB) stay off the stack.
        pub model: &'static mut Model<'static>,
    }

    /// The statics, once: `None` on every later call.
    pub fn take_memory() -> Option<Memory> {
        let taken = critical_section::with(|_| {
            let taken = TAKEN.load(Ordering::Acquire);
            TAKEN.store(true, Ordering::Release);
            taken
        });
        if taken {
            return None;
        }
        // SAFETY: the flag above hands out these references at most once.
        Some(unsafe {
            Memory {
                arena: &mut (*core::ptr::addr_of_mut!(ARENA)).0,
                scratch: &mut *core::ptr::addr_of_mut!(SCRATCH),
                features: &mut *core::ptr::addr_of_mut!(FEATURES),
                model: (*core::ptr::addr_of_mut!(MODEL)).write(Model::default()),
            }
        })
    }
}
