//! picoformer on QEMU's `mps3-an547` (Cortex-M55 with Helium, secure state): entry, defmt over
//! semihosting, SysTick clock, exit. cortex-m-rt's reset handler enables CP10/CP11 in CPACR
//! (the target has an FPU) before `main`, which MVE needs as well.
//!
//! Run with `cargo an547` (see `scripts/qemu-run`): exits 0 only if every check passed.
#![no_std]
#![no_main]

use defmt_semihosting as _;

// SysTick counts the 32 MHz core clock and `-icount shift=0` retires one instruction per ns:
// 31.25 = 125/4 instructions per tick.
picoformer_board_common::mps2_main!(ticks 125 / 4, |clock| picoformer_board_common::run(clock));
