//! The serial port the translator app ([`crate::app`]) talks through, as small as the app needs:
//! blocking, one byte at a time. Each board implements it over its own UART (the NUCLEO's
//! USART3, the ESP32-C3's UART0 through esp-hal, the mps2 machines' CMSDK UART under QEMU).

/// A polled serial port.
pub trait Uart {
    /// Waits for the next byte received. Line errors (overrun, framing, noise, parity) are the
    /// driver's to clear, log and skip: the bytes that arrived intact still come through.
    fn read_byte(&mut self) -> u8;

    /// Waits for room in the transmitter and sends `byte`.
    fn write_byte(&mut self, byte: u8);

    /// Waits until every byte written has left the port.
    fn flush(&mut self);

    /// Sends `bytes` in order.
    fn write_all(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }
}
