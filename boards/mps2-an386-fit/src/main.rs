//! The de-en translator on a 1 MiB flash / 128 KiB RAM part: QEMU's `mps2-an386` (Cortex-M4F)
//! with `memory.x` declaring only that much, running the fitted model's test vectors.
//!
//! Run with `cargo an386-fit` (see `scripts/qemu-run`): exits 0 only if every check passed; it
//! prints static RAM, the stack high-water mark and the flash used.
#![no_std]
#![no_main]

use defmt_semihosting as _;

// SysTick runs at 25 MHz and `-icount shift=0` retires one instruction per ns: 40 per tick.
picoformer_board_common::mps2_main!(40, |clock| picoformer_board_common::run(clock));
