//! Token embedding plus sinusoidal positions, into the `i16` residual stream.
//!
//! `x[j] = sat(rq[id](table[id, j]) + pos[p, j])`
//!
//! - `table`: `(vocab, d)` `i8`, one scale per row (shared with a tied output projection);
//! - `rq`: `(vocab,)` multipliers `s_row · (sqrt(d) if scaled) / s_x`;
//! - `pos`: `(max_len, d)` `i16`, the sinusoidal table already in the scale `s_x`.

use super::layout::Layout;
use crate::quant::{sat_i16, Requant};

/// The embedding of one side (source or target), as views into the blob.
#[derive(Debug, Clone, Copy, Default)]
pub struct Embedding<'a> {
    /// `(vocab, d)`, stored in `layout`.
    pub table: &'a [i8],
    pub layout: Layout,
    pub rq: &'a [Requant],
    pub pos: &'a [i16],
    pub d: usize,
}

impl Embedding<'_> {
    /// Write the embedding of token `id` at position `p` into `x` (`d` values). Out-of-range
    /// `id` or `p` write nothing and return `false`; the model checks both before calling.
    pub fn lookup(&self, id: usize, p: usize, x: &mut [i16]) -> bool {
        let d = self.d;
        let vocab = self.rq.len();
        let (Some(rq), Some(pos)) = (self.rq.get(id), self.pos.get(p * d..(p + 1) * d)) else {
            return false;
        };
        if self.table.len() < vocab * d {
            return false;
        }
        for (j, (xj, &pj)) in x.iter_mut().zip(pos).enumerate() {
            let e = self.table.get(self.layout.index(id, j, d)).copied().unwrap_or(0);
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
        let pos = [0i16, 0, 5, -5];
        let e = Embedding { table: &table, layout: Layout::RowMajor, rq: &rq, pos: &pos, d: 2 };
        let mut x = [0i16; 2];
        assert!(e.lookup(0, 1, &mut x));
        assert_eq!(x, [7, -9]);
        assert!(e.lookup(1, 0, &mut x));
        assert_eq!(x, [32767, -32768]);
        assert!(!e.lookup(2, 0, &mut x));
        assert!(!e.lookup(0, 2, &mut x));
    }
}
