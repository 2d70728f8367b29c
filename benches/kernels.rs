//! Host benchmarks of the linear kernel on the shapes of DESIGN §6 and of softmax:
//! `cargo bench --bench kernels` (criterion; `-- --quick` for a short run).
//!
//! The weights are random int8 in [`Layout::Block4`] (what the converter emits), the inputs `i16`
//! in `±2048`, requantized per channel to `i8`. On x86-64 each kernel runs at every SIMD level
//! the CPU has (`portable`, `sse4.1`, `avx`, `avx2`: the group's name ends in the level), the
//! de-en shapes beside DESIGN §6's: the output projection 1×128×4000 to `i32`, the encoder's
//! 16×128×256. The on-target instruction counts come from `boards/bench` (`scripts/bench`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use picoformer::kernels::layout::Layout;
use picoformer::kernels::linear::{linear_ref, Linear};
use picoformer::kernels::softmax::softmax_u8;
use picoformer::quant::Requant;

/// `(rows, k, n)`, as in DESIGN §6, then the de-en encoder's FFN.
const SHAPES: [(usize, usize, usize); 6] = [(1, 128, 128), (1, 128, 512), (1, 512, 128), (1, 128, 1000), (16, 128, 128), (16, 128, 256)];

/// A level's name and what selects it.
type Levels = Vec<(&'static str, Box<dyn Fn()>)>;

/// The SIMD levels to compare: every one the CPU has (x86-64), or just the build's kernels.
fn levels() -> Levels {
    #[cfg(target_arch = "x86_64")]
    {
        use picoformer::kernels::x86_features::{detected, set_cap, Level};
        Level::ALL.into_iter().filter(|&l| l <= detected()).map(|l| (l.name(), Box::new(move || set_cap(Some(l))) as Box<dyn Fn()>)).collect()
    }
    #[cfg(not(target_arch = "x86_64"))]
    vec![("build", Box::new(|| ()) as Box<dyn Fn()>)]
}

struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

/// One layer's data: Block4 weights, bias, requantizers.
struct Layer {
    w: Vec<i8>,
    bias: Vec<i32>,
    rq: Vec<Requant>,
    k: usize,
}

impl Layer {
    fn random(rng: &mut Rng, k: usize, n: usize) -> Layer {
        let mut w = vec![0i8; n * k];
        for o in 0..n {
            for j in 0..k {
                w[Layout::Block4.index(o, j, k)] = rng.next() as i8;
            }
        }
        let bias = (0..n).map(|_| (rng.next() as i32) >> 16).collect();
        let rq = (0..n).map(|_| Requant { mult: (1 << 30) | (rng.next() as i32 & 0x3fff_ffff), shift: 43 }).collect();
        Layer { w, bias, rq, k }
    }

    fn linear(&self) -> Linear<'_> {
        Linear::new(&self.w, Layout::Block4, &self.bias, &self.rq, self.k)
    }
}

fn linear(c: &mut Criterion) {
    for (level, set) in levels() {
        set();
        let mut rng = Rng(0x2545_f491);
        let mut g = c.benchmark_group(format!("linear_block4_i8/{level}"));
        for &(rows, k, n) in &SHAPES {
            let layer = Layer::random(&mut rng, k, n);
            let l = layer.linear();
            let x: Vec<i16> = (0..rows * k).map(|_| (rng.next() as i32 >> 20) as i16).collect();
            let mut y = vec![0i8; rows * n];
            g.throughput(Throughput::Elements((rows * k * n) as u64));
            g.bench_function(BenchmarkId::from_parameter(format!("{rows}x{k}x{n}")), |b| {
                b.iter(|| l.forward(black_box(&x), black_box(&mut y)))
            });
        }
        g.finish();
        let layer = Layer::random(&mut rng, 128, 4000);
        let l = layer.linear();
        let x: Vec<i16> = (0..128).map(|_| (rng.next() as i32 >> 20) as i16).collect();
        let mut y = vec![0i32; 4000];
        let mut g = c.benchmark_group(format!("linear_block4_i32/{level}"));
        g.throughput(Throughput::Elements(128 * 4000));
        g.bench_function("1x128x4000", |b| b.iter(|| l.forward(black_box(&x), black_box(&mut y))));
        g.finish();
    }
    let mut rng = Rng(0x2545_f491);
    let layer = Layer::random(&mut rng, 128, 128);
    let l = layer.linear();
    let x: Vec<i16> = (0..128).map(|_| (rng.next() as i32 >> 20) as i16).collect();
    let mut y = vec![0i8; 128];
    let mut g = c.benchmark_group("linear_ref_i8");
    g.throughput(Throughput::Elements(128 * 128));
    g.bench_function("1x128x128", |b| b.iter(|| linear_ref(&l, black_box(&x), black_box(&mut y))));
    g.finish();
}

fn softmax(c: &mut Criterion) {
    for (level, set) in levels() {
        set();
        softmax_at(c, level);
    }
}

fn softmax_at(c: &mut Criterion, level: &str) {
    let mut rng = Rng(0x1234_5678);
    let rq = Requant { mult: 1 << 30, shift: 36 };
    let mut g = c.benchmark_group(format!("softmax_u8/{level}"));
    for (rows, len) in [(16usize, 16usize), (1, 1000)] {
        let scores: Vec<i32> = (0..rows * len).map(|_| (rng.next() as i32) >> 17).collect();
        let mut work = scores.clone();
        let mut p = vec![0u8; rows * len];
        g.throughput(Throughput::Elements((rows * len) as u64));
        g.bench_function(BenchmarkId::from_parameter(format!("{rows}x{len}")), |b| {
            b.iter(|| {
                // softmax works in place: each iteration starts from a fresh copy
                work.copy_from_slice(&scores);
                for (s, pr) in work.chunks_exact_mut(len).zip(p.chunks_exact_mut(len)) {
                    softmax_u8(black_box(s), rq, black_box(pr));
                }
            })
        });
    }
    g.finish();
}

/// Attention of one decoder step (1 query row, 4 heads of 32, 16 keys) and of a 16-token
/// encoder layer (16 rows), with the converter's multipliers; LayerNorm of 1 and 16 rows of 128.
fn attention_layernorm(c: &mut Criterion) {
    use picoformer::kernels::attention::{attention, AttentionParams, Heads, Mask};
    use picoformer::kernels::layernorm::LayerNorm;
    for (level, set) in levels() {
        set();
        let mut rng = Rng(0x9e37_79b9);
        let mut v8 = |len: usize| -> Vec<i8> { (0..len).map(|_| rng.next() as i8 >> 1).collect() };
        let (q, k, v) = (v8(16 * 128), v8(16 * 128), v8(16 * 128));
        let p = AttentionParams { softmax: Requant { mult: 1_814_401_039, shift: 36 }, ctx: Requant { mult: 1_399_962_487, shift: 30 } };
        let (mut s, mut pr, mut out) = (vec![0i32; 64], vec![0u8; 64], vec![0i16; 16 * 128]);
        let mut g = c.benchmark_group(format!("attention/{level}"));
        for rows in [1usize, 16] {
            let mask = Mask { key_len: 16, causal: false, q_pos0: 0 };
            g.throughput(Throughput::Elements((rows * 16 * 128 * 2) as u64));
            g.bench_function(BenchmarkId::from_parameter(format!("{rows}x16keys")), |b| {
                b.iter(|| attention(&p, Heads::multi(4, 128), black_box(&q[..rows * 128]), &k, &v, mask, &mut s, &mut pr, black_box(&mut out[..rows * 128])))
            });
        }
        g.finish();
        let gain: Vec<i32> = (0..128).map(|_| (rng.next() as i32) >> 12).collect();
        let bias: Vec<i32> = (0..128).map(|_| (rng.next() as i32) >> 20).collect();
        let ln = LayerNorm { gain: &gain, bias: &bias, shift: 33, eps: 260 };
        let x: Vec<i16> = (0..16 * 128).map(|_| (rng.next() as i32 >> 20) as i16).collect();
        let mut y = vec![0i16; 16 * 128];
        let mut g = c.benchmark_group(format!("layernorm/{level}"));
        for rows in [1usize, 16] {
            g.throughput(Throughput::Elements((rows * 128) as u64));
            g.bench_function(BenchmarkId::from_parameter(format!("{rows}x128")), |b| b.iter(|| ln.forward(black_box(&x[..rows * 128]), black_box(&mut y[..rows * 128]))));
        }
        g.finish();
    }
}

criterion_group!(benches, linear, softmax, attention_layernorm);
criterion_main!(benches);
