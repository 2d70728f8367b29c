//! The benchmarks on QEMU's `mps3-an547` (Cortex-M55 with Helium): entry, defmt over semihosting,
//! SysTick clock, exit.
//!
//! Run with `cargo bench-an547`; exits 0 once every measurement is printed.
#![no_std]
#![no_main]

use defmt_semihosting as _;

// SysTick counts the 32 MHz core clock and `-icount shift=0` retires one instruction per ns:
// 31.25 = 125/4 per tick.
picoformer_board_common::mps2_main!(ticks 125 / 4, |clock| picoformer_bench::run_ticks(clock, "mps3-an547 (Cortex-M55)", 125, 4));
