//! Where the model lives: the blob (every board) and the test vectors (feature `qemu`) in flash,
//! zero-copy; for the QEMU boards also the arena and the tokenizer's scratch in RAM statics, so a
//! board that lacks the RAM fails to link. The real boards place their own arenas (AXI SRAM on
//! the H7, DRAM on the C3).
//!
//! The files are chosen at build time (see `build.rs`: `PICOFORMER_BLOB`, `PICOFORMER_VECTORS`).

/// The model blob (`PICOFORMER_BLOB` at build time), in flash, 8-byte aligned (the blob's
/// tensor views need it), read in place.
pub static BLOB: &[u8] = picoformer::include_aligned!(env!("PICOFORMER_BLOB_PATH"));

#[cfg(feature = "qemu")]
pub use qemu::{take_memory, Memory, ARENA_BYTES, MAX_TEXT_BYTES, SCRATCH_NODES, VECTORS};

/// The QEMU boards' part: the test vectors, and the statics the workload runs in.
#[cfg(feature = "qemu")]
mod qemu {
    use core::mem::MaybeUninit;
    use core::sync::atomic::{AtomicBool, Ordering};

    use picoformer::align::Aligned;
    use picoformer::tokenizer::{Node, Tokenizer};
    use picoformer::Model;

    /// Bytes of the static arena. Greedy decoding of the de-en model (d_model 128, 2+2 layers,
    /// max_len 64, 4000 pieces) needs about 200 KB; [`crate::run`] checks the exact need
    /// (`Translator::arena_bytes`) against this at start-up.
    pub const ARENA_BYTES: usize = 256 * 1024;

    /// Longest source text, in bytes, the on-device tokenizer takes (test2016 has at most 201).
    pub const MAX_TEXT_BYTES: usize = 256;

    /// Tokenizer scratch nodes: enough for any text of [`MAX_TEXT_BYTES`].
    pub const SCRATCH_NODES: usize = Tokenizer::scratch_len(MAX_TEXT_BYTES);

    /// The test vectors the converter wrote for [`BLOB`](super::BLOB), in flash.
    pub static VECTORS: &[u8] = include_bytes!(env!("PICOFORMER_VECTORS_PATH"));

    static mut ARENA: Aligned<[u8; ARENA_BYTES]> = Aligned([0; ARENA_BYTES]);
    static mut SCRATCH: [Node; SCRATCH_NODES] = [Node::EMPTY; SCRATCH_NODES];
    static mut MODEL: MaybeUninit<Model<'static>> = MaybeUninit::uninit();
    static TAKEN: AtomicBool = AtomicBool::new(false);

    /// The RAM the workload runs in.
    pub struct Memory {
        /// [`ARENA_BYTES`], 8-byte aligned, for the `Translator`.
        pub arena: &'static mut [u8],
        /// [`SCRATCH_NODES`] nodes for `Tokenizer::encode`.
        pub scratch: &'static mut [Node],
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
                model: (*core::ptr::addr_of_mut!(MODEL)).write(Model::default()),
            }
        })
    }
}
