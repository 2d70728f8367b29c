//! RAM layout and stack high-water measurement.
//!
//! The Cortex-M boards link with flip-link, which puts the stack *below* the statics, so that a
//! stack overflow runs off the bottom of RAM (a bus fault on real hardware) instead of into
//! `.bss`; the RISC-V `virt` board keeps the usual layout:
//!
//! ```text
//! flip-link (Cortex-M):
//! ram start = stack_bottom              stack_top = start        static_end = end of RAM
//! | free, painted with PAINT  <- stack grows down | .data .bss .uninit |
//!
//! usual (riscv-rt):
//! start              static_end = stack_bottom                        stack_top
//! | .data .bss .uninit | free, painted with PAINT  <- stack grows down |
//! ```
//!
//! The bounds come from linker symbols: `__sdata` (start of `.data`, the first static in RAM) and
//! `__euninit` (end of `.uninit`, the last one), which cortex-m-rt (0.7) and riscv-rt (0.18) both
//! define; `_stack_start` (the initial stack pointer, one past the highest stack byte); and the
//! lowest stack byte, `_stack_end` on Cortex-M (cortex-m-rt 0.7.5+ puts it after the statics,
//! flip-link redefines it as the start of RAM) and `__estack` on RISC-V (riscv-rt's `.stack`).
//! A board whose runtime names them differently must provide these symbols in its linker script.

/// The word written over the free stack before the workload runs.
pub const PAINT: u32 = 0xC0DE_CAFE;

/// RAM addresses, in bytes.
#[derive(Clone, Copy, Debug, defmt::Format)]
pub struct Ram {
    /// First byte of static RAM (`.data`).
    pub start: usize,
    /// One past the last byte of static RAM (`.uninit`).
    pub static_end: usize,
    /// The lowest byte the stack may grow down to.
    pub stack_bottom: usize,
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
                #[cfg(target_arch = "arm")]
                static _stack_end: u32;
                #[cfg(not(target_arch = "arm"))]
                static __estack: u32;
            }
            #[cfg(target_arch = "arm")]
            let stack_bottom = core::ptr::addr_of!(_stack_end) as usize;
            #[cfg(not(target_arch = "arm"))]
            let stack_bottom = core::ptr::addr_of!(__estack) as usize;
            // Only the addresses of the linker symbols are taken, never their contents.
            Ram {
                start: core::ptr::addr_of!(__sdata) as usize,
                static_end: core::ptr::addr_of!(__euninit) as usize,
                stack_bottom,
                stack_top: core::ptr::addr_of!(_stack_start) as usize,
            }
        }
        #[cfg(not(target_os = "none"))]
        {
            Ram {
                start: 0,
                static_end: 0,
                stack_bottom: 0,
                stack_top: 0,
            }
        }
    }

    /// Bytes of statics in RAM (`.data` + `.bss` + `.uninit`).
    pub fn static_bytes(&self) -> usize {
        self.static_end.saturating_sub(self.start)
    }

    /// Bytes the stack may take, from its bottom to its top.
    pub fn stack_bytes(&self) -> usize {
        self.stack_top.saturating_sub(self.stack_bottom)
    }
}

/// Writes [`PAINT`] over every word from `ram.stack_bottom` up to the current stack pointer.
///
/// The loop is assembly: compiled Rust would read the stack pointer before its own prologue
/// pushes the return address, then paint over it.
///
/// # Safety
/// Nothing below the caller's stack pointer may be live (no other stack, no DMA buffer).
/// Interrupts may run: their frames are pushed below the stack pointer and simply count as used.
#[inline(never)]
pub unsafe fn paint_stack(ram: &Ram) {
    let from = (ram.stack_bottom + 3) & !3;
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
/// word from `ram.stack_bottom` up that no longer holds [`PAINT`] marks it.
pub fn stack_high_water(ram: &Ram) -> usize {
    let mut p = ((ram.stack_bottom + 3) & !3) as *const u32;
    while (p as usize) < ram.stack_top {
        // SAFETY: reading the stack's RAM, below its top, which is mapped.
        if unsafe { p.read_volatile() } != PAINT {
            break;
        }
        // SAFETY: still inside the RAM range checked above.
        p = unsafe { p.add(1) };
    }
    ram.stack_top - p as usize
}

/// Bytes of flash the image takes, from the vector table to the end of `.data`'s load image
/// (cortex-m-rt's `__vector_table`, `__sidata`, `__sdata`, `__edata`); `None` where the runtime
/// does not define them (RISC-V).
pub fn flash_used() -> Option<usize> {
    #[cfg(all(target_os = "none", target_arch = "arm"))]
    {
        extern "C" {
            static __vector_table: u32;
            static __sidata: u32;
            static __sdata: u32;
            static __edata: u32;
        }
        // Only the addresses of the linker symbols are taken, never their contents.
        let (start, load) = (core::ptr::addr_of!(__vector_table) as usize, core::ptr::addr_of!(__sidata) as usize);
        let data = (core::ptr::addr_of!(__edata) as usize).saturating_sub(core::ptr::addr_of!(__sdata) as usize);
        Some((load + data).saturating_sub(start))
    }
    #[cfg(not(all(target_os = "none", target_arch = "arm")))]
    None
}
