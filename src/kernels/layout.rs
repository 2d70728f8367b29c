//! Weight layouts the converter may choose for an `(n, k)` int8 matrix.
//!
//! - [`Layout::RowMajor`]: `w[o, j]` at `o·k + j`, as in PyTorch.
//! - [`Layout::Block4`] (`n % 4 == 0`, `k % 4 == 0`): blocks of 4 output rows; inside a block,
//!   groups of 4 inputs; inside a group, one 32-bit word per row holding its 4 weights in the
//!   byte order `j0, j2, j1, j3`:
//!
//!   ```text
//!   w[o, j] at (o/4)·4k + (j/4)·16 + (o%4)·4 + PERM[j%4],   PERM = [0, 2, 1, 3]
//!   ```
//!
//!   So one 16-byte load gives 4 rows × 4 inputs, and on a Cortex-M4 `SXTB16 w` and
//!   `SXTB16 w, ROR #8` split a word into the int16 pairs `(j0, j1)` and `(j2, j3)` that `SMLAD`
//!   multiplies with two int16 inputs loaded as one word.
//!
//! int4 weights ([`crate::blob::DType::I4`], two's-complement nibbles in `-8..=7`, low nibble
//! first) keep the same order at the granularity of rows and groups, at half the bytes:
//!
//! - `RowMajor`: row `o` starts at byte `o·⌈k/2⌉` (rows padded to a whole byte); `w[o, j]` is
//!   nibble `j % 2` of byte `o·⌈k/2⌉ + j/2`.
//! - `Block4`: a group (4 rows × 4 inputs) is 8 bytes, two words of two rows each; inside a
//!   word, byte `r` (row `r` of the pair) holds `(j0, j2)` and byte `2 + r` holds `(j1, j3)`:
//!
//!   ```text
//!   w[o, j] at byte (o/4)·2k + (j/4)·8 + ((o%4)/2)·4 + (j%2)·2 + o%2, nibble (j%4)/2
//!   ```
//!
//!   so after `EOR 0x88888888` (each nibble + 8, unsigned), `AND 0x000F000F` of the word
//!   shifted right by 0, 4, 8, 12 gives the int16 pairs `(j0, j1)`, `(j2, j3)` of row 0 and of
//!   row 1, each offset by 8, ready for `SMLAD` (`super::linear`'s DSP path subtracts `8·Σx`).

/// How an `(n, k)` weight matrix is stored. The blob's tensor table records it per tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    #[default]
    RowMajor,
    Block4,
}

/// Byte position of input `j % 4` inside its row's word.
pub const PERM: [usize; 4] = [0, 2, 1, 3];

impl Layout {
    /// The code stored in the tensor table.
    pub const fn code(self) -> u16 {
        match self {
            Layout::RowMajor => 0,
            Layout::Block4 => 1,
        }
    }

    /// The layout a table code stands for, if it is valid for an `(n, k)` matrix.
    pub const fn from_code(code: u16, n: usize, k: usize) -> Option<Layout> {
        match code {
            0 => Some(Layout::RowMajor),
            1 if n % 4 == 0 && k % 4 == 0 => Some(Layout::Block4),
            _ => None,
        }
    }

    /// Where `w[o, j]` lives in an `(n, k)` matrix stored this way.
    #[inline(always)]
    pub const fn index(self, o: usize, j: usize, k: usize) -> usize {
        match self {
            Layout::RowMajor => o * k + j,
            // PERM[j % 4] = bits 0 and 1 of j swapped
            Layout::Block4 => (o / 4) * 4 * k + (j / 4) * 16 + (o % 4) * 4 + ((j & 1) << 1 | (j & 2) >> 1),
        }
    }

    /// int4: the byte holding `w[o, j]`, and whether it is the high nibble.
    #[inline(always)]
    pub const fn nibble(self, o: usize, j: usize, k: usize) -> (usize, bool) {
        match self {
            Layout::RowMajor => (o * k.div_ceil(2) + j / 2, j % 2 == 1),
            Layout::Block4 => ((o / 4) * 2 * k + (j / 4) * 8 + ((o % 4) / 2) * 4 + (j % 2) * 2 + o % 2, j & 2 != 0),
        }
    }

    /// Bytes of an `(n, k)` matrix stored this way, int8 or int4.
    #[inline(always)]
    pub const fn bytes(self, n: usize, k: usize, int4: bool) -> usize {
        if int4 {
            n * k.div_ceil(2)
        } else {
            n * k
        }
    }

    /// `w[o, j]` of an `(n, k)` matrix stored this way, int8 or int4 (0 past the end).
    #[inline(always)]
    pub fn get(self, w: &[i8], int4: bool, o: usize, j: usize, k: usize) -> i8 {
        if int4 {
            let (b, high) = self.nibble(o, j, k);
            let v = w.get(b).copied().unwrap_or(0);
            if high {
                v >> 4
            } else {
                (v << 4) >> 4
            }
        } else {
            w.get(self.index(o, j, k)).copied().unwrap_or(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block4_is_a_permutation() {
        let (n, k) = (8, 12);
        let mut seen = [false; 96];
        for o in 0..n {
            for j in 0..k {
                let i = Layout::Block4.index(o, j, k);
                assert!(!seen[i]);
                seen[i] = true;
            }
        }
        // row 1, inputs 4..8 form the word at block 0, group 1, row 1
        assert_eq!(Layout::Block4.index(1, 4, k), 16 + 4);
        assert_eq!(Layout::Block4.index(1, 5, k), 16 + 4 + 2);
        assert_eq!(Layout::Block4.index(1, 6, k), 16 + 4 + 1);
        for j in 0..4 {
            assert_eq!(Layout::Block4.index(0, j, k), PERM[j]);
        }
        assert_eq!(Layout::from_code(1, 6, 8), None);
        // every layout's code round-trips; row-major takes any shape, an unknown code none
        assert_eq!(Layout::from_code(Layout::RowMajor.code(), 6, 7), Some(Layout::RowMajor));
        assert_eq!(Layout::from_code(Layout::Block4.code(), 8, 12), Some(Layout::Block4));
        assert_eq!(Layout::from_code(2, 8, 8), None);
        // int4: every (o, j) a distinct nibble of the n·k/2 bytes
        let mut seen4 = [[false; 2]; 48];
        for o in 0..n {
            for j in 0..k {
                let (b, hi) = Layout::Block4.nibble(o, j, k);
                assert!(!seen4[b][hi as usize]);
                seen4[b][hi as usize] = true;
            }
        }
        // row 1, inputs 0..4: byte 1 holds (j0, j2), byte 3 holds (j1, j3)
        assert_eq!([0, 1, 2, 3].map(|j| Layout::Block4.nibble(1, j, k)), [(1, false), (3, false), (1, true), (3, true)]);
        assert_eq!(Layout::Block4.nibble(2, 4, k), (8 + 4, false));
        let w = [0x7fu8 as i8, 0x89u8 as i8];
        assert_eq!([0, 1, 2].map(|j| Layout::RowMajor.get(&w, true, 0, j, 3)), [-1, 7, -7]);
        assert_eq!(Layout::RowMajor.bytes(3, 5, true), 9);
        assert_eq!(Layout::from_code(2, 8, 8), None);
    }
}
