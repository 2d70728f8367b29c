//! Cortex-M4/M7/M33 DSP fast paths of the Block4 linear kernel (`cfg(picoformer_dsp)`).
//!
//! One input row: per group of 4 channels × 4 inputs, 18 instructions for 16 MACs: one `LDRD`
//! of two int16 input pairs, one `LDM` of the 4 channels' weight words, and per channel
//! `SXTB16` + `SMLAD` on the pair `(j0, j1)` and `SXTB16 ROR #8` + `SMLAD` on `(j2, j3)` (see
//! [`super::layout`]). [`row`] runs a whole row in assembly (`pf_row_block4_*`): bias preloaded,
//! groups 8 deep, requantization fused as `SMMLA` + `ASR` + `SSAT`. [`dot_block4`] is the same
//! loop for one block with the accumulators in memory, for layers `row` does not take.
//!
//! Many rows (the encoder): the weights of a block are widened to int16 once (13 instructions
//! per 16 weights), then each row takes `LDRD` + 2 × (`LDM` of 4 words + 4 `SMLAD`), 11
//! instructions per 16 MACs: [`rows`] (`pf_rows_expanded_*`, requantization fused, `k ≤ 256`),
//! or [`expand`] + [`dot_expanded`] in 128-input chunks otherwise.
//!
//! [`block4`] picks among them: many rows take [`rows`] (or the chunked [`batched`] loop), one
//! row [`row`], and anything else the portable loop with [`dot_block4`] inside.
//!
//! int4 layers (`Linear::int4`) take the same loops with their own inner routines: one row
//! `pf_row_block4_s4_*` (per group `LDRD` + `LDM` of 2 words, `EOR 0x88888888` per word, and
//! per channel 2 × (`AND 0x000F000F` of the word shifted + `SMLAD`): 20 instructions for 16
//! MACs, the accumulators started at `bias − 8·Σx` to undo the `+8` of the `EOR`), many rows
//! `pf_expand_block4_s4` (nibbles to int16: `AND` + `SSUB16` per pair) and then the int8
//! expanded routines unchanged.
//!
//! `SMLAD` wraps like the reference's `wrapping_add`, so every sum is bit-exact with
//! [`super::reference::linear_ref`]; the firmware checks every path against it on target.

core::arch::global_asm!(
    ".syntax unified",
    ".arch armv7e-m",
    ".section .text.pf_dot_block4,\"ax\",%progbits",
    ".global pf_dot_block4",
    ".type pf_dot_block4,%function",
    ".thumb_func",
    "pf_dot_block4:",
    // r0 = w, r1 = x, r2 = groups, r3 = acc; r4-r7 accumulators, r8/r9 inputs, r10-r12/lr weights
    "    push {{r3-r11, lr}}",
    "    ldm r3, {{r4-r7}}",
    "    tst r2, #3",
    "    beq 3f",
    "1:",
    GROUP!(),
    "    subs r2, r2, #1",
    "    tst r2, #3",
    "    bne 1b",
    "3:",
    "    cmp r2, #0",
    "    beq 9f",
    "2:",
    GROUP!(),
    GROUP!(),
    GROUP!(),
    GROUP!(),
    "    subs r2, r2, #4",
    "    bne 2b",
    "9:",
    "    ldr r3, [sp]",
    "    stm r3, {{r4-r7}}",
    "    pop {{r3-r11, pc}}",
    ".size pf_dot_block4, . - pf_dot_block4",
);

core::arch::global_asm!(
    ".syntax unified",
    ".arch armv7e-m",
    ".section .text.pf_expand_block4,\"ax\",%progbits",
    ".global pf_expand_block4",
    ".type pf_expand_block4,%function",
    ".thumb_func",
    "pf_expand_block4:",
    // r0 = Block4 weights, r1 = int16 out (4 channels × 4 inputs per group), r2 = groups
    "    push {{r4-r10, lr}}",
    "1:",
    "    ldm r0!, {{r3-r6}}",
    "    sxtb16 r7, r3",
    "    sxtb16 r8, r3, ror #8",
    "    sxtb16 r9, r4",
    "    sxtb16 r10, r4, ror #8",
    "    stm r1!, {{r7-r10}}",
    "    sxtb16 r7, r5",
    "    sxtb16 r8, r5, ror #8",
    "    sxtb16 r9, r6",
    "    sxtb16 r10, r6, ror #8",
    "    stm r1!, {{r7-r10}}",
    "    subs r2, r2, #1",
    "    bne 1b",
    "    pop {{r4-r10, pc}}",
    ".size pf_expand_block4, . - pf_expand_block4",
);

core::arch::global_asm!(
    ".syntax unified",
    ".arch armv7e-m",
    ".section .text.pf_expand_block4_s4,\"ax\",%progbits",
    ".global pf_expand_block4_s4",
    ".type pf_expand_block4_s4,%function",
    ".thumb_func",
    "pf_expand_block4_s4:",
    // r0 = int4 Block4 weights (8 bytes per group), r1 = int16 out (as pf_expand_block4),
    // r2 = groups; r11 = 0x00080008, r12 = 0x000F000F
    "    push {{r4-r11, lr}}",
    "    mov r11, #0x00080008",
    "    mov r12, #0x000f000f",
    "1:",
    "    ldm r0!, {{r3, r4}}",
    "    eor r3, r3, #0x88888888",
    "    eor r4, r4, #0x88888888",
    "    and r5, r12, r3",
    "    and r6, r12, r3, lsr #4",
    "    and r7, r12, r3, lsr #8",
    "    and r8, r12, r3, lsr #12",
    "    ssub16 r5, r5, r11",
    "    ssub16 r6, r6, r11",
    "    ssub16 r7, r7, r11",
    "    ssub16 r8, r8, r11",
    "    stm r1!, {{r5-r8}}",
    "    and r5, r12, r4",
    "    and r6, r12, r4, lsr #4",
    "    and r7, r12, r4, lsr #8",
    "    and r8, r12, r4, lsr #12",
    "    ssub16 r5, r5, r11",
    "    ssub16 r6, r6, r11",
    "    ssub16 r7, r7, r11",
    "    ssub16 r8, r8, r11",
    "    stm r1!, {{r5-r8}}",
    "    subs r2, r2, #1",
    "    bne 1b",
    "    pop {{r4-r11, pc}}",
    ".size pf_expand_block4_s4, . - pf_expand_block4_s4",
);

core::arch::global_asm!(
    ".syntax unified",
    ".arch armv7e-m",
    ".section .text.pf_dot_expanded,\"ax\",%progbits",
    ".global pf_dot_expanded",
    ".type pf_dot_expanded,%function",
    ".thumb_func",
    "pf_dot_expanded:",
    // r0 = expanded weights, r1 = x, r2 = groups (a multiple of 4), r3 = acc
    "    push {{r4-r11, lr}}",
    "    ldm r3, {{r4-r7}}",
    "1:",
    EXPANDED!(),
    EXPANDED!(),
    EXPANDED!(),
    EXPANDED!(),
    "    subs r2, r2, #4",
    "    bne 1b",
    "    stm r3, {{r4-r7}}",
    "    pop {{r4-r11, pc}}",
    ".size pf_dot_expanded, . - pf_dot_expanded",
);

/// Requantize accumulator `$acc` with the next requant at `r12` (`r11` = 1), saturate to
/// `$sat` bits if given, and store it at `lr` with `$st`, advancing `$size` bytes. Exact for
/// shifts in 33..=62: `((acc·mult >> 32) + 2^(s-33)) >> (s-32)` (`Requant::apply32`).
macro_rules! requant {
    ($acc:literal, $st:literal, $size:literal $(, $sat:literal)?) => {
        concat!(
            "ldrd r8, r9, [r12], #8\n", "sub r9, r9, #33\n", "lsl r10, r11, r9\n",
            "smmla ", $acc, ", ", $acc, ", r8, r10\n", "add r9, r9, #1\n", "asr ", $acc, ", ", $acc, ", r9\n",
            $( "ssat ", $acc, ", #", $sat, ", ", $acc, "\n", )?
            $st, " ", $acc, ", [lr], #", $size, "\n",
        )
    };
}

/// The four accumulators `r4`-`r7` of a block, requantized and stored.
macro_rules! requant4 {
    ($st:literal, $size:literal $(, $sat:literal)?) => {
        concat!(
            "mov r11, #1\n",
            requant!("r4", $st, $size $(, $sat)?), requant!("r5", $st, $size $(, $sat)?),
            requant!("r6", $st, $size $(, $sat)?), requant!("r7", $st, $size $(, $sat)?),
        )
    };
}

/// One input row through a whole layer (`pf_row_block4_*`): per block of 4 channels, bias into
/// the accumulators, the groups 8 deep, then `$store` the four accumulators `r4`-`r7` at `lr`
/// (requantized, or raw), with `r12` = the block's requants.
macro_rules! row_block4 {
    ($name:literal, $store:expr) => {
        core::arch::global_asm!(
            ".syntax unified",
            ".arch armv7e-m",
            concat!(".section .text.", $name, ",\"ax\",%progbits"),
            concat!(".global ", $name),
            concat!(".type ", $name, ",%function"),
            ".thumb_func",
            concat!($name, ":"),
            // r0 = &mut RowArgs { x, groups, bias, rq, y, blocks }, r1 = weights
            "push {{r4-r11, lr}}",
            "sub sp, sp, #4",
            "str r0, [sp]",
            "mov r0, r1",
            "5:",
            "ldr r3, [sp]",
            "ldm r3, {{r1, r2, r12}}",
            "ldm r12!, {{r4-r7}}",
            "str r12, [r3, #8]",
            "1:",
            GROUP!(), GROUP!(), GROUP!(), GROUP!(), GROUP!(), GROUP!(), GROUP!(), GROUP!(),
            "subs r2, r2, #8",
            "bne 1b",
            "ldr r3, [sp]",
            "ldrd r12, lr, [r3, #12]",
            $store,
            "strd r12, lr, [r3, #12]",
            "ldr r9, [r3, #20]",
            "subs r9, r9, #1",
            "str r9, [r3, #20]",
            "bne 5b",
            "add sp, sp, #4",
            "pop {{r4-r11, pc}}",
            concat!(".size ", $name, ", . - ", $name),
        );
    };
}

/// Many input rows over one block of widened weights (`pf_rows_expanded_*`): per row, bias into
/// the accumulators, the groups 4 deep, requantize and store, then step `x` and `y` by their
/// strides.
macro_rules! rows_expanded {
    ($name:literal, $st:literal, $size:literal $(, $sat:literal)?) => {
        core::arch::global_asm!(
            ".syntax unified",
            ".arch armv7e-m",
            concat!(".section .text.", $name, ",\"ax\",%progbits"),
            concat!(".global ", $name),
            concat!(".type ", $name, ",%function"),
            ".thumb_func",
            concat!($name, ":"),
            // r0 = &mut RowsArgs { e, x, groups, bias, rq, y, rows, x_stride, y_stride }
            "push {{r4-r11, lr}}",
            "sub sp, sp, #4",
            "str r0, [sp]",
            "5:",
            "ldr r3, [sp]",
            "ldm r3, {{r0, r1, r2, r12}}",
            "ldm r12, {{r4-r7}}",
            "1:",
            EXPANDED!(), EXPANDED!(), EXPANDED!(), EXPANDED!(),
            "subs r2, r2, #4",
            "bne 1b",
            "ldr r3, [sp]",
            "ldrd r12, lr, [r3, #16]",
            requant4!($st, $size $(, $sat)?),
            "ldrd r8, r9, [r3, #4]",
            "ldr r10, [r3, #28]",
            "add r8, r8, r10",
            "str r8, [r3, #4]",
            "ldr r8, [r3, #20]",
            "ldr r10, [r3, #32]",
            "add r8, r8, r10",
            "str r8, [r3, #20]",
            "ldr r9, [r3, #24]",
            "subs r9, r9, #1",
            "str r9, [r3, #24]",
            "bne 5b",
            "add sp, sp, #4",
            "pop {{r4-r11, pc}}",
            concat!(".size ", $name, ", . - ", $name),
        );
    };
}

/// [`row_block4!`] for int4 weights: the accumulators start at `bias − corr` (`corr = 8·Σx`,
/// at `[args, #24]`), `r12` holds the nibble mask through the groups.
macro_rules! row_block4_s4 {
    ($name:literal, $store:expr) => {
        core::arch::global_asm!(
            ".syntax unified",
            ".arch armv7e-m",
            concat!(".section .text.", $name, ",\"ax\",%progbits"),
            concat!(".global ", $name),
            concat!(".type ", $name, ",%function"),
            ".thumb_func",
            concat!($name, ":"),
            // r0 = &mut RowArgs4 { x, groups, bias, rq, y, blocks, corr }, r1 = weights
            "push {{r4-r11, lr}}",
            "sub sp, sp, #4",
            "str r0, [sp]",
            "mov r0, r1",
            "5:",
            "ldr r3, [sp]",
            "ldm r3, {{r1, r2, r12}}",
            "ldm r12!, {{r4-r7}}",
            "str r12, [r3, #8]",
            "ldr r10, [r3, #24]",
            "sub r4, r4, r10",
            "sub r5, r5, r10",
            "sub r6, r6, r10",
            "sub r7, r7, r10",
            "mov r12, #0x000f000f",
            "1:",
            GROUP4!(), GROUP4!(), GROUP4!(), GROUP4!(), GROUP4!(), GROUP4!(), GROUP4!(), GROUP4!(),
            "subs r2, r2, #8",
            "bne 1b",
            "ldr r3, [sp]",
            "ldrd r12, lr, [r3, #12]",
            $store,
            "strd r12, lr, [r3, #12]",
            "ldr r9, [r3, #20]",
            "subs r9, r9, #1",
            "str r9, [r3, #20]",
            "bne 5b",
            "add sp, sp, #4",
            "pop {{r4-r11, pc}}",
            concat!(".size ", $name, ", . - ", $name),
        );
    };
}

row_block4!("pf_row_block4_i8", requant4!("strb", 1, 8));
row_block4!("pf_row_block4_i16", requant4!("strh", 2, 16));
row_block4!("pf_row_block4_i32", requant4!("str", 4));
// the raw i32 accumulators (bias included), for layers whose shifts are not all in 33..=62
row_block4!("pf_row_block4_acc", "stm lr!, {{r4-r7}}\nadd r12, r12, #32\n");
row_block4_s4!("pf_row_block4_s4_i8", requant4!("strb", 1, 8));
row_block4_s4!("pf_row_block4_s4_i16", requant4!("strh", 2, 16));
row_block4_s4!("pf_row_block4_s4_i32", requant4!("str", 4));
row_block4_s4!("pf_row_block4_s4_acc", "stm lr!, {{r4-r7}}\nadd r12, r12, #32\n");
rows_expanded!("pf_rows_expanded_i8", "strb", 1, 8);
rows_expanded!("pf_rows_expanded_i16", "strh", 2, 16);
rows_expanded!("pf_rows_expanded_i32", "str", 4);

/// One group of expanded weights: 4 channels × 4 inputs, 16 MACs in 11 instructions.
macro_rules! EXPANDED {
    () => {
        "    ldrd r8, r9, [r1], #8
    ldm r0!, {{r10, r11, r12, lr}}
    smlad r4, r10, r8, r4
    smlad r4, r11, r9, r4
    smlad r5, r12, r8, r5
    smlad r5, lr, r9, r5
    ldm r0!, {{r10, r11, r12, lr}}
    smlad r6, r10, r8, r6
    smlad r6, r11, r9, r6
    smlad r7, r12, r8, r7
    smlad r7, lr, r9, r7"
    };
}
use EXPANDED;

/// One group: 4 rows × 4 inputs.
macro_rules! GROUP {
    () => {
        "    ldrd r8, r9, [r1], #8
    ldm r0!, {{r10, r11, r12, lr}}
    sxtb16 r3, r10
    smlad r4, r3, r8, r4
    sxtb16 r10, r10, ror #8
    smlad r4, r10, r9, r4
    sxtb16 r3, r11
    smlad r5, r3, r8, r5
    sxtb16 r11, r11, ror #8
    smlad r5, r11, r9, r5
    sxtb16 r3, r12
    smlad r6, r3, r8, r6
    sxtb16 r12, r12, ror #8
    smlad r6, r12, r9, r6
    sxtb16 r3, lr
    smlad r7, r3, r8, r7
    sxtb16 lr, lr, ror #8
    smlad r7, lr, r9, r7"
    };
}
use GROUP;

/// One int4 group: 4 rows × 4 inputs from two words (rows 0-1, rows 2-3), `r12` = `0x000F000F`.
macro_rules! GROUP4 {
    () => {
        "    ldrd r8, r9, [r1], #8
    ldm r0!, {{r10, r11}}
    eor r10, r10, #0x88888888
    eor r11, r11, #0x88888888
    and r3, r12, r10
    smlad r4, r3, r8, r4
    and r3, r12, r10, lsr #4
    smlad r4, r3, r9, r4
    and r3, r12, r10, lsr #8
    smlad r5, r3, r8, r5
    and r3, r12, r10, lsr #12
    smlad r5, r3, r9, r5
    and r3, r12, r11
    smlad r6, r3, r8, r6
    and r3, r12, r11, lsr #4
    smlad r6, r3, r9, r6
    and r3, r12, r11, lsr #8
    smlad r7, r3, r8, r7
    and r3, r12, r11, lsr #12
    smlad r7, r3, r9, r7"
    };
}
use GROUP4;

/// What the whole-row routines read and advance (layout known to the assembly: one `LDM`
/// takes `x`, `groups` and `bias`, one `LDRD` `rq` and `y`).
#[repr(C)]
struct RowArgs {
    x: *const i16,
    groups: usize,
    bias: *const i32,
    rq: *const Requant,
    y: *mut u8,
    blocks: usize,
}

// the routines read these by offset: one word each, in order
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(RowArgs, groups) == 4 && offset_of!(RowArgs, bias) == 8 && offset_of!(RowArgs, rq) == 12);
    assert!(offset_of!(RowArgs, y) == 16 && offset_of!(RowArgs, blocks) == 20 && size_of::<RowArgs>() == 24);
};

/// [`RowArgs`] and the int4 routines' correction `8·Σx` (wrapping).
#[repr(C)]
struct RowArgs4 {
    args: RowArgs,
    corr: i32,
}

const _: () = assert!(core::mem::offset_of!(RowArgs4, corr) == 24);

use super::portable;
use super::weights::Linear;
use crate::kernels::layout::Layout;
use crate::quant::{Activation, OutKind, Requant};

/// What the many-rows routines read and advance, for one block of 4 channels.
#[repr(C)]
struct RowsArgs {
    e: *const i16,
    x: *const i16,
    groups: usize,
    bias: *const i32,
    rq: *const Requant,
    y: *mut u8,
    rows: usize,
    x_stride: usize,
    y_stride: usize,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(RowsArgs, x) == 4 && offset_of!(RowsArgs, groups) == 8 && offset_of!(RowsArgs, bias) == 12);
    assert!(offset_of!(RowsArgs, rq) == 16 && offset_of!(RowsArgs, y) == 20 && offset_of!(RowsArgs, rows) == 24);
    assert!(offset_of!(RowsArgs, x_stride) == 28 && offset_of!(RowsArgs, y_stride) == 32 && size_of::<RowsArgs>() == 36);
};

extern "C" {
    fn pf_rows_expanded_i8(args: *mut RowsArgs);
    fn pf_rows_expanded_i16(args: *mut RowsArgs);
    fn pf_rows_expanded_i32(args: *mut RowsArgs);
    fn pf_row_block4_i8(args: *mut RowArgs, w: *const i8);
    fn pf_row_block4_i16(args: *mut RowArgs, w: *const i8);
    fn pf_row_block4_i32(args: *mut RowArgs, w: *const i8);
    fn pf_row_block4_acc(args: *mut RowArgs, w: *const i8);
    fn pf_dot_block4(w: *const i8, x: *const i16, groups: usize, acc: *mut i32);
    fn pf_expand_block4(w: *const i8, e: *mut i16, groups: usize);
    fn pf_expand_block4_s4(w: *const i8, e: *mut i16, groups: usize);
    fn pf_row_block4_s4_i8(args: *mut RowArgs4, w: *const i8);
    fn pf_row_block4_s4_i16(args: *mut RowArgs4, w: *const i8);
    fn pf_row_block4_s4_i32(args: *mut RowArgs4, w: *const i8);
    fn pf_row_block4_s4_acc(args: *mut RowArgs4, w: *const i8);
    fn pf_dot_expanded(e: *const i16, x: *const i16, groups: usize, acc: *mut i32);
}

/// One whole row through a Block4 layer, requantization fused: per block of 4 channels, the
/// bias is loaded into the accumulators, the groups run as in [`dot_block4`], and each output
/// is `SMMLA` + `ASR` + `SSAT` (exact for `shift ≥ 33`, see `Requant::apply32`). An `i32`
/// layer with other shifts (the generator's logits) stores the raw accumulators and
/// requantizes them in place. Returns `false`, doing nothing, unless the layer qualifies:
/// `l.fused()` (every shift in `Requant::FUSED_SHIFTS`) or `i32` outputs,
/// `k % 32 == 0` (the loop runs 8 groups deep), `n % 4 == 0`, word-aligned weights, bias and input, and exact lengths.
#[inline(always)]
pub fn row<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) -> bool {
    let (k, n) = (l.k, l.n());
    // i32 outputs with other shifts (the generator's logits): raw accumulators, then
    // requantize them in place
    let raw = !l.fused() && O::KIND == OutKind::I32;
    let ok = (l.fused() || raw)
        && k % 32 == 0
        && k > 0
        && n % 4 == 0
        && n > 0
        && l.w.len() == l.layout.bytes(n, k, l.int4)
        && l.rq.len() == n
        && x.len() == k
        && y.len() == n
        && (l.w.as_ptr() as usize | x.as_ptr() as usize | l.bias.as_ptr() as usize | l.rq.as_ptr() as usize) % 4 == 0;
    if !ok {
        return false;
    }
    let mut args = RowArgs {
        x: x.as_ptr(),
        groups: k / 4,
        bias: l.bias.as_ptr(),
        rq: l.rq.as_ptr(),
        y: y.as_mut_ptr().cast(),
        blocks: n / 4,
    };
    if l.int4 {
        let corr = x.iter().fold(0i32, |s, &v| s.wrapping_add(v as i32)).wrapping_mul(8);
        let mut a4 = RowArgs4 { args, corr };
        // SAFETY: as below, with `n·k/2` weight bytes (8 per group) and the correction read
        // from `a4`.
        unsafe {
            match O::KIND {
                OutKind::I32 if raw => pf_row_block4_s4_acc(&mut a4, l.w.as_ptr()),
                OutKind::I8 => pf_row_block4_s4_i8(&mut a4, l.w.as_ptr()),
                OutKind::I16 => pf_row_block4_s4_i16(&mut a4, l.w.as_ptr()),
                OutKind::I32 => pf_row_block4_s4_i32(&mut a4, l.w.as_ptr()),
            }
        }
        if raw {
            for (yo, rq) in y.iter_mut().zip(l.rq) {
                *yo = O::requant(*rq, yo.widen());
            }
        }
        return true;
    }
    // SAFETY: the routine reads `n·k` weight bytes, `k` inputs, `n` biases and `n` requants
    // (all in bounds: lengths checked above, word-aligned), writes `n` outputs of `O`'s size
    // into `y` (length checked; `STM` of the raw path: `y` is `[i32]`, word-aligned), and
    // restores r4-r11. The requantizing routines run only when every shift is in 33..=62
    // (`fast_rq`); the raw one does not read them.
    unsafe {
        match O::KIND {
            OutKind::I32 if raw => pf_row_block4_acc(&mut args, l.w.as_ptr()),
            OutKind::I8 => pf_row_block4_i8(&mut args, l.w.as_ptr()),
            OutKind::I16 => pf_row_block4_i16(&mut args, l.w.as_ptr()),
            OutKind::I32 => pf_row_block4_i32(&mut args, l.w.as_ptr()),
        }
    }
    if raw {
        for (yo, rq) in y.iter_mut().zip(l.rq) {
            *yo = O::requant(*rq, yo.widen());
        }
    }
    true
}

/// Inputs one [`rows`] call widens at once.
pub const ROWS_MAX_K: usize = 256;

/// Int16 weights of one whole block, word-aligned for `LDM` (2 KiB, on the stack).
#[repr(C, align(8))]
pub struct ExpandedBlock(pub [i16; 4 * ROWS_MAX_K]);

/// Many rows through a Block4 layer with `k ≤ ROWS_MAX_K`, requantization fused: per block
/// of 4 channels the weights are widened to int16 once ([`expand`]-style), then every row runs
/// `LDRD` + 2 × (`LDM` + 4 `SMLAD`) per 16 MACs and `SMMLA` + `ASR` + `SSAT` per output, all in
/// assembly. Returns `false`, doing nothing, unless the layer qualifies (as [`row`], with
/// `k % 16 == 0`, `k ≤ ROWS_MAX_K` and whole rows).
pub fn rows<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) -> bool {
    let (k, n) = (l.k, l.n());
    if !(l.fused() && k % 16 == 0 && k > 0 && k <= ROWS_MAX_K && n % 4 == 0 && n > 0) {
        return false;
    }
    let rows = x.len() / k;
    let ok = rows > 0
        && x.len() == rows * k
        && y.len() == rows * n
        && l.w.len() == l.layout.bytes(n, k, l.int4)
        && l.rq.len() == n
        && (l.w.as_ptr() as usize | x.as_ptr() as usize | l.bias.as_ptr() as usize | l.rq.as_ptr() as usize) % 4 == 0;
    if !ok {
        return false;
    }
    let groups = k / 4;
    let mut e = ExpandedBlock([0; 4 * ROWS_MAX_K]);
    for (b, w4) in l.w.chunks_exact(if l.int4 { 2 * k } else { 4 * k }).enumerate() {
        // SAFETY: reads the block's `16·groups` weight bytes (int4: `8·groups`; in bounds,
        // word-aligned) and writes `16·groups ≤ 4·ROWS_MAX_K` int16 of `e`.
        unsafe {
            if l.int4 {
                pf_expand_block4_s4(w4.as_ptr(), e.0.as_mut_ptr(), groups)
            } else {
                pf_expand_block4(w4.as_ptr(), e.0.as_mut_ptr(), groups)
            }
        };
        let (Some(bias), Some(rq), Some(y0)) = (l.bias.get(4 * b..), l.rq.get(4 * b..), y.get_mut(4 * b..)) else {
            return true;
        };
        let mut args = RowsArgs {
            e: e.0.as_ptr(),
            x: x.as_ptr(),
            groups,
            bias: bias.as_ptr(),
            rq: rq.as_ptr(),
            y: y0.as_mut_ptr().cast(),
            rows,
            x_stride: 2 * k,
            y_stride: n * core::mem::size_of::<O>(),
        };
        // SAFETY: per row r the routine reads `k` inputs at `x + r·k` (rows·k = x.len()),
        // `16·groups` int16 of `e`, 4 biases and 4 requants of this block (in bounds: n % 4 ==
        // 0), and writes 4 outputs at `y + r·n + 4b` (rows·n = y.len()); every shift is in
        // 33..=62 (`fast_rq`); r4-r11 are restored.
        unsafe {
            match O::KIND {
                OutKind::I8 => pf_rows_expanded_i8(&mut args),
                OutKind::I16 => pf_rows_expanded_i16(&mut args),
                OutKind::I32 => pf_rows_expanded_i32(&mut args),
            }
        }
    }
    true
}

/// Inputs per expanded chunk; the chunk lives on the stack (`4 · EXPAND_K` int16 = 1 KiB).
pub const EXPAND_K: usize = 128;

/// Int16 weights of one block and one chunk of inputs, word-aligned for `LDM`.
#[repr(C, align(8))]
pub struct Expanded(pub [i16; 4 * EXPAND_K]);

/// Widen `w` (Block4 groups of one block, `16·groups` bytes, `groups ≤ EXPAND_K / 4`) into `e`:
/// per group, channels 0..4 each with inputs `j0..j3` in order.
#[inline(always)]
pub fn expand(w: &[i8], e: &mut Expanded) -> usize {
    let groups = (w.len() / 16).min(EXPAND_K / 4);
    if groups == 0 {
        return 0;
    }
    if w.as_ptr() as usize % 4 != 0 {
        for (g, wg) in w.chunks_exact(16).take(groups).enumerate() {
            for (r, wr) in wg.chunks_exact(4).enumerate() {
                let [w0, w2, w1, w3]: [i8; 4] = wr.try_into().unwrap_or([0; 4]);
                if let Some(d) = e.0.get_mut(16 * g + 4 * r..16 * g + 4 * r + 4) {
                    d.copy_from_slice(&[w0 as i16, w1 as i16, w2 as i16, w3 as i16]);
                }
            }
        }
        return groups;
    }
    // SAFETY: reads `16·groups` bytes of `w` (in bounds, word-aligned: checked above) and
    // writes `16·groups ≤ 4·EXPAND_K` int16 of `e` (in bounds, 8-aligned by its type).
    unsafe { pf_expand_block4(w.as_ptr(), e.0.as_mut_ptr(), groups) };
    groups
}

/// [`expand`] for int4 weights (`8·groups` bytes, `groups ≤ EXPAND_K / 4`).
#[inline(always)]
pub fn expand_s4(w: &[i8], e: &mut Expanded) -> usize {
    let groups = (w.len() / 8).min(EXPAND_K / 4);
    if groups == 0 {
        return 0;
    }
    if w.as_ptr() as usize % 4 != 0 {
        let k = 4 * groups;
        for (i, v) in e.0.iter_mut().take(16 * groups).enumerate() {
            let (g, r, j) = (i / 16, (i / 4) % 4, i % 4);
            *v = Layout::Block4.get(w, true, r, 4 * g + j, k) as i16;
        }
        return groups;
    }
    // SAFETY: reads `8·groups` bytes of `w` (in bounds, word-aligned: checked above) and
    // writes `16·groups ≤ 4·EXPAND_K` int16 of `e`.
    unsafe { pf_expand_block4_s4(w.as_ptr(), e.0.as_mut_ptr(), groups) };
    groups
}

/// `acc[r] += Σ_j e[r, j] · x[j]` over `groups` expanded groups (a multiple of 4).
#[inline(always)]
pub fn dot_expanded(e: &Expanded, groups: usize, x: &[i16], acc: &mut [i32; 4]) {
    let groups = groups.min(x.len() / 4).min(EXPAND_K / 4) & !3;
    if groups == 0 {
        return;
    }
    if x.as_ptr() as usize % 4 != 0 {
        for (eg, xg) in e.0.chunks_exact(16).zip(x.chunks_exact(4)).take(groups) {
            for (a, er) in acc.iter_mut().zip(eg.chunks_exact(4)) {
                let s = er.iter().zip(xg).fold(0i32, |s, (&w, &v)| s.wrapping_add((w as i32).wrapping_mul(v as i32)));
                *a = a.wrapping_add(s);
            }
        }
        return;
    }
    // SAFETY: reads `16·groups` int16 of `e` (in bounds) and `4·groups` int16 of `x` (in
    // bounds, word-aligned: checked above); reads and writes `acc[0..4]`; restores r4-r11.
    unsafe { pf_dot_expanded(e.0.as_ptr(), x.as_ptr(), groups, acc.as_mut_ptr()) }
}

/// `acc[r] += Σ_j w[r, j] · x[j]` over one Block4 block; falls back to the portable loop when
/// a pointer is not word-aligned (never, for blob weights and arena activations).
#[inline(always)]
pub fn dot_block4(w: &[i8], x: &[i16], acc: &mut [i32; 4]) {
    let groups = (w.len() / 16).min(x.len() / 4);
    if groups == 0 {
        return;
    }
    if w.as_ptr() as usize % 4 != 0 || x.as_ptr() as usize % 4 != 0 {
        return portable::dot_block4(w, x, acc);
    }
    // SAFETY: the routine reads `16·groups` bytes from `w` and `8·groups` bytes from `x`, both
    // within the slices and word-aligned (checked above), and reads and writes `acc[0..4]`. It
    // saves and restores every callee-saved register it uses (AAPCS).
    unsafe { pf_dot_block4(w.as_ptr(), x.as_ptr(), groups, acc.as_mut_ptr()) }
}

/// Stack scratch: the int16 block of [`rows`] (2 KiB), or the chunk of [`batched`] (1 KiB),
/// never both at once.
pub const STACK_BYTES: usize = core::mem::size_of::<ExpandedBlock>();

/// A Block4 layer on a DSP core (`k % 4 == 0`, `n % 4 == 0`).
#[inline]
pub fn block4<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let k = l.k;
    if x.len() >= 2 * k && rows(l, x, y) {
        return;
    }
    if x.len() >= 2 * k && k % 16 == 0 {
        return batched(l, x, y);
    }
    if row(l, x, y) {
        return;
    }
    if l.int4 {
        return super::int4::block4_portable(l, x, y);
    }
    portable::block4_rows(l, x, y, |_, _, _| 0, dot_block4)
}

/// Many rows, any requantization: per block of 4 channels and chunk of [`ROW_CHUNK`] rows, widen
/// each [`EXPAND_K`]-input slice of the weights to int16 once, then run every row over it.
/// Bit-exact with the reference (same products, wrapping sums).
fn batched<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    let rows = (x.len() / k).min(y.len() / n);
    let mut e = Expanded([0; 4 * EXPAND_K]);
    let (block_bytes, chunk_bytes) = if l.int4 { (2 * k, 2 * EXPAND_K) } else { (4 * k, 4 * EXPAND_K) };
    let blocks = l.w.chunks_exact(block_bytes).zip(l.bias.chunks_exact(4)).zip(l.rq.chunks_exact(4));
    for (b, ((w4, b4), rq4)) in blocks.enumerate() {
        let mut r0 = 0;
        while r0 < rows {
            let rc = (rows - r0).min(ROW_CHUNK);
            let mut acc = [[0i32; 4]; ROW_CHUNK];
            for a in acc.iter_mut().take(rc) {
                a.copy_from_slice(b4);
            }
            for (c, wc) in w4.chunks(chunk_bytes).enumerate() {
                let groups = if l.int4 { expand_s4(wc, &mut e) } else { expand(wc, &mut e) };
                for (r, a) in acc.iter_mut().take(rc).enumerate() {
                    let start = (r0 + r) * k + c * EXPAND_K;
                    dot_expanded(&e, groups, x.get(start..start + 4 * groups).unwrap_or(&[]), a);
                }
            }
            for (r, a) in acc.iter().take(rc).enumerate() {
                let at = (r0 + r) * n + 4 * b;
                if let Some(y4) = y.get_mut(at..at + 4) {
                    for ((yo, &v), rq) in y4.iter_mut().zip(a).zip(rq4) {
                        *yo = O::requant(*rq, v);
                    }
                }
            }
            r0 += rc;
        }
    }
}

/// Rows [`batched`] accumulates at once.
const ROW_CHUNK: usize = 16;
