//! The CMSDK APB UART of the Arm MPS2 machines, polled: what the translator app ([`crate::app`])
//! talks through under QEMU (`-serial`), as the real boards' apps talk through their UARTs.
//!
//! Registers (Arm Cortex-M System Design Kit, DDI 0479C §4.3), 32 bits each:
//!
//! ```text
//! 0x00 DATA       received byte (read) / byte to send (write)
//! 0x04 STATE      bit 0 TX buffer full, 1 RX buffer full, 2 TX overrun, 3 RX overrun (write 1 to clear)
//! 0x08 CTRL       bit 0 TX enable, 1 RX enable (2..5: interrupt enables, left off)
//! 0x0C INTSTATUS  interrupt flags (unused: polled)
//! 0x10 BAUDDIV    clock / baud rate, at least 16
//! ```
//!
//! mps2-an385, -an386 and -an500 have UART0 at `0x4000_4000`, which QEMU connects to its first
//! `-serial` device. The UART has a one-byte buffer each way; QEMU takes a received byte from the
//! chardev only when the RX buffer is empty, so nothing is lost however fast the host types.

use crate::uart::Uart;

/// UART0 of mps2-an385/an386/an500.
pub const MPS2_UART0: usize = 0x4000_4000;

const DATA: usize = 0x00;
const STATE: usize = 0x04;
const CTRL: usize = 0x08;
const BAUDDIV: usize = 0x10;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const STATE_RX_OVERRUN: u32 = 1 << 3;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;

/// A CMSDK UART, enabled for sending and receiving.
pub struct CmsdkUart {
    base: usize,
}

impl CmsdkUart {
    /// Sets the baud rate from the UART's clock `clock_hz` (25 MHz on the mps2 machines) and
    /// enables TX and RX, interrupts off.
    ///
    /// # Safety
    /// `base` is the register block of a CMSDK UART that nothing else drives.
    pub unsafe fn new(base: usize, clock_hz: u32, baud: u32) -> CmsdkUart {
        let uart = CmsdkUart { base };
        uart.write(CTRL, 0);
        uart.write(BAUDDIV, (clock_hz / baud.max(1)).max(16));
        uart.write(CTRL, CTRL_TX_EN | CTRL_RX_EN);
        uart
    }

    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `new`'s contract: a CMSDK UART's registers, 32-bit, at `base + offset`.
        unsafe { core::ptr::read_volatile((self.base + offset) as *const u32) }
    }

    fn write(&self, offset: usize, value: u32) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile((self.base + offset) as *mut u32, value) }
    }
}

impl Uart for CmsdkUart {
    fn read_byte(&mut self) -> u8 {
        loop {
            let state = self.read(STATE);
            if state & STATE_RX_OVERRUN != 0 {
                self.write(STATE, STATE_RX_OVERRUN);
                defmt::warn!("CMSDK UART: receive overrun");
            }
            if state & STATE_RX_FULL != 0 {
                return self.read(DATA) as u8;
            }
        }
    }

    fn write_byte(&mut self, byte: u8) {
        while self.read(STATE) & STATE_TX_FULL != 0 {}
        self.write(DATA, byte as u32);
    }

    fn flush(&mut self) {
        while self.read(STATE) & STATE_TX_FULL != 0 {}
    }
}
