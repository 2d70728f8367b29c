//! The benchmarks on QEMU's `mps2-an385` (Cortex-M3): entry, defmt over semihosting, SysTick clock, exit.
//!
//! Run with `cargo bench-an385`; exits 0 once every measurement is printed.
#![no_std]
#![no_main]

use cortex_m_rt::{entry, exception};
use defmt_semihosting as _;
use picoformer_board_common::{systick, systick::SysTickClock};

/// SysTick runs at 25 MHz and `-icount shift=0` retires one instruction per ns.
const INSTRUCTIONS_PER_TICK: u32 = 40;

#[entry]
fn main() -> ! {
    let core = cortex_m::Peripherals::take().unwrap();
    let mut clock = SysTickClock::start(core.SYST, INSTRUCTIONS_PER_TICK);
    let ok = picoformer_bench::run(&mut clock, "mps2-an385 (Cortex-M3)", INSTRUCTIONS_PER_TICK);
    semihosting::process::exit(if ok { 0 } else { 1 })
}

#[exception]
fn SysTick() {
    systick::on_wrap();
}
