//! GPTQ rounding of int8 weights (`convert --weights gptq`; Frantar et al., "GPTQ", ICLR 2023).
//!
//! Each row keeps the scale `max |w| / qmax` of [`WeightRule::Max`](crate::quantize::WeightRule),
//! so the blob's format and the runtime are unchanged; only the integer values differ. A
//! linear `y = W·x` with calibration inputs `X` (`(rows, k)`) has the Gram matrix `H = XᵀX`
//! (`(k, k)`). A row is rounded one input column at a time, and each column's rounding error is
//! spread over the columns not yet rounded through the upper Cholesky factor `U` of `H⁻¹`, so
//! that `X·w_qᵀ`, not `w` itself, stays close to float. Zero cost at run time.
//!
//! The Grams come from a second float pass over the calibration data ([`grams`]): every
//! observed site is mapped to the linear it feeds (a stack's stream, norm output or encoder
//! output to Q/K/V and the first FFN linears, `Ctx` to O, `Hidden` to the second FFN linear,
//! the final norm or pooled vector to the output projection). A tied table is rounded for its
//! use as the output projection; its rows are still what the embedding looks up (on de-en that
//! measured better than keeping the table round-to-nearest, see `models/de-en/README.md`).

use std::collections::HashMap;

use anyhow::Result;
use picoformer::blob::{ActKind, Part, Proj, Stack, Sub, Tag};
use picoformer::observe::{Block, Data, Observer, Point, Site};
use picoformer::reference::FloatModel;
use picoformer::tokenizer::Tokenizer;

use crate::calibrate::{calibrate_with, CalibData};
use crate::quantize::{Precision, Rows};

/// `H = Σ x·xᵀ` over a linear's calibration inputs: `(k, k)` row-major.
#[derive(Debug, Clone)]
pub struct Gram {
    pub k: usize,
    pub h: Vec<f64>,
}

impl Gram {
    fn add(&mut self, x: &[f32]) {
        let k = self.k;
        for row in x.chunks_exact(k) {
            for (i, &a) in row.iter().enumerate() {
                if a == 0.0 {
                    continue;
                }
                let a = a as f64;
                for (h, &b) in self.h[i * k..(i + 1) * k].iter_mut().zip(row) {
                    *h += a * b as f64;
                }
            }
        }
    }
}

/// The Gram matrix of every weight tag's inputs.
pub type Grams = HashMap<Tag, Gram>;

/// Records each linear's inputs from the sites the float model reports.
struct Collect {
    d: usize,
    rope: bool,
    swiglu: bool,
    /// The output projection's weight tag (its table's when tied) and the site it reads.
    output: (Tag, Site),
    /// The input of the sublayer being run: the latest stream, norm or encoder output
    /// (`(rows, d)`).
    last: Vec<f32>,
    grams: Grams,
}

impl Collect {
    /// Adds `x`, of as many rows as `last`, to `tag`'s Gram.
    fn add(&mut self, tag: Tag, x: &[f32]) {
        let rows = self.last.len() / self.d.max(1);
        add_rows(&mut self.grams, tag, x, rows);
    }

    fn add_last(&mut self, tag: Tag) {
        let rows = self.last.len() / self.d.max(1);
        add_rows(&mut self.grams, tag, &self.last, rows);
    }
}

/// Adds `x`, `rows` rows, to `tag`'s Gram.
fn add_rows(grams: &mut Grams, tag: Tag, x: &[f32], rows: usize) {
    if rows == 0 || !x.len().is_multiple_of(rows) {
        return;
    }
    let k = x.len() / rows;
    grams.entry(tag).or_insert_with(|| Gram { k, h: vec![0.0; k * k] }).add(x);
}

impl Observer for Collect {
    fn observe(&mut self, site: Site, data: Data<'_>) {
        let Data::F32(v) = data else { return };
        let (stack, layer, block, point) = match site {
            Site::Enc { layer, block, point } => (Stack::Encoder, layer, block, point),
            Site::Dec { layer, block, point } => (Stack::Decoder, layer, block, point),
            Site::Logits => return,
            _ => {
                // embeddings, final norms, the pooled vector: the next linear's input
                self.last = v.to_vec();
                if site == self.output.1 {
                    self.add_last(self.output.0);
                }
                return;
            }
        };
        let sub = match block {
            Block::SelfAttn => Sub::SelfAttn,
            Block::CrossAttn => Sub::CrossAttn,
            Block::FeedForward => Sub::FeedForward,
        };
        let tag = |proj| Tag::Linear { stack, layer, sub, proj, part: Part::Weight };
        match point {
            Point::Norm => self.last = v.to_vec(),
            Point::QPre => self.add_last(tag(Proj::Q)),
            Point::KPre => self.add_last(tag(Proj::K)),
            Point::Q if !self.rope || sub == Sub::CrossAttn => self.add_last(tag(Proj::Q)),
            Point::K if !self.rope || sub == Sub::CrossAttn => self.add_last(tag(Proj::K)),
            Point::V => self.add_last(tag(Proj::V)),
            Point::Ctx => self.add(tag(Proj::O), v),
            Point::PreAct => self.add_last(tag(if self.swiglu { Proj::Gate } else { Proj::Up })),
            Point::Up => self.add_last(tag(Proj::Up)),
            Point::Hidden => self.add(tag(Proj::Down), v),
            _ => {}
        }
    }
}

/// The Gram matrix of every linear's inputs, from a float pass over
/// `data` like calibration's.
pub fn grams(fm: &FloatModel<'_>, tok: Option<&Tokenizer<'_>>, data: &CalibData) -> Result<Grams> {
    let c = fm.config;
    let mut o = Collect {
        d: c.d_model,
        rope: c.positions == picoformer::blob::PosKind::Rope,
        swiglu: c.act == ActKind::SwiGlu,
        output: (Precision::output_tag(&c), if c.token_output() { Site::DecNorm } else { Site::Pooled }),
        last: Vec::new(),
        grams: Grams::new(),
    };
    calibrate_with(fm, tok, data, &mut o)?;
    Ok(o.grams)
}

/// Upper Cholesky factor `U` (`a = Uᵀ·U`) of a symmetric positive definite `(k, k)` matrix;
/// `None` if it is not positive definite.
fn cholesky_upper(a: &[f64], k: usize) -> Option<Vec<f64>> {
    let mut u = vec![0.0; k * k];
    for i in 0..k {
        for j in i..k {
            let s = a[i * k + j] - (0..i).map(|t| u[t * k + i] * u[t * k + j]).sum::<f64>();
            if i == j {
                if s <= 0.0 {
                    return None;
                }
                u[i * k + i] = s.sqrt();
            } else {
                u[i * k + j] = s / u[i * k + i];
            }
        }
    }
    Some(u)
}

/// `a⁻¹` of a symmetric positive definite matrix from its upper Cholesky factor.
fn inverse_from_cholesky(u: &[f64], k: usize) -> Vec<f64> {
    // U⁻¹ (upper triangular), then a⁻¹ = U⁻¹·U⁻ᵀ
    let mut ui = vec![0.0; k * k];
    for j in 0..k {
        ui[j * k + j] = 1.0 / u[j * k + j];
        for i in (0..j).rev() {
            let s: f64 = (i + 1..=j).map(|t| u[i * k + t] * ui[t * k + j]).sum();
            ui[i * k + j] = -s / u[i * k + i];
        }
    }
    let mut inv = vec![0.0; k * k];
    for i in 0..k {
        for j in i..k {
            let s: f64 = (j..k).map(|t| ui[i * k + t] * ui[j * k + t]).sum();
            inv[i * k + j] = s;
            inv[j * k + i] = s;
        }
    }
    inv
}

/// Relative damping added to the Gram's diagonal (GPTQ's default), so that it inverts.
const DAMP: f64 = 0.01;

/// Rows of `w` (`(n, k)` row-major) in `-qmax..=qmax` at the scales `scales`, GPTQ-rounded
/// against `g`. Falls back to round-to-nearest if the damped Gram is not positive definite.
pub fn round_rows(w: &[f32], k: usize, qmax: f64, scales: &[f64], g: &Gram) -> Vec<i8> {
    let nearest = || w.chunks_exact(k).zip(scales).flat_map(|(row, &s)| row.iter().map(move |&x| (x as f64 / s).round().clamp(-qmax, qmax) as i8)).collect();
    if g.k != k {
        return nearest();
    }
    let mut h = g.h.clone();
    // an input column that is always 0 carries no information: any value is exact
    let dead: Vec<bool> = (0..k).map(|j| h[j * k + j] == 0.0).collect();
    let mean = (0..k).map(|j| h[j * k + j]).sum::<f64>() / k as f64;
    for j in 0..k {
        h[j * k + j] += if dead[j] { 1.0 } else { DAMP * mean };
    }
    let Some(u) = cholesky_upper(&h, k).map(|l| inverse_from_cholesky(&l, k)).and_then(|inv| cholesky_upper(&inv, k)) else {
        return nearest();
    };
    let mut q = Vec::with_capacity(w.len());
    for (row, &s) in w.chunks_exact(k).zip(scales) {
        let mut r: Vec<f64> = row.iter().zip(&dead).map(|(&x, &d)| if d { 0.0 } else { x as f64 }).collect();
        for j in 0..k {
            let v = (r[j] / s).round().clamp(-qmax, qmax);
            q.push(v as i8);
            let e = (r[j] - v * s) / u[j * k + j];
            for t in j + 1..k {
                r[t] -= e * u[j * k + t];
            }
        }
    }
    q
}

/// [`round_rows`] of an already scaled [`Rows`]: its values replaced, its scales kept.
pub fn refine(rows: Rows, w: &[f32], k: usize, qmax: f64, g: &Gram) -> Rows {
    let q = round_rows(w, k, qmax, &rows.scales, g);
    Rows { q, scales: rows.scales }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f64 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }

    /// `rows` inputs of width `k` sharing one random component (noise `noise` each, column
    /// `dead` always 0), `n` random weight rows, their Gram and max |w| / `qmax` scales.
    fn case(n: usize, k: usize, rows: usize, mut seed: u64, noise: f64, dead: Option<usize>, qmax: f64) -> (Vec<f32>, Vec<f32>, Gram, Vec<f64>) {
        let x: Vec<f32> = (0..rows)
            .flat_map(|_| {
                let common = lcg(&mut seed);
                (0..k).map(|j| if Some(j) == dead { 0.0 } else { (common + noise * lcg(&mut seed)) as f32 }).collect::<Vec<_>>()
            })
            .collect();
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) as f32).collect();
        let mut g = Gram { k, h: vec![0.0; k * k] };
        g.add(&x);
        let scales = w.chunks_exact(k).map(|r| r.iter().fold(0f32, |m, v| m.max(v.abs())) as f64 / qmax).collect();
        (x, w, g, scales)
    }

    #[test]
    fn cholesky_inverse_inverts() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let u = cholesky_upper(&a, 3).unwrap();
        let inv = inverse_from_cholesky(&u, 3);
        for i in 0..3 {
            for j in 0..3 {
                let p: f64 = (0..3).map(|t| a[i * 3 + t] * inv[t * 3 + j]).sum();
                assert!((p - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12, "({i},{j}) = {p}");
            }
        }
        assert!(cholesky_upper(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    /// On correlated inputs GPTQ's output error `‖X·(w − w_q)‖²` is well below
    /// round-to-nearest's at the same scales, and every value stays in range.
    #[test]
    fn gptq_beats_nearest_on_correlated_inputs() {
        let (n, k, rows) = (8, 16, 200);
        let qmax = 7.0;
        let (x, w, g, scales) = case(n, k, rows, 7, 0.3, None, qmax);
        let nearest: Vec<i8> = w.chunks_exact(k).zip(&scales).flat_map(|(r, &s)| r.iter().map(move |&v| (v as f64 / s).round() as i8)).collect();
        let gptq = round_rows(&w, k, qmax, &scales, &g);
        let err = |q: &[i8]| -> f64 {
            let mut e = 0.0;
            for xr in x.chunks_exact(k) {
                for o in 0..n {
                    let d: f64 = (0..k).map(|j| xr[j] as f64 * (w[o * k + j] as f64 - q[o * k + j] as f64 * scales[o])).sum();
                    e += d * d;
                }
            }
            e
        };
        let (en, eg) = (err(&nearest), err(&gptq));
        assert!(gptq.iter().all(|&v| (-7..=7).contains(&v)));
        assert!(eg < 0.5 * en, "gptq {eg} vs nearest {en}");
    }

    /// The same rounding by the original OBS updates (GPTQ's eq. 2-3, the inverse Hessian
    /// updated column by column with no Cholesky factor): the same integers, a dead column
    /// (always 0) set to 0 and taking no error. Fewer inputs than columns: without its damping
    /// the Gram is singular; and weakly correlated ones, so the damping (the diagonal's mean)
    /// is far from any other entries' mean.
    #[test]
    fn matches_the_textbook_update_with_a_dead_column() {
        let (n, k, rows) = (6, 12, 8);
        let dead_col = 0;
        let qmax = 127.0;
        let (_, w, g, scales) = case(n, k, rows, 11, 2.0, Some(dead_col), qmax);

        let mut h = g.h.clone();
        let mean = (0..k).map(|j| h[j * k + j]).sum::<f64>() / k as f64;
        for j in 0..k {
            h[j * k + j] += if j == dead_col { 1.0 } else { DAMP * mean };
        }
        let u = cholesky_upper(&h, k).unwrap();
        let hinv0 = inverse_from_cholesky(&u, k);
        let mut want = Vec::new();
        for (row, &s) in w.chunks_exact(k).zip(&scales) {
            let mut r: Vec<f64> = row.iter().map(|&v| v as f64).collect();
            r[dead_col] = 0.0;
            let mut hi = hinv0.clone();
            for j in 0..k {
                let v = (r[j] / s).round().clamp(-qmax, qmax);
                want.push(v as i8);
                let e = (r[j] - v * s) / hi[j * k + j];
                for t in j + 1..k {
                    r[t] -= e * hi[j * k + t];
                }
                let hjj = hi[j * k + j];
                let (col, rowj): (Vec<f64>, Vec<f64>) = ((0..k).map(|a| hi[a * k + j]).collect(), (0..k).map(|b| hi[j * k + b]).collect());
                for a in 0..k {
                    for b in 0..k {
                        hi[a * k + b] -= col[a] * rowj[b] / hjj;
                    }
                }
            }
        }
        let got = round_rows(&w, k, qmax, &scales, &g);
        assert_eq!(got, want);
        assert!((0..n).all(|o| got[o * k + dead_col] == 0));
        // and not round-to-nearest (which a Gram of the wrong size falls back to)
        let nearest: Vec<i8> = w.chunks_exact(k).zip(&scales).flat_map(|(r, &s)| r.iter().map(move |&v| (v as f64 / s).round() as i8)).collect();
        assert_ne!(got, nearest);
        assert_eq!(round_rows(&w, k, qmax, &scales, &Gram { k: k - 1, h: vec![1.0; (k - 1) * (k - 1)] }), nearest);
    }
}
