//! The on-target test the QEMU boards run ([`run`]): every embedded model's test vectors
//! (translations, continuations, classifications), checked bit for bit ([`crate::workload`]),
//! then the kernels' self-test, then the RAM and stack report.

use picoformer::blob::ModelKind;
use picoformer::tokenizer::Node;
use picoformer::vectors::{Buffers, Cost, Vectors};
use picoformer::{Classifier, Error, Generator, Model, Progress, TokenId, Translator};

use crate::{assets, mem, sentence, workload};

/// Input ids a case may hold: a source or prompt of the longest `max_len` the boards take.
const MAX_IDS: usize = 512;

/// What the application needs from a board.
pub trait Platform {
    /// Instructions retired since some fixed point at start-up. Monotonic; only differences are
    /// meaningful. Under QEMU `-icount shift=0` this is exact on RISC-V (`minstret`) and has a
    /// resolution of 40 instructions on the mps2 boards (SysTick at 25 MHz).
    fn instructions(&mut self) -> u64;
}

/// Test-vector cases run on target per model: at most the first `TARGET_CASES` (the converter
/// writes 8 by default). Eight sentences of a de-en-sized model (d_model 128, 2+2 layers, 4000
/// pieces) that never emits eos, 63 decoder steps each, take 3-7 s per board under QEMU.
pub const TARGET_CASES: usize = 8;

/// Runs the workload, logs one block per sentence and a summary, and returns `true` only if
/// every check passed (and there was at least one).
///
/// Paints the free stack first (see [`mem`]), so the reported high-water mark covers everything
/// `run` does.
pub fn run<P: Platform>(p: &mut P) -> bool {
    let ram = mem::Ram::from_linker();
    // SAFETY: called once, before anything else lives below the caller's stack frame.
    unsafe { mem::paint_stack(&ram) };
    if let Some(text) = sentence::SENTENCE {
        return sentence::translate(p, text);
    }
    if let Some(prompt) = sentence::PROMPT {
        return sentence::generate(p, prompt);
    }
    let Some(memory) = assets::take_memory() else {
        defmt::println!("memory: already taken");
        return false;
    };
    let (mut passed, mut failed) = run_models(p, &mut *memory.model, &mut *memory.arena, memory.scratch, memory.features);
    let translation_stack = mem::stack_high_water(&ram);
    let (passed_checks, failed_checks) = self_test();
    passed += passed_checks;
    failed += failed_checks;
    let (passed_checks, failed_checks) = integrity_test(p, memory.model, memory.arena);
    passed += passed_checks;
    failed += failed_checks;
    defmt::println!("static RAM {=usize} bytes", ram.static_bytes());
    if let Some(flash) = mem::flash_used() {
        defmt::println!("flash used {=usize} bytes", flash);
    }
    defmt::println!(
        "stack high-water {=usize} bytes of {=usize} ({=usize} by the end of the models' cases, before the kernel checks)",
        mem::stack_high_water(&ram),
        ram.stack_bytes(),
        translation_stack
    );
    defmt::println!("{=usize} passed, {=usize} failed", passed, failed);
    failed == 0 && passed > 0
}

/// The kernels' self-test ([`picoformer::selftest`], the module `cargo test` runs too): every
/// fast path of this core against its plain reference. `(passed, failed)` families.
#[cfg(feature = "kernel-checks")]
#[inline(never)] // its buffers live only while it runs, not under the translations
fn self_test() -> (usize, usize) {
    use picoformer::selftest;
    defmt::println!("self-test on core `{=str}` (fast paths: {=str}):", picoformer::kernels::CORE, picoformer::kernels::FAST_PATHS);
    type Check = (&'static str, usize, fn(usize) -> usize);
    let checks: [Check; 6] = [
        ("linear, random layers x i32/i16/i8 outputs", 200, selftest::check_linear),
        ("softmax, random rows", 1000, selftest::check_softmax),
        ("LayerNorm and RMSNorm, random calls", 1000, selftest::check_layernorm),
        ("attention, random calls", 500, selftest::check_attention),
        ("residual add, random calls", 500, selftest::check_residual),
        ("argmax, random rows", 500, selftest::check_argmax),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (what, trials, check) in checks {
        let bad = check(trials);
        defmt::println!("  {=str} ({=usize}): {=usize} mismatches", what, trials, bad);
        tally(bad == 0, &mut passed, &mut failed);
    }
    (passed, failed)
}

/// A firmware without the kernel self-checks (feature `kernel-checks` off) says so.
#[cfg(not(feature = "kernel-checks"))]
fn self_test() -> (usize, usize) {
    defmt::println!("self-test: not in this firmware (feature `kernel-checks`; mps2-an386 runs it on the same core)");
    (0, 0)
}

/// Bytes the integrity test checks per step: what a device would spread over idle time.
const INTEGRITY_CHUNK: usize = 4096;

/// The field integrity check ([`Model::integrity`]): every embedded blob, in place in flash, passes
/// in [`INTEGRITY_CHUNK`]-byte steps; then a RAM copy of the smallest blob that fits in `ram`
/// (the arena, free by now) is parsed, passes, has one bit flipped after the parse, and must
/// fail the next pass with a checksum mismatch. `(passed, failed)` checks.
#[inline(never)] // its model views live only while it runs
fn integrity_test<P: Platform>(p: &mut P, slot: &mut Model<'static>, ram: &'static mut [u8]) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    let (mut bad, mut bytes, mut steps) = (0usize, 0usize, 0usize);
    let t0 = p.instructions();
    for e in assets::MODELS.iter() {
        let r = Model::parse_into(e.blob, slot).and_then(|()| {
            let mut check = slot.integrity();
            bytes += check.pass_bytes();
            whole_pass(&mut check, slot, &mut steps)
        });
        bad += r.is_err() as usize;
    }
    let cost = p.instructions() - t0;
    defmt::println!(
        "  integrity, every blob in flash in {=usize}-byte steps ({=usize} bytes, {=usize} steps, {=u64} instructions per KiB): {=usize} mismatches",
        INTEGRITY_CHUNK,
        bytes,
        steps,
        cost * 1024 / bytes.max(1) as u64,
        bad
    );
    tally(bad == 0 && bytes > 0, &mut passed, &mut failed);

    let Some(e) = assets::MODELS.iter().filter(|e| e.blob.len() <= ram.len()).min_by_key(|e| e.blob.len()) else {
        defmt::println!("  integrity, RAM copy: no embedded blob fits in {=usize} bytes, not run", ram.len());
        return (passed, failed);
    };
    let n = e.blob.len();
    let Some(copy) = ram.get_mut(..n) else { return (passed, failed + 1) };
    copy.copy_from_slice(e.blob);
    let at = copy.as_mut_ptr();
    // the bit to flip: one in the middle of the tensor data
    let (byte, mask) = (n / 2, 1u8 << 3);
    // SAFETY: `at..at + n` is `copy`, 8-byte aligned, and the arena is not used again after this
    // function. The model in `slot` views it as `'static` only until the slot is reset below;
    // the only write to it (the flip) comes after that, and the view for the second pass is a
    // new one.
    let view: &'static [u8] = unsafe { core::slice::from_raw_parts(at, n) };
    let (intact, mut later) = match Model::parse_into(view, slot) {
        Ok(()) => {
            let mut check = slot.integrity();
            (whole_pass(&mut check, slot, &mut 0), check)
        }
        Err(err) => {
            defmt::println!("  integrity, RAM copy of {=str}: parse failed: {}", e.name, defmt::Display2Format(&err));
            return (passed, failed + 1);
        }
    };
    // the model is parsed and its check taken; its views end, and the bit flips in the RAM the
    // model was read from
    *slot = Model::default();
    // SAFETY: `byte < n`; nothing views the copy now (see above).
    unsafe { *at.add(byte) ^= mask };
    // SAFETY: as above; nothing writes to the copy while this view lives.
    let flipped_view: &[u8] = unsafe { core::slice::from_raw_parts(at, n) };
    let mut flipped = Ok(Progress::Done);
    for _ in 0..=n {
        flipped = later.step_bytes(flipped_view, INTEGRITY_CHUNK);
        if !matches!(flipped, Ok(Progress::Checking { .. })) {
            break;
        }
    }
    let caught = matches!(flipped, Err(Error::ChecksumMismatch { .. }));
    match flipped {
        Err(err) => defmt::println!(
            "  integrity, RAM copy of {=str} ({=usize} bytes): intact {=str}; bit 3 of byte {=usize} flipped after parse: {}",
            e.name,
            n,
            if intact.is_ok() { "passes" } else { "FAILS" },
            byte,
            defmt::Display2Format(&err)
        ),
        Ok(_) => defmt::println!(
            "  integrity, RAM copy of {=str} ({=usize} bytes): intact {=str}; bit 3 of byte {=usize} flipped after parse: NOT CAUGHT",
            e.name,
            n,
            if intact.is_ok() { "passes" } else { "FAILS" },
            byte
        ),
    }
    tally(intact.is_ok() && caught, &mut passed, &mut failed);
    (passed, failed)
}

/// Steps `check` over `m` until the pass ends; counts the steps in `steps`.
fn whole_pass(check: &mut picoformer::Integrity, m: &Model<'_>, steps: &mut usize) -> Result<(), Error> {
    // a pass ends within `pass_bytes / INTEGRITY_CHUNK + 1` steps
    for _ in 0..=check.pass_bytes() / INTEGRITY_CHUNK + 1 {
        *steps += 1;
        if check.step(m, INTEGRITY_CHUNK)? == Progress::Done {
            return Ok(());
        }
    }
    Err(Error::DecoderState)
}

/// Counts one check.
fn tally(ok: bool, passed: &mut usize, failed: &mut usize) {
    if ok {
        *passed += 1;
    } else {
        *failed += 1;
    }
}

/// Runs every embedded model's cases: `(passed, failed)`. A model that cannot run (bad vectors
/// or blob, too small an arena) counts one failure per case (at least one).
#[inline(never)]
fn run_models<P: Platform>(p: &mut P, slot: &mut Model<'static>, arena: &mut [u8], scratch: &mut [Node], features: &mut [i16]) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    for e in assets::MODELS.iter() {
        let (ok, bad) = run_model(p, e, &mut *slot, &mut *arena, &mut *scratch, &mut *features);
        passed += ok;
        failed += bad;
    }
    (passed, failed)
}

/// Parses one model's vectors and blob, and replays its cases: `(passed, failed)`.
fn run_model<P: Platform>(p: &mut P, e: &assets::Embedded, slot: &mut Model<'static>, arena: &mut [u8], scratch: &mut [Node], features: &mut [i16]) -> (usize, usize) {
    defmt::println!("");
    defmt::println!("== model {=str}", e.name);
    let Some(vectors) = Vectors::parse(e.vectors) else {
        defmt::println!("test vectors: malformed ({=usize} bytes)", e.vectors.len());
        return (0, 1);
    };
    let run_cases = vectors.len().min(TARGET_CASES);
    if run_cases == 0 {
        defmt::println!("test vectors: no cases");
        return (0, 1);
    }
    let t0 = p.instructions();
    if let Err(err) = Model::parse_into(e.blob, slot) {
        defmt::println!("blob: {}", defmt::Display2Format(&err));
        return (0, run_cases);
    }
    let parse = p.instructions() - t0;
    let model: &Model<'_> = slot;
    let c = model.config();
    let (kind, needed) = match c.kind {
        ModelKind::EncoderDecoder => ("encoder-decoder", Translator::arena_bytes(model, 1)),
        ModelKind::DecoderOnly => ("decoder-only", Generator::arena_bytes(model, 1)),
        ModelKind::EncoderOnly => ("encoder-only", Classifier::arena_bytes(model)),
    };
    defmt::println!(
        "blob: {=usize} bytes in flash; {=str}, d_model {=usize}, {=usize}+{=usize} layers, vocabulary {=usize}, max_len {=usize}; verified in {=u64} instructions",
        e.blob.len(),
        kind,
        c.d_model,
        c.n_enc,
        c.n_dec,
        c.vocab,
        c.max_len,
        parse
    );
    defmt::println!("arena: {=usize} bytes needed (greedy) of {=usize}; {=usize} of {=usize} test-vector cases on target", needed, arena.len(), run_cases, vectors.len());

    let mut passed = 0usize;
    // the cost of the cases that ran to the end
    let (mut total, mut measured, mut inputs) = (Cost::default(), 0u64, 0u64);
    let mut ids = [0 as TokenId; MAX_IDS];
    for (i, case) in vectors.take(run_cases).enumerate() {
        let mut buf = Buffers { arena: &mut *arena, scratch: &mut *scratch, ids: &mut ids, features: &mut *features };
        match workload::run_case(p, model, &mut buf, i, &case) {
            Ok(r) => {
                let ok = r.ok(&case);
                passed += ok as usize;
                defmt::println!("  {=str}", if ok { "ok" } else { "FAILED" });
                total.add(&r.cost);
                measured += 1;
                inputs += r.inputs as u64;
            }
            Err(err) => defmt::println!("  FAILED: {}", defmt::Display2Format(&err)),
        }
    }
    let n = measured.max(1);
    match c.kind {
        ModelKind::EncoderDecoder => defmt::println!(
            "instructions: {=u64} for {=u64} sentences, {=u64} per sentence (tokenize {=u64}, encode {=u64}, decode {=u64}); {=u64} per decoder step",
            total.total(),
            measured,
            total.total() / n,
            total.tokenize / n,
            total.prefill / n,
            total.decode / n,
            total.decode / total.steps.max(1) as u64
        ),
        ModelKind::DecoderOnly => defmt::println!(
            "instructions: {=u64} for {=u64} prompts ({=u64} prompt tokens, {=usize} new tokens): {=u64} per prompt token, {=u64} per new token (tokenize {=u64} per prompt)",
            total.total(),
            measured,
            inputs,
            total.steps,
            total.prefill / inputs.max(1),
            total.decode / total.steps.max(1) as u64,
            total.tokenize / n
        ),
        ModelKind::EncoderOnly => defmt::println!(
            "instructions: {=u64} for {=u64} windows ({=u64} frames), {=u64} per window, {=u64} per frame",
            total.total(),
            measured,
            inputs,
            total.total() / n,
            total.total() / inputs.max(1)
        ),
    }
    (passed, run_cases - passed)
}
