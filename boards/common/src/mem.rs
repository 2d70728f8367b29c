//! RAM layout and stack high-water measurement.
//!
//! ```text
//! ram.start          ram.static_end                          ram.stack_top
//! | .data .bss .uninit | free, painted with PAINT  <- stack grows down |
//! ```
//!
//! The bounds come from linker symbols that cortex-m-rt (0.7) and riscv-rt (0.18) both define:
//! `__sdata` (start of `.data`, the first static in RAM), `__euninit` (end of `.uninit`, the last
//! one) and `_stack_start` (initial stack pointer, the top of RAM). A board whose runtime names them
//! differently must provide these three symbols in its linker script.

/// The word written over the free stack before the workload runs.
pub const PAINT: u32 = 0xC0DE_CAFE;

/// RAM addresses, in bytes.
#[derive(Clone, Copy, Debug, defmt::Format)]
pub struct Ram {
    /// First byte of static RAM (`.data`).
    pub start: usize,
    /// One past the last byte of static RAM (`.uninit`); the stack may grow down to here.
    pub static_end: usize,
    /// The initial stack pointer (one past the highest stack byte).
    pub stack_top: usize,
}

impl Ram {
    /// Reads the layout from the runtime's linker symbols (zeros on a hosted target).
    pub fn from_linker() -> Ram {
        #[cfg(target_os = "none")]
        {
            extern "C" {
                static __sdata: u32;
                static __euninit: u32;
                static _stack_start: u32;
            }
            // Only the addresses of the linker symbols are taken, never their contents.
            Ram {
                start: core::ptr::addr_of!(__sdata) as usize,
                static_end: core::ptr::addr_of!(__euninit) as usize,
                stack_top: core::ptr::addr_of!(_stack_start) as usize,
            }
        }
        #[cfg(not(target_os = "none"))]
        {
            Ram {
                start: 0,
                static_end: 0,
                stack_top: 0,
            }
        }
    }

    /// Bytes of statics in RAM (`.data` + `.bss` + `.uninit`).
    pub fn static_bytes(&self) -> usize {
        self.static_end - self.start
    }

    /// Bytes between the end of statics and the top of the stack.
    pub fn stack_bytes(&self) -> usize {
        self.stack_top - self.static_end
    }
}

/// Writes [`PAINT`] over every word from `ram.static_end` up to the current stack pointer.
///
/// The loop is assembly: compiled Rust would read the stack pointer before its own prologue
/// pushes the return address, then paint over it.
///
/// # Safety
/// Nothing below the caller's stack pointer may be live (no other stack, no DMA buffer).
/// Interrupts may run: their frames are pushed below the stack pointer and simply count as used.
#[inline(never)]
pub unsafe fn paint_stack(ram: &Ram) {
    let from = (ram.static_end + 3) & !3;
    #[cfg(target_arch = "arm")]
    // SAFETY: writes only [from, sp), free RAM below this frame, per the caller's contract.
    unsafe {
        core::arch::asm!(
            "2:",
            "cmp {p}, sp",
            "bhs 3f",
            "str {pat}, [{p}]",
            "adds {p}, #4",
            "b 2b",
            "3:",
            p = inout(reg) from => _,
            pat = in(reg) PAINT,
            options(nostack),
        )
    };
    #[cfg(any(target_arch = "riscv32", target_arch = "riscv64"))]
    // SAFETY: writes only [from, sp), free RAM below this frame, per the caller's contract.
    unsafe {
        core::arch::asm!(
            "2:",
            "bgeu {p}, sp, 3f",
            "sw {pat}, 0({p})",
            "addi {p}, {p}, 4",
            "j 2b",
            "3:",
            p = inout(reg) from => _,
            pat = in(reg) PAINT,
            options(nostack),
        )
    };
    #[cfg(not(any(target_arch = "arm", target_arch = "riscv32", target_arch = "riscv64")))]
    let _ = from;
}

/// The deepest the stack has been since [`paint_stack`], in bytes from `ram.stack_top`: the first
/// word above `ram.static_end` that no longer holds [`PAINT`] marks it.
pub fn stack_high_water(ram: &Ram) -> usize {
    let mut p = ((ram.static_end + 3) & !3) as *const u32;
    while (p as usize) < ram.stack_top {
        // SAFETY: reading RAM between the statics and the stack top, which is mapped.
        if unsafe { p.read_volatile() } != PAINT {
            break;
        }
        // SAFETY: still inside the RAM range checked above.
        p = unsafe { p.add(1) };
    }
    ram.stack_top - p as usize
}
