//! RV32IMAC fast path of the Block4 linear kernel (`target_arch = "riscv32"`).
//!
//! RV32 has no SIMD and no multiply-accumulate, so `lb`, `mul` and `add` per MAC are the floor
//! (3 instructions). These routines take 16 output channels (four Block4 blocks) per pass so
//! that each int16 input is loaded once for 16 weights: per group of 4 inputs, 4 `lh`, then
//! 64 × (`lb`, `mul`, `add`), 4 pointer bumps and the loop: 203 instructions for 64 MACs
//! (3.17 per MAC). The 16 accumulators live in `s0`-`s11` and `t3`-`t6`, the inputs in
//! `a5`-`a7` and `ra`, the four block pointers in `a0` and `t0`-`t2`. Sums wrap like the
//! reference's `wrapping_add`, so the result is bit-exact with [`super::reference::linear_ref`].
//!
//! - `pf_dot_16rows`: accumulators in and out through memory (any requantization);
//! - `pf_dot_8rows`: the same for 8 channels (the last 8 of a layer with `n % 16 == 8`,
//!   such as the 1000-way benchmark layer), 3.28 instructions per MAC;
//! - `pf_row16_{i8,i16,i32}`: a whole row, bias preloaded, requantization fused (`mulh`, add,
//!   `sra`, clamp; exact for shifts ≥ 33, see `Requant::apply32`), 16 channels per pass.

use super::portable::{self, wide_sets};
use super::weights::Linear;
use crate::quant::{Activation, OutKind, Requant};

/// One MAC: weight byte `byte` of channel `r` of the block at `ptr`, times input `x`.
macro_rules! mac {
    ($acc:literal, $ptr:literal, $r:literal, $byte:literal, $x:literal) => {
        concat!("lb a4, ", $r, "*4+", $byte, "(", $ptr, ")\n", "mul a4, a4, ", $x, "\n", "add ", $acc, ", ", $acc, ", a4\n")
    };
}

/// One channel's word: bytes j0, j2, j1, j3 times inputs a5 (j0), a6 (j1), a7 (j2), ra (j3).
macro_rules! chan {
    ($acc:literal, $ptr:literal, $r:literal) => {
        concat!(mac!($acc, $ptr, $r, 0, "a5"), mac!($acc, $ptr, $r, 2, "a6"), mac!($acc, $ptr, $r, 1, "a7"), mac!($acc, $ptr, $r, 3, "ra"))
    };
}

/// One group of 4 inputs for 16 channels; loops while `a2` is not zero.
macro_rules! group16 {
    () => {
        concat!(
            "1:\n",
            "lh a5, 0(a1)\n", "lh a6, 2(a1)\n", "lh a7, 4(a1)\n", "lh ra, 6(a1)\n", "addi a1, a1, 8\n",
            chan!("s0", "a0", 0), chan!("s1", "a0", 1), chan!("s2", "a0", 2), chan!("s3", "a0", 3),
            chan!("s4", "t0", 0), chan!("s5", "t0", 1), chan!("s6", "t0", 2), chan!("s7", "t0", 3),
            chan!("s8", "t1", 0), chan!("s9", "t1", 1), chan!("s10", "t1", 2), chan!("s11", "t1", 3),
            chan!("t3", "t2", 0), chan!("t4", "t2", 1), chan!("t5", "t2", 2), chan!("t6", "t2", 3),
            "addi a0, a0, 16\n", "addi t0, t0, 16\n", "addi t1, t1, 16\n", "addi t2, t2, 16\n",
            "addi a2, a2, -1\n", "bnez a2, 1b\n",
        )
    };
}

/// One group of 4 inputs for 8 channels (blocks at `a0`, `t0`); loops while `a2` is not zero.
/// 105 instructions for 32 MACs (3.28 per MAC): the tail of layers with `n % 16 == 8`.
macro_rules! group8 {
    () => {
        concat!(
            "1:\n",
            "lh a5, 0(a1)\n", "lh a6, 2(a1)\n", "lh a7, 4(a1)\n", "lh ra, 6(a1)\n", "addi a1, a1, 8\n",
            chan!("s0", "a0", 0), chan!("s1", "a0", 1), chan!("s2", "a0", 2), chan!("s3", "a0", 3),
            chan!("s4", "t0", 0), chan!("s5", "t0", 1), chan!("s6", "t0", 2), chan!("s7", "t0", 3),
            "addi a0, a0, 16\n", "addi t0, t0, 16\n",
            "addi a2, a2, -1\n", "bnez a2, 1b\n",
        )
    };
}

/// Save ra and s0-s11 (64-byte frame; 52(sp) is free for the routine).
macro_rules! save {
    () => {
        concat!(
            "addi sp, sp, -64\n", "sw ra, 0(sp)\n", "sw s0, 4(sp)\n", "sw s1, 8(sp)\n", "sw s2, 12(sp)\n",
            "sw s3, 16(sp)\n", "sw s4, 20(sp)\n", "sw s5, 24(sp)\n", "sw s6, 28(sp)\n", "sw s7, 32(sp)\n",
            "sw s8, 36(sp)\n", "sw s9, 40(sp)\n", "sw s10, 44(sp)\n", "sw s11, 48(sp)\n",
        )
    };
}

macro_rules! restore {
    () => {
        concat!(
            "lw ra, 0(sp)\n", "lw s0, 4(sp)\n", "lw s1, 8(sp)\n", "lw s2, 12(sp)\n", "lw s3, 16(sp)\n",
            "lw s4, 20(sp)\n", "lw s5, 24(sp)\n", "lw s6, 28(sp)\n", "lw s7, 32(sp)\n", "lw s8, 36(sp)\n",
            "lw s9, 40(sp)\n", "lw s10, 44(sp)\n", "lw s11, 48(sp)\n", "addi sp, sp, 64\n",
        )
    };
}

/// Load (`lw`) or store (`sw`) the 16 accumulators at `base`.
macro_rules! accs {
    ($op:literal, $base:literal) => {
        concat!(
            $op, " s0, 0(", $base, ")\n", $op, " s1, 4(", $base, ")\n", $op, " s2, 8(", $base, ")\n", $op, " s3, 12(", $base, ")\n",
            $op, " s4, 16(", $base, ")\n", $op, " s5, 20(", $base, ")\n", $op, " s6, 24(", $base, ")\n", $op, " s7, 28(", $base, ")\n",
            $op, " s8, 32(", $base, ")\n", $op, " s9, 36(", $base, ")\n", $op, " s10, 40(", $base, ")\n", $op, " s11, 44(", $base, ")\n",
            $op, " t3, 48(", $base, ")\n", $op, " t4, 52(", $base, ")\n", $op, " t5, 56(", $base, ")\n", $op, " t6, 60(", $base, ")\n",
        )
    };
}

core::arch::global_asm!(
    ".option push",
    ".option arch, +m",
    ".section .text.pf_dot_16rows,\"ax\",@progbits",
    ".globl pf_dot_16rows",
    ".type pf_dot_16rows,@function",
    "pf_dot_16rows:",
    // a0 = block 0 weights, a1 = x, a2 = groups, a3 = acc (16 × i32), a4 = block stride (4k bytes)
    save!(),
    "sw a3, 52(sp)",
    accs!("lw", "a3"),
    "add t0, a0, a4",
    "add t1, t0, a4",
    "add t2, t1, a4",
    "beqz a2, 2f",
    group16!(),
    "2:",
    "lw a3, 52(sp)",
    accs!("sw", "a3"),
    restore!(),
    "ret",
    ".size pf_dot_16rows, . - pf_dot_16rows",
    ".option pop",
);

/// Load (`lw`) or store (`sw`) the 8 accumulators `s0`-`s7` at `base`.
macro_rules! accs8 {
    ($op:literal, $base:literal) => {
        concat!(
            $op, " s0, 0(", $base, ")\n", $op, " s1, 4(", $base, ")\n", $op, " s2, 8(", $base, ")\n", $op, " s3, 12(", $base, ")\n",
            $op, " s4, 16(", $base, ")\n", $op, " s5, 20(", $base, ")\n", $op, " s6, 24(", $base, ")\n", $op, " s7, 28(", $base, ")\n",
        )
    };
}

core::arch::global_asm!(
    ".option push",
    ".option arch, +m",
    ".section .text.pf_dot_8rows,\"ax\",@progbits",
    ".globl pf_dot_8rows",
    ".type pf_dot_8rows,@function",
    "pf_dot_8rows:",
    // a0 = block 0 weights, a1 = x, a2 = groups, a3 = acc (8 × i32), a4 = block stride (4k bytes)
    save!(),
    "sw a3, 52(sp)",
    accs8!("lw", "a3"),
    "add t0, a0, a4",
    "beqz a2, 2f",
    group8!(),
    "2:",
    "lw a3, 52(sp)",
    accs8!("sw", "a3"),
    restore!(),
    "ret",
    ".size pf_dot_8rows, . - pf_dot_8rows",
    ".option pop",
);

/// Requantize accumulator `acc` with requant `i` of the block (`a1`), clamp with `t0`/`t1`
/// when `$clamp` is given, and store it as output `i` (`a2`) with `$st` of `$size` bytes.
/// Needs `a7 = 1`.
macro_rules! requant {
    ($acc:literal, $i:literal, $st:literal, $size:literal $(, $clamp:literal)?) => {
        concat!(
            "lw a4, ", $i, "*8(a1)\n", "lw a5, ", $i, "*8+4(a1)\n",
            "mulh a4, ", $acc, ", a4\n", "addi a6, a5, -33\n", "sll a6, a7, a6\n", "add a4, a4, a6\n",
            "addi a5, a5, -32\n", "sra a4, a4, a5\n",
            $( $clamp, "bge t0, a4, 2f\n", "mv a4, t0\n", "2:\n", "bge a4, t1, 3f\n", "mv a4, t1\n", "3:\n", )?
            $st, " a4, ", $i, "*", $size, "(a2)\n",
        )
    };
}

/// The whole-row routine for one output type: `$bounds` loads the clamp bounds into t0/t1
/// (empty for i32), `$st`/`$size` store one output, `$c` is `""` to clamp or absent.
macro_rules! row16 {
    ($name:literal, $bounds:expr, $st:literal, $size:literal $(, $c:literal)?) => {
        core::arch::global_asm!(
            ".option push",
            ".option arch, +m",
            concat!(".section .text.", $name, ",\"ax\",@progbits"),
            concat!(".globl ", $name),
            concat!(".type ", $name, ",@function"),
            concat!($name, ":"),
            // a0 = &mut Row16Args { x, groups, bias, rq, y, blocks16, stride }, a1 = weights
            save!(),
            "mv a3, a0",
            "mv a0, a1",
            "5:",
            "lw a1, 0(a3)",
            "lw a2, 4(a3)",
            "lw a4, 8(a3)",
            accs!("lw", "a4"),
            "addi a4, a4, 64",
            "sw a4, 8(a3)",
            "lw a4, 24(a3)",
            "add t0, a0, a4",
            "add t1, t0, a4",
            "add t2, t1, a4",
            group16!(),
            // a0 stopped at the end of block 0; the next 16 channels start after block 3
            "mv a0, t2",
            "lw a1, 12(a3)",
            "lw a2, 16(a3)",
            "li a7, 1",
            $bounds,
            requant!("s0", 0, $st, $size $(, $c)?), requant!("s1", 1, $st, $size $(, $c)?),
            requant!("s2", 2, $st, $size $(, $c)?), requant!("s3", 3, $st, $size $(, $c)?),
            requant!("s4", 4, $st, $size $(, $c)?), requant!("s5", 5, $st, $size $(, $c)?),
            requant!("s6", 6, $st, $size $(, $c)?), requant!("s7", 7, $st, $size $(, $c)?),
            requant!("s8", 8, $st, $size $(, $c)?), requant!("s9", 9, $st, $size $(, $c)?),
            requant!("s10", 10, $st, $size $(, $c)?), requant!("s11", 11, $st, $size $(, $c)?),
            requant!("t3", 12, $st, $size $(, $c)?), requant!("t4", 13, $st, $size $(, $c)?),
            requant!("t5", 14, $st, $size $(, $c)?), requant!("t6", 15, $st, $size $(, $c)?),
            "addi a1, a1, 128",
            "sw a1, 12(a3)",
            concat!("addi a2, a2, 16*", $size),
            "sw a2, 16(a3)",
            "lw a4, 20(a3)",
            "addi a4, a4, -1",
            "sw a4, 20(a3)",
            "bnez a4, 5b",
            restore!(),
            "ret",
            concat!(".size ", $name, ", . - ", $name),
            ".option pop",
        );
    };
}

row16!("pf_row16_i8", "li t0, 127\nli t1, -128", "sb", 1, "");
row16!("pf_row16_i16", "lui t0, 8\naddi t0, t0, -1\nlui t1, 0xffff8", "sh", 2, "");
row16!("pf_row16_i32", "", "sw", 4);

/// What the whole-row routines read and advance (layout known to the assembly).
#[repr(C)]
struct Row16Args {
    x: *const i16,
    groups: usize,
    bias: *const i32,
    rq: *const Requant,
    y: *mut u8,
    blocks16: usize,
    stride: usize,
}

// the routines read these by offset: one word each, in order
const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(offset_of!(Row16Args, groups) == 4 && offset_of!(Row16Args, bias) == 8 && offset_of!(Row16Args, rq) == 12);
    assert!(offset_of!(Row16Args, y) == 16 && offset_of!(Row16Args, blocks16) == 20 && offset_of!(Row16Args, stride) == 24);
    assert!(size_of::<Row16Args>() == 28);
};

extern "C" {
    fn pf_row16_i8(args: *mut Row16Args, w: *const i8);
    fn pf_row16_i16(args: *mut Row16Args, w: *const i8);
    fn pf_row16_i32(args: *mut Row16Args, w: *const i8);
    fn pf_dot_16rows(w: *const i8, x: *const i16, groups: usize, acc: *mut i32, stride: usize);
    fn pf_dot_8rows(w: *const i8, x: *const i16, groups: usize, acc: *mut i32, stride: usize);
}

/// `acc[4b + r] += Σ_j w_b[r, j] · x[j]` for the four consecutive Block4 blocks in `w`
/// (`16·k` bytes; `x`: `k` values).
#[inline(always)]
pub fn dot_4blocks(w: &[i8], x: &[i16], k: usize, acc: &mut [i32; 16]) {
    let groups = k / 4;
    if groups == 0 || w.len() < 16 * k || x.len() < k {
        return;
    }
    // SAFETY: the routine reads `groups · 16` bytes from each of the four blocks
    // `w[b·4k .. (b+1)·4k]` (all inside `w`, checked above), `8 · groups` bytes of `x` (inside
    // `x`), and reads and writes `acc[0..16]`. `lb`/`lh` need no alignment beyond the i16's.
    // It saves and restores every callee-saved register it uses (ra, s0-s11).
    unsafe { pf_dot_16rows(w.as_ptr(), x.as_ptr(), groups, acc.as_mut_ptr(), 4 * k) }
}

/// `acc[4b + r] += Σ_j w_b[r, j] · x[j]` for the two consecutive Block4 blocks in `w`
/// (`8·k` bytes; `x`: `k` values).
#[inline(always)]
pub fn dot_2blocks(w: &[i8], x: &[i16], k: usize, acc: &mut [i32; 8]) {
    let groups = k / 4;
    if groups == 0 || w.len() < 8 * k || x.len() < k {
        return;
    }
    // SAFETY: as `dot_4blocks`, for the two blocks `w[b·4k .. (b+1)·4k]`, b < 2, and
    // `acc[0..8]`. It saves and restores ra and s0-s11.
    unsafe { pf_dot_8rows(w.as_ptr(), x.as_ptr(), groups, acc.as_mut_ptr(), 4 * k) }
}

/// One whole row through a Block4 layer, 16 channels per pass, requantization fused (`mulh`,
/// add, `sra`, clamp; exact for `shift ≥ 33`, see `Requant::apply32`): the bias goes straight
/// into the accumulators and each output is stored as it is made. Returns `false`, doing
/// nothing, unless `l.fused()`, `k % 4 == 0`, `n % 4 == 0` and the lengths are exact. Takes
/// the first `16·⌊n/16⌋` channels and returns how many it did (0: none).
#[inline(always)]
pub fn row<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) -> usize {
    let (k, n) = (l.k, l.n());
    let ok = l.fused() && k % 4 == 0 && k > 0 && n % 4 == 0 && n >= 16 && l.w.len() == n * k && l.rq.len() == n && x.len() == k && y.len() == n;
    if !ok {
        return 0;
    }
    let mut args = Row16Args {
        x: x.as_ptr(),
        groups: k / 4,
        bias: l.bias.as_ptr(),
        rq: l.rq.as_ptr(),
        y: y.as_mut_ptr().cast(),
        blocks16: n / 16,
        stride: 4 * k,
    };
    // SAFETY: the routine reads `16·⌊n/16⌋·k` weight bytes, `k` inputs, and as many biases and
    // requants (lengths checked above; `lw` of biases and requants is aligned by their types),
    // writes that many outputs of `O`'s size into `y` (length checked), and restores ra and
    // s0-s11. Every shift is in 33..=62 (`fast_rq`).
    unsafe {
        match O::KIND {
            OutKind::I8 => pf_row16_i8(&mut args, l.w.as_ptr()),
            OutKind::I16 => pf_row16_i16(&mut args, l.w.as_ptr()),
            OutKind::I32 => pf_row16_i32(&mut args, l.w.as_ptr()),
        }
    }
    16 * (n / 16)
}

/// Stack scratch: the 16 accumulators of a pass (64 bytes).
pub const STACK_BYTES: usize = 64;

/// A Block4 layer on RV32 (`k % 4 == 0`, `n % 4 == 0`): whole rows 16 channels per pass in
/// assembly when every multiplier is fused, the last `n % 16` channels (or every channel of
/// other layers) through the portable loop with 16- and 8-channel inner passes.
#[inline]
pub fn block4<O: Activation>(l: &Linear<'_>, x: &[i16], y: &mut [O]) {
    let (k, n) = (l.k, l.n());
    if l.fused() && n >= 16 {
        for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
            let done = row(l, xr, yr);
            if let Some(yt) = yr.get_mut(done..) {
                portable::block4_rows(&l.channels_from(done), xr, yt, wide, portable::dot_block4);
            }
        }
        return;
    }
    portable::block4_rows(l, x, y, wide, portable::dot_block4)
}

/// The first channels of a row in passes of 16, then 8: each input loaded once per 16 or 8 MACs.
#[inline(always)]
fn wide<O: Activation>(l: &Linear<'_>, xr: &[i16], yr: &mut [O]) -> usize {
    let done = wide_sets::<O, 16>(l, xr, yr, 0, dot_4blocks);
    wide_sets::<O, 8>(l, xr, yr, done, dot_2blocks)
}
