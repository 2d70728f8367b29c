//! The interactive translator the real boards run (`picoformer_board_common::app`), on QEMU's
//! `mps2-an386` (Cortex-M4F): its CMSDK UART0 is the serial port (QEMU's first `-serial`), SysTick
//! the clock, the arena and scratch the QEMU boards' statics, the log defmt over semihosting.
//!
//! Glue only, as on the NUCLEO-H743ZI and the ESP32-C3. It serves for ever; `scripts/uart-check`
//! types at it, checks every reply and stops QEMU (`cargo an386-uart` runs that check). It
//! exits with code 1 only if the model or the arena is unusable, 101 on a panic.
#![no_std]
#![no_main]

use cortex_m_rt::{entry, exception};
use defmt_semihosting as _;
use picoformer_board_common::app::{self, Board};
use picoformer_board_common::cmsdk_uart::{CmsdkUart, MPS2_UART0};
use picoformer_board_common::systick::{self, SysTickClock};
use picoformer_board_common::{assets, mem};

/// The mps2 FPGA's system clock: the core, SysTick and the UARTs.
const CLOCK_HZ: u32 = 25_000_000;

/// SysTick as the tick counter, and the painted stack.
struct Mps2 {
    clock: SysTickClock,
    ram: mem::Ram,
}

impl Board for Mps2 {
    const TICK_HZ: u32 = CLOCK_HZ;
    const CPU_HZ: u32 = CLOCK_HZ;

    fn ticks(&mut self) -> u32 {
        self.clock.ticks() as u32
    }

    fn stack_high_water(&self) -> Option<usize> {
        Some(mem::stack_high_water(&self.ram))
    }
}

#[entry]
fn main() -> ! {
    let ram = mem::Ram::from_linker();
    // SAFETY: the first thing `main` does; nothing lives below its frame yet.
    unsafe { mem::paint_stack(&ram) };
    let (Some(core), Some(memory)) = (cortex_m::Peripherals::take(), assets::take_memory()) else {
        semihosting::process::exit(1)
    };
    // SysTick's instructions-per-tick only matters to the on-target test's counts: 40 under
    // `-icount shift=0`, as the an386 workload firmware says.
    let clock = SysTickClock::start(core.SYST, 40);
    // SAFETY: UART0's registers, and nothing else here drives them.
    let mut port = unsafe { CmsdkUart::new(MPS2_UART0, CLOCK_HZ, 115_200) };
    let mut board = Mps2 { clock, ram };
    app::run(&mut port, &mut board, memory.arena, memory.scratch, memory.model);
    semihosting::process::exit(1)
}

#[exception]
fn SysTick() {
    systick::on_wrap();
}
