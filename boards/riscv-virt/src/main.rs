//! picoformer on QEMU's riscv32 `virt` (RV32IMAC): entry, defmt over semihosting, `minstret`, exit.
//!
//! Run with `cargo rv32` (see `scripts/qemu-run`): exits 0 only if every check passed.
#![no_std]
#![no_main]

use defmt_semihosting as _;
use picoformer_board_common::{run, Platform};

/// Instructions retired, from `minstret` (exact under QEMU `-icount shift=0`).
struct Minstret;

impl Platform for Minstret {
    fn instructions(&mut self) -> u64 {
        riscv::register::minstret::read64() as u64
    }
}

#[riscv_rt::entry]
fn main() -> ! {
    let ok = run(&mut Minstret);
    semihosting::process::exit(if ok { 0 } else { 1 })
}
