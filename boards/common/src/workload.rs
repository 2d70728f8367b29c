//! PLACEHOLDER workload: int8 matrix-vector products over a static table.
//!
//! Each item multiplies the static weight table `W` (`(ROWS, COLS)` int8, row-major) by its own
//! int8 input `x` (`(COLS,)`), giving `y = W x` (`(ROWS,)` i32). Its result is the arg-max of `y`
//! as a token id and the 32-bit FNV-1a digest of `y` as little-endian bytes. The expected values
//! were computed independently on the host (a Python transcription of this file).
//!
//! All values come from xorshift32: weights from seed [`W_SEED`], item `k`'s input from its seed.

use picoformer::TokenId;

/// Rows of `W` (outputs).
pub const ROWS: usize = 128;
/// Columns of `W` (inputs).
pub const COLS: usize = 128;
/// Seed of the weight table.
pub const W_SEED: u32 = 0x1234_5678;

/// What an item produces, and what it is checked against.
#[derive(Clone, Copy, PartialEq, Eq, Debug, defmt::Format)]
pub struct Output {
    /// Index of the largest `y[r]` (the first one on ties).
    pub token: TokenId,
    /// FNV-1a (32-bit) of `y` as little-endian bytes.
    pub digest: u32,
}

/// One checked item.
pub struct Item {
    /// Seed of this item's input vector.
    pub seed: u32,
    /// The host's result.
    pub expected: Output,
}

impl Item {
    const fn new(seed: u32, token: TokenId, digest: u32) -> Item {
        Item {
            seed,
            expected: Output { token, digest },
        }
    }
}

/// The items, with the host's expected outputs: `(seed, token, digest)`.
pub static ITEMS: [Item; 4] = [
    Item::new(1, 77, 0xFE43_3C2C),
    Item::new(2, 98, 0xDB3A_D24D),
    Item::new(3, 92, 0xDDA7_2290),
    Item::new(0xDEAD_BEEF, 60, 0xCA35_C7FC),
];

/// The weight table, `(ROWS, COLS)` row-major, built at compile time into flash.
pub static W: [[i8; COLS]; ROWS] = weights();

const fn xorshift32(mut s: u32) -> u32 {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    s
}

const fn weights() -> [[i8; COLS]; ROWS] {
    let mut w = [[0i8; COLS]; ROWS];
    let mut s = W_SEED;
    let mut r = 0;
    while r < ROWS {
        let mut c = 0;
        while c < COLS {
            s = xorshift32(s);
            w[r][c] = (s >> 24) as u8 as i8;
            c += 1;
        }
        r += 1;
    }
    w
}

/// Item input `x` (`(COLS,)`, full int8 range) from its seed.
pub fn input(seed: u32) -> [i8; COLS] {
    let mut x = [0i8; COLS];
    let mut s = seed;
    for v in x.iter_mut() {
        s = xorshift32(s);
        *v = (s >> 24) as u8 as i8;
    }
    x
}

/// `y = W x`: `y[r] = sum_c W[r][c] * x[c]`, exact in i32 (|y| <= 128 * 128 * 128).
pub fn matvec(w: &[[i8; COLS]; ROWS], x: &[i8; COLS], y: &mut [i32; ROWS]) {
    for (yr, wr) in y.iter_mut().zip(w) {
        *yr = wr.iter().zip(x).map(|(&a, &b)| a as i32 * b as i32).sum();
    }
}

/// 32-bit FNV-1a over the little-endian bytes of `y`.
pub fn fnv1a(y: &[i32]) -> u32 {
    let mut h: u32 = 0x811C_9DC5;
    for v in y {
        for b in v.to_le_bytes() {
            h ^= b as u32;
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}

/// Runs one item.
pub fn run_item(item: &Item) -> Output {
    let x = input(item.seed);
    let mut y = [0i32; ROWS];
    matvec(&W, &x, &mut y);
    let mut token = 0;
    for (r, &v) in y.iter().enumerate() {
        if v > y[token] {
            token = r;
        }
    }
    Output {
        token: token as TokenId,
        digest: fnv1a(&y),
    }
}
