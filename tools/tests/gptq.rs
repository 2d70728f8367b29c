//! `convert --weights gptq` on shapes other than de-en (whose figures are in
//! `models/de-en/README.md`): every weight matrix gets its inputs' Gram, the blob keeps its size
//! and every tensor but the weight values, and the logits on calibration inputs are closer to
//! float than with round-to-nearest.

mod common;

use common::{calib_for, root};

use picoformer::blob::{ActKind, Part, Proj, Stack, Sub, Tag};
use picoformer::observe::{Block, Data, Observer, Point, Site};
use picoformer::tokenizer::Tokenizer;
use picoformer::Model;
use picoformer_tools::budget::weight_matrices;
use picoformer_tools::calibrate::{calibrate, calibrate_with, CalibData};
use picoformer_tools::eval::layer_errors;
use picoformer_tools::export::Export;
use picoformer_tools::gptq::grams;
use picoformer_tools::host::AlignedBuf;
use picoformer_tools::quantize::{quantize, Precision, WeightRule};
use picoformer_tools::vectors::Inputs;

fn check(name: &str) {
    let dir = root().join("models/variants").join(name);
    let ex = Export::load(&dir).unwrap();
    let fm = ex.float_model();
    let c = ex.blob_config;
    let vocab = ex.spm.as_ref().map(|s| s.tables().unwrap());
    let tok = ex.spm.as_ref().map(|s| Tokenizer::new(s.vocab(vocab.as_ref().unwrap())).unwrap());
    let calib = calib_for(&c);
    let (mut ranges, features) = calibrate(&fm, tok.as_ref(), &calib).unwrap();
    ranges.grams = grams(&fm, tok.as_ref(), &calib).unwrap();
    for (tag, n, k) in weight_matrices(&c).unwrap() {
        // round-to-nearest: the feature projection (its weights folded with the input scales)
        // and an embedding table that is not also the output projection
        if matches!(tag, Tag::InputProj(_) | Tag::Embedding(_)) && tag != Precision::output_tag(&c) {
            continue;
        }
        let g = ranges.grams.get(&tag).unwrap_or_else(|| panic!("{name}: no Gram for {tag}"));
        assert_eq!(g.k, k, "{name}: {tag} ({n}, {k})");
        // a ReLU unit may never fire on 20 inputs (a random model has a few); every other input
        // column is seen
        let seen = (0..k).filter(|&j| g.h[j * k + j] > 0.0).count();
        let after_relu = c.act == ActKind::Relu && matches!(tag, Tag::Linear { proj: Proj::Down, .. });
        assert!(seen == k || after_relu && seen >= k * 3 / 4, "{name}: {tag}: {} of {k} input columns never seen", k - seen);
    }

    let (texts, windows);
    let inputs = match &calib {
        CalibData::Windows(w) => {
            windows = w[..4].to_vec();
            Inputs::Windows(&windows)
        }
        _ => {
            texts = calib.texts()[..4].to_vec();
            Inputs::Texts(&texts)
        }
    };
    let sqnr = |rule| {
        let q = quantize(&fm, &ranges, rule, vocab.as_ref(), features.as_ref()).unwrap();
        let bytes = q.blob(&c).unwrap();
        let buf = AlignedBuf::from_bytes(&bytes);
        let model = Model::parse(buf.bytes()).unwrap();
        let e = layer_errors(&model, &fm, &q.scales, inputs).unwrap();
        (bytes.len(), q.tensors.iter().map(|t| (t.spec.tag, t.data.len())).collect::<Vec<_>>(), e.iter().find(|e| e.site == Site::Logits).unwrap().sqnr_db)
    };
    let (max_len, max_tensors, max_db) = sqnr(WeightRule::Max);
    let (gptq_len, gptq_tensors, gptq_db) = sqnr(WeightRule::Gptq);
    println!("{name}: logits SQNR {max_db:.2} dB round-to-nearest, {gptq_db:.2} dB GPTQ");
    assert_eq!((gptq_len, gptq_tensors), (max_len, max_tensors), "{name}: same tensors and sizes");
    assert!(gptq_db > max_db, "{name}: GPTQ {gptq_db:.2} dB, round-to-nearest {max_db:.2} dB");
}

#[test]
fn language_model_gqa_rope_swiglu() {
    check("dec_gqa_rope_rmsnorm_swiglu");
}

#[test]
fn feature_classifier() {
    check("enc_features_mean_rope_gqa_cls");
}

/// Sinusoidal positions: Q and K take their Grams from the norm output (self-attention) and the
/// encoder output (cross-attention), not from the rotated sites.
#[test]
fn translator_without_rope() {
    check("postnorm_relu_tied");
}

/// The Gram of every observation of `want` over a calibration pass.
struct SiteGram {
    want: Site,
    k: usize,
    h: Vec<f64>,
}

impl Observer for SiteGram {
    fn observe(&mut self, site: Site, data: Data<'_>) {
        if let (true, Data::F32(v)) = (site == self.want, data) {
            for row in v.chunks_exact(self.k) {
                for (i, &a) in row.iter().enumerate() {
                    for (j, &b) in row.iter().enumerate() {
                        self.h[i * self.k + j] += a as f64 * b as f64;
                    }
                }
            }
        }
    }
}

/// A linear's Gram is that of the site it reads, once: the query and key projections of a
/// pre-norm, rotary self-attention read the norm's output (its rotation comes after), the output
/// projection the final norm's.
#[test]
fn each_gram_is_its_input_sites() {
    let ex = Export::load(&root().join("models/variants/dec_gqa_rope_rmsnorm_swiglu")).unwrap();
    let fm = ex.float_model();
    let c = ex.blob_config;
    let vocab = ex.spm.as_ref().unwrap().tables().unwrap();
    let tok = Tokenizer::new(ex.spm.as_ref().unwrap().vocab(&vocab)).unwrap();
    let calib = calib_for(&c);
    let grams = grams(&fm, Some(&tok), &calib).unwrap();
    let q = Tag::Linear { stack: Stack::Decoder, layer: 1, sub: Sub::SelfAttn, proj: Proj::Q, part: Part::Weight };
    let norm = Site::Dec { layer: 1, block: Block::SelfAttn, point: Point::Norm };
    let k = Tag::Linear { stack: Stack::Decoder, layer: 1, sub: Sub::SelfAttn, proj: Proj::K, part: Part::Weight };
    for (tag, site) in [(q, norm), (k, norm), (Precision::output_tag(&c), Site::DecNorm)] {
        let d = c.d_model;
        let mut want = SiteGram { want: site, k: d, h: vec![0.0; d * d] };
        calibrate_with(&fm, Some(&tok), &calib, &mut want).unwrap();
        let got = &grams[&tag];
        let scale = want.h.iter().fold(0f64, |m, x| m.max(x.abs()));
        assert!(scale > 0.0);
        let diff = got.h.iter().zip(&want.h).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(diff <= 1e-9 * scale, "{tag}: Gram off by {diff} of {scale}");
    }
}
