//! The interactive translator over a UART, written once for every board that runs it: the
//! NUCLEO-H743ZI, the ESP32-C3, and QEMU's mps2-an386 in CI (`scripts/uart-check`).
//!
//! Read a German line from the serial port (echoed; backspace, CR, LF and CR LF handled; at most
//! [`MAX_LINE_BYTES`]), tokenize it on the device, encode it, and stream the English pieces back as
//! the greedy decoder produces them. Timing goes to the defmt log. Every error (line too long, not
//! UTF-8, a runtime error) is printed as text on the serial port; nothing here panics.
//!
//! A board crate holds only its glue: entry, clocks, a [`Uart`] implementation, a [`Board`]
//! (tick counter) and where the arena lives. The blob is [`crate::assets::BLOB`].

use core::fmt;

use picoformer::tokenizer::{DecodeState, Node, Tokenizer};
use picoformer::{Error, Model, Progress, TokenId, Translator};

use crate::assets::BLOB;
use crate::uart::Uart;

/// Longest input line, in bytes of UTF-8.
pub const MAX_LINE_BYTES: usize = 255;

/// Bytes of the blob the app re-checks between two sentences ([`Model::integrity`]): a pass
/// over the 1.4 MB de-en blob takes 43 sentences, each step about 0.45 M instructions
/// (14 per byte on Cortex-M4).
pub const INTEGRITY_CHUNK: usize = 32 * 1024;

/// Tokenizer scratch nodes for any line of [`MAX_LINE_BYTES`]: a board keeps this many in a static.
pub const SCRATCH_NODES: usize = Tokenizer::scratch_len(MAX_LINE_BYTES);

/// What the app needs from a board besides its UART: a free-running cycle or tick counter,
/// and optionally a stack measurement.
pub trait Board {
    /// Counter ticks per second.
    const TICK_HZ: u32;
    /// Core clock, to turn ticks into cycles.
    const CPU_HZ: u32;
    /// The counter: 32 bits, wrapping; every interval measured is far shorter than one wrap
    /// (10 s at 400 MHz).
    fn ticks(&mut self) -> u32;
    /// The deepest the stack has been, in bytes, if the board paints and measures it (the QEMU
    /// board does, with [`crate::mem`]); logged after each line.
    fn stack_high_water(&self) -> Option<usize> {
        None
    }
}

/// Microseconds in `ticks` of `B`.
fn micros<B: Board>(ticks: u64) -> u64 {
    ticks * 1_000_000 / B::TICK_HZ as u64
}

/// Core cycles in `ticks` of `B`.
fn cycles<B: Board>(ticks: u64) -> u64 {
    ticks * B::CPU_HZ as u64 / B::TICK_HZ as u64
}

/// `core::fmt::Write` over a [`Uart`]: lets `write!` and `decode_piece` stream straight to the
/// port.
struct Out<'s, S: Uart>(&'s mut S);

impl<S: Uart> fmt::Write for Out<'_, S> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_all(s.as_bytes());
        Ok(())
    }
}

/// Writes formatted text to the port.
fn say<S: Uart>(port: &mut S, args: fmt::Arguments<'_>) {
    // `Out` never fails, and the arguments are plain numbers and strings
    let _ = fmt::Write::write_fmt(&mut Out(port), args);
}

/// Why a line was not taken.
enum LineError {
    /// More than [`MAX_LINE_BYTES`]; the rest of the line was read and dropped.
    TooLong,
    /// The bytes are not UTF-8 (the terminal is not set to UTF-8).
    NotUtf8,
}

/// A line editor over a byte stream: echo, backspace (BS or DEL, one UTF-8 character at a time),
/// and CR, LF or CR LF as the end of a line.
pub struct LineReader {
    buf: [u8; MAX_LINE_BYTES],
    len: usize,
    /// The line was cut: the bytes past [`MAX_LINE_BYTES`] are being dropped.
    overflow: bool,
    /// The last byte was CR: a following LF belongs to the same line end.
    after_cr: bool,
}

impl LineReader {
    pub const fn new() -> Self {
        LineReader {
            buf: [0; MAX_LINE_BYTES],
            len: 0,
            overflow: false,
            after_cr: false,
        }
    }

    /// Reads until a line end and returns the line (possibly empty), echoing what is typed.
    fn read_line<S: Uart>(&mut self, port: &mut S) -> Result<&str, LineError> {
        self.len = 0;
        self.overflow = false;
        loop {
            let b = port.read_byte();
            let after_cr = core::mem::replace(&mut self.after_cr, b == b'\r');
            match b {
                b'\n' if after_cr => continue,
                b'\r' | b'\n' => {
                    port.write_all(b"\r\n");
                    if self.overflow {
                        return Err(LineError::TooLong);
                    }
                    let line = self.buf.get(..self.len).unwrap_or(&[]);
                    return core::str::from_utf8(line).map_err(|_| LineError::NotUtf8);
                }
                0x08 | 0x7f => {
                    if self.overflow || self.len == 0 {
                        continue;
                    }
                    // drop one whole character: its UTF-8 continuation bytes, then its lead byte
                    while self.len > 0 {
                        self.len -= 1;
                        if self.buf.get(self.len).is_none_or(|&c| c & 0xc0 != 0x80) {
                            break;
                        }
                    }
                    port.write_all(b"\x08 \x08");
                }
                // other control bytes (escape sequences, Ctrl keys) are ignored
                0x00..=0x1f => {}
                _ => match self.buf.get_mut(self.len) {
                    Some(slot) if !self.overflow => {
                        *slot = b;
                        self.len += 1;
                        port.write_byte(b);
                    }
                    _ => self.overflow = true,
                },
            }
        }
    }
}

impl Default for LineReader {
    fn default() -> Self {
        Self::new()
    }
}

/// Time spent on one sentence, in clock ticks.
#[derive(Default)]
struct Cost {
    tokenize: u64,
    encode: u64,
    decode: u64,
    tokens: u64,
}

/// Translates one line, streaming the pieces to `port`.
fn translate<S: Uart, B: Board>(
    port: &mut S,
    board: &mut B,
    model: &Model<'_>,
    t: &mut Translator<'_, '_>,
    scratch: &mut [Node],
    text: &str,
) -> Result<Cost, Error> {
    let tok = model.tokenizer();
    let max_len = model.config().max_len;
    let mut cost = Cost::default();

    // tokenize on the device (pieces never outnumber the bytes plus the dummy prefix, plus eos)
    let mut src = [0 as TokenId; MAX_LINE_BYTES + 2];
    let t0 = board.ticks();
    let n = tok.encode_source(text, scratch, &mut src, max_len)?;
    cost.tokenize = board.ticks().wrapping_sub(t0) as u64;
    let src = src.get(..n).unwrap_or(&[]);
    defmt::info!("source: {=usize} ids (at most {=usize})", n, max_len);
    if n >= max_len {
        say(port, format_args!("(input cut to {} pieces)\r\n", max_len - 1));
    }

    let t0 = board.ticks();
    t.encode(src)?;
    cost.encode = board.ticks().wrapping_sub(t0) as u64;

    // decode greedily, writing each piece as soon as it is chosen
    let mut state = DecodeState::default();
    let mut out = Out(port);
    loop {
        let t0 = board.ticks();
        let next = t.next_token()?;
        cost.decode += board.ticks().wrapping_sub(t0) as u64;
        let Some(id) = next else { break };
        cost.tokens += 1;
        tok.decode_piece(id, &mut state, &mut out)?;
        out.0.flush();
    }
    state.finish(&mut out)?;
    out.0.flush();
    Ok(cost)
}

/// Runs the translator on `port` for ever. `arena` must be 8-byte aligned; `scratch` holds
/// [`SCRATCH_NODES`] nodes; `slot` receives the parsed model (a static, so its few KiB of
/// views stay off the stack). Returns only if the model or the arena is unusable, or the blob
/// fails its periodic integrity check, after saying so on the port and in the log.
pub fn run<S: Uart, B: Board>(
    port: &mut S,
    board: &mut B,
    arena: &mut [u8],
    scratch: &mut [Node],
    slot: &mut Model<'static>,
) {
    say(port, format_args!("\r\npicoformer: int8 German -> English, on the device\r\n"));

    let t0 = board.ticks();
    if let Err(e) = Model::parse_into(BLOB, slot) {
        defmt::error!("blob: {}", defmt::Display2Format(&e));
        say(port, format_args!("error: model blob: {e}\r\n"));
        return;
    }
    let model: &Model<'_> = slot;
    let parse = board.ticks().wrapping_sub(t0) as u64;
    let c = &model.config();
    defmt::info!(
        "blob: {=usize} bytes; d_model {=usize}, {=usize}+{=usize} layers, vocabulary {=usize}, max_len {=usize}; verified in {=u64} us",
        BLOB.len(),
        c.d_model,
        c.n_enc,
        c.n_dec,
        c.vocab,
        c.max_len,
        micros::<B>(parse)
    );

    let need = Translator::arena_bytes(model, 1);
    defmt::info!("arena: need {=usize} bytes, have {=usize}", need, arena.len());
    say(port, format_args!("arena: need {need} bytes, have {}\r\n", arena.len()));
    let have = arena.len();
    let mut t = match Translator::new(model, arena, 1) {
        Ok(t) => t,
        Err(e) => {
            defmt::error!("arena: {}", defmt::Display2Format(&e));
            say(port, format_args!("error: arena of {have} bytes: {e}\r\n"));
            return;
        }
    };

    // the periodic ROM test: one chunk of the blob's CRC after every line; a mismatch stops the
    // app (the blob in flash is no longer the one verified at start-up)
    let mut integrity = model.integrity();
    let mut passes = 0u32;
    let mut lines = LineReader::new();
    loop {
        say(port, format_args!("de> "));
        let text = match lines.read_line(port) {
            Ok(text) => text.trim(),
            Err(LineError::TooLong) => {
                say(port, format_args!("error: line longer than {MAX_LINE_BYTES} bytes\r\n"));
                continue;
            }
            Err(LineError::NotUtf8) => {
                say(port, format_args!("error: input is not UTF-8\r\n"));
                continue;
            }
        };
        if text.is_empty() {
            continue;
        }
        say(port, format_args!("en> "));
        match translate(port, board, model, &mut t, scratch, text) {
            Ok(cost) => {
                say(port, format_args!("\r\n"));
                let total = cost.tokenize + cost.encode + cost.decode;
                let per_token = cost.decode / cost.tokens.max(1);
                defmt::info!(
                    "{=u64} tokens in {=u64} us: tokenize {=u64} us, encode {=u64} us, decode {=u64} us ({=u64} us, {=u64} cycles per token)",
                    cost.tokens,
                    micros::<B>(total),
                    micros::<B>(cost.tokenize),
                    micros::<B>(cost.encode),
                    micros::<B>(cost.decode),
                    micros::<B>(per_token),
                    cycles::<B>(per_token)
                );
            }
            Err(e) => {
                defmt::warn!("translate: {}", defmt::Display2Format(&e));
                say(port, format_args!("\r\nerror: {e}\r\n"));
            }
        }
        if let Some(bytes) = board.stack_high_water() {
            defmt::info!("stack high-water {=usize} bytes", bytes);
        }
        match integrity.step(model, INTEGRITY_CHUNK) {
            Ok(Progress::Checking { .. }) => {}
            Ok(Progress::Done) => {
                passes += 1;
                defmt::info!("integrity: pass {=u32} over the blob agrees", passes);
            }
            Err(e) => {
                defmt::error!("integrity: {}", defmt::Display2Format(&e));
                say(port, format_args!("error: model blob changed in flash: {e}\r\n"));
                return;
            }
        }
    }
}
