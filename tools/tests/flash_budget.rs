//! `convert --flash-budget` on shapes other than de-en: a Llama-style language model (GQA,
//! RoPE, RMSNorm, SwiGLU) and a feature classifier (its input projection a weight matrix too).
//! The plan fits the budget, stores exactly the planned tensors as `I4`, leaves the blob
//! byte-identical without need, refuses a budget nothing fits, and the int4 model still tracks
//! float.

mod common;

use common::{calib_for, root};

use picoformer::blob::{self, DType, InputKind, ModelKind};
use picoformer::observe::Site;
use picoformer::tokenizer::Tokenizer;
use picoformer::Model;
use picoformer_tools::budget::{sensitivity, weight_matrices, Source};
use picoformer_tools::calibrate::{calibrate, CalibData};
use picoformer_tools::eval::layer_errors;
use picoformer_tools::export::Export;
use picoformer_tools::host::AlignedBuf;
use picoformer_tools::quantize::{quantize, quantize_with, Precision, WeightRule};
use picoformer_tools::vectors::Inputs;

fn check(name: &str) {
    let dir = root().join("models/variants").join(name);
    let ex = Export::load(&dir).unwrap();
    let fm = ex.float_model();
    let c = ex.blob_config;
    let vocab = ex.spm.as_ref().map(|s| s.tables().unwrap());
    let tok = ex.spm.as_ref().map(|s| Tokenizer::new(s.vocab(vocab.as_ref().unwrap())).unwrap());
    let calib = calib_for(&c);
    let (ranges, features) = calibrate(&fm, tok.as_ref(), &calib).unwrap();
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
    let src = Source { fm: &fm, ranges: &ranges, vocab: vocab.as_ref(), features: features.as_ref() };
    let sens = sensitivity(&src, inputs).unwrap();
    let matrices = weight_matrices(&c).unwrap();
    assert_eq!(sens.tensors.len(), matrices.len());
    if c.input == InputKind::Features {
        assert!(matrices.iter().any(|m| m.0 == blob::Tag::InputProj(blob::Part::Weight)), "{name}: the feature projection is a candidate");
    }
    for t in &sens.tensors {
        assert!(t.int4_bytes < t.int8_bytes && t.saved() > 0 && t.loss >= 0.0 && t.sqnr_db.is_finite(), "{name}: {t:?}");
    }

    // a budget the int8 blob meets: nothing changes, byte for byte
    let int8 = quantize(&fm, &ranges, WeightRule::default(), vocab.as_ref(), features.as_ref()).unwrap().blob(&c).unwrap();
    assert_eq!(sens.base_blob, int8.len());
    let (p, _) = sens.plan(int8.len()).unwrap();
    assert!(p.int4.is_empty());
    assert_eq!(quantize_with(&fm, &ranges, WeightRule::default(), vocab.as_ref(), features.as_ref(), &p).unwrap().blob(&c).unwrap(), int8);

    // half of what int4 could save
    let saveable: usize = sens.tensors.iter().map(|t| t.saved()).sum();
    let budget = int8.len() - saveable / 2;
    let (p, predicted) = sens.plan(budget).unwrap();
    assert!(!p.int4.is_empty() && p.int4.len() < matrices.len(), "{name}: {} int4", p.int4.len());
    let q = quantize_with(&fm, &ranges, WeightRule::default(), vocab.as_ref(), features.as_ref(), &p).unwrap();
    let bytes = q.blob(&c).unwrap();
    assert!(bytes.len() <= budget && bytes.len() == predicted, "{name}: blob {} budget {budget} predicted {predicted}", bytes.len());
    let buf = AlignedBuf::from_bytes(&bytes);
    let model = Model::parse(buf.bytes()).unwrap();
    // the table stores exactly the planned tensors as I4
    let header = blob::read_header(&bytes).unwrap();
    let mut int4 = 0;
    for i in 0..header.tensor_count as usize {
        let e = blob::read_entry(&bytes, i).unwrap();
        let tag = blob::Tag::from_code(e.tag).unwrap();
        assert_eq!(e.dtype == DType::I4 as u16, p.int4.contains(&tag), "{name}: {tag}");
        int4 += (e.dtype == DType::I4 as u16) as usize;
    }
    assert_eq!(int4, p.int4.len());
    let errors = layer_errors(&model, &fm, &q.scales, inputs).unwrap();
    let out = errors.iter().find(|e| e.site == Site::Logits).unwrap();
    println!("{name}: {} of {} int4, blob {} of {}, logits SQNR {:.1} dB (all-int8 {:.1})", p.int4.len(), matrices.len(), bytes.len(), int8.len(), out.sqnr_db, sens.base_sqnr_db);
    assert!(out.sqnr_db > 10.0 && out.sqnr_db < sens.base_sqnr_db, "{name}: logits SQNR {:.1} dB", out.sqnr_db);

    // a budget below every-tensor-int4 is refused
    assert!(sens.plan(int8.len() - saveable - 1).is_err());
    let all = Precision { int4: matrices.iter().map(|m| m.0).collect() };
    assert_eq!(quantize_with(&fm, &ranges, WeightRule::default(), vocab.as_ref(), features.as_ref(), &all).unwrap().blob(&c).unwrap().len(), int8.len() - saveable, "{name}");
    assert!(c.kind != ModelKind::EncoderDecoder);
}

#[test]
fn language_model_gqa_rope_swiglu() {
    check("dec_gqa_rope_rmsnorm_swiglu");
}

#[test]
fn feature_classifier() {
    check("enc_features_mean_rope_gqa_cls");
}
