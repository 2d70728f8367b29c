//! The on-target test the QEMU boards run ([`run`]): the test-vector translations, checked bit
//! for bit ([`crate::workload`]), then the kernels' self-test, then the RAM and stack report.

use crate::{assets, mem, sentence, workload};

/// What the application needs from a board.
pub trait Platform {
    /// Instructions retired since some fixed point at start-up. Monotonic; only differences are
    /// meaningful. Under QEMU `-icount shift=0` this is exact on RISC-V (`minstret`) and has a
    /// resolution of 40 instructions on the mps2 boards (SysTick at 25 MHz).
    fn instructions(&mut self) -> u64;
}

/// Test-vector cases run on target: at most the first `TARGET_CASES` (the converter writes 8 by
/// default). Eight sentences of a de-en-sized model (d_model 128, 2+2 layers, 4000 pieces) that
/// never emits eos, 63 decoder steps each, take 3-7 s per board under QEMU.
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
    let (mut passed, mut failed) = translate_all(p);
    let translation_stack = mem::stack_high_water(&ram);
    let (passed_checks, failed_checks) = self_test();
    passed += passed_checks;
    failed += failed_checks;
    defmt::println!("static RAM {=usize} bytes", ram.static_bytes());
    defmt::println!(
        "stack high-water {=usize} bytes of {=usize} ({=usize} by the end of the translations, before the kernel checks)",
        mem::stack_high_water(&ram),
        ram.stack_bytes(),
        translation_stack
    );
    defmt::println!("{=usize} passed, {=usize} failed", passed, failed);
    failed == 0 && passed > 0
}

/// The kernels' self-test ([`picoformer::selftest`], the module `cargo test` runs too): every
/// fast path of this core against its plain reference. `(passed, failed)` families.
#[inline(never)] // its buffers live only while it runs, not under the translations
fn self_test() -> (usize, usize) {
    use picoformer::selftest;
    defmt::println!("self-test on core `{=str}` (fast paths: {=str}):", picoformer::kernels::CORE, picoformer::kernels::FAST_PATHS);
    let checks: [(&str, usize, fn(usize) -> usize); 5] = [
        ("linear, random layers x i32/i16/i8 outputs", 200, selftest::check_linear),
        ("softmax, random rows", 1000, selftest::check_softmax),
        ("LayerNorm and RMSNorm, random calls", 1000, selftest::check_layernorm),
        ("attention, random calls", 500, selftest::check_attention),
        ("residual add, random calls", 500, selftest::check_residual),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (what, trials, check) in checks {
        let bad = check(trials);
        defmt::println!("  {=str} ({=usize}): {=usize} mismatches", what, trials, bad);
        tally(bad == 0, &mut passed, &mut failed);
    }
    (passed, failed)
}

/// Counts one check.
fn tally(ok: bool, passed: &mut usize, failed: &mut usize) {
    if ok {
        *passed += 1;
    } else {
        *failed += 1;
    }
}

/// Parses the vectors and the blob, sizes the arena, and runs the cases: `(passed, failed)`.
/// Anything that stops the run before the cases counts as one failure per case (at least one).
#[inline(never)]
fn translate_all<P: Platform>(p: &mut P) -> (usize, usize) {
    use picoformer::{vectors::Vectors, Model, Translator};

    let Some(vectors) = Vectors::parse(assets::VECTORS) else {
        defmt::println!(
            "test vectors: malformed ({=usize} bytes)",
            assets::VECTORS.len()
        );
        return (0, 1);
    };
    let run_cases = vectors.len().min(TARGET_CASES);
    defmt::println!(
        "picoformer board app: int8 translation, {=usize} of {=usize} test-vector cases on target",
        run_cases,
        vectors.len()
    );
    if run_cases == 0 {
        defmt::println!("test vectors: no cases");
        return (0, 1);
    }

    let Some(memory) = assets::take_memory() else {
        defmt::println!("memory: already taken");
        return (0, run_cases);
    };
    let t0 = p.instructions();
    if let Err(e) = Model::parse_into(assets::BLOB, memory.model) {
        defmt::println!("blob: {}", defmt::Display2Format(&e));
        return (0, run_cases);
    }
    let parse = p.instructions() - t0;
    let model: &Model<'_> = memory.model;
    let c = &model.config();
    defmt::println!(
        "blob: {=usize} bytes in flash; d_model {=usize}, {=usize}+{=usize} layers, vocabulary {=usize}, max_len {=usize}; verified in {=u64} instructions",
        assets::BLOB.len(),
        c.d_model,
        c.n_enc,
        c.n_dec,
        c.vocab,
        c.max_len,
        parse
    );

    let needed = Translator::arena_bytes(model, 1);
    defmt::println!(
        "arena: {=usize} bytes needed (greedy) of {=usize}",
        needed,
        assets::ARENA_BYTES
    );
    let mut t = match Translator::new(model, memory.arena, 1) {
        Ok(t) => t,
        Err(e) => {
            defmt::println!("arena: {}", defmt::Display2Format(&e));
            return (0, run_cases);
        }
    };

    let mut passed = 0usize;
    // cost of the sentences that ran to the end
    let mut total = workload::Cost::default();
    let mut measured = 0u64;
    for (i, case) in vectors.take(run_cases).enumerate() {
        match workload::run_case(p, &model, &mut t, memory.scratch, i, &case) {
            Ok(o) => {
                let ok = o.ok(&case);
                passed += ok as usize;
                defmt::println!("  {=str}", if ok { "ok" } else { "FAILED" });
                total.tokenize += o.cost.tokenize;
                total.encode += o.cost.encode;
                total.decode += o.cost.decode;
                total.steps += o.cost.steps;
                measured += 1;
            }
            Err(e) => defmt::println!("  FAILED: {}", defmt::Display2Format(&e)),
        }
    }
    defmt::println!(
        "instructions: {=u64} for {=u64} sentences, {=u64} per sentence (tokenize {=u64}, encode {=u64}, decode {=u64}); {=u64} per decoder step",
        total.total(),
        measured,
        total.total() / measured.max(1),
        total.tokenize / measured.max(1),
        total.encode / measured.max(1),
        total.decode / measured.max(1),
        total.decode / total.steps.max(1) as u64
    );
    (passed, run_cases - passed)
}
