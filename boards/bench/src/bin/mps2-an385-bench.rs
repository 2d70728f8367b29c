//! The benchmarks on QEMU's `mps2-an385` (Cortex-M3): entry, defmt over semihosting, SysTick clock, exit.
//!
//! Run with `cargo bench-an385` (or `cargo bench-an385-v6m`, the Cortex-M0+ build); exits 0 once
//! every measurement is printed.
#![no_std]
#![no_main]

use defmt_semihosting as _;

// SysTick runs at 25 MHz and `-icount shift=0` retires one instruction per ns: 40 per tick.
picoformer_board_common::mps2_main!(40, |clock| picoformer_bench::run(clock, MACHINE, 40));

#[cfg(not(bench_v6m))]
const MACHINE: &str = "mps2-an385 (Cortex-M3)";
#[cfg(bench_v6m)]
const MACHINE: &str = "mps2-an385 running the Cortex-M0+ build (thumbv6m)";
