//! picoformer on a NUCLEO-H743ZI(2): an interactive German -> English translator on USART3, which
//! the on-board ST-LINK bridges to a USB virtual COM port (115200 8N1). The defmt log goes over
//! RTT to `probe-rs run`.
//!
//! Glue only: clocks (400 MHz from the ST-LINK's 8 MHz, HSI as a fallback), caches, the DWT
//! cycle counter, USART3, and where the arena lives (AXI SRAM). The application is
//! `picoformer_board_common::app`, the one the ESP32-C3 and the QEMU UART check run too.
//!
//! Flash and run: `cd boards/nucleo-h743zi && cargo run --release`.
#![no_std]
#![no_main]

mod clocks;
mod usart;

use core::mem::MaybeUninit;

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use panic_probe as _;
use picoformer::align::Aligned;
use picoformer::tokenizer::Node;
use picoformer::Model;
use picoformer_board_common::app::{self, Board, SCRATCH_NODES};
use stm32h7::stm32h743v as pac;

/// Bytes of the translator's arena in AXI SRAM (512 KiB there). Greedy decoding of the de-en
/// model needs about 210 KB; `app::run` prints the exact need against this.
const ARENA_BYTES: usize = 256 * 1024;

/// The Cortex-M7 cycle counter at the core clock.
struct Cycles;

impl Board for Cycles {
    const TICK_HZ: u32 = clocks::CPU_HZ;
    const CPU_HZ: u32 = clocks::CPU_HZ;
    fn ticks(&mut self) -> u32 {
        DWT::cycle_count()
    }
}

/// The arena, in AXI SRAM (`memory.x`: a NOLOAD section, zeroed by `main`).
#[link_section = ".axisram"]
static mut ARENA: MaybeUninit<Aligned<[u8; ARENA_BYTES]>> = MaybeUninit::uninit();
/// The tokenizer's scratch, in DTCM.
static mut SCRATCH: [Node; SCRATCH_NODES] = [Node::EMPTY; SCRATCH_NODES];
static mut MODEL: MaybeUninit<Model<'static>> = MaybeUninit::uninit();

#[entry]
fn main() -> ! {
    let (Some(mut cp), Some(dp)) = (cortex_m::Peripherals::take(), pac::Peripherals::take()) else {
        defmt::panic!("peripherals already taken");
    };

    let source = clocks::init(&dp.PWR, &dp.RCC, &dp.FLASH);
    defmt::info!(
        "NUCLEO-H743ZI: core {=u32} MHz from {=str}",
        clocks::CPU_HZ / 1_000_000,
        source.name()
    );

    // Instruction and data caches: the weights are read from flash through the D-cache.
    // No DMA runs, so no cache maintenance is needed.
    cp.SCB.enable_icache();
    cp.SCB.enable_dcache(&mut cp.CPUID);

    // DWT CYCCNT (the M7's DWT has a software lock: unlock it first).
    cp.DCB.enable_trace();
    DWT::unlock();
    cp.DWT.enable_cycle_counter();

    let mut port = usart::Usart3::new(dp.USART3, &dp.RCC, &dp.GPIOD, clocks::PCLK1_HZ, 115_200);

    // SAFETY: `main` runs once and is the only code that names these statics. `ARENA` is
    // `ARENA_BYTES` of 8-byte aligned RAM in a section the runtime does not zero: it is zeroed
    // here, so every byte is an initialized `u8` before the slice is made.
    let (arena, scratch, slot) = unsafe {
        let arena = core::ptr::addr_of_mut!(ARENA).cast::<u8>();
        arena.write_bytes(0, ARENA_BYTES);
        (
            core::slice::from_raw_parts_mut(arena, ARENA_BYTES),
            &mut *core::ptr::addr_of_mut!(SCRATCH),
            (*core::ptr::addr_of_mut!(MODEL)).write(Model::default()),
        )
    };

    app::run(&mut port, &mut Cycles, arena, scratch, slot);
    loop {
        cortex_m::asm::wfi();
    }
}
