//! Helium (MVE) fast paths of the Block4 linear kernel (`picoformer_core = "mve"`: Cortex-M55
//! and M85), on the converter's Block4 weights as they are.
//!
//! Reading Block4 with MVE: 64 bytes of a block are 4 groups × 4 channels of one 32-bit word
//! each (word `4g + c`). The de-interleaving load `VLD40`-`VLD43.32` splits them by 4 words, so
//! `q_c` holds channel `c`'s 16 weights of those 16 inputs (each word in the byte order j0, j2,
//! j1, j3): four instructions load four one-channel vectors, and a reduction `VMLADAVA` over a
//! vector takes one channel. The inputs only have to be put in the same order, once per row.
//!
//! - One row (`pf_mve_row4_*` for `k % 128 == 0`, `pf_mve_row1_*`): the int16 input is split into two int8 vectors,
//!   `x = 256·h + l` with `h = (x + 128) >> 8` and `l` the low byte read as signed (`l = x -
//!   256·h` is in `-128..=127`), in the weights' byte order (`VQRSHRNB`/`VMOVNB`
//!   after a `VLD2` that pairs the inputs as the words need). Then per 16 inputs and channel one
//!   `VMLADAVA.S8` into `Σw·h` and one into `Σw·l`, 16 MACs each, on the same weight vector: per
//!   16 inputs × 4 channels, 4 `VLD4`, 8 `VMLADAVA.S8` and half a `VLDM` of the inputs (both
//!   parts of 32 inputs, four Q registers, in one instruction): 12.5 instructions per 64 MACs.
//!   The eight sums of a block live in `r0`, `r2`, …, `r12` and `lr` (`VMLADAVA` takes even
//!   registers only: these are all of them, so the loops count with `SUBS`/`BNE`, not `LE`). No correction term
//!   is needed: `Σw·x = 256·Σw·h + Σw·l` exactly, wrapping in 32 bits like the reference. An
//!   input of 32640 or more would need `h = 128`: `VQRSHRNB` saturates it and sets FPSCR.QC,
//!   and such a row takes the int16 path below instead.
//! - One row, int16 as it is (`pf_mve_row16_*`): per 16 inputs `VLD20`/`VLD21` of the inputs
//!   (the pairs `(j0, j1)` and `(j2, j3)` of each group apart), 4 `VLD4`, and per channel
//!   `VMOVLB`/`VMOVLT.S8` + 2 `VMLADAVA.S16`: 22 instructions per 64 MACs. It takes the rows the
//!   split cannot (and `k` past [`ROW_MAX_K`]); the benchmarks time it beside the split.
//! - Many rows (`pf_mve_pairs_*`, four rows or more): per block, the weights are widened to
//!   int16 once (`VLD4`, `VMOVLB`/`VMOVLT`, `VSTM`: 15 instructions per 64 weights), the rows
//!   are rearranged once per call, two rows per 64 bytes per 16 inputs; then each pair of rows
//!   takes, per 16 inputs, one `VLDM` of its inputs, two `VLDM` of the block's widened weights
//!   and 16 `VMLADAVA.S16`: 19 instructions per 128 MACs, eight sums (4 channels × 2 rows) in
//!   registers.
//!
//! Requantization is fused and vectorized per block of 4 channels: the sums through `STM` and
//! `VLDM` into a Q register, `VLD2` splits the four `Requant`s into multipliers and shifts,
//! `VMULH.S32` (the high word of `acc · mult`), `VRSHL.S32` by `32 - shift` (the rounding right
//! shift `(hi + 2^(s-33)) >> (s-32)`, exact: [`Requant::apply32`] for shifts in 33..=62),
//! `VQMOVNB` to saturate, and one store. Layers with other shifts store the raw sums (i32
//! outputs) or take the portable loop.
//!
//! Bit-exact with [`super::reference::linear_ref`]; the firmware checks every path on target.

use core::mem::MaybeUninit;

use super::weights::Linear;
use super::{dsp, portable};
use crate::quant::{Activation, OutKind, Requant};

/// The first pair of 16-input chunks of a block: the `Σw·h` sums start from the products (no
/// accumulate), the `Σw·l` sums from the biases. Inputs: `q4`/`q5` = h/l of chunk 0, `q6`/`q7`
/// of chunk 1, from one `VLDM`.
macro_rules! pair_first {
    () => {
        "vldmia r3!, {{d8-d15}}
    vld40.32 {{q0, q1, q2, q3}}, [r1]
    vld41.32 {{q0, q1, q2, q3}}, [r1]
    vld42.32 {{q0, q1, q2, q3}}, [r1]
    vld43.32 {{q0, q1, q2, q3}}, [r1]!
    vmladav.s8 r8, q0, q4
    vmladava.s8 r0, q0, q5
    vmladav.s8 r10, q1, q4
    vmladava.s8 r2, q1, q5
    vmladav.s8 r12, q2, q4
    vmladava.s8 r4, q2, q5
    vmladav.s8 lr, q3, q4
    vmladava.s8 r6, q3, q5
    vld40.32 {{q0, q1, q2, q3}}, [r1]
    vld41.32 {{q0, q1, q2, q3}}, [r1]
    vld42.32 {{q0, q1, q2, q3}}, [r1]
    vld43.32 {{q0, q1, q2, q3}}, [r1]!
    vmladava.s8 r8, q0, q6
    vmladava.s8 r0, q0, q7
    vmladava.s8 r10, q1, q6
    vmladava.s8 r2, q1, q7
    vmladava.s8 r12, q2, q6
    vmladava.s8 r4, q2, q7
    vmladava.s8 lr, q3, q6
    vmladava.s8 r6, q3, q7
"
    };
}

/// A further pair of chunks: 25 instructions for 128 MACs.
macro_rules! pair {
    () => {
        "vldmia r3!, {{d8-d15}}
    vld40.32 {{q0, q1, q2, q3}}, [r1]
    vld41.32 {{q0, q1, q2, q3}}, [r1]
    vld42.32 {{q0, q1, q2, q3}}, [r1]
    vld43.32 {{q0, q1, q2, q3}}, [r1]!
    vmladava.s8 r8, q0, q4
    vmladava.s8 r0, q0, q5
    vmladava.s8 r10, q1, q4
    vmladava.s8 r2, q1, q5
    vmladava.s8 r12, q2, q4
    vmladava.s8 r4, q2, q5
    vmladava.s8 lr, q3, q4
    vmladava.s8 r6, q3, q5
    vld40.32 {{q0, q1, q2, q3}}, [r1]
    vld41.32 {{q0, q1, q2, q3}}, [r1]
    vld42.32 {{q0, q1, q2, q3}}, [r1]
    vld43.32 {{q0, q1, q2, q3}}, [r1]!
    vmladava.s8 r8, q0, q6
    vmladava.s8 r0, q0, q7
    vmladava.s8 r10, q1, q6
    vmladava.s8 r2, q1, q7
    vmladava.s8 r12, q2, q6
    vmladava.s8 r4, q2, q7
    vmladava.s8 lr, q3, q6
    vmladava.s8 r6, q3, q7
"
    };
}

/// `q0 = round(q0 · mult · 2^-shift)` for the four `Requant`s at `r11` (advanced): `VLD2`
/// splits them, `VMULH` takes the high word, `VRSHL` by `32 - shift` rounds it down by
/// `shift - 32` ([`Requant::apply32`]). `q2`, `q3`, `q7` scratch.
macro_rules! requant_q0 {
    () => {
        "vld20.32 {{q2, q3}}, [r11]
    vld21.32 {{q2, q3}}, [r11]!
    vmov.i32 q7, #32
    vsub.i32 q3, q7, q3
    vmulh.s32 q0, q0, q2
    vrshl.s32 q0, q0, q3
"
    };
}

/// Saturate `q0` to `i8` and store its four lanes at `r0` (advanced).
macro_rules! store_i8 {
    () => {
        "vqmovnb.s32 q0, q0\n vqmovnb.s16 q0, q0\n vstrb.32 q0, [r0], #4\n"
    };
}

/// Saturate `q0` to `i16` and store its four lanes at `r0` (advanced).
macro_rules! store_i16 {
    () => {
        "vqmovnb.s32 q0, q0\n vstrh.32 q0, [r0], #8\n"
    };
}

/// Store `q0`'s four words at `r0` (advanced).
macro_rules! store_i32 {
    () => {
        "vstrw.32 q0, [r0], #16\n"
    };
}

/// Split a row into the scratch (`x = 256·h + l`, see the module doc), in the weights' byte
/// order: per 16 inputs 16 bytes `h`, 16 bytes `l`. `r0` = x (word-aligned), `r1` = out, `r2` =
/// chunks of 16; FPSCR.QC ends up set if a high byte saturated (an input ≥ 32640). `q0`-`q3`
/// scratch; uses `lr` as the loop count.
macro_rules! split_row {
    () => {
        "vmrs r3, fpscr
    bic r3, r3, #0x08000000
    vmsr fpscr, r3
    dls lr, r2
2:
    vld20.32 {{q0, q1}}, [r0]
    vld21.32 {{q0, q1}}, [r0]!
    vqrshrnb.s16 q2, q0, #8
    vqrshrnt.s16 q2, q1, #8
    vmovnb.i16 q3, q0
    vmovnt.i16 q3, q1
    vstmia r1!, {{d4-d7}}
    le lr, 2b
    vmrs r3, fpscr
    ubfx r3, r3, #27, #1
"
    };
}

/// One row through a layer with the split input (`pf_mve_row_*`): split the row (returning 1,
/// nothing written, if an input is 32640 or more), then per block of 4 channels `$first` (the
/// first pairs of chunks, the very first one included) and `iters - 1` times `$body` (out of
/// line, entered by `CBNZ`), and `$out`: what becomes of the block's sums in `q0` (requantize
/// and store, or store raw). Returns 0.
macro_rules! row_split {
    ($name:literal, $first:expr, $body:expr, $out:expr) => {
        core::arch::global_asm!(
            ".syntax unified",
            ".cpu cortex-m55",
            ".thumb",
            concat!(".section .text.", $name, ",\"ax\",%progbits"),
            concat!(".global ", $name),
            concat!(".type ", $name, ",%function"),
            ".thumb_func",
            concat!($name, ":"),
            // r0 = &mut RowArgs. Registers: r1 weights, r3 inputs (split), r5 loop count, r7
            // &RowArgs, r9 biases, r11 requants; sums Σw·l in r0, r2, r4, r6 and Σw·h in r8,
            // r10, r12, lr (channels 0-3)
            "push {{r4-r11, lr}}",
            "vpush {{d8-d15}}",
            "mov r7, r0",
            "ldrd r0, r2, [r7, #56]",
            "ldr r1, [r7, #40]",
            split_row!(),
            "cmp r3, #0",
            "bne 9f",
            "ldr r9, [r7, #48]",
            "ldr r11, [r7, #52]",
            "ldr r1, [r7, #64]",
            "5:",
            "ldm r9!, {{r0, r2, r4, r6}}",
            "ldrd r3, r5, [r7, #40]",
            $first,
            "cbnz r5, 7f",
            "8:",
            // the block's sums 256·Σw·h + Σw·l into q0
            "stm r7, {{r0, r2, r4, r6, r8, r10, r12, lr}}",
            "vldmia r7, {{d0-d3}}",
            "vshl.i32 q1, q1, #8",
            "vadd.i32 q0, q0, q1",
            "ldrd r0, r2, [r7, #32]",
            $out,
            "subs r2, r2, #1",
            "strd r0, r2, [r7, #32]",
            "bne 5b",
            "movs r3, #0",
            "9:",
            "mov r0, r3",
            "vpop {{d8-d15}}",
            "pop {{r4-r11, pc}}",
            "7:",
            $body,
            "subs r5, r5, #1",
            "bne 7b",
            "b 8b",
            concat!(".size ", $name, ", . - ", $name),
        );
    };
}

/// `$out` of the row routines: requantize `q0` and store it with `$store` at `r0` (`RowArgs::y`).
macro_rules! out_requant {
    ($store:expr) => {
        concat!(requant_q0!(), $store)
    };
}

/// `$out` of the row routines for raw sums (layers whose shifts are not all fused).
macro_rules! out_raw {
    () => {
        store_i32!()
    };
}

// k % 128 == 0: the first four pairs straight, then four per loop
row_split!("pf_mve_row4_i8", concat!(pair_first!(), pair!(), pair!(), pair!()), concat!(pair!(), pair!(), pair!(), pair!()), out_requant!(store_i8!()));
row_split!("pf_mve_row4_i16", concat!(pair_first!(), pair!(), pair!(), pair!()), concat!(pair!(), pair!(), pair!(), pair!()), out_requant!(store_i16!()));
row_split!("pf_mve_row4_i32", concat!(pair_first!(), pair!(), pair!(), pair!()), concat!(pair!(), pair!(), pair!(), pair!()), out_requant!(store_i32!()));
row_split!("pf_mve_row4_acc", concat!(pair_first!(), pair!(), pair!(), pair!()), concat!(pair!(), pair!(), pair!(), pair!()), out_raw!());
// k % 32 == 0: one pair per loop
row_split!("pf_mve_row1_i8", pair_first!(), pair!(), out_requant!(store_i8!()));
row_split!("pf_mve_row1_i16", pair_first!(), pair!(), out_requant!(store_i16!()));
row_split!("pf_mve_row1_i32", pair_first!(), pair!(), out_requant!(store_i32!()));
row_split!("pf_mve_row1_acc", pair_first!(), pair!(), out_raw!());

/// One row, int16 inputs as they are (`pf_mve_row16_*`): per 16 inputs, the input pairs apart
/// (`q4` = j0, j1, j4, j5, …; `q5` = j2, j3, j6, j7, …), 4 `VLD4`, and per channel the even and
/// odd weight bytes widened (`VMOVLB`/`VMOVLT`) into two `VMLADAVA.S16`; sums in r0, r2, r4,
/// r6, the loop on `LE`.
macro_rules! row16 {
    ($name:literal, $out:expr) => {
        core::arch::global_asm!(
            ".syntax unified",
            ".cpu cortex-m55",
            ".thumb",
            concat!(".section .text.", $name, ",\"ax\",%progbits"),
            concat!(".global ", $name),
            concat!(".type ", $name, ",%function"),
            ".thumb_func",
            concat!($name, ":"),
            // r0 = &mut RowArgs (`s` = the int16 row, `iters` = chunks of 16)
            "push {{r4-r11, lr}}",
            "vpush {{d8-d15}}",
            "mov r7, r0",
            "ldr r9, [r7, #48]",
            "ldr r11, [r7, #52]",
            "ldr r1, [r7, #64]",
            "5:",
            "ldm r9!, {{r0, r2, r4, r6}}",
            "ldrd r3, r5, [r7, #40]",
            "dls lr, r5",
            "1:",
            "vld20.32 {{q4, q5}}, [r3]",
            "vld21.32 {{q4, q5}}, [r3]!",
            "vld40.32 {{q0, q1, q2, q3}}, [r1]",
            "vld41.32 {{q0, q1, q2, q3}}, [r1]",
            "vld42.32 {{q0, q1, q2, q3}}, [r1]",
            "vld43.32 {{q0, q1, q2, q3}}, [r1]!",
            "vmovlb.s8 q6, q0",
            "vmovlt.s8 q7, q0",
            "vmladava.s16 r0, q6, q4",
            "vmladava.s16 r0, q7, q5",
            "vmovlb.s8 q6, q1",
            "vmovlt.s8 q7, q1",
            "vmladava.s16 r2, q6, q4",
            "vmladava.s16 r2, q7, q5",
            "vmovlb.s8 q6, q2",
            "vmovlt.s8 q7, q2",
            "vmladava.s16 r4, q6, q4",
            "vmladava.s16 r4, q7, q5",
            "vmovlb.s8 q6, q3",
            "vmovlt.s8 q7, q3",
            "vmladava.s16 r6, q6, q4",
            "vmladava.s16 r6, q7, q5",
            "le lr, 1b",
            "stm r7, {{r0, r2, r4, r6}}",
            "vldmia r7, {{d0-d1}}",
            "ldrd r0, r2, [r7, #32]",
            $out,
            "subs r2, r2, #1",
            "strd r0, r2, [r7, #32]",
            "bne 5b",
            "vpop {{d8-d15}}",
            "pop {{r4-r11, pc}}",
            concat!(".size ", $name, ", . - ", $name),
        );
    };
}

row16!("pf_mve_row16_i8", out_requant!(store_i8!()));
row16!("pf_mve_row16_i16", out_requant!(store_i16!()));
row16!("pf_mve_row16_i32", out_requant!(store_i32!()));
row16!("pf_mve_row16_acc", out_raw!());

/// Sixteen inputs of a pair of rows against the block's widened weights: `q4`/`q5` = row r's
/// even/odd inputs, `q6`/`q7` = row r+1's (one `VLDM`), the channels' even and odd weights
/// four Q registers each; sums row r in r0, r2, r4, r6, row r+1 in r8, r10, r12, lr.
macro_rules! chunk16 {
    () => {
        "vldmia r3!, {{d8-d15}}
    vldmia r1!, {{d0-d7}}
    vmladava.s16 r0, q0, q4
    vmladava.s16 r2, q1, q4
    vmladava.s16 r4, q2, q4
    vmladava.s16 r6, q3, q4
    vmladava.s16 r8, q0, q6
    vmladava.s16 r10, q1, q6
    vmladava.s16 r12, q2, q6
    vmladava.s16 lr, q3, q6
    vldmia r1!, {{d0-d7}}
    vmladava.s16 r0, q0, q5
    vmladava.s16 r2, q1, q5
    vmladava.s16 r4, q2, q5
    vmladava.s16 r6, q3, q5
    vmladava.s16 r8, q0, q7
    vmladava.s16 r10, q1, q7
    vmladava.s16 r12, q2, q7
    vmladava.s16 lr, q3, q7
"
    };
}

/// Saturate `q0` and `q1` (rows r, r+1) to `i8` and store them at `r4` and `r6` (the narrowing
/// stores take low registers only).
macro_rules! store2_i8 {
    () => {
        "vqmovnb.s32 q0, q0\n vqmovnb.s16 q0, q0\n vqmovnb.s32 q1, q1\n vqmovnb.s16 q1, q1\n vstrb.32 q0, [r4]\n vstrb.32 q1, [r6]\n"
    };
}

/// Saturate `q0` and `q1` to `i16` and store them at `r4` and `r6`.
macro_rules! store2_i16 {
    () => {
        "vqmovnb.s32 q0, q0\n vqmovnb.s32 q1, q1\n vstrh.32 q0, [r4]\n vstrh.32 q1, [r6]\n"
    };
}

/// Store `q0` and `q1` at `r4` and `r6`.
macro_rules! store2_i32 {
    () => {
        "vstrw.32 q0, [r4]\n vstrw.32 q1, [r6]\n"
    };
}

/// One block of 4 channels over every pair of rows (`pf_mve_pairs_*`): widen the block's
/// weights, split its requants, then per pair the biases into the sums, the chunks (`$body` per
/// loop, `iters` times), and requantize and store both rows.
macro_rules! pairs {
    ($name:literal, $body:expr, $store:expr) => {
        core::arch::global_asm!(
            ".syntax unified",
            ".cpu cortex-m55",
            ".thumb",
            concat!(".section .text.", $name, ",\"ax\",%progbits"),
            concat!(".global ", $name),
            concat!(".type ", $name, ",%function"),
            ".thumb_func",
            concat!($name, ":"),
            // r0 = &mut PairsArgs
            "push {{r4-r11, lr}}",
            "vpush {{d8-d15}}",
            "mov r7, r0",
            // widen: per 16 inputs the 4 channels' even bytes, then their odd bytes, as int16
            "ldr r0, [r7, #92]",
            "ldr r1, [r7, #68]",
            "ldr r2, [r7, #96]",
            "dls lr, r2",
            "2:",
            "vld40.32 {{q0, q1, q2, q3}}, [r0]",
            "vld41.32 {{q0, q1, q2, q3}}, [r0]",
            "vld42.32 {{q0, q1, q2, q3}}, [r0]",
            "vld43.32 {{q0, q1, q2, q3}}, [r0]!",
            "vmovlb.s8 q4, q0",
            "vmovlb.s8 q5, q1",
            "vmovlb.s8 q6, q2",
            "vmovlb.s8 q7, q3",
            "vstmia r1!, {{d8-d15}}",
            "vmovlt.s8 q4, q0",
            "vmovlt.s8 q5, q1",
            "vmovlt.s8 q6, q2",
            "vmovlt.s8 q7, q3",
            "vstmia r1!, {{d8-d15}}",
            "le lr, 2b",
            // the block's multipliers and 32 - shift, beside the sums' spill area
            "ldr r0, [r7, #100]",
            "vld20.32 {{q0, q1}}, [r0]",
            "vld21.32 {{q0, q1}}, [r0]",
            "vmov.i32 q2, #32",
            "vsub.i32 q1, q2, q1",
            "add r0, r7, #32",
            "vstmia r0, {{d0-d3}}",
            "ldr r3, [r7, #64]",
            "ldr r9, [r7, #88]",
            "ldr r11, [r7, #80]",
            "5:",
            "ldm r9, {{r0, r2, r4, r6}}",
            "ldm r9, {{r8, r10, r12, lr}}",
            "ldrd r1, r5, [r7, #68]",
            "1:",
            $body,
            "subs r5, r5, #1",
            "bne 1b",
            "stm r7, {{r0, r2, r4, r6, r8, r10, r12, lr}}",
            // q0, q1 = the two rows' sums, q2 = multipliers, q3 = 32 - shifts
            "vldmia r7, {{d0-d7}}",
            "vmulh.s32 q0, q0, q2",
            "vmulh.s32 q1, q1, q2",
            "vrshl.s32 q0, q0, q3",
            "vrshl.s32 q1, q1, q3",
            "ldr r0, [r7, #84]",
            "mov r4, r11",
            "add r6, r11, r0",
            $store,
            "add r11, r6, r0",
            "ldr r0, [r7, #76]",
            "subs r0, r0, #1",
            "str r0, [r7, #76]",
            "bne 5b",
            "vpop {{d8-d15}}",
            "pop {{r4-r11, pc}}",
            concat!(".size ", $name, ", . - ", $name),
        );
    };
}

// k % 64 == 0: four chunks per loop; k % 32 == 0: two
pairs!("pf_mve_pairs4_i8", concat!(chunk16!(), chunk16!(), chunk16!(), chunk16!()), store2_i8!());
pairs!("pf_mve_pairs4_i16", concat!(chunk16!(), chunk16!(), chunk16!(), chunk16!()), store2_i16!());
pairs!("pf_mve_pairs4_i32", concat!(chunk16!(), chunk16!(), chunk16!(), chunk16!()), store2_i32!());
pairs!("pf_mve_pairs2_i8", concat!(chunk16!(), chunk16!()), store2_i8!());
pairs!("pf_mve_pairs2_i16", concat!(chunk16!(), chunk16!()), store2_i16!());
pairs!("pf_mve_pairs2_i32", concat!(chunk16!(), chunk16!()), store2_i32!());

core::arch::global_asm!(
    ".syntax unified",
    ".cpu cortex-m55",
    ".thumb",
    ".section .text.pf_mve_xpairs,\"ax\",%progbits",
    ".global pf_mve_xpairs",
    ".type pf_mve_xpairs,%function",
    ".thumb_func",
    "pf_mve_xpairs:",
    // r0 = row 2p of x (word-aligned), r1 = out, r2 = chunks of 16 (≥ 1), r3 = row stride in
    // bytes. Per chunk: row 2p's inputs (j0, j1, j4, j5, …) and (j2, j3, j6, j7, …), then row
    // 2p+1's, 64 bytes.
    "push {{r7, lr}}",
    "add r3, r0, r3",
    "dls lr, r2",
    "1:",
    "vld20.32 {{q0, q1}}, [r0]",
    "vld21.32 {{q0, q1}}, [r0]!",
    "vld20.32 {{q2, q3}}, [r3]",
    "vld21.32 {{q2, q3}}, [r3]!",
    "vstmia r1!, {{d0-d7}}",
    "le lr, 1b",
    "pop {{r7, pc}}",
    ".size pf_mve_xpairs, . - pf_mve_xpairs",
);

/// What the row routines read and advance. The first 32 bytes are the routines' spill area
/// for the block's sums (`STM`, then `VLDM` into Q registers).
#[repr(C, align(8))]
struct RowArgs {
    acc: MaybeUninit<[i32; 8]>,
    y: *mut u8,
    blocks: usize,
    /// The split row's scratch (`pf_mve_row*`, `2·k` bytes) or the int16 row (`pf_mve_row16_*`).
    s: *const u8,
    /// Loop count: `k / 128 - 1` (`row4`), `k / 32 - 1` (`row1`), `k / 16` (`row16`).
    iters: usize,
    bias: *const i32,
    rq: *const Requant,
    /// The row and its chunks of 16 inputs, for the split.
    x: *const i16,
    chunks: usize,
    w: *const i8,
}

// the routines read these by offset (`LDRD` of y and blocks, of s and iters, of x and chunks)
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(RowArgs, y) == 32 && offset_of!(RowArgs, blocks) == 36 && offset_of!(RowArgs, s) == 40);
    assert!(offset_of!(RowArgs, iters) == 44 && offset_of!(RowArgs, bias) == 48 && offset_of!(RowArgs, rq) == 52);
    assert!(offset_of!(RowArgs, x) == 56 && offset_of!(RowArgs, chunks) == 60 && offset_of!(RowArgs, w) == 64);
    assert!(size_of::<RowArgs>() == 72);
};

/// What the many-rows routine reads, for one block of 4 channels. The first 64 bytes are its
/// spill area: the 8 sums, then the block's 4 multipliers and 4 `32 - shift`, one `VLDM`.
#[repr(C, align(8))]
struct PairsArgs {
    acc: [i32; 8],
    rq_split: [i32; 8],
    /// The rows, rearranged in pairs (`pf_mve_xpairs`).
    xp: *const i16,
    /// The block's widened weights (`8·k` bytes, written by the routine), and the chunk loop
    /// count (`k / 64` or `k / 32`).
    w16: *mut i16,
    iters: usize,
    pairs: usize,
    /// Row 0's outputs of this block, and the bytes between two rows of outputs.
    y: *mut u8,
    y_stride: usize,
    bias: *const i32,
    /// The block's Block4 weights and their chunks of 16 inputs (`k / 16`).
    w: *const i8,
    chunks: usize,
    rq: *const Requant,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(PairsArgs, rq_split) == 32 && offset_of!(PairsArgs, xp) == 64 && offset_of!(PairsArgs, w16) == 68);
    assert!(offset_of!(PairsArgs, iters) == 72 && offset_of!(PairsArgs, pairs) == 76 && offset_of!(PairsArgs, y) == 80);
    assert!(offset_of!(PairsArgs, y_stride) == 84 && offset_of!(PairsArgs, bias) == 88 && offset_of!(PairsArgs, w) == 92);
    assert!(offset_of!(PairsArgs, chunks) == 96 && offset_of!(PairsArgs, rq) == 100 && size_of::<PairsArgs>() == 104);
};

extern "C" {
    fn pf_mve_row4_i8(args: *mut RowArgs) -> u32;
    fn pf_mve_row4_i16(args: *mut RowArgs) -> u32;
    fn pf_mve_row4_i32(args: *mut RowArgs) -> u32;
    fn pf_mve_row4_acc(args: *mut RowArgs) -> u32;
    fn pf_mve_row1_i8(args: *mut RowArgs) -> u32;
    fn pf_mve_row1_i16(args: *mut RowArgs) -> u32;
    fn pf_mve_row1_i32(args: *mut RowArgs) -> u32;
    fn pf_mve_row1_acc(args: *mut RowArgs) -> u32;
    fn pf_mve_row16_i8(args: *mut RowArgs);
    fn pf_mve_row16_i16(args: *mut RowArgs);
    fn pf_mve_row16_i32(args: *mut RowArgs);
    fn pf_mve_row16_acc(args: *mut RowArgs);
    fn pf_mve_xpairs(x: *const i16, out: *mut i16, chunks: usize, stride: usize);
    fn pf_mve_pairs4_i8(args: *mut PairsArgs);
    fn pf_mve_pairs4_i16(args: *mut PairsArgs);
    fn pf_mve_pairs4_i32(args: *mut PairsArgs);
    fn pf_mve_pairs2_i8(args: *mut PairsArgs);
    fn pf_mve_pairs2_i16(args: *mut PairsArgs);
    fn pf_mve_pairs2_i32(args: *mut PairsArgs);
}

/// Longest row the split path takes (its scratch: `2·k` bytes on the stack); longer rows take
/// the int16 row path.
pub const ROW_MAX_K: usize = 1024;

/// Bytes of rearranged rows [`rows`] keeps at once (rows of one pass: `4·k` bytes per pair).
const PAIRS_BYTES: usize = 4096;

/// Longest row [`rows`] takes (the widened block: `8·k` bytes); longer rows go one by one.
pub const ROWS_MAX_K: usize = 256;

/// Fewest rows [`rows`] takes: below, widening a block costs more than the split rows save.
const ROWS_MIN: usize = 4;

/// Stack scratch: the larger of the split row (`2·ROW_MAX_K` bytes) and the many-rows buffers
/// (rows and widened block), with the argument blocks; [`row`] and [`rows`] are not inlined,
/// so only one of them is on the stack at a time.
pub const STACK_BYTES: usize = max(max(2 * ROW_MAX_K + core::mem::size_of::<RowArgs>(), PAIRS_BYTES + 8 * ROWS_MAX_K + core::mem::size_of::<PairsArgs>()), dsp::STACK_BYTES);

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// `T` on a 16-byte boundary (`VLDM`/`VSTM` want words; 16 keeps each chunk in one line).
#[repr(C, align(16))]
struct Align16<T>(T);

/// Whether the layer's shape and storage take the assembly for `O` outputs: every shift fused
/// (or `i32` outputs, stored raw and requantized after), `k % 32 == 0`, `n % 4 == 0`, exact
/// lengths for the weights, biases and requants, word-aligned weights, biases, requants and
/// inputs.
#[inline(always)]
fn takes<O: Activation>(l: &Linear<'_>, x: &[i16]) -> bool {
    let (k, n) = (l.k, l.n());
    (l.fused() || O::KIND == OutKind::I32)
        && k % 32 == 0
        && k > 0
        && n % 4 == 0
        && n > 0
        && l.w.len() == n * k
        && l.rq.len() == n
        && (l.w.as_ptr() as usize | x.as_ptr() as usize | l.bias.as_ptr() as usize | l.rq.as_ptr() as usize) % 4 == 0
}

/// One row `x` (`k` inputs) through a layer that [`takes`], into `y` (`n` outputs): split and
/// `pf_mve_row*`, or `pf_mve_row16_*` when the split does not take the row. Not inlined: its
/// scratch lives only while it runs.
#[inline(never)]
fn row<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    let raw = !l.fused();
    let mut s = MaybeUninit::<Align16<[u8; 2 * ROW_MAX_K]>>::uninit();
    let mut args = RowArgs {
        acc: MaybeUninit::uninit(),
        y: y.as_mut_ptr().cast(),
        blocks: n / 4,
        s: s.as_mut_ptr().cast(),
        iters: if k % 128 == 0 { k / 128 - 1 } else { k / 32 - 1 },
        bias: l.bias.as_ptr(),
        rq: l.rq.as_ptr(),
        x: x.as_ptr(),
        chunks: k / 16,
        w: l.w.as_ptr(),
    };
    let a = &mut args as *mut RowArgs;
    // SAFETY: (`takes`, and the caller's exact lengths) the routines read the `k` inputs
    // (word-aligned, `VLD2`), write `2·k ≤ 2·ROW_MAX_K` bytes of `s` and read them back, read
    // `n·k` weight bytes (word-aligned, `VLD4`), `n` biases and requants (unless raw), and write
    // `n` outputs of `O`'s size at `y` (`VSTRW` of the i32 variants: `y` is `[i32]`,
    // word-aligned), or nothing when they return 1; the requantizing routines run only when
    // every shift is fused. Callee-saved registers are restored.
    let big = k > ROW_MAX_K
        || unsafe {
            match (k % 128 == 0, raw, O::KIND) {
                (true, true, _) => pf_mve_row4_acc(a),
                (true, false, OutKind::I8) => pf_mve_row4_i8(a),
                (true, false, OutKind::I16) => pf_mve_row4_i16(a),
                (true, false, OutKind::I32) => pf_mve_row4_i32(a),
                (false, true, _) => pf_mve_row1_acc(a),
                (false, false, OutKind::I8) => pf_mve_row1_i8(a),
                (false, false, OutKind::I16) => pf_mve_row1_i16(a),
                (false, false, OutKind::I32) => pf_mve_row1_i32(a),
            }
        } != 0;
    if big {
        let mut args = RowArgs { s: x.as_ptr().cast(), iters: k / 16, ..args };
        let a = &mut args as *mut RowArgs;
        // SAFETY: as above, reading the `k` inputs in place (`VLD2`) instead of a split.
        unsafe {
            match (raw, O::KIND) {
                (true, _) => pf_mve_row16_acc(a),
                (false, OutKind::I8) => pf_mve_row16_i8(a),
                (false, OutKind::I16) => pf_mve_row16_i16(a),
                (false, OutKind::I32) => pf_mve_row16_i32(a),
            }
        }
    }
    if raw {
        requant_raw(l.rq, y);
    }
}

/// Requantize raw sums in place (layers whose shifts are not all fused; out of line).
#[cold]
#[inline(never)]
fn requant_raw<O: Activation>(rq: &[Requant], y: &mut [O]) {
    for (yo, rq) in y.iter_mut().zip(rq) {
        *yo = O::requant(*rq, yo.widen());
    }
}

/// Many rows (at least [`ROWS_MIN`]) through a fused layer that [`takes`] with
/// `k ≤ ROWS_MAX_K`: in passes of as many rows as [`PAIRS_BYTES`] hold (an even number), per
/// pass the rows rearranged in pairs, then per block of 4 channels `pf_mve_pairs_*`. Returns
/// the rows done: all but an odd last one. Not inlined: its scratch lives only while it runs.
#[inline(never)]
fn rows<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) -> usize {
    let (k, n) = (l.k, l.n());
    let rows = x.len() / k;
    let chunks = k / 16;
    let per_pass = (PAIRS_BYTES / (4 * k)) * 2;
    let mut xp = MaybeUninit::<Align16<[i16; PAIRS_BYTES / 2]>>::uninit();
    let mut w16 = MaybeUninit::<Align16<[i16; 4 * ROWS_MAX_K]>>::uninit();
    let xp = xp.as_mut_ptr().cast::<i16>();
    let mut r0 = 0;
    while r0 + 2 <= rows {
        let pass = (rows - r0).min(per_pass) & !1;
        for p in 0..pass / 2 {
            // SAFETY: reads two rows of `k` inputs from row `r0 + 2p` (inside `x`: r0 + pass ≤
            // rows; word-aligned rows: `takes` and k even), writes `4·k` bytes at `xp + p·2k`
            // (pass·2k ≤ PAIRS_BYTES), callee-saved registers restored.
            unsafe { pf_mve_xpairs(x.as_ptr().add((r0 + 2 * p) * k), xp.add(p * 2 * k), chunks, 2 * k) };
        }
        let mut args = PairsArgs {
            acc: [0; 8],
            rq_split: [0; 8],
            xp,
            w16: w16.as_mut_ptr().cast(),
            iters: if k % 64 == 0 { k / 64 } else { k / 32 },
            pairs: pass / 2,
            y: core::ptr::null_mut(),
            y_stride: n * core::mem::size_of::<O>(),
            bias: core::ptr::null(),
            w: core::ptr::null(),
            chunks,
            rq: core::ptr::null(),
        };
        let blocks = l.w.chunks_exact(4 * k).zip(l.bias.chunks_exact(4)).zip(l.rq.chunks_exact(4));
        for (b, ((w4, b4), rq4)) in blocks.enumerate() {
            args.pairs = pass / 2;
            // SAFETY: in bounds (b < n/4, r0·n + 4b < y.len()); the routine walks from here
            args.y = unsafe { y.as_mut_ptr().add(r0 * n + 4 * b).cast() };
            args.bias = b4.as_ptr();
            args.rq = rq4.as_ptr();
            args.w = w4.as_ptr();
            let a = &mut args as *mut PairsArgs;
            // SAFETY: the routine reads the block's `4·k` weight bytes (word-aligned), writes
            // `8·k ≤ 8·ROWS_MAX_K` bytes of `w16`, reads 4 requants (fused: `rows` runs only
            // then) and 4 biases, `pass·2k` bytes of `xp` (written above), and writes 4
            // outputs of each of the pass's rows at `y + r·n + 4b` (r < rows);
            // callee-saved registers are restored.
            unsafe {
                match (k % 64 == 0, O::KIND) {
                    (true, OutKind::I8) => pf_mve_pairs4_i8(a),
                    (true, OutKind::I16) => pf_mve_pairs4_i16(a),
                    (true, OutKind::I32) => pf_mve_pairs4_i32(a),
                    (false, OutKind::I8) => pf_mve_pairs2_i8(a),
                    (false, OutKind::I16) => pf_mve_pairs2_i16(a),
                    (false, OutKind::I32) => pf_mve_pairs2_i32(a),
                }
            }
        }
        r0 += pass;
    }
    r0
}

/// A Block4 layer on a Helium core (`k % 4 == 0`, `n % 4 == 0`): many rows through [`rows`],
/// others row by row through [`row`], layers the assembly does not take (`k` not a multiple
/// of 32, say) through the DSP kernel.
#[inline]
pub fn block4<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    // int4 layers: the DSP file's routines
    if l.int4 || !takes::<O>(l, x) {
        return dsp::block4(l, x, y);
    }
    if x.len() == k && y.len() == n {
        return row(l, x, y);
    }
    let count = x.len() / k;
    if !(count > 0 && x.len() == count * k && y.len() == count * n) {
        return portable::block4_rows(l, x, y, |_, _, _| 0, portable::dot_block4);
    }
    let done = if count >= ROWS_MIN && l.fused() && k <= ROWS_MAX_K { rows(l, x, y) } else { 0 };
    let (Some(x), Some(y)) = (x.get(done * k..), y.get_mut(done * n..)) else {
        return;
    };
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
        row(l, xr, yr);
    }
}
