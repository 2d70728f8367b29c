//! picoformer on QEMU's `mps2-an505` (Cortex-M33, secure state): entry, defmt over semihosting, SysTick clock, exit.
//!
//! Run with `cargo an505` (see `scripts/qemu-run`): exits 0 only if every check passed.
#![no_std]
#![no_main]

use defmt_semihosting as _;

// SysTick runs at 20 MHz and `-icount shift=0` retires one instruction per ns: 50 per tick.
picoformer_board_common::mps2_main!(50, |clock| picoformer_board_common::run(clock));
