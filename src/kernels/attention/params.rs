//! The parameters and shapes of one attention call.

use crate::quant::Requant;

/// Quantization parameters of one attention block.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttentionParams {
    /// Score difference (`s_q · s_k` units) to Q6 base-2 exponent: `s_q·s_k/sqrt(dh)·log2(e)·64`.
    pub softmax: Requant,
    /// `p · v` (units `s_v / 256`) to the context scale `s_ctx`.
    pub ctx: Requant,
}

/// Query heads, key/value heads and the head dimension. Query head `h` reads key/value head
/// `h / (q / kv)`: multi-head when `kv == q`, grouped-query when fewer, multi-query when 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    pub q: usize,
    pub kv: usize,
    pub dim: usize,
}

impl Heads {
    /// Multi-head attention over `d = heads · dim`.
    pub const fn multi(heads: usize, d: usize) -> Heads {
        Heads { q: heads, kv: heads, dim: match d.checked_div(heads) { Some(dim) => dim, None => 0 } }
    }

    /// Width of a query (and context) row.
    pub const fn q_width(self) -> usize {
        self.q * self.dim
    }

    /// Width of a key (and value) row.
    pub const fn kv_width(self) -> usize {
        self.kv * self.dim
    }

    /// Whether the shape is usable: every count non-zero, `kv` divides `q`.
    pub const fn valid(self) -> bool {
        self.q > 0 && self.kv > 0 && self.dim > 0 && self.q % self.kv == 0
    }

    /// The key/value head query head `h` reads.
    #[inline(always)]
    pub const fn kv_of(self, h: usize) -> usize {
        h / (self.q / self.kv)
    }
}

/// Which keys each query row may attend to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mask {
    /// Keys at or past `key_len` are padding.
    pub key_len: usize,
    /// Whether key `j` is hidden from query rows before it.
    pub causal: bool,
    /// Absolute position of query row 0 (for the causal mask with a KV cache).
    pub q_pos0: usize,
}

impl Mask {
    /// How many of `n_keys` keys query row `r` sees: `key_len`, and if causal `q_pos0 + r + 1`.
    #[inline(always)]
    pub fn visible(self, n_keys: usize, r: usize) -> usize {
        let valid = n_keys.min(self.key_len);
        if self.causal {
            valid.min(self.q_pos0.saturating_add(r).saturating_add(1))
        } else {
            valid
        }
    }
}

/// `Σ a_i · b_i` over the shorter of the two.
#[inline(always)]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).fold(0i32, |acc, (&x, &y)| acc.wrapping_add(x as i32 * y as i32))
}
