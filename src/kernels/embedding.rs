//! Token embedding plus an additive position row, into the `i16` residual stream.
//!
//! `x[j] = sat(rq[id](table[id, j]) + pos[j])`
//!
//! - `table`: `(vocab, d)` `i8` or int4 (`int4`), one scale per row (shared with a tied output
//!   projection);
//! - `rq`: `(vocab,)` multipliers `s_row · (sqrt(d) if scaled) / s_x`;
//! - `pos`: `(d,)` `i16`, a row of the position table already in the scale `s_x`, or empty (no
//!   added positions).

use super::layout::Layout;
use crate::quant::{sat_i16, Requant};

/// The embedding of one side (source or target), as views into the blob.
#[derive(Debug, Clone, Copy, Default)]
pub struct Embedding<'a> {
    /// `(vocab, d)`, stored in `layout`.
    pub table: &'a [i8],
    pub layout: Layout,
    /// Two weights per byte ([`crate::blob::DType::I4`]).
    pub int4: bool,
    pub rq: &'a [Requant],
    pub d: usize,
}

impl Embedding<'_> {
    /// Write the embedding of token `id` plus the position row `pos` (`d` values, or empty)
    /// into `x` (`d` values). An out-of-range `id` writes nothing and returns `false`; the model
    /// checks ids before calling.
    pub fn lookup(&self, id: usize, pos: &[i16], x: &mut [i16]) -> bool {
        let d = self.d;
        let vocab = self.rq.len();
        let Some(rq) = self.rq.get(id) else {
            return false;
        };
        if self.table.len() < self.layout.bytes(vocab, d, self.int4) {
            return false;
        }
        for (j, xj) in x.iter_mut().enumerate().take(d) {
            let e = self.layout.get(self.table, self.int4, id, j, d);
            let pj = pos.get(j).copied().unwrap_or(0);
            *xj = sat_i16(rq.apply(e as i64) + pj as i64);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_adds_position_and_saturates() {
        let table = [1i8, -2, 127, -128];
        let rq = [Requant::from_real(2.0), Requant::from_real(300.0)];
        let pos = [5i16, -5];
        let e = Embedding { table: &table, layout: Layout::RowMajor, int4: false, rq: &rq, d: 2 };
        let mut x = [0i16; 2];
        assert!(e.lookup(0, &pos, &mut x));
        assert_eq!(x, [7, -9]);
        assert!(e.lookup(1, &[], &mut x));
        assert_eq!(x, [32767, -32768]);
        assert!(!e.lookup(2, &pos, &mut x));
    }
}
