//! Host benchmarks of the linear kernel on the shapes of DESIGN §6 and of softmax:
//! `cargo bench --bench kernels` (criterion; `-- --quick` for a short run).
//!
//! The weights are random int8 in [`Layout::Block4`] (what the converter emits), the inputs `i16`
//! in `±2048`, requantized per channel to `i8`. On the host `linear_block4` runs its portable
//! inner loop (the SMLAD path exists only on Cortex-M4/M7). The on-target instruction counts
//! come from `boards/bench` (`scripts/bench`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use picoformer::kernels::layout::Layout;
use picoformer::kernels::linear::{linear_ref, Linear};
use picoformer::kernels::softmax::softmax_u8;
use picoformer::quant::Requant;

/// `(rows, k, n)`, as in DESIGN §6.
const SHAPES: [(usize, usize, usize); 5] = [(1, 128, 128), (1, 128, 512), (1, 512, 128), (1, 128, 1000), (16, 128, 128)];

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
    let mut rng = Rng(0x2545_f491);
    let mut g = c.benchmark_group("linear_block4_i8");
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
    let mut rng = Rng(0x1234_5678);
    let rq = Requant { mult: 1 << 30, shift: 36 };
    let mut g = c.benchmark_group("softmax_u8");
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

criterion_group!(benches, linear, softmax);
criterion_main!(benches);
