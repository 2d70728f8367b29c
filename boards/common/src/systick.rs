//! An instruction counter from the Cortex-M SysTick timer, shared by the mps2 boards.
//!
//! Under QEMU `-icount shift=0` virtual time advances 1 ns per instruction, so a SysTick clocked at
//! 25 MHz (the mps2 boards) ticks every 40 instructions, and one at 32 MHz (mps3-an547) every
//! 31.25 = 125/4, a fraction [`SysTickClock::start_ratio`] keeps exact. The counter is 24 bits
//! and counts down; the SysTick exception counts wraps and [`SysTickClock`] combines both into a 64-bit count.
//! The board's `#[exception] fn SysTick()` must call [`on_wrap`]; [`mps2_main!`](crate::mps2_main)
//! writes it, with the entry point.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::{syst::SystClkSource, SYST};

use crate::Platform;

/// Full 24-bit reload: the counter runs 2^24 ticks between exceptions.
const RELOAD: u32 = 0x00FF_FFFF;

static WRAPS: AtomicU32 = AtomicU32::new(0);

/// Call from the SysTick exception handler, the only writer (so a load and a store suffice,
/// also on Armv6-M, which has no atomic read-modify-write).
pub fn on_wrap() {
    WRAPS.store(WRAPS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

/// A running SysTick, read as instructions.
pub struct SysTickClock {
    instructions_per_tick: u64,
    /// `instructions_per_tick` is per this many ticks.
    ticks_per: u64,
}

impl SysTickClock {
    /// Starts SysTick on the core clock with its exception enabled, and waits for the first
    /// reload (QEMU reads the current value as 0 until then).
    pub fn start(syst: SYST, instructions_per_tick: u32) -> SysTickClock {
        SysTickClock::start_ratio(syst, instructions_per_tick, 1)
    }

    /// [`SysTickClock::start`] with `instructions / ticks` instructions per tick.
    pub fn start_ratio(mut syst: SYST, instructions: u32, ticks: u32) -> SysTickClock {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        while SYST::get_current() == 0 {}
        WRAPS.store(0, Ordering::Relaxed);
        SysTickClock {
            instructions_per_tick: instructions as u64,
            ticks_per: ticks.max(1) as u64,
        }
    }

    /// Ticks since the first reload.
    pub fn ticks(&self) -> u64 {
        loop {
            let wraps = WRAPS.load(Ordering::Relaxed);
            let current = SYST::get_current();
            if WRAPS.load(Ordering::Relaxed) == wraps {
                return wraps as u64 * (RELOAD as u64 + 1) + (RELOAD - current) as u64;
            }
        }
    }
}

impl Platform for SysTickClock {
    fn instructions(&mut self) -> u64 {
        self.ticks() * self.instructions_per_tick / self.ticks_per
    }
}

/// The entry point of an mps2 firmware: starts [`SysTickClock`] at `$per_tick` instructions per
/// tick (or `ticks $n / $d`: n/d per tick), calls `$run(&mut clock) -> bool`, exits QEMU with 0
/// (true) or 1, and counts SysTick wraps. The board crate needs `cortex-m`, `cortex-m-rt` and
/// `semihosting`.
#[macro_export]
macro_rules! mps2_main {
    (@ $start:path, ($($rate:expr),+), $run:expr) => {
        #[cortex_m_rt::entry]
        fn main() -> ! {
            let run: fn(&mut $crate::systick::SysTickClock) -> bool = $run;
            // the only `take`: it cannot fail
            let core = cortex_m::Peripherals::take().unwrap();
            let mut clock = $start(core.SYST, $($rate),+);
            let ok = run(&mut clock);
            semihosting::process::exit(if ok { 0 } else { 1 })
        }

        #[cortex_m_rt::exception]
        fn SysTick() {
            $crate::systick::on_wrap();
        }
    };
    (ticks $n:literal / $d:literal, $run:expr) => {
        $crate::mps2_main!(@ $crate::systick::SysTickClock::start_ratio, ($n, $d), $run);
    };
    ($per_tick:expr, $run:expr) => {
        $crate::mps2_main!(@ $crate::systick::SysTickClock::start, ($per_tick), $run);
    };
}
