//! picoformer in the browser: the same `no_std`, heap-free runtime, compiled to
//! `wasm32-unknown-unknown`, behind a plain C ABI that `web/pico.js` loads.
//!
//! One wasm instance holds one model and one greedy session of its kind (translate, generate or
//! classify); the page starts an instance per model. There is no allocator: the blob, the
//! arena, the tokenizer scratch and the ids or feature frames live in pages taken once from
//! `memory.grow` (64 KiB-aligned, so they meet the 8-byte alignment `Model::parse` and the
//! sessions ask for), the text and the output in statics.
//!
//! ```text
//! pf_alloc(len) -> ptr          pages for the blob (0: out of memory); JS copies the blob there
//! pf_load(ptr, len) -> kind     parse and verify the blob, carve the arena, start a session:
//!                               0 encoder-decoder, 1 decoder-only, 2 encoder-only, or ERR
//! pf_text() -> ptr              TEXT_CAP bytes where JS writes the UTF-8 input text
//! pf_encode(len) -> n | ERR     translate: tokenize text[..len] and encode it (n source ids, eos
//!                               included; 0 when the text has no pieces, and the stream is empty);
//!                               generate: bos and the prompt's pieces, run (n prompt ids)
//! pf_next() -> id | END | ERR   one greedy step; the token's text is at pf_out(); at END, pf_out()
//!                               holds what the decoder still held (bytes of an unfinished character)
//! pf_steps() -> n               decoder steps run for this input (the eos step included)
//! pf_classify(len) -> class     text[..len] is one window as CSV, a frame of n_features values per
//!                               line, quantized as `picoformer classify` does; pf_out() holds the
//!                               head's outputs in real units, "{:.4}" joined by ", " as the CLI
//!                               prints them; pf_steps() the frame count
//! pf_out(), pf_out_len()        the last token's text, the scores, or the last error (UTF-8)
//! pf_max_len(), pf_arena_bytes(), pf_n_features(), pf_text_cap()
//! ```
//! Every status is `ERR` (-2) on error, with the message at `pf_out()`.
//! Exports are called one at a time from one thread (wasm32 without threads), never re-entered.
#![cfg(target_arch = "wasm32")]
#![no_std]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use core::cell::UnsafeCell;
use core::fmt::{self, Write};

use picoformer::blob::{FeatureQuant, ModelKind};
use picoformer::tokenizer::{DecodeState, Node, Tokenizer};
use picoformer::vectors::MAX_NEW;
use picoformer::{Classifier, Generator, Model, TokenId, Translator};

/// Longest input text accepted, in UTF-8 bytes (a classifier's window as CSV included).
pub const TEXT_CAP: usize = 16384;
/// Output buffer: one token's text, the scores, or an error message.
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

/// The session of the loaded model's kind.
enum Work {
    Translate(Translator<'static, 'static>),
    Generate(Generator<'static, 'static>),
    /// The classifier, and room for `max_len` quantized frames.
    Classify(Classifier<'static, 'static>, &'static mut [i16]),
}

/// The session over the loaded model, and what one input needs besides its arena.
struct Session {
    work: Work,
    /// Tokenizer scratch for up to `TEXT_CAP` bytes of text (empty for feature input).
    scratch: &'static mut [Node],
    /// Source or prompt ids, `max_len` of them at most.
    ids: &'static mut [TokenId],
    decode: DecodeState,
    /// Tokens emitted, and decoder steps run (eos included), for this input; a window's frames.
    tokens: usize,
    steps: usize,
    /// Prompt ids (generate): the context the continuation starts from.
    context: usize,
    done: bool,
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

/// Text nobody reads: priming the decoder's state with a prompt.
struct Discard;

impl Write for Discard {
    fn write_str(&mut self, _: &str) -> fmt::Result {
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
    let bytes = n.checked_mul(core::mem::size_of::<T>())?.max(1);
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

fn kind_code(k: ModelKind) -> i32 {
    match k {
        ModelKind::EncoderDecoder => 0,
        ModelKind::DecoderOnly => 1,
        ModelKind::EncoderOnly => 2,
    }
}

fn arena_bytes<'m>(m: &'m Model<'m>) -> usize {
    match m.config().kind {
        ModelKind::EncoderDecoder => Translator::arena_bytes(m, 1),
        ModelKind::DecoderOnly => Generator::arena_bytes(m, 1),
        ModelKind::EncoderOnly => Classifier::arena_bytes(m),
    }
}

#[no_mangle]
pub extern "C" fn pf_alloc(len: usize) -> *mut u8 {
    pages(len, 0u8).map_or(core::ptr::null_mut(), |p| p.as_mut_ptr())
}

/// Parse and verify the blob at `ptr..ptr + len` (from `pf_alloc`) and start a greedy session
/// of its kind. Returns the kind's code, or `ERR`.
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
    let c = model.config();
    let tokens = c.tokens();
    let (Some(arena), Some(scratch), Some(ids)) = (
        pages(arena_bytes(model), 0u8),
        pages(if tokens { Tokenizer::scratch_len(TEXT_CAP) } else { 0 }, Node::default()),
        pages(c.max_len, 0 as TokenId),
    ) else {
        return fail(&mut s.out, "out of memory");
    };
    let work = match c.kind {
        ModelKind::EncoderDecoder => Translator::new(model, arena, 1).map(Work::Translate),
        ModelKind::DecoderOnly => Generator::new(model, arena, 1).map(Work::Generate),
        ModelKind::EncoderOnly => {
            if tokens {
                return fail(&mut s.out, "this page classifies feature windows, and this model reads text");
            }
            let Some(frames) = pages(c.max_len * c.n_features, 0i16) else {
                return fail(&mut s.out, "out of memory");
            };
            Classifier::new(model, arena).map(|k| Work::Classify(k, frames))
        }
    };
    let work = match work {
        Ok(w) => w,
        Err(e) => return fail(&mut s.out, e),
    };
    s.session = Some(Session { work, scratch, ids, decode: DecodeState::default(), tokens: 0, steps: 0, context: 0, done: false });
    kind_code(c.kind)
}

#[no_mangle]
pub extern "C" fn pf_text() -> *mut u8 {
    state().text.as_mut_ptr()
}

#[no_mangle]
pub extern "C" fn pf_text_cap() -> usize {
    TEXT_CAP
}

/// The UTF-8 text at `text[..len]`.
fn input(text: &[u8], len: usize) -> Result<&str, &'static str> {
    let bytes = text.get(..len).ok_or("the text is longer than the page's buffer")?;
    core::str::from_utf8(bytes).map_err(|_| "the text is not UTF-8")
}

/// Tokenize `text[..len]` with the model's tokenizer, as the device does, and run the encoder
/// (translate) or the prompt (generate). Returns the number of source or prompt ids, or `ERR`.
#[no_mangle]
pub extern "C" fn pf_encode(len: usize) -> i32 {
    let s = state();
    let (Some(model), Some(t)) = (s.model.as_ref(), s.session.as_mut()) else {
        return fail(&mut s.out, "no model loaded");
    };
    let text = match input(&s.text, len) {
        Ok(t) => t,
        Err(e) => return fail(&mut s.out, e),
    };
    let c = model.config();
    let tok = model.tokenizer();
    let scratch = t.scratch.get_mut(..Tokenizer::scratch_len(len)).unwrap_or(&mut []);
    t.decode = DecodeState::default();
    t.tokens = 0;
    t.steps = 0;
    t.done = false;
    s.out.len = 0;
    let n = match &mut t.work {
        Work::Translate(tr) => {
            let n = match tok.encode_source(text, scratch, t.ids, c.max_len) {
                Ok(n) => n,
                Err(e) => return fail(&mut s.out, e),
            };
            if n <= 1 {
                // no pieces: an empty translation, as `picoformer translate` gives
                t.done = true;
                return 0;
            }
            if let Err(e) = tr.encode(t.ids.get(..n).unwrap_or(&[])) {
                return fail(&mut s.out, e);
            }
            n
        }
        Work::Generate(g) => {
            let n = match tok.encode_prompt(text, scratch, t.ids, c.max_len - 1) {
                Ok(n) => n,
                Err(e) => return fail(&mut s.out, e),
            };
            let ids = t.ids.get(..n).unwrap_or(&[]);
            if let Err(e) = g.prompt(ids) {
                return fail(&mut s.out, e);
            }
            // the prompt sets the decoding state, so the continuation keeps its first space
            for &id in ids {
                if let Err(e) = tok.decode_piece(id, &mut t.decode, &mut Discard) {
                    return fail(&mut s.out, e);
                }
            }
            t.context = n;
            n
        }
        Work::Classify(..) => return fail(&mut s.out, "a classifier takes windows: pf_classify"),
    };
    i32::try_from(n).unwrap_or(ERR)
}

/// One greedy step: the next token's id, with its text at `pf_out()`; `END` once eos is
/// produced, `max_len - 1` tokens have been emitted (translate), the context is full or
/// [`MAX_NEW`] tokens have been emitted (generate); `ERR` on error.
#[no_mangle]
pub extern "C" fn pf_next() -> i32 {
    let s = state();
    let (Some(model), Some(t)) = (s.model.as_ref(), s.session.as_mut()) else {
        return fail(&mut s.out, "no model loaded");
    };
    s.out.len = 0;
    if t.done {
        return END;
    }
    let max_len = model.config().max_len;
    let (next, cut) = match &mut t.work {
        Work::Translate(tr) => (tr.next_token(), t.tokens >= max_len.saturating_sub(1)),
        Work::Generate(_) if t.tokens >= MAX_NEW => (Ok(None), true),
        Work::Generate(g) => (g.next_token(), t.context + t.tokens >= max_len),
        Work::Classify(..) => return fail(&mut s.out, "a classifier takes windows: pf_classify"),
    };
    match next {
        Ok(Some(id)) => {
            t.tokens += 1;
            t.steps += 1;
            match model.tokenizer().decode_piece(id, &mut t.decode, &mut s.out) {
                Ok(()) => i32::from(id),
                Err(e) => fail(&mut s.out, e),
            }
        }
        Ok(None) => {
            // next_token hides the eos step; a stream ends without one only when it was cut
            if !cut {
                t.steps += 1;
            }
            t.done = true;
            // bytes of an unfinished UTF-8 sequence (byte-fallback pieces) end as U+FFFD
            match t.decode.finish(&mut s.out) {
                Ok(()) => END,
                Err(e) => fail(&mut s.out, e),
            }
        }
        Err(e) => fail(&mut s.out, e),
    }
}

/// Decoder steps run for the current input, the eos step included; a window's frames.
#[no_mangle]
pub extern "C" fn pf_steps() -> usize {
    state().session.as_ref().map_or(0, |t| t.steps)
}

/// A feature quantized as `picoformer classify` does it (tools/src/host.rs `quantize_window`):
/// `round(x / scale) + zero_point` (half away from zero), saturated to i16.
fn quantize(x: f32, q: &FeatureQuant) -> i16 {
    let v = x as f64 / q.scale.to_real();
    let t = v as i64 as f64; // toward zero; saturates far beyond the i16 range
    let r = if v - t >= 0.5 {
        t + 1.0
    } else if t - v >= 0.5 {
        t - 1.0
    } else {
        t
    };
    (r + q.zero_point as f64).clamp(-32768.0, 32767.0) as i16
}

/// Classify the window at `text[..len]`: CSV, one frame of `n_features` values per line (blank
/// lines ignored). Returns the class, with the outputs at `pf_out()`, or `ERR`.
#[no_mangle]
pub extern "C" fn pf_classify(len: usize) -> i32 {
    let s = state();
    let (Some(model), Some(t)) = (s.model.as_ref(), s.session.as_mut()) else {
        return fail(&mut s.out, "no model loaded");
    };
    let Work::Classify(k, frames) = &mut t.work else {
        return fail(&mut s.out, "only a classifier takes windows");
    };
    let text = match input(&s.text, len) {
        Ok(t) => t,
        Err(e) => return fail(&mut s.out, e),
    };
    let c = model.config();
    let q = model.feature_quant();
    let mut n = 0usize;
    let mut rows = 0usize;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let mut values = 0;
        for v in line.split(',') {
            let Ok(x) = v.trim().parse::<f32>() else {
                return fail(&mut s.out, format_args!("line {}: {:?} is not a number", i + 1, v));
            };
            let (Some(slot), Some(fq)) = (frames.get_mut(n), q.get(values)) else {
                return fail(&mut s.out, format_args!("line {}: more than {} values, or a window longer than {} frames", i + 1, c.n_features, c.max_len));
            };
            *slot = quantize(x, fq);
            n += 1;
            values += 1;
        }
        if values != c.n_features {
            return fail(&mut s.out, format_args!("line {}: {values} values, the model reads frames of {}", i + 1, c.n_features));
        }
        rows += 1;
    }
    let unit = model.output_scale().to_real();
    let outputs = match k.classify_features(frames.get(..n).unwrap_or(&[])) {
        Ok(o) => o,
        Err(e) => return fail(&mut s.out, e),
    };
    t.steps = rows;
    s.out.len = 0;
    for (i, &v) in outputs.iter().enumerate() {
        if write!(s.out, "{}{:.4}", if i == 0 { "" } else { ", " }, v as f64 * unit).is_err() {
            return fail(&mut s.out, "too many outputs to show");
        }
    }
    i32::try_from(picoformer::argmax(outputs)).unwrap_or(ERR)
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
pub extern "C" fn pf_n_features() -> usize {
    state().model.as_ref().map_or(0, |m| m.config().n_features)
}

#[no_mangle]
pub extern "C" fn pf_arena_bytes() -> usize {
    state().model.as_ref().map_or(0, arena_bytes)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // The runtime denies panics on input; should one happen anyway, trap (JS sees an exception).
    core::arch::wasm32::unreachable()
}
