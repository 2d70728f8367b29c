//! picoformer in the browser: the same `no_std`, heap-free runtime, compiled to
//! `wasm32-unknown-unknown`, behind a plain C ABI that `web/pico.js` loads.
//!
//! One wasm instance holds one model and one greedy session; the page starts an instance per
//! model. There is no allocator: the blob, the arena, the tokenizer scratch and the source ids
//! live in pages taken once from `memory.grow` (64 KiB-aligned, so they meet the 8-byte
//! alignment `Model::parse` and `Translator::new` ask for), the text and the output in statics.
//!
//! ```text
//! pf_alloc(len) -> ptr          pages for the blob (0: out of memory); JS copies the blob there
//! pf_load(ptr, len) -> status   parse and verify the blob, carve the arena, start a session
//! pf_text() -> ptr              TEXT_CAP bytes where JS writes the UTF-8 source text
//! pf_encode(len) -> n | status  tokenize text[..len] and encode it; n source ids, eos included
//! pf_next() -> id | END | ERR   one greedy step; the token's text is at pf_out()
//! pf_steps() -> n               decoder steps run for this sentence (eos step included)
//! pf_out(), pf_out_len()        the last token's text, or the last error's message (UTF-8)
//! pf_max_len(), pf_arena_bytes()
//! ```
//! Every status is 0 on success and `ERR` (-2) on error, with the message at `pf_out()`.
//! Exports are called one at a time from one thread (wasm32 without threads), never re-entered.
#![cfg(target_arch = "wasm32")]
#![no_std]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use core::cell::UnsafeCell;
use core::fmt::{self, Write};

use picoformer::tokenizer::{DecodeState, Node, Tokenizer};
use picoformer::{Model, TokenId, Translator};

/// Longest source text accepted, in UTF-8 bytes.
pub const TEXT_CAP: usize = 4096;
/// Output buffer: one token's text, or an error message.
const OUT_CAP: usize = 1024;

const END: i32 = -1;
const ERR: i32 = -2;

/// Everything that outlives one call. The borrows are `'static` because the pages they point
/// into are never released and `model` is never replaced once set.
struct State {
    model: Option<Model<'static>>,
    session: Option<Session>,
    text: [u8; TEXT_CAP],
    out: Out,
}

/// The greedy session over the loaded model, and what one sentence needs besides its arena.
struct Session {
    translator: Translator<'static, 'static>,
    /// Tokenizer scratch for up to `TEXT_CAP` bytes of text.
    scratch: &'static mut [Node],
    /// Source ids, `max_len` of them at most (eos included).
    src: &'static mut [TokenId],
    decode: DecodeState,
    /// Tokens emitted, and decoder steps run (eos included), for this sentence.
    tokens: usize,
    steps: usize,
}

/// A fixed buffer that `fmt::Write` fills; a write that does not fit fails and leaves the
/// buffer as it was before that write.
struct Out {
    buf: [u8; OUT_CAP],
    len: usize,
}

impl Write for Out {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        self.buf.get_mut(self.len..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

struct Global(UnsafeCell<State>);

// SAFETY: wasm32-unknown-unknown without the atomics feature has one thread.
unsafe impl Sync for Global {}

static STATE: Global = Global(UnsafeCell::new(State {
    model: None,
    session: None,
    text: [0; TEXT_CAP],
    out: Out { buf: [0; OUT_CAP], len: 0 },
}));

fn state() -> &'static mut State {
    // SAFETY: one thread, and each export takes this reference once and drops it on return
    // (JS cannot call back in while an export runs), so it is never aliased.
    unsafe { &mut *STATE.0.get() }
}

/// `n` fresh values of `init` in new pages of linear memory, never released.
fn pages<T: Copy>(n: usize, init: T) -> Option<&'static mut [T]> {
    let bytes = n.checked_mul(core::mem::size_of::<T>())?;
    let count = bytes.div_ceil(65536);
    let first = core::arch::wasm32::memory_grow(0, count);
    if first == usize::MAX {
        return None;
    }
    let ptr = (first * 65536) as *mut T;
    // SAFETY: the pages [first, first + count) were just added to memory and nothing else owns
    // them (no allocator in this module); 65536-byte alignment suits any T here.
    unsafe {
        for i in 0..n {
            ptr.add(i).write(init);
        }
        Some(core::slice::from_raw_parts_mut(ptr, n))
    }
}

/// Report `e` at `pf_out()` and return `ERR`.
fn fail(out: &mut Out, e: impl fmt::Display) -> i32 {
    out.len = 0;
    if write!(out, "{e}").is_err() {
        out.len = 0;
        let _ = out.write_str("error message too long");
    }
    ERR
}

#[no_mangle]
pub extern "C" fn pf_alloc(len: usize) -> *mut u8 {
    pages(len, 0u8).map_or(core::ptr::null_mut(), |p| p.as_mut_ptr())
}

/// Parse and verify the blob at `ptr..ptr + len` (from `pf_alloc`) and start a greedy session.
///
/// # Safety
/// `ptr..ptr + len` must be memory from `pf_alloc(len)` that JS has filled, untouched afterwards.
#[no_mangle]
pub unsafe extern "C" fn pf_load(ptr: *const u8, len: usize) -> i32 {
    let s = state();
    if s.model.is_some() {
        return fail(&mut s.out, "a model is loaded already: start a new instance");
    }
    // SAFETY: the caller's contract above; the pages are never released.
    let blob: &'static [u8] = unsafe { core::slice::from_raw_parts(ptr, len) };
    let model = match Model::parse(blob) {
        Ok(m) => s.model.insert(m),
        Err(e) => return fail(&mut s.out, e),
    };
    // SAFETY: `s.model` is set once here and never replaced or dropped, so the model it holds
    // lives as long as the instance.
    let model: &'static Model<'static> = unsafe { &*(model as *const Model<'static>) };
    let (Some(arena), Some(scratch), Some(src)) = (
        pages(Translator::arena_bytes(model, 1), 0u8),
        pages(Tokenizer::scratch_len(TEXT_CAP), Node::default()),
        pages(model.config().max_len, 0 as TokenId),
    ) else {
        return fail(&mut s.out, "out of memory");
    };
    let translator = match Translator::new(model, arena, 1) {
        Ok(t) => t,
        Err(e) => return fail(&mut s.out, e),
    };
    s.session = Some(Session { translator, scratch, src, decode: DecodeState::default(), tokens: 0, steps: 0 });
    0
}

#[no_mangle]
pub extern "C" fn pf_text() -> *mut u8 {
    state().text.as_mut_ptr()
}

#[no_mangle]
pub extern "C" fn pf_text_cap() -> usize {
    TEXT_CAP
}

/// Tokenize `text[..len]` with the model's tokenizer, as the device does, and encode it.
/// Returns the number of source ids (eos included), or `ERR`.
#[no_mangle]
pub extern "C" fn pf_encode(len: usize) -> i32 {
    let s = state();
    let (Some(model), Some(t)) = (s.model.as_ref(), s.session.as_mut()) else {
        return fail(&mut s.out, "no model loaded");
    };
    let Some(bytes) = s.text.get(..len) else {
        return fail(&mut s.out, format_args!("the text is longer than {TEXT_CAP} bytes"));
    };
    let Ok(text) = core::str::from_utf8(bytes) else {
        return fail(&mut s.out, "the text is not UTF-8");
    };
    let scratch = t.scratch.get_mut(..Tokenizer::scratch_len(len)).unwrap_or(&mut []);
    let n = match model.tokenizer().encode_source(text, scratch, t.src, model.config().max_len) {
        Ok(n) => n,
        Err(e) => return fail(&mut s.out, e),
    };
    if let Err(e) = t.translator.encode(t.src.get(..n).unwrap_or(&[])) {
        return fail(&mut s.out, e);
    }
    t.decode = DecodeState::default();
    t.tokens = 0;
    t.steps = 0;
    s.out.len = 0;
    i32::try_from(n).unwrap_or(ERR)
}

/// One greedy step: the next token's id, with its text at `pf_out()`; `END` once eos is
/// produced or `max_len - 1` tokens have been emitted; `ERR` on error.
#[no_mangle]
pub extern "C" fn pf_next() -> i32 {
    let s = state();
    let (Some(model), Some(t)) = (s.model.as_ref(), s.session.as_mut()) else {
        return fail(&mut s.out, "no model loaded");
    };
    s.out.len = 0;
    match t.translator.next_token() {
        Ok(Some(id)) => {
            t.tokens += 1;
            t.steps += 1;
            match model.tokenizer().decode_piece(id, &mut t.decode, &mut s.out) {
                Ok(()) => i32::from(id),
                Err(e) => fail(&mut s.out, e),
            }
        }
        Ok(None) => {
            // next_token hides the eos step; a stream ends without one only when it was cut at
            // max_len - 1 tokens.
            if t.steps == t.tokens && t.tokens < model.config().max_len.saturating_sub(1) {
                t.steps += 1;
            }
            END
        }
        Err(e) => fail(&mut s.out, e),
    }
}

/// Decoder steps run for the current sentence, the eos step included.
#[no_mangle]
pub extern "C" fn pf_steps() -> usize {
    state().session.as_ref().map_or(0, |t| t.steps)
}

#[no_mangle]
pub extern "C" fn pf_out() -> *const u8 {
    state().out.buf.as_ptr()
}

#[no_mangle]
pub extern "C" fn pf_out_len() -> usize {
    state().out.len
}

#[no_mangle]
pub extern "C" fn pf_max_len() -> usize {
    state().model.as_ref().map_or(0, |m| m.config().max_len)
}

#[no_mangle]
pub extern "C" fn pf_arena_bytes() -> usize {
    state().model.as_ref().map_or(0, |m| Translator::arena_bytes(m, 1))
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // The runtime denies panics on input; should one happen anyway, trap (JS sees an exception).
    core::arch::wasm32::unreachable()
}
