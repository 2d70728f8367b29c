//! The benchmarks on QEMU's `mps2-an386` (Cortex-M4F): entry, defmt over semihosting, SysTick clock, exit.
//!
//! Run with `cargo bench-an386`; exits 0 once every measurement is printed.
#![no_std]
#![no_main]

use defmt_semihosting as _;

// SysTick runs at 25 MHz and `-icount shift=0` retires one instruction per ns: 40 per tick.
picoformer_board_common::mps2_main!(40, |clock| picoformer_bench::run(clock, "mps2-an386 (Cortex-M4F)", 40));
