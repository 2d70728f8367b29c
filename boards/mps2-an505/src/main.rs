//! picoformer on QEMU's `mps2-an505` (Cortex-M33, secure state): entry, defmt over semihosting, SysTick clock, exit.
//!
//! Run with `cargo an505` (see `scripts/qemu-run`): exits 0 only if every check passed.
#![no_std]
#![no_main]

use cortex_m_rt::{entry, exception};
use defmt_semihosting as _;
use picoformer_board_common::{run, systick, systick::SysTickClock};

/// SysTick runs at the 20 MHz system clock and `-icount shift=0` retires one instruction per ns.
const INSTRUCTIONS_PER_TICK: u32 = 50;

#[entry]
fn main() -> ! {
    let core = cortex_m::Peripherals::take().unwrap();
    let mut clock = SysTickClock::start(core.SYST, INSTRUCTIONS_PER_TICK);
    let ok = run(&mut clock);
    semihosting::process::exit(if ok { 0 } else { 1 })
}

#[exception]
fn SysTick() {
    systick::on_wrap();
}
