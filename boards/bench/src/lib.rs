//! Instruction-count benchmarks of the picoformer kernels and of the de-en model, under QEMU
//! `-icount shift=0` (DESIGN §6). One crate for every QEMU machine; the binaries in `src/bin` are
//! glue only (entry, log sink, instruction counter, exit) and call [`run`].
//!
//! Counting: the board's [`Platform`] counts retired instructions (exact `minstret` on RISC-V;
//! SysTick at 40 instructions per tick on mps2). A short kernel runs `reps` times between two
//! reads and the total is divided by `reps`, so the SysTick resolution costs at most
//! `40 / reps` instructions per call; each reported figure spans at least 100,000 instructions.
//! The two clock reads (about 20 instructions) and the loop around the call are included.
//!
//! Inputs: random int8 weights laid out in [`Layout::Block4`] (what the converter emits), `i16`
//! activations in `±2048`, per-channel requantization; the model figures use the real de-en blob
//! that `picoformer-board-common` embeds. The report is a set of Markdown tables (defmt
//! `println!`), so `scripts/bench` can paste it into BENCHMARKS.md unchanged.
#![no_std]

use core::hint::black_box;

use picoformer::align::Aligned;
use picoformer::kernels::attention::{attention, AttentionParams, Heads, Mask};
use picoformer::blob::ModelKind;
use picoformer::kernels::activation::{gated_i16, relu_i16, table_i16};
use picoformer::kernels::layernorm::{LayerNorm, RmsNorm};
use picoformer::kernels::rope::Rope;
use picoformer::vectors::{replay, Buffers, Meter, Vectors};
use picoformer::kernels::layout::Layout;
use picoformer::kernels::linear::{linear_ref, Linear};
use picoformer::kernels::residual::{add_in_place, ResidualParams};
use picoformer::selftest::Rng;
use picoformer::kernels::softmax::{softmax_rows_u8, softmax_u8};
use picoformer::blob::Stack;
use picoformer::model::Attention;
use picoformer::observe::NoObserver;
use picoformer::quant::{Activation, Requant};
use picoformer::{argmax, Generator, Model, TokenId, Translator};
use picoformer_board_common::{assets, Platform};

/// The sentence of the model figures: line 50 of `models/de-en/test2016.de`, 15 pieces + eos.
pub const SENTENCE: &str = "Ein Mann in Jeans spielt an einem Strand mit einem roten Ball.";

/// The language model's prompt (DESIGN's example).
pub const PROMPT: &str = "A man in a red";

/// Decoder steps fed by teacher forcing (greedy tokens), `pos` 0 ..= 16.
const STEPS: usize = 17;

/// The linear shapes of DESIGN §6, `(rows, k, n)`, with the CMSIS-NN 7.0 (99f736a) Cortex-M4
/// instruction counts of `arm_fully_connected_s8` on the same shapes.
const LINEAR_SHAPES: [(usize, usize, usize, u64); 5] = [
    (1, 128, 128, 37_240),
    (1, 128, 512, 148_387),
    (1, 512, 128, 129_401),
    (1, 128, 1000, 289_649),
    (16, 128, 128, 594_681),
];

const W_MAX: usize = 128 * 1000;
const X_MAX: usize = 16 * 512;
const Y_MAX: usize = 16 * 1000;
const N_MAX: usize = 1000;
const D: usize = 128;
const SEQ: usize = 16;
/// Rows of the K and V buffers: the longest KV cache (max_len).
const KEYS_MAX: usize = 64;

/// Every kernel buffer, in one static so RAM use shows at link time; the weights and the inputs
/// are 8-byte [`Aligned`] (the DSP kernel wants word-aligned operands).
struct Bufs {
    /// `(n, k)` int8 weights in Block4.
    w: Aligned<[i8; W_MAX]>,
    /// `(rows, k)` inputs.
    x: Aligned<[i16; X_MAX]>,
    y8: [i8; Y_MAX],
    y16: [i16; Y_MAX],
    /// `(vocab,)` logits of the output layer.
    y32: [i32; 4000],
    bias: [i32; N_MAX],
    rq: [Requant; N_MAX],
    /// Attention operands: `(SEQ, D)` queries, `(KEYS_MAX, D)` keys and values.
    q: Aligned<[i8; SEQ * D]>,
    k: Aligned<[i8; KEYS_MAX * D]>,
    v: Aligned<[i8; KEYS_MAX * D]>,
    ctx: [i16; SEQ * D],
    scores: [i32; N_MAX],
    /// softmax works in place on its scores: each repetition starts from a fresh copy
    work: [i32; N_MAX],
    probs: [u8; N_MAX],
    gain: [i32; D],
    ln_bias: [i32; D],
    /// RoPE tables: 64 positions × 16.
    cos: [i16; 64 * 16],
    sin: [i16; 64 * 16],
    /// An activation table (257 points).
    table: [i16; 257],
}

static mut BUFS: Bufs = Bufs {
    w: Aligned([0; W_MAX]),
    x: Aligned([0; X_MAX]),
    y8: [0; Y_MAX],
    y16: [0; Y_MAX],
    y32: [0; 4000],
    bias: [0; N_MAX],
    rq: [Requant { mult: 0, shift: 1 }; N_MAX],
    q: Aligned([0; SEQ * D]),
    k: Aligned([0; KEYS_MAX * D]),
    v: Aligned([0; KEYS_MAX * D]),
    ctx: [0; SEQ * D],
    scores: [0; N_MAX],
    work: [0; N_MAX],
    probs: [0; N_MAX],
    gain: [0; D],
    ln_bias: [0; D],
    cos: [0; 64 * 16],
    sin: [0; 64 * 16],
    table: [0; 257],
};

/// A ratio printed with three decimals, without floats.
struct Milli(u64, u64);

impl defmt::Format for Milli {
    fn format(&self, f: defmt::Formatter<'_>) {
        let m = (self.0 * 1000 + self.1 / 2) / self.1.max(1);
        let frac = m % 1000;
        defmt::write!(f, "{=u64}.{=u64}{=u64}{=u64}", m / 1000, frac / 100, frac / 10 % 10, frac % 10);
    }
}

/// A percentage with one decimal.
struct Percent(u64, u64);

impl defmt::Format for Percent {
    fn format(&self, f: defmt::Formatter<'_>) {
        let m = (self.0 * 1000 + self.1 / 2) / self.1.max(1);
        defmt::write!(f, "{=u64}.{=u64}%", m / 10, m % 10);
    }
}

/// Instructions per call of `f`, over `reps` calls after one warm-up call.
fn per_call<P: Platform>(p: &mut P, reps: u32, mut f: impl FnMut()) -> u64 {
    f();
    let t0 = p.instructions();
    for _ in 0..reps {
        f();
    }
    let spent = p.instructions() - t0;
    (spent + reps as u64 / 2) / reps as u64
}

/// Repetitions that make `reps · estimate` at least 100,000 instructions.
fn reps_for(estimate: u64) -> u32 {
    (100_000 / estimate.max(1)).clamp(1, 1000) as u32 + 1
}

/// Runs every benchmark and prints the tables. `false` if the model could not be set up.
pub fn run<P: Platform>(p: &mut P, machine: &str, instructions_per_tick: u32) -> bool {
    run_ticks(p, machine, instructions_per_tick, 1)
}

/// [`run`] for a counter of `instructions / ticks` instructions per tick (the an547: 125/4).
pub fn run_ticks<P: Platform>(p: &mut P, machine: &str, instructions: u32, ticks: u32) -> bool {
    // SAFETY: `run` is called once, from the entry point; nothing else touches BUFS.
    let b = unsafe { &mut *core::ptr::addr_of_mut!(BUFS) };
    defmt::println!("# picoformer bench: {=str}", machine);
    if ticks == 1 {
        defmt::println!("counter resolution: {=u32} instruction(s); fast paths: {=str}", instructions, picoformer::kernels::FAST_PATHS);
    } else {
        defmt::println!("counter resolution: {=u32}/{=u32} instructions; fast paths: {=str}", instructions, ticks, picoformer::kernels::FAST_PATHS);
    }
    let check = counter_check(p);
    defmt::println!("counter check: a loop of 1000000 instructions reads {=u64}", check);
    let mut rng = Rng(0x2545_f491);
    fill(&mut rng, b);
    if picoformer::kernels::MVE {
        bench_linear_mve(p, b);
    } else {
        bench_linear(p, b);
    }
    bench_linear_int4(p, b);
    bench_softmax(p, &mut rng, b);
    bench_layernorm(p, &mut rng, b);
    bench_llama_kernels(p, &mut rng, b);
    let Some(mut mem) = assets::take_memory() else { return false };
    let ok = bench_model(p, b, &mut mem);
    let ok = bench_lm(p, &mut mem) && ok;
    let ok = bench_classifiers(p, &mut mem) && ok;
    defmt::println!("bench done");
    ok
}

/// Instructions counted over a loop of exactly 1,000,000 (500,000 × decrement and branch), which
/// checks the board's instructions-per-tick figure.
#[inline(never)]
fn counter_check<P: Platform>(p: &mut P) -> u64 {
    let t0 = p.instructions();
    #[cfg(target_arch = "arm")]
    // SAFETY: a register-only loop.
    unsafe {
        core::arch::asm!("2:", "subs {n}, {n}, #1", "bne 2b", n = inout(reg) 500_000u32 => _, options(nomem, nostack))
    };
    #[cfg(target_arch = "riscv32")]
    // SAFETY: a register-only loop.
    unsafe {
        core::arch::asm!("2:", "addi {n}, {n}, -1", "bnez {n}, 2b", n = inout(reg) 500_000u32 => _, options(nomem, nostack))
    };
    p.instructions() - t0
}

/// Random weights, inputs, biases and requantizers: `s_y ≈ acc / 2^12` for `i8` outputs
/// (`k = 128`, `|x| < 2^11`), so most outputs land inside the type. The weights are a random
/// `(1000, 128)` matrix placed with [`Layout::Block4`]; smaller shapes take a prefix of the
/// buffer, which is again random int8 in Block4 order.
fn fill(rng: &mut Rng, b: &mut Bufs) {
    let (n, k) = (N_MAX, W_MAX / N_MAX);
    for o in 0..n {
        for j in 0..k {
            b.w.0[Layout::Block4.index(o, j, k)] = rng.next() as i8;
        }
    }
    for x in b.x.0.iter_mut() {
        *x = rng.signed(12) as i16;
    }
    for (bias, rq) in b.bias.iter_mut().zip(b.rq.iter_mut()) {
        *bias = rng.signed(16);
        *rq = Requant { mult: (1 << 30) | (rng.next() as i32 & 0x3fff_ffff), shift: 31 + 12 };
    }
}

/// The Block4 layer `(n, k)` over the first `n·k` weights.
fn layer<'a>(w: &'a [i8], bias: &'a [i32], rq: &'a [Requant], k: usize, n: usize) -> Linear<'a> {
    Linear::new(&w[..n * k], Layout::Block4, &bias[..n], &rq[..n], k)
}

/// Instructions of one `forward` into `O` outputs.
fn time_linear<P: Platform, O: Activation>(p: &mut P, l: &Linear<'_>, x: &[i16], y: &mut [O], estimate: u64) -> u64 {
    per_call(p, reps_for(estimate), || l.forward(black_box(x), black_box(&mut *y)))
}

fn bench_linear<P: Platform>(p: &mut P, b: &mut Bufs) {
    defmt::println!("");
    defmt::println!("## linear (Block4 weights, i16 in, per-channel requant)");
    defmt::println!("");
    defmt::println!("| shape rows x K x N | MACs | instr, i8 out | instr/MAC | instr, i16 out | instr/MAC | est. M4 cycles, i8 out (LDRD 1+2, LDM 1+4) | cycles/MAC | CMSIS-NN s8 instr | instr/MAC |");
    defmt::println!("|---|---|---|---|---|---|---|---|---|---|");
    let Bufs { w, x, y8, y16, bias, rq, .. } = b;
    let x = &x.0;
    for &(rows, k, n, cmsis) in &LINEAR_SHAPES {
        let l = layer(&w.0, bias, rq, k, n);
        let macs = (rows * k * n) as u64;
        let xs = &x[..rows * k];
        let t8 = time_linear(p, &l, xs, &mut y8[..rows * n], macs);
        let t16 = time_linear(p, &l, xs, &mut y16[..rows * n], macs);
        // Per group of 16 MACs the SMLAD kernel runs one LDRD (2 words) and one LDM (4 words);
        // QEMU counts each as 1 instruction, a Cortex-M4 takes 1 + n cycles: +2 and +4.
        let cycles = t8 + 6 * macs / 16;
        if picoformer::kernels::DSP {
            defmt::println!(
                "| {=usize}x{=usize}x{=usize} | {=u64} | {=u64} | {} | {=u64} | {} | {=u64} | {} | {=u64} | {} |",
                rows, k, n, macs, t8, Milli(t8, macs), t16, Milli(t16, macs), cycles, Milli(cycles, macs), cmsis, Milli(cmsis, macs)
            );
        } else {
            defmt::println!(
                "| {=usize}x{=usize}x{=usize} | {=u64} | {=u64} | {} | {=u64} | {} | n/a | n/a | {=u64} | {} |",
                rows, k, n, macs, t8, Milli(t8, macs), t16, Milli(t16, macs), cmsis, Milli(cmsis, macs)
            );
        }
    }
    // the plain scalar reference, beside CMSIS-NN's naive C figure (102,190 = 6.24 per MAC)
    let l = layer(&w.0, bias, rq, 128, 128);
    let t = per_call(p, 3, || linear_ref(&l, black_box(&x[..128]), black_box(&mut y8[..128])));
    defmt::println!("| 1x128x128 `linear_ref` (scalar reference) | 16384 | {=u64} | {} | | | | | 102190 (naive C) | 6.237 |", t, Milli(t, 16384));
    defmt::println!("");
    defmt::println!("Cycle estimate (SMLAD path only): QEMU counts LDRD and LDM as one instruction each; a real Cortex-M4 spends 1+n cycles on them (n = words). Per 16 MACs the kernel issues 1 LDRD (2 words) + 1 LDM (4 words): +2 +4 = +6 cycles per 18 instructions. Every other instruction is taken as 1 cycle; flash wait states are ignored.");
}

/// The int4 layers of the same shapes (the weight buffer's first `n·k/2` random bytes read as
/// nibbles in the int4 Block4 layout), beside this build's int8 path and CMSIS-NN's
/// `arm_fully_connected_s8` (no `s4` figure is recorded in DESIGN §6).
fn bench_linear_int4<P: Platform>(p: &mut P, b: &mut Bufs) {
    defmt::println!("");
    defmt::println!("## linear int4 (Block4 int4 weights, i16 in, per-channel requant)");
    defmt::println!("");
    defmt::println!("| shape rows x K x N | MACs | int4 instr, i8 out | instr/MAC | int8 instr, i8 out | instr/MAC | CMSIS-NN s8 instr/MAC |");
    defmt::println!("|---|---|---|---|---|---|---|");
    let Bufs { w, x, y8, bias, rq, .. } = b;
    let x = &x.0;
    for &(rows, k, n, cmsis) in &LINEAR_SHAPES {
        let l8 = layer(&w.0, bias, rq, k, n);
        let l4 = Linear::new(&w.0[..n * k / 2], Layout::Block4, &bias[..n], &rq[..n], k).with_int4(true);
        let macs = (rows * k * n) as u64;
        let xs = &x[..rows * k];
        let t4 = time_linear(p, &l4, xs, &mut y8[..rows * n], macs);
        let t8 = time_linear(p, &l8, xs, &mut y8[..rows * n], macs);
        defmt::println!("| {=usize}x{=usize}x{=usize} | {=u64} | {=u64} | {} | {=u64} | {} | {} |", rows, k, n, macs, t4, Milli(t4, macs), t8, Milli(t8, macs), Milli(cmsis, macs));
    }
}

/// CMSIS-NN 7.0 on the Cortex-M55 (DESIGN §6: QEMU mps3-an547, best of GCC 12.2 and
/// clang-16), instructions per MAC, where it was measured.
fn cmsis_m55(rows: usize, k: usize, n: usize) -> &'static str {
    match (rows, k, n) {
        (1, 128, 128) => "0.250 (s16: 1.17)",
        (16, 128, 128) => "0.248 (mat_mult_nt_t: 0.276)",
        _ => "",
    }
}

/// Estimated Cortex-M55 cycles of the Helium linear kernels beyond their instruction count,
/// for `i8` outputs (see the note under the table for the rule).
fn mve_extra_cycles(rows: usize, k: usize, n: usize) -> u64 {
    let (k, n, blocks, chunks) = (k as u64, n as u64, n as u64 / 4, k as u64 / 16);
    if rows < 4 {
        // per 128 MACs 8 VLD4, 16 VMLADAVA (+1 each) and a VLDM of 4 Q (+7); per block STM of 8
        // (+8), VLDM of 2 Q (+3), 11 more vector instructions (+11); per 16 inputs the split's
        // 6 vector instructions (+6) and a VSTM of 2 Q (+3)
        return rows as u64 * (31 * k * n / 128 + 22 * blocks + 9 * chunks);
    }
    let pairs = rows as u64 / 2;
    // per 128 MACs a VLDM of 4 Q of inputs and two of weights (+21) and 16 VMLADAVA (+16); per
    // pair and block STM of 8 (+8), VLDM of 4 Q (+7), 10 vector instructions (+10); per block
    // and 16 inputs 4 VLD4, 8 VMOVL (+12) and two VSTM of 4 Q (+14); per pair and 16 inputs 4
    // VLD2 (+4) and a VSTM of 4 Q (+7)
    37 * (rows as u64) * k * n / 128 + 25 * pairs * blocks + 26 * blocks * chunks + 11 * pairs * chunks
}

/// The linear table on a Helium core: instruction counts, estimated M55 cycles, CMSIS-NN's
/// M55 figures, and the int16 row path (no split) beside the split one.
fn bench_linear_mve<P: Platform>(p: &mut P, b: &mut Bufs) {
    defmt::println!("");
    defmt::println!("## linear (Block4 weights, i16 in, per-channel requant)");
    defmt::println!("");
    defmt::println!("| shape rows x K x N | MACs | instr, i8 out | instr/MAC | instr, i16 out | instr/MAC | est. M55 cycles, i8 out | cycles/MAC | CMSIS-NN 7.0 on the M55, s8 instr/MAC |");
    defmt::println!("|---|---|---|---|---|---|---|---|---|");
    let Bufs { w, x, y8, y16, bias, rq, .. } = b;
    for &(rows, k, n, _) in &LINEAR_SHAPES {
        let l = layer(&w.0, bias, rq, k, n);
        let macs = (rows * k * n) as u64;
        let xs = &x.0[..rows * k];
        let t8 = time_linear(p, &l, xs, &mut y8[..rows * n], macs);
        let t16 = time_linear(p, &l, xs, &mut y16[..rows * n], macs);
        let cycles = t8 + mve_extra_cycles(rows, k, n);
        defmt::println!(
            "| {=usize}x{=usize}x{=usize} | {=u64} | {=u64} | {} | {=u64} | {} | {=u64} | {} | {=str} |",
            rows, k, n, macs, t8, Milli(t8, macs), t16, Milli(t16, macs), cycles, Milli(cycles, macs), cmsis_m55(rows, k, n)
        );
    }
    // the same single rows with one input of 32767: no split (x = 256h + l needs h ≤ 127), the
    // int16 row path (VMOVLB/VMOVLT + VMLADAVA.S16) takes them: what the split saves
    for &(k, n) in &[(128usize, 128usize), (512, 128)] {
        let l = layer(&w.0, bias, rq, k, n);
        let macs = (k * n) as u64;
        let keep = x.0[0];
        x.0[0] = i16::MAX;
        let t8 = time_linear(p, &l, &x.0[..k], &mut y8[..n], macs);
        let t16 = time_linear(p, &l, &x.0[..k], &mut y16[..n], macs);
        x.0[0] = keep;
        // per 64 MACs 2 VLD2, 4 VLD4, 8 VMOVL, 8 VMLADAVA (+22); per block ~12
        let cycles = t8 + 22 * macs / 64 + 12 * (n as u64 / 4);
        defmt::println!(
            "| 1x{=usize}x{=usize}, int16 row path (an input of 32767: no split) | {=u64} | {=u64} | {} | {=u64} | {} | {=u64} | {} | |",
            k, n, macs, t8, Milli(t8, macs), t16, Milli(t16, macs), cycles, Milli(cycles, macs)
        );
    }
    let l = layer(&w.0, bias, rq, 128, 128);
    let t = per_call(p, 3, || linear_ref(&l, black_box(&x.0[..128]), black_box(&mut y8[..128])));
    defmt::println!("| 1x128x128 `linear_ref` (scalar reference) | 16384 | {=u64} | {} | | | | | |", t, Milli(t, 16384));
    defmt::println!("");
    defmt::println!("Cycle estimate: QEMU counts every instruction as one. A Cortex-M55 executes a 128-bit MVE instruction in two beats: taken as 2 cycles each (VLD4x, VLD2x, VMLADAVA, VMOVL, the requantization), VLDM/VSTM as 2 cycles per Q register, LDM/STM as 1 + n, every other instruction as 1; no overlap of a load with a MAC is assumed (the M55 overlaps them, so this is an upper bound), and no wait states. One row: per 128 MACs 8 VLD4 + 16 VMLADAVA.S8 + 1 VLDM of 4 Q = +31 cycles on 25 instructions, per block of 4 channels +22, per 16 inputs of the split +9. Many rows: per 128 MACs +37 on 19 instructions, per pair of rows and block +25, per block and 16 inputs (widening) +26, per pair and 16 inputs (rearranging) +11.");
}

fn bench_softmax<P: Platform>(p: &mut P, rng: &mut Rng, b: &mut Bufs) {
    defmt::println!("");
    defmt::println!("## softmax_u8 (i32 scores -> u8 probabilities)");
    defmt::println!("");
    let mve = picoformer::kernels::MVE;
    if mve {
        defmt::println!("| shape | instr (with the copy) | instr/element | without the copy | instr/element | CMSIS-NN 7.0 on the M55, arm_softmax_s8 instr/element |");
        defmt::println!("|---|---|---|---|---|---|");
    } else {
        defmt::println!("| shape | instr | instr/element | CMSIS-NN arm_softmax_s8 instr | instr/element |");
        defmt::println!("|---|---|---|---|---|");
    }
    // scores in ±2^14, 1/64 of a Q6 step per unit: weights from 1 down to 2^-8 and zeros
    for s in b.scores.iter_mut() {
        *s = rng.signed(15);
    }
    let rq = Requant { mult: 1 << 30, shift: 36 };
    let mut copies = [0u64; 2];
    let mut per_row_calls = 0;
    for (rows, len, cmsis) in [(16usize, 16usize, 135_612u64), (1, 1000, 523_203)] {
        let scores = &b.scores[..rows * len];
        let work = &mut b.work[..rows * len];
        let probs = &mut b.probs[..rows * len];
        // the copy of the scores (memcpy, ~1 instruction per element) is included; the rows in
        // one call, as arm_softmax_s8 takes them
        let t = per_call(p, reps_for(40 * (rows * len) as u64), || {
            work.copy_from_slice(scores);
            softmax_rows_u8(black_box(&mut *work), len, rq, black_box(&mut *probs));
        });
        if rows > 1 {
            // one call per row, as attention makes them (one query row and head at a time)
            let each = per_call(p, reps_for(40 * (rows * len) as u64), || {
                work.copy_from_slice(scores);
                for (s, pr) in work.chunks_exact_mut(len).zip(probs.chunks_exact_mut(len)) {
                    softmax_u8(black_box(s), rq, black_box(pr));
                }
            });
            per_row_calls = each;
        }
        let el = (rows * len) as u64;
        let copy = per_call(p, reps_for((rows * len) as u64), || work.copy_from_slice(black_box(scores)));
        copies[usize::from(len == 1000)] = copy;
        if mve {
            let alone = t.saturating_sub(copy);
            let m55 = if len == 1000 { "77" } else { "90" };
            defmt::println!("| {=usize} rows x {=usize} | {=u64} | {} | {=u64} | {} | {=str} |", rows, len, t, Milli(t, el), alone, Milli(alone, el), m55);
        } else {
            defmt::println!("| {=usize} rows x {=usize} | {=u64} | {} | {=u64} | {} |", rows, len, t, Milli(t, el), cmsis, Milli(cmsis, el));
        }
    }
    defmt::println!("");
    defmt::println!("The figures include copying the scores (softmax works in place): {=u64} instructions for the 256 scores, {=u64} for the 1000. One softmax_rows_u8 call takes all the rows; 16 rows x 16 as 16 softmax_u8 calls (one per row, as attention calls it): {=u64} with the copy, {} per element without it.", copies[0], copies[1], per_row_calls, Milli(per_row_calls.saturating_sub(copies[0]), 256));
}

fn bench_layernorm<P: Platform>(p: &mut P, rng: &mut Rng, b: &mut Bufs) {
    defmt::println!("");
    defmt::println!("## LayerNorm (i16 -> i16)");
    defmt::println!("");
    defmt::println!("| shape | instr | instr/element |");
    defmt::println!("|---|---|---|");
    for (g, bi) in b.gain.iter_mut().zip(b.ln_bias.iter_mut()) {
        // gains and shift as the converter makes them for de-en (shift ≥ 33: the 32-bit path)
        *g = (1 << 29) + rng.signed(26);
        *bi = rng.signed(10);
    }
    let ln = LayerNorm { gain: &b.gain, bias: &b.ln_bias, shift: 36, eps: 1 };
    let (x, y) = (&b.x.0[..SEQ * D], &mut b.y16[..SEQ * D]);
    let t = per_call(p, reps_for(100 * (SEQ * D) as u64), || ln.forward(black_box(x), black_box(&mut *y)));
    defmt::println!("| {=usize} x {=usize} | {=u64} | {} |", SEQ, D, t, Milli(t, (SEQ * D) as u64));

    defmt::println!("");
    defmt::println!("## residual add (i16 + i16 -> i16, in place)");
    defmt::println!("");
    defmt::println!("| shape | instr | instr/element |");
    defmt::println!("|---|---|---|");
    // multipliers and shift as the converter makes them for de-en
    let res = ResidualParams { ma: 981_597_782, mb: 445_993_134, shift: 30 };
    let (a, y) = (&b.x.0[..SEQ * D], &mut b.y16[..SEQ * D]);
    let t = per_call(p, reps_for(30 * (SEQ * D) as u64), || add_in_place(res, black_box(&mut *y), black_box(a)));
    defmt::println!("| {=usize} x {=usize} | {=u64} | {} |", SEQ, D, t, Milli(t, (SEQ * D) as u64));
}

/// The Llama blocks' kernels, per element, each beside its nearest existing kernel: RMSNorm
/// beside LayerNorm (same rows, gains and shift), RoPE (Q15 tables, `i16` in, `i8` out) beside
/// the residual add, and SwiGLU's activation (the SiLU table on the gate, then the requantized
/// product with `up`) beside GELU's table and ReLU.
fn bench_llama_kernels<P: Platform>(p: &mut P, rng: &mut Rng, b: &mut Bufs) {
    defmt::println!("");
    defmt::println!("## Llama-block kernels (16 x 128, per element)");
    defmt::println!("");
    defmt::println!("| kernel | instr | instr/element | nearest existing kernel | instr/element |");
    defmt::println!("|---|---|---|---|---|");
    let n = (SEQ * D) as u64;
    let ln = LayerNorm { gain: &b.gain, bias: &b.ln_bias, shift: 36, eps: 1 };
    let rms = RmsNorm { gain: &b.gain, shift: 36, eps: 1 };
    let (x, y) = (&b.x.0[..SEQ * D], &mut b.y16[..SEQ * D]);
    let t_ln = per_call(p, reps_for(100 * n), || ln.forward(black_box(x), black_box(&mut *y)));
    let t_rms = per_call(p, reps_for(100 * n), || rms.forward(black_box(x), black_box(&mut *y)));
    defmt::println!("| RMSNorm | {=u64} | {} | LayerNorm | {} |", t_rms, Milli(t_rms, n), Milli(t_ln, n));

    // RoPE over 4 heads of 32 at positions 0..16, tables as the converter writes them
    for (c, s) in b.cos.iter_mut().zip(b.sin.iter_mut()) {
        *c = rng.signed(15).clamp(-32767, 32767) as i16;
        *s = rng.signed(15).clamp(-32767, 32767) as i16;
    }
    let rope = Rope { cos: &b.cos, sin: &b.sin, half: 16 };
    let rq = Requant { mult: 1 << 30, shift: 15 + 5 };
    let res = ResidualParams { ma: 981_597_782, mb: 445_993_134, shift: 30 };
    let (x, q) = (&b.x.0[..SEQ * D], &mut b.q.0[..SEQ * D]);
    let t_rope = per_call(p, reps_for(20 * n), || rope.apply(black_box(x), 0, 4, rq, black_box(&mut *q)));
    let (a, y) = (&b.x.0[..SEQ * D], &mut b.y16[..SEQ * D]);
    let t_res = per_call(p, reps_for(30 * n), || add_in_place(res, black_box(&mut *y), black_box(a)));
    defmt::println!("| RoPE (rotate half, i16 -> i8) | {=u64} | {} | residual add | {} |", t_rope, Milli(t_rope, n), Milli(t_res, n));

    // activations over the FFN's hidden values: a 257-entry table (SiLU or GELU), in place
    for (i, t) in b.table.iter_mut().enumerate() {
        *t = (i as i32 * 128 - 16384) as i16;
    }
    let mul = Requant { mult: 1 << 30, shift: 30 + 12 };
    // in place, each repetition on the previous one's output: their cost does not depend on
    // the values (the table's index and fraction, a clamp, a multiply and requantize)
    let (gate, up) = (&mut b.ctx[..SEQ * D], &mut b.y16[..SEQ * D]);
    gate.copy_from_slice(&b.x.0[..SEQ * D]);
    let table = &b.table;
    let t_swiglu = per_call(p, reps_for(30 * n), || {
        table_i16(black_box(&mut *gate), table);
        gated_i16(black_box(&*gate), black_box(&mut *up), mul);
    });
    let t_gelu = per_call(p, reps_for(20 * n), || table_i16(black_box(&mut *gate), table));
    let t_relu = per_call(p, reps_for(10 * n), || relu_i16(black_box(&mut *gate)));
    defmt::println!("| SwiGLU activation (SiLU table + gated product) | {=u64} | {} | GELU table / ReLU | {} / {} |", t_swiglu, Milli(t_swiglu, n), Milli(t_gelu, n), Milli(t_relu, n));
}

/// The first embedded model of `kind`, parsed.
fn embedded(kind: ModelKind) -> impl Iterator<Item = (&'static str, Model<'static>, &'static [u8])> {
    assets::MODELS.iter().filter_map(move |e| match Model::parse(e.blob) {
        Ok(m) if m.config().kind == kind => Some((e.name, m, e.vectors)),
        _ => None,
    })
}

/// The language model: a prompt's pass, then greedy steps, per token.
fn bench_lm<P: Platform>(p: &mut P, mem: &mut assets::Memory) -> bool {
    let Some((name, model, _)) = embedded(ModelKind::DecoderOnly).next() else {
        defmt::println!("bench: no decoder-only model embedded (PICOFORMER_MODELS)");
        return true;
    };
    let c = *model.config();
    let mut g = match Generator::new(&model, &mut *mem.arena, 1) {
        Ok(g) => g,
        Err(e) => {
            defmt::println!("generator: {}", defmt::Display2Format(&e));
            return false;
        }
    };
    let mut ids = [0 as TokenId; assets::MAX_TEXT_BYTES + 2];
    let t0 = p.instructions();
    let n = match model.tokenizer().encode_prompt(PROMPT, &mut *mem.scratch, &mut ids, c.max_len - 1) {
        Ok(n) => n,
        Err(e) => {
            defmt::println!("tokenizer: {}", defmt::Display2Format(&e));
            return false;
        }
    };
    let tokenize = p.instructions() - t0;
    let t0 = p.instructions();
    if let Err(e) = g.prompt(&ids[..n]) {
        defmt::println!("prompt: {}", defmt::Display2Format(&e));
        return false;
    }
    let prefill = p.instructions() - t0;
    let mut steps = [0u64; 20];
    let mut made = 0;
    for s in steps.iter_mut() {
        let t0 = p.instructions();
        let step = g.greedy_step(&mut NoObserver);
        *s = p.instructions() - t0;
        match step {
            Ok(Some(_)) => made += 1,
            Ok(None) => break,
            Err(e) => {
                defmt::println!("step: {}", defmt::Display2Format(&e));
                return false;
            }
        }
    }
    // the first step chooses from the prompt pass's logits; every later one feeds the token
    // chosen before and chooses the next: that is the cost of a generated token
    let fed = steps.get(1..made).unwrap_or(&[]);
    let decode: u64 = fed.iter().sum();
    defmt::println!("");
    defmt::println!(
        "## {=str} (decoder-only: d_model {=usize}, {=usize} query / {=usize} K/V heads, {=usize} layers, SwiGLU {=usize}, vocab {=usize}), prompt of {=usize} tokens (bos included)",
        name, c.d_model, c.nhead, c.n_kv_heads, c.n_dec, c.d_ff, c.vocab, n
    );
    defmt::println!("");
    defmt::println!("`{=str}`", PROMPT);
    defmt::println!("");
    defmt::println!("| stage | instr | per token |");
    defmt::println!("|---|---|---|");
    defmt::println!("| tokenize (on device) | {=u64} | {=u64} |", tokenize, tokenize / n as u64);
    defmt::println!("| prompt pass ({=usize} tokens) | {=u64} | {=u64} |", n, prefill, prefill / n as u64);
    defmt::println!("| first token (argmax over the prompt pass's logits) | {=u64} | |", steps[0]);
    for i in [1usize, 9] {
        if i < made {
            defmt::println!("| token {=usize} (feeds token {=usize} at position {=usize}, then argmax) | {=u64} | |", i + 1, i, n + i - 1, steps[i]);
        }
    }
    defmt::println!("| **per generated token, mean of {=usize}** (feed + argmax) | {=u64} | **{=u64}** |", fed.len(), decode, decode / fed.len().max(1) as u64);
    true
}

/// Each classifier: its test-vector windows, per window and per frame.
fn bench_classifiers<P: Platform>(p: &mut P, mem: &mut assets::Memory) -> bool {
    struct Instructions<'p, P: Platform>(&'p mut P);
    impl<P: Platform> Meter for Instructions<'_, P> {
        fn now(&mut self) -> u64 {
            self.0.instructions()
        }
    }
    let mut ok = true;
    for (name, model, vectors) in embedded(ModelKind::EncoderOnly) {
        let c = *model.config();
        let Some(cases) = Vectors::parse(vectors) else { continue };
        let (mut total, mut frames, mut windows) = (0u64, 0u64, 0u64);
        let mut ids = [0 as TokenId; assets::MAX_TEXT_BYTES + 2];
        for case in cases {
            let mut buf = Buffers { arena: &mut *mem.arena, scratch: &mut *mem.scratch, ids: &mut ids, features: &mut *mem.features };
            match replay(&model, &case, &mut buf, &mut Instructions(p), &mut NoObserver, &mut Discard) {
                Ok(r) if r.ok(&case) => {
                    total += r.cost.total();
                    frames += r.inputs as u64;
                    windows += 1;
                }
                _ => ok = false,
            }
        }
        defmt::println!("");
        defmt::println!(
            "## {=str} (encoder-only over {=usize} features per frame: d_model {=usize}, {=usize} heads, {=usize} layers, FFN {=usize}, {=usize} classes)",
            name, c.n_features, c.d_model, c.nhead, c.n_enc, c.d_ff, c.n_outputs
        );
        defmt::println!("");
        defmt::println!("| windows | frames | instr | **per window** | per frame |");
        defmt::println!("|---|---|---|---|---|");
        defmt::println!("| {=u64} | {=u64} | {=u64} | **{=u64}** | {=u64} |", windows, frames, total, total / windows.max(1), total / frames.max(1));
    }
    ok
}

/// Text nobody reads.
struct Discard;

impl core::fmt::Write for Discard {
    fn write_str(&mut self, _: &str) -> core::fmt::Result {
        Ok(())
    }
}

/// Instructions of the linear layers of one attention block's Q, K, V projections over `rows`.
fn qkv<P: Platform>(p: &mut P, a: &Attention<'_>, x: &[i16], b: &mut Bufs, rows: usize) -> u64 {
    let n = rows * D;
    let (q, k, v) = (&mut b.q.0[..n], &mut b.k.0[..n], &mut b.v.0[..n]);
    per_call(p, reps_for(3 * (n * D) as u64), || {
        a.q.forward(black_box(x), black_box(&mut *q));
        a.k.forward(black_box(x), black_box(&mut *k));
        a.v.forward(black_box(x), black_box(&mut *v));
    })
}

/// Instructions of `attention` for `rows` queries over `keys` keys, with the block's params.
fn attn<P: Platform>(p: &mut P, params: &AttentionParams, heads: usize, b: &mut Bufs, rows: usize, keys: usize, mask: Mask) -> u64 {
    let (q, k, v) = (&b.q.0[..rows * D], &b.k.0[..keys * D], &b.v.0[..keys * D]);
    let (scores, probs, ctx) = (&mut b.scores[..keys], &mut b.probs[..keys], &mut b.ctx[..rows * D]);
    per_call(p, reps_for((rows * keys * D * 4) as u64), || {
        attention(params, Heads::multi(heads, D), black_box(q), black_box(k), black_box(v), mask, black_box(&mut *scores), black_box(&mut *probs), black_box(&mut *ctx))
    })
}

fn bench_model<P: Platform>(p: &mut P, b: &mut Bufs, mem: &mut assets::Memory) -> bool {
    let model = match Model::parse(assets::BLOB) {
        Ok(m) => m,
        Err(e) => {
            defmt::println!("blob: {}", defmt::Display2Format(&e));
            return false;
        }
    };
    let c = &model.config();
    if c.d_model != D || c.vocab > b.y32.len() || c.max_len < STEPS + 1 {
        defmt::println!("bench: expects the de-en model (d_model 128, vocab <= 4000)");
        return false;
    }
    let mut t = match Translator::new(&model, &mut *mem.arena, 1) {
        Ok(t) => t,
        Err(e) => {
            defmt::println!("translator: {}", defmt::Display2Format(&e));
            return false;
        }
    };
    let tok = model.tokenizer();
    let mut src = [0 as TokenId; assets::MAX_TEXT_BYTES + 2];
    let t0 = p.instructions();
    let n = match tok.encode_source(SENTENCE, &mut *mem.scratch, &mut src, c.max_len) {
        Ok(n) => n,
        Err(e) => {
            defmt::println!("tokenizer: {}", defmt::Display2Format(&e));
            return false;
        }
    };
    let tokenize = p.instructions() - t0;
    let src = &src[..n];

    // --- one attention block: de-en encoder layer 0 self-attention over n tokens
    let x: [i16; SEQ * D] = core::array::from_fn(|i| b.x.0[i]);
    let rows = n.min(SEQ);
    let xs = &x[..rows * D];
    let sa = model.layers(Stack::Encoder)[0].attn.op;
    let t_qkv = qkv(p, &sa, xs, b, rows);
    let t_att = attn(p, &sa.params, c.nhead, b, rows, rows, Mask { key_len: rows, causal: false, q_pos0: 0 });
    let (ctx, y16) = (&b.ctx[..rows * D], &mut b.y16[..rows * D]);
    let t_o = per_call(p, reps_for((rows * D * D) as u64), || sa.o.forward(black_box(ctx), black_box(&mut *y16)));
    defmt::println!("");
    defmt::println!("## attention: de-en encoder layer 0 self-attention, {=usize} tokens, {=usize} heads (real weights, random inputs)", rows, c.nhead);
    defmt::println!("");
    defmt::println!("| part | instr | share |");
    defmt::println!("|---|---|---|");
    let block = t_qkv + t_att + t_o;
    defmt::println!("| Q, K, V projections ({=usize}x128x128 each, i8 out) | {=u64} | {} |", rows, t_qkv, Percent(t_qkv, block));
    defmt::println!("| `attention` kernel (QK^T, softmax, PV, requant) | {=u64} | {} |", t_att, Percent(t_att, block));
    defmt::println!("| O projection ({=usize}x128x128, i16 out) | {=u64} | {} |", rows, t_o, Percent(t_o, block));
    defmt::println!("| block | {=u64} | 100% |", block);

    // --- the encoder over the sentence
    let t0 = p.instructions();
    if let Err(e) = t.encode(src) {
        defmt::println!("encode: {}", defmt::Display2Format(&e));
        return false;
    }
    let encode = p.instructions() - t0;
    // its linear layers alone, same shapes and weights
    let mut enc_linear = 0;
    for l in model.layers(Stack::Encoder) {
        enc_linear += qkv(p, &l.attn.op, &x[..n * D], b, n);
        let (xi, yo) = (&x[..n * D], &mut b.y16[..n * D]);
        enc_linear += per_call(p, 1, || l.attn.op.o.forward(black_box(xi), black_box(&mut *yo)));
        let ff = &mut b.y16[..n * c.d_ff];
        enc_linear += per_call(p, 1, || l.ffn.op.up.forward(black_box(xi), black_box(&mut *ff)));
        let (xi, yo) = (&b.x.0[..n * c.d_ff], &mut b.y16[..n * D]);
        enc_linear += per_call(p, 1, || l.ffn.op.down.forward(black_box(xi), black_box(&mut *yo)));
    }
    let mut enc_attn = 0;
    for l in model.layers(Stack::Encoder) {
        enc_attn += attn(p, &l.attn.op.params, c.nhead, b, n, n, Mask { key_len: n, causal: false, q_pos0: 0 });
    }
    for l in model.layers(Stack::Decoder) {
        let (xi, k, v) = (&x[..n * D], &mut b.k.0[..n * D], &mut b.v.0[..n * D]);
        enc_linear += per_call(p, 1, || {
            l.cross.op.k.forward(black_box(xi), black_box(&mut *k));
            l.cross.op.v.forward(black_box(xi), black_box(&mut *v));
        });
    }

    // --- decoder steps, teacher-forced with the greedy tokens (no argmax inside the timing)
    let mut step = [0u64; STEPS];
    let mut next = c.bos;
    for s in step.iter_mut() {
        let t0 = p.instructions();
        if let Err(e) = t.force_observed(next, &mut NoObserver) {
            defmt::println!("decode: {}", defmt::Display2Format(&e));
            return false;
        }
        *s = p.instructions() - t0;
        next = argmax(t.logits()) as TokenId;
    }
    let t_argmax = {
        let lg: &[i32] = t.logits();
        per_call(p, 5, || {
            black_box(argmax(black_box(lg)));
        })
    };
    // one step's linear layers: per decoder layer Q, K, V, O (self), Q, O (cross), ff1, ff2;
    // then the generator
    let mut dec_linear = 0;
    for l in model.layers(Stack::Decoder) {
        let xi = &x[..D];
        dec_linear += qkv(p, &l.attn.op, xi, b, 1);
        let (q, yo, ff) = (&mut b.q.0[..D], &mut b.y16[..D], &mut b.ctx[..c.d_ff]);
        dec_linear += per_call(p, 20, || {
            l.attn.op.o.forward(black_box(xi), black_box(&mut *yo));
            l.cross.op.q.forward(black_box(xi), black_box(&mut *q));
            l.cross.op.o.forward(black_box(xi), black_box(&mut *yo));
            l.ffn.op.up.forward(black_box(xi), black_box(&mut *ff));
        });
        let (xi, yo) = (&b.x.0[..c.d_ff], &mut b.y16[..D]);
        dec_linear += per_call(p, 20, || l.ffn.op.down.forward(black_box(xi), black_box(&mut *yo)));
    }
    let (xi, lg) = (&x[..D], &mut b.y32[..c.vocab]);
    let generator = per_call(p, 3, || model.output().forward(black_box(xi), black_box(&mut *lg)));
    dec_linear += generator;
    // one step's attention kernels: self over pos + 1 keys, cross over n keys, per layer
    let dec_attn = |p: &mut P, b: &mut Bufs, pos: usize| -> u64 {
        let mut t = 0;
        for l in model.layers(Stack::Decoder) {
            t += attn(p, &l.attn.op.params, c.nhead, b, 1, pos + 1, Mask { key_len: pos + 1, causal: true, q_pos0: pos });
            t += attn(p, &l.cross.op.params, c.nhead, b, 1, n, Mask { key_len: n, causal: false, q_pos0: 0 });
        }
        t
    };

    // the softmax inside those attention calls, on its own: heads × keys elements per call
    let dec_softmax = |p: &mut P, b: &mut Bufs, pos: usize| -> u64 {
        let mut t = 0;
        for l in model.layers(Stack::Decoder) {
            for (keys, rq) in [(pos + 1, l.attn.op.params.softmax), (n, l.cross.op.params.softmax)] {
                let (scores, work, probs) = (&b.scores[..keys], &mut b.work[..keys], &mut b.probs[..keys]);
                t += c.nhead as u64
                    * per_call(p, 10, || {
                        work.copy_from_slice(scores);
                        softmax_u8(black_box(&mut *work), rq, black_box(&mut *probs));
                    });
            }
        }
        t
    };

    defmt::println!("");
    defmt::println!("## de-en model (d_model 128, 4 heads, 2+2 layers, ff 256, vocab {=usize}), sentence of {=usize} tokens (eos included)", c.vocab, n);
    defmt::println!("");
    defmt::println!("`{=str}`", SENTENCE);
    defmt::println!("");
    defmt::println!("| stage | instr | per token | linear layers | attention kernel | rest (LayerNorm, residual, embedding, activation, glue) |");
    defmt::println!("|---|---|---|---|---|---|");
    defmt::println!("| tokenize (on device) | {=u64} | {=u64} | | | |", tokenize, tokenize / n as u64);
    let rest = encode.saturating_sub(enc_linear + enc_attn);
    defmt::println!(
        "| encoder pass + cross K/V ({=usize} tokens) | {=u64} | {=u64} | {=u64} ({}) | {=u64} ({}) | {=u64} ({}) |",
        n, encode, encode / n as u64, enc_linear, Percent(enc_linear, encode), enc_attn, Percent(enc_attn, encode), rest, Percent(rest, encode)
    );
    let mut outside = [(0u64, 0u64); 4];
    for (i, pos) in [0usize, 1, 15, 16].into_iter().enumerate() {
        let s = step[pos];
        let a = dec_attn(p, b, pos);
        let rest = s.saturating_sub(dec_linear + a);
        let sm = dec_softmax(p, b, pos).min(a);
        outside[i] = (sm + rest, s);
        defmt::println!(
            "| decoder step {=usize} (pos {=usize}, {=usize} cached keys) | {=u64} | | {=u64} ({}) | {=u64} ({}) | {=u64} ({}) |",
            pos + 1, pos, pos + 1, s, dec_linear, Percent(dec_linear, s), a, Percent(a, s), rest, Percent(rest, s)
        );
    }
    defmt::println!("| of which generator 1x128x{=usize} (i32 out) | {=u64} | | | | |", c.vocab, generator);
    defmt::println!("| argmax over {=usize} logits (greedy only) | {=u64} | | | | |", c.vocab, t_argmax);
    defmt::println!("");
    defmt::println!("Decoder steps are timed with `force_observed` (no argmax), feeding the greedy tokens. The breakdown times the same linear layers (same weights and shapes) and `attention` calls on their own.");
    defmt::println!("");
    defmt::println!("Outside matrix products (DESIGN §6: softmax, norms, requant, masking): the attention kernel's Q·Kᵀ and P·V are matrix products, its softmax is not; the softmax calls of a step, timed alone on the same row lengths, plus the rest column:");
    defmt::println!("");
    defmt::println!("| decoder step | outside matrix products | share |");
    defmt::println!("|---|---|---|");
    for (pos, (o, s)) in [0usize, 1, 15, 16].into_iter().zip(outside) {
        defmt::println!("| {=usize} | {=u64} | {} |", pos + 1, o, Percent(o, s));
    }
    true
}
