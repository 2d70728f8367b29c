//! The benchmarks on QEMU's riscv32 `virt` (RV32IMAC): entry, defmt over semihosting, `minstret`, exit.
//!
//! Run with `cargo bench-rv32`; exits 0 once every measurement is printed.
#![no_std]
#![no_main]

use defmt_semihosting as _;
use picoformer_board_common::Platform;

/// Instructions retired, from `minstret` (exact under QEMU `-icount shift=0`).
struct Minstret;

impl Platform for Minstret {
    fn instructions(&mut self) -> u64 {
        riscv::register::minstret::read64()
    }
}

#[riscv_rt::entry]
fn main() -> ! {
    let ok = picoformer_bench::run(&mut Minstret, "riscv32 virt (RV32IMAC)", 1);
    semihosting::process::exit(if ok { 0 } else { 1 })
}
