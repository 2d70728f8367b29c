//! picoformer on QEMU's `mps2-an386` (Cortex-M4F): entry, defmt over semihosting, SysTick clock, exit.
//!
//! Run with `cargo an386` (see `scripts/qemu-run`): exits 0 only if every check passed.
#![no_std]
#![no_main]

use defmt_semihosting as _;

// SysTick runs at 25 MHz and `-icount shift=0` retires one instruction per ns: 40 per tick.
picoformer_board_common::mps2_main!(40, |clock| picoformer_board_common::run(clock));
