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
        assert_eq!(Layout::from_code(2, 8, 8), None);
    }
}
