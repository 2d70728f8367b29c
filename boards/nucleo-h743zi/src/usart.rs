//! A polled USART3 on PD8 (TX) and PD9 (RX), alternate function 7: the NUCLEO-144 boards wire
//! these to the ST-LINK's virtual COM port. 8 data bits, no parity, 1 stop bit, 16x
//! oversampling, FIFO off (RM0433 §48).
//!
//! It implements the app's `Uart`. Line errors (overrun, framing, noise, parity) are cleared,
//! logged and skipped: the bytes that arrived intact are still delivered.

use picoformer_board_common::uart::Uart;

use crate::pac;

/// ISR bits (the FIFO-disabled names).
const ISR_PE: u32 = 1 << 0;
const ISR_FE: u32 = 1 << 1;
const ISR_NE: u32 = 1 << 2;
const ISR_ORE: u32 = 1 << 3;
const ISR_RXNE: u32 = 1 << 5;
const ISR_TC: u32 = 1 << 6;
const ISR_TXE: u32 = 1 << 7;
const ISR_ERRORS: u32 = ISR_PE | ISR_FE | ISR_NE | ISR_ORE;

/// USART3, configured and enabled.
pub struct Usart3 {
    regs: pac::USART3,
}

impl Usart3 {
    /// Clocks GPIOD and USART3, puts PD8/PD9 on AF7 and enables the USART at `baud`, given its
    /// kernel clock `kernel_hz` (rcc_pclk1 after reset: D2CCIP2R.USART234578SEL = 0).
    pub fn new(regs: pac::USART3, rcc: &pac::RCC, gpiod: &pac::GPIOD, kernel_hz: u32, baud: u32) -> Usart3 {
        rcc.ahb4enr().modify(|_, w| w.gpioden().set_bit());
        rcc.apb1lenr().modify(|_, w| w.usart3en().set_bit());
        // Read back so the clock enable has taken effect before the registers are touched.
        let _ = rcc.apb1lenr().read();

        // PD8, PD9: alternate function (MODER 0b10), AF7 (AFRH), medium speed, RX pulled up.
        // SAFETY (all four): only the bits of pins 8 and 9 change, to valid field values.
        gpiod.moder().modify(|r, w| unsafe { w.bits((r.bits() & !(0xf << 16)) | (0b1010 << 16)) });
        gpiod.afrh().modify(|r, w| unsafe { w.bits((r.bits() & !0xff) | 0x77) });
        gpiod.ospeedr().modify(|r, w| unsafe { w.bits((r.bits() & !(0xf << 16)) | (0b0101 << 16)) });
        gpiod.pupdr().modify(|r, w| unsafe { w.bits((r.bits() & !(0b11 << 18)) | (0b01 << 18)) });

        // 8N1 is the reset state of CR1..CR3; set the baud rate, then enable.
        regs.cr1().write(|w| w.ue().clear_bit());
        let brr = (kernel_hz + baud / 2) / baud;
        // SAFETY: BRR is 16 bits; 100 MHz / 115200 = 868 (0.006% off).
        regs.brr().write(|w| unsafe { w.bits(brr & 0xffff) });
        regs.cr1().write(|w| w.ue().set_bit().te().set_bit().re().set_bit());
        Usart3 { regs }
    }

    fn isr(&self) -> u32 {
        self.regs.isr().read().bits()
    }

    /// Clears the line-error flags (ICR has the same bit positions as ISR for these four).
    fn clear_errors(&self, isr: u32) {
        // SAFETY: writing ones to PECF, FECF, NCF, ORECF only clears those flags.
        self.regs.icr().write(|w| unsafe { w.bits(isr & ISR_ERRORS) });
    }
}

impl Uart for Usart3 {
    fn read_byte(&mut self) -> u8 {
        loop {
            let isr = self.isr();
            if isr & ISR_ERRORS != 0 {
                self.clear_errors(isr);
                defmt::warn!("USART3: line error (ISR {=u32:#x})", isr);
            }
            if isr & ISR_RXNE != 0 {
                return self.regs.rdr().read().bits() as u8;
            }
        }
    }

    fn write_byte(&mut self, byte: u8) {
        while self.isr() & ISR_TXE == 0 {}
        // SAFETY: TDR takes any 8-bit value.
        self.regs.tdr().write(|w| unsafe { w.bits(byte as u32) });
    }

    /// Waits until the last byte has left the shift register.
    fn flush(&mut self) {
        while self.isr() & ISR_TC == 0 {}
    }
}
