//! picoformer on an ESP32-C3 (RV32IMC, 160 MHz): an interactive German -> English translator on
//! UART0 (TX GPIO21, RX GPIO20: the USB-UART bridge of the DevKitM-1 / DevKitC-02), 115200 8N1.
//! The defmt log goes over RTT through the built-in USB-Serial-JTAG to `probe-rs run`.
//!
//! Glue only: esp-hal's clock and UART setup, the app's `Uart` over esp-hal's blocking UART
//! calls, the system timer as the clock, and the arena in DRAM. The application is
//! `picoformer_board_common::app`, the one the NUCLEO-H743ZI and the QEMU UART check run too.
//!
//! Flash and run: `cd boards/esp32c3 && cargo run --release`.
#![no_std]
#![no_main]

use defmt_rtt as _;
use esp_hal::clock::CpuClock;
use esp_hal::time::Instant;
use esp_hal::uart::{self, Uart};
use esp_hal::Blocking;
use picoformer::align::Aligned;
use picoformer::tokenizer::Node;
use picoformer::Model;
use picoformer_board_common::app::{self, Board, SCRATCH_NODES};

// The application descriptor the ESP-IDF second-stage bootloader checks.
esp_bootloader_esp_idf::esp_app_desc!();

/// Bytes of the translator's arena, a static in DRAM (313 KiB there, shared with the stack and
/// the code esp-hal runs from RAM). Greedy decoding of the de-en model needs about 210 KB;
/// `app::run` prints the exact need against this.
const ARENA_BYTES: usize = 240 * 1024;

static mut ARENA: Aligned<[u8; ARENA_BYTES]> = Aligned([0; ARENA_BYTES]);
static mut SCRATCH: [Node; SCRATCH_NODES] = [Node::EMPTY; SCRATCH_NODES];
static mut MODEL: core::mem::MaybeUninit<Model<'static>> = core::mem::MaybeUninit::uninit();

/// The system timer, read in microseconds (it runs at 16 MHz whatever the CPU clock).
struct SysTimer;

impl Board for SysTimer {
    const TICK_HZ: u32 = 1_000_000;
    const CPU_HZ: u32 = 160_000_000;
    fn ticks(&mut self) -> u32 {
        Instant::now().duration_since_epoch().as_micros() as u32
    }
}

/// The app's `Uart` over esp-hal's blocking UART calls. A receive error (FIFO overflow,
/// glitch, framing, parity) is logged and skipped, like the H7 driver does; so is a send error
/// (esp-hal 1.2's `TxError` has no variants yet, but is `non_exhaustive`).
struct Port<'d>(Uart<'d, Blocking>);

impl picoformer_board_common::uart::Uart for Port<'_> {
    fn read_byte(&mut self) -> u8 {
        let mut byte = [0u8; 1];
        loop {
            match self.0.read(&mut byte) {
                Ok(1) => return byte[0],
                Ok(_) => {}
                Err(e) => defmt::warn!("UART0: {}", defmt::Display2Format(&e)),
            }
        }
    }

    fn write_byte(&mut self, byte: u8) {
        // `write` blocks until the byte is in the FIFO
        if self.0.write(&[byte]).is_err() {
            defmt::warn!("UART0: send failed");
        }
    }

    fn flush(&mut self) {
        if self.0.flush().is_err() {
            defmt::warn!("UART0: flush failed");
        }
    }
}

#[esp_hal::main]
fn main() -> ! {
    let p = esp_hal::init(esp_hal::Config::default().with_cpu_clock(CpuClock::max()));
    defmt::info!(
        "ESP32-C3: core {=u32} MHz",
        esp_hal::clock::cpu_clock().as_mhz()
    );

    let config = uart::Config::default().with_baudrate(115_200);
    let uart = match Uart::new(p.UART0, config) {
        Ok(u) => u.with_tx(p.GPIO21).with_rx(p.GPIO20),
        Err(e) => defmt::panic!("UART0: {}", defmt::Display2Format(&e)),
    };
    let mut port = Port(uart);

    // SAFETY: `main` runs once and is the only code that names these statics.
    let (arena, scratch, slot) = unsafe {
        (
            &mut (*core::ptr::addr_of_mut!(ARENA)).0 as &mut [u8],
            &mut *core::ptr::addr_of_mut!(SCRATCH),
            (*core::ptr::addr_of_mut!(MODEL)).write(Model::default()),
        )
    };
    app::run(&mut port, &mut SysTimer, arena, scratch, slot);
    loop {
        core::hint::spin_loop();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    defmt::error!("{}", defmt::Display2Format(info));
    loop {
        core::hint::spin_loop();
    }
}
