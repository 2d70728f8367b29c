//! Helium (MVE) fast paths of [`super::softmax_u8`] (`picoformer_core = "mve"`), for the 32-bit
//! exponent form (fused shifts, `Requant::FUSED_SHIFTS`) and rows up to 2^16; others take the
//! portable loop. Rows of more than 16 scores take `pf_mve_softmax_u8`: three passes, each over
//! 16 or 8 scores per loop (one `VLDM` of four or two Q registers), then a tail-predicated loop
//! (`WLSTP`/`LETP`) of 4. Rows of at most 16 take one of eight straight-line routines
//! (`pf_mve_softmax_{4,8,12,16}` and `_{1_3,5_7,9_11,13_15}`, the last vector under the predicate
//! `VCTP` makes): the scores stay in `q0`-`q3` from the first pass to the second and the
//! exponentials in `q4`-`q7` from the second to the third, about 63 instructions for 16.
//!
//! - max: `VMAXV.S32` of each vector into one register;
//! - exponentials: `VSUB` from the max, `VMULH.U32` by the multiplier (the high word),
//!   `VRSHL.U32` by `32 - shift` (the rounding `(hi + 2^(s-33)) >> (s-32)`), `VMIN` with 1023,
//!   a gather `VLDRH.U32` from [`EXP2_NEG_Q15`], `VADDVA` into the sum, and the exponentials
//!   stored back over the scores (`VSTM`): 6 instructions per 4 scores and one per 8;
//! - normalization: the reciprocal once (`UDIV`, its +1 correction, `USAT #17` for the cap),
//!   then per 4 exponentials `VRMULH.U32` by `recip << 8` (exactly `(e·recip + 2^23) >> 24`),
//!   `VMIN` with 255 and a narrowing store `VSTRB.32`.
//!
//! The gathers need no predicate: `VMIN` keeps every lane's index, active or not, inside the
//! table.
//!
//! Σe cannot wrap (at most 2^15 · 2^16), and the max's `e = 2^15` keeps it at least 2^15.
//! Bit-exact with [`super::reference::softmax_u8_ref`]; the firmware checks it on target.

use super::exp2::EXP2_NEG_Q15;
use super::portable;
use crate::quant::Requant;

/// `r12 = min(⌊2^32 / Σe⌋, 2^17 - 1) << 8` for `Σe` in `r4` (≥ 2^15): the quotient `q` of
/// 2^32 - 1, plus one when `q·Σe + Σe` wraps to 0 (the division of 2^32 was exact), saturated
/// to 17 bits (`USAT`), as `recip_2_32` and `RECIP_CAP`. `r0`, `r7` scratch.
macro_rules! recip {
    () => {
        "mvn r7, #0
    udiv r12, r7, r4
    mla r0, r12, r4, r4
    cmp r0, #0
    it eq
    addeq r12, r12, #1
    usat r12, #17, r12
    lsl r12, r12, #8
"
    };
}

/// The constants of the exponentials: `q4` = the max (from `r12`), `q5` = the multiplier (from
/// `r3`), `q6` = 1023; `r3` = `32 - shift` (the shift from `r1`'s top byte), `r1` = the table.
macro_rules! exp_consts {
    () => {
        "vdup.32 q4, r12
    vdup.32 q5, r3
    lsr r3, r1, #24
    rsb r3, r3, #32
    vmov.i32 q6, #0x3ff
    ldr r1, ={table}
"
    };
}

/// `r3 = min(⌊2^32 / Σe⌋, 2^17 - 1) << 8` for `Σe` in `r12` (≥ 2^15), as `recip!`. `r1`
/// scratch.
macro_rules! recip_short {
    () => {
        "mvn r1, #0
    udiv r3, r1, r12
    mla r1, r3, r12, r12
    cmp r1, #0
    it eq
    addeq r3, r3, #1
    usat r3, #17, r3
    lsl r3, r3, #8
"
    };
}

/// `q$i` = the exponent of the score in `q$i`: `min(rshl(mulh(m - s, mult), 32 - shift), 1023)`.
macro_rules! exponent {
    ($i:literal) => {
        concat!(
            "vsub.i32 q", $i, ", q4, q", $i, "\n",
            "vmulh.u32 q", $i, ", q", $i, ", q5\n",
            "vrshl.u32 q", $i, ", r3\n",
            "vmin.u32 q", $i, ", q", $i, ", q6\n",
        )
    };
}

/// How a short routine starts, per row and at the end: `one` row, or `rows` rows (the count in
/// bits 8-23 of `r1`). `rows` keeps the multiplier in `r4`, `32 - shift` in `r5`, `n` in `r6`,
/// the rows left in `r7` and `n % 4` in `lr`, and steps `r0` by the row and `r2` by the part of
/// it the stores did not.
macro_rules! short_frame {
    (one, enter) => {
        "vpush {{d8-d15}}\n"
    };
    (rows, enter) => {
        "push {{r4-r7, lr}}
    vpush {{d8-d15}}
    mov r4, r3
    lsr r5, r1, #24
    rsb r5, r5, #32
    and r6, r1, #0xff
    ubfx r7, r1, #8, #16
    and lr, r1, #3
1:
"
    };
    (one, consts) => {
        exp_consts!()
    };
    (rows, consts) => {
        "vdup.32 q4, r12
    vdup.32 q5, r4
    mov r3, r5
    vmov.i32 q6, #0x3ff
    ldr r1, ={table}
"
    };
    (one, leave) => {
        "vpop {{d8-d15}}
    bx lr
"
    };
    (rows, leave) => {
        "add r0, r0, r6, lsl #2
    add r2, r2, lr
    subs r7, r7, #1
    bne 1b
    vpop {{d8-d15}}
    pop {{r4-r7, pc}}
"
    };
}

/// A row of at most 16 scores in registers (`pf_mve_softmax_*`), or many such rows
/// (`pf_mve_softmax_rows_*`, `$mode` `rows`): `$full` the vectors of 4 (one `VLDM`: `$load`,
/// and `$store` for the exponentials), `$last` a last vector of 1-3 scores at byte offset `$off`
/// under the predicate `VCTP` makes of the `n % 4` left (once: nothing else writes it). Scores
/// in `q0`-`q3`, their exponents in place, the exponentials in `q4`-`q7` (the constants of the
/// exponents are dead by then), normalized in place.
macro_rules! short_row {
    ($mode:ident, $name:literal, $sfx:literal, $load:literal, $store:literal, [$($full:literal / $fe:literal),*], [$($last:literal / $le:literal @ $off:literal)?]) => {
        core::arch::global_asm!(
            ".syntax unified",
            ".cpu cortex-m55",
            ".thumb",
            concat!(".section .text.", $name, $sfx, ",\"ax\",%progbits"),
            concat!(".global ", $name, $sfx),
            concat!(".type ", $name, $sfx, ",%function"),
            ".thumb_func",
            concat!($name, $sfx, ":"),
            // r0 = scores, r1 = n | rows << 8 | shift << 24, r2 = p, r3 = mult; r12 the max,
            // then Σe. One row uses no callee-saved core register: only q4-q7 are saved.
            $( "and r12, r1, #3\n", concat!("vctp.32 r12 @ for q", $last, "\n"), )?
            short_frame!($mode, enter),
            $load,
            "mov r12, #0x80000000",
            $( concat!("vmaxv.s32 r12, q", $full, "\n"), )*
            $( concat!("vpstt\n vldrwt.u32 q", $last, ", [r0, #", $off, "]\n vmaxvt.s32 r12, q", $last, "\n"), )?
            short_frame!($mode, consts),
            $( exponent!($full), )*
            $( exponent!($last), )?
            "mov r12, #0",
            $( concat!("vldrh.u32 q", $fe, ", [r1, q", $full, ", uxtw #1]\n vaddva.u32 r12, q", $fe, "\n"), )*
            $( concat!("vpstt\n vldrht.u32 q", $le, ", [r1, q", $last, ", uxtw #1]\n vaddvat.u32 r12, q", $le, "\n"), )?
            $store,
            $( concat!("vpst\n vstrwt.32 q", $le, ", [r0, #", $off, "]\n"), )?
            recip_short!(),
            "vdup.32 q0, r3",
            "vmov.i32 q1, #255",
            $( concat!("vrmulh.u32 q", $fe, ", q", $fe, ", q0\n vmin.u32 q", $fe, ", q", $fe, ", q1\n vstrb.32 q", $fe, ", [r2], #4\n"), )*
            $( concat!("vrmulh.u32 q", $le, ", q", $le, ", q0\n vmin.u32 q", $le, ", q", $le, ", q1\n vpst\n vstrbt.32 q", $le, ", [r2]\n"), )?
            short_frame!($mode, leave),
            ".ltorg",
            concat!(".size ", $name, $sfx, ", . - ", $name, $sfx),
            table = sym EXP2_NEG_Q15,
        );
    };
}

/// The one-row and the many-rows routine of one row shape.
macro_rules! short_routines {
    ($name:literal, $($shape:tt)*) => {
        short_row!(one, $name, "", $($shape)*);
        short_row!(rows, $name, "_rows", $($shape)*);
    };
}

core::arch::global_asm!(
    ".syntax unified",
    ".cpu cortex-m55",
    ".thumb",
    ".section .text.pf_mve_softmax_u8,\"ax\",%progbits",
    ".global pf_mve_softmax_u8",
    ".type pf_mve_softmax_u8,%function",
    ".thumb_func",
    "pf_mve_softmax_u8:",
    // r0 = scores, r1 = n | shift << 24 (17 ≤ n ≤ 2^16), r2 = p, r3 = mult. Then r1 scores, r2
    // n, r3 p, r4 mult → sum, r5 32 - shift, r6 table
    "    push {{r4-r7, lr}}",
    "    vpush {{d8-d13}}",
    "    mov r4, r3",
    "    lsr r5, r1, #24",
    "    rsb r5, r5, #32",
    "    ldr r6, ={table}",
    "    mov r3, r2",
    "    bic r2, r1, #0xff000000",
    "    mov r1, r0",
    // pass 1: r12 = max
    "    mov r12, #0x80000000",
    "    mov r7, r1",
    "    lsrs r0, r2, #4",
    "    wls lr, r0, 2f",
    "1:",
    "    vldmia r7!, {{d0-d7}}",
    "    vmaxv.s32 r12, q0",
    "    vmaxv.s32 r12, q1",
    "    vmaxv.s32 r12, q2",
    "    vmaxv.s32 r12, q3",
    "    le lr, 1b",
    "2:",
    "    and r0, r2, #15",
    "    wlstp.32 lr, r0, 4f",
    "3:",
    "    vldrw.u32 q0, [r7], #16",
    "    vmaxv.s32 r12, q0",
    "    letp lr, 3b",
    "4:",
    // pass 2: e = table[min(rshl(mulh(m - s, mult), 32 - shift), 1023)], r4 = Σe
    "    vdup.32 q4, r12",
    "    vdup.32 q5, r4",
    "    vmov.i32 q6, #0x3ff",
    "    movs r4, #0",
    "    mov r7, r1",
    "    lsrs r0, r2, #3",
    "    wls lr, r0, 6f",
    "5:",
    "    vldmia r7, {{d0-d3}}",
    "    vsub.i32 q0, q4, q0",
    "    vsub.i32 q1, q4, q1",
    "    vmulh.u32 q0, q0, q5",
    "    vmulh.u32 q1, q1, q5",
    "    vrshl.u32 q0, r5",
    "    vrshl.u32 q1, r5",
    "    vmin.u32 q0, q0, q6",
    "    vmin.u32 q1, q1, q6",
    "    vldrh.u32 q2, [r6, q0, uxtw #1]",
    "    vldrh.u32 q3, [r6, q1, uxtw #1]",
    "    vaddva.u32 r4, q2",
    "    vaddva.u32 r4, q3",
    "    vstmia r7!, {{d4-d7}}",
    "    le lr, 5b",
    "6:",
    "    and r0, r2, #7",
    "    wlstp.32 lr, r0, 8f",
    "7:",
    "    vldrw.u32 q0, [r7]",
    "    vsub.i32 q0, q4, q0",
    "    vmulh.u32 q0, q0, q5",
    "    vrshl.u32 q0, r5",
    "    vmin.u32 q0, q0, q6",
    "    vldrh.u32 q2, [r6, q0, uxtw #1]",
    "    vaddva.u32 r4, q2",
    "    vstrw.32 q2, [r7], #16",
    "    letp lr, 7b",
    "8:",
    recip!(),
    // pass 3: p = min(255, (e·recip + 2^23) >> 24)
    "    vdup.32 q5, r12",
    "    vmov.i32 q6, #255",
    "    mov r7, r1",
    "    lsrs r0, r2, #4",
    "    wls lr, r0, 10f",
    "9:",
    "    vldmia r7!, {{d0-d7}}",
    "    vrmulh.u32 q0, q0, q5",
    "    vrmulh.u32 q1, q1, q5",
    "    vrmulh.u32 q2, q2, q5",
    "    vrmulh.u32 q3, q3, q5",
    "    vmin.u32 q0, q0, q6",
    "    vmin.u32 q1, q1, q6",
    "    vmin.u32 q2, q2, q6",
    "    vmin.u32 q3, q3, q6",
    "    vstrb.32 q0, [r3], #4",
    "    vstrb.32 q1, [r3], #4",
    "    vstrb.32 q2, [r3], #4",
    "    vstrb.32 q3, [r3], #4",
    "    le lr, 9b",
    "10:",
    "    and r0, r2, #15",
    "    wlstp.32 lr, r0, 12f",
    "11:",
    "    vldrw.u32 q0, [r7], #16",
    "    vrmulh.u32 q0, q0, q5",
    "    vmin.u32 q0, q0, q6",
    "    vstrb.32 q0, [r3], #4",
    "    letp lr, 11b",
    "12:",
    "    vpop {{d8-d13}}",
    "    pop {{r4-r7, pc}}",
    ".ltorg",
    ".size pf_mve_softmax_u8, . - pf_mve_softmax_u8",
    table = sym EXP2_NEG_Q15,
);

short_routines!("pf_mve_softmax_4", "vldmia r0, {{d0-d1}}", "vstmia r0, {{d8-d9}}", [0 / 4], []);
short_routines!("pf_mve_softmax_8", "vldmia r0, {{d0-d3}}", "vstmia r0, {{d8-d11}}", [0 / 4, 1 / 5], []);
short_routines!("pf_mve_softmax_12", "vldmia r0, {{d0-d5}}", "vstmia r0, {{d8-d13}}", [0 / 4, 1 / 5, 2 / 6], []);
short_routines!("pf_mve_softmax_16", "vldmia r0, {{d0-d7}}", "vstmia r0, {{d8-d15}}", [0 / 4, 1 / 5, 2 / 6, 3 / 7], []);
short_routines!("pf_mve_softmax_1_3", "", "", [], [0 / 4 @ 0]);
short_routines!("pf_mve_softmax_5_7", "vldmia r0, {{d0-d1}}", "vstmia r0, {{d8-d9}}", [0 / 4], [1 / 5 @ 16]);
short_routines!("pf_mve_softmax_9_11", "vldmia r0, {{d0-d3}}", "vstmia r0, {{d8-d11}}", [0 / 4, 1 / 5], [2 / 6 @ 32]);
short_routines!("pf_mve_softmax_13_15", "vldmia r0, {{d0-d5}}", "vstmia r0, {{d8-d13}}", [0 / 4, 1 / 5, 2 / 6], [3 / 7 @ 48]);

extern "C" {
    fn pf_mve_softmax_u8(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_4(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_8(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_12(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_16(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_1_3(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_5_7(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_9_11(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_13_15(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_4_rows(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_8_rows(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_12_rows(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_16_rows(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_1_3_rows(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_5_7_rows(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_9_11_rows(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
    fn pf_mve_softmax_13_15_rows(scores: *mut i32, n_shift: usize, p: *mut u8, mult: u32);
}

/// A softmax routine: `(scores, n | rows << 8 | shift << 24, p, mult)` (the one-row routines
/// ignore the rows).
type Routine = unsafe extern "C" fn(*mut i32, usize, *mut u8, u32);

/// The routine for each row length up to 16 (index 0 is never used).
static SHORT: [Routine; 17] = [
    pf_mve_softmax_1_3,
    pf_mve_softmax_1_3,
    pf_mve_softmax_1_3,
    pf_mve_softmax_1_3,
    pf_mve_softmax_4,
    pf_mve_softmax_5_7,
    pf_mve_softmax_5_7,
    pf_mve_softmax_5_7,
    pf_mve_softmax_8,
    pf_mve_softmax_9_11,
    pf_mve_softmax_9_11,
    pf_mve_softmax_9_11,
    pf_mve_softmax_12,
    pf_mve_softmax_13_15,
    pf_mve_softmax_13_15,
    pf_mve_softmax_13_15,
    pf_mve_softmax_16,
];

/// The many-rows routine for each row length up to 16 (index 0 is never used).
static SHORT_ROWS: [Routine; 17] = [
    pf_mve_softmax_1_3_rows,
    pf_mve_softmax_1_3_rows,
    pf_mve_softmax_1_3_rows,
    pf_mve_softmax_1_3_rows,
    pf_mve_softmax_4_rows,
    pf_mve_softmax_5_7_rows,
    pf_mve_softmax_5_7_rows,
    pf_mve_softmax_5_7_rows,
    pf_mve_softmax_8_rows,
    pf_mve_softmax_9_11_rows,
    pf_mve_softmax_9_11_rows,
    pf_mve_softmax_9_11_rows,
    pf_mve_softmax_12_rows,
    pf_mve_softmax_13_15_rows,
    pf_mve_softmax_13_15_rows,
    pf_mve_softmax_13_15_rows,
    pf_mve_softmax_16_rows,
];

/// Stack scratch: none (the routines save registers only).
pub const STACK_BYTES: usize = 0;

/// Longest row the assembly takes: Σe ≤ 2^15 · 2^16 cannot wrap.
const MAX_N: usize = 1 << 16;

/// [`super::softmax_u8`] on a Helium core, over the shorter of `scores` and `p`: the assembly
/// for fused shifts, the portable loop for others.
pub fn softmax_u8(scores: &mut [i32], rq: Requant, p: &mut [u8]) {
    let n = scores.len().min(p.len());
    if n == 0 {
        return;
    }
    if !rq.is_fused() || n > MAX_N {
        return softmax_portable(scores, rq, p);
    }
    let f = SHORT.get(n).copied().unwrap_or(pf_mve_softmax_u8 as Routine);
    let n_shift = n | (rq.shift as usize) << 24;
    // SAFETY: each routine reads and writes the `n` scores at `scores` (4-byte aligned, as
    // `i32`; `VLDM`/`VSTM` of whole vectors and predicated loads and stores touch no byte past
    // `n`, and each short routine takes exactly the lengths it is picked for), writes `n` bytes
    // at `p` and gathers `EXP2_NEG_Q15` at indices ≤ 1023 (`VMIN`); `n` is at most both
    // lengths (and below 2^24, beside the shift: MAX_N), the multiplier not negative (fused).
    // They save every callee-saved register they use.
    unsafe { f(scores.as_mut_ptr(), n_shift, p.as_mut_ptr(), rq.mult as u32) };
}

/// Most rows one many-rows call takes (the count's 16 bits in `r1`).
const MAX_ROWS: usize = 0xffff;

/// [`super::softmax_rows_u8`] in one call of a many-rows routine, for fused shifts and rows of 1
/// to 16 scores; `false` (nothing done) for the others.
pub(super) fn softmax_rows_u8(scores: &mut [i32], row_len: usize, rq: Requant, p: &mut [u8]) -> bool {
    let (Some(&f), true) = (SHORT_ROWS.get(row_len), rq.is_fused() && row_len > 0) else {
        return false;
    };
    let step = MAX_ROWS * row_len;
    for (s, q) in scores.chunks_mut(step).zip(p.chunks_mut(step)) {
        let rows = s.len().min(q.len()) / row_len;
        if rows == 0 {
            break;
        }
        let n_shift = row_len | rows << 8 | (rq.shift as usize) << 24;
        // SAFETY: as `softmax_u8`'s, for each of the `rows` rows of `row_len` (1..=16) scores:
        // row r at `s + 4·row_len·r` and `q + row_len·r`, all inside both slices (`rows` whole
        // rows of each, at most 0xffff); the routine steps both pointers by whole rows and saves
        // r4-r7 and lr.
        unsafe { f(s.as_mut_ptr(), n_shift, q.as_mut_ptr(), rq.mult as u32) };
    }
    true
}

/// Shifts or lengths the assembly does not take (out of line: the common path stays small).
#[cold]
#[inline(never)]
fn softmax_portable(scores: &mut [i32], rq: Requant, p: &mut [u8]) {
    portable::softmax_u8(scores, rq, p)
}
