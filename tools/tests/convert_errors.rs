//! Bad exports get clear messages naming the file and the field.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use picoformer::tokenizer::Tokenizer;
use picoformer_tools::calibrate::{calibrate, CalibData};
use picoformer_tools::check::check_reference;
use picoformer_tools::host::SentencePairs;
use picoformer_tools::export::Export;
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;

fn variant() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../models/variants/prenorm_relu_untied")).to_path_buf()
}

/// A copy of the variant export in a fresh temp dir.
fn copy(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("picoformer-bad-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.model", "reference.safetensors"] {
        std::fs::copy(variant().join(f), dir.join(f)).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, from: &str, to: &str) {
    let p = dir.join("config.json");
    let s = std::fs::read_to_string(&p).unwrap();
    assert!(s.contains(from), "{from} not in {s}");
    std::fs::write(&p, s.replacen(from, to, 1)).unwrap();
}

/// Rewrite model.safetensors with `f` applied to the (name → (shape, f32 data)) map.
fn edit_tensors(dir: &Path, f: impl FnOnce(&mut HashMap<String, (Vec<usize>, Vec<u8>)>)) {
    let p = dir.join("model.safetensors");
    let bytes = std::fs::read(&p).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut m: HashMap<String, (Vec<usize>, Vec<u8>)> = st.tensors().into_iter().map(|(n, v)| (n, (v.shape().to_vec(), v.data().to_vec()))).collect();
    f(&mut m);
    let views: Vec<(String, TensorView<'_>)> = m.iter().map(|(n, (s, d))| (n.clone(), TensorView::new(safetensors::Dtype::F32, s.clone(), d).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &p).unwrap();
}

fn error_of(dir: &Path) -> String {
    match Export::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn the_unmodified_variant_loads() {
    Export::load(&copy("ok")).unwrap();
}

#[test]
fn unknown_activation() {
    let d = copy("act");
    edit_config(&d, "\"relu\"", "\"swish\"");
    let e = error_of(&d);
    assert!(e.contains("config.json") && e.contains("activation") && e.contains("swish"), "{e}");
}

#[test]
fn missing_tensor() {
    let d = copy("missing");
    edit_tensors(&d, |m| {
        m.remove("transformer.decoder.layers.0.norm2.weight");
    });
    let e = error_of(&d);
    assert!(e.contains("model.safetensors") && e.contains("missing tensor `transformer.decoder.layers.0.norm2.weight`"), "{e}");
}

#[test]
fn wrong_shape() {
    let d = copy("shape");
    edit_tensors(&d, |m| {
        let t = m.get_mut("transformer.encoder.layers.0.linear1.weight").unwrap();
        t.0 = vec![t.0[0] - 1, t.0[1]];
        t.1.truncate(t.0[0] * t.0[1] * 4);
    });
    let e = error_of(&d);
    assert!(e.contains("model.safetensors") && e.contains("transformer.encoder.layers.0.linear1.weight") && e.contains("shape"), "{e}");
}

/// A config field that the weights contradict is named, with the value the weights imply.
#[test]
fn config_disagrees_with_weights() {
    for (field, from, to, implied) in [
        ("d_model", "\"d_model\": 32", "\"d_model\": 48", "32"),
        ("d_model", "\"d_model\": 32", "\"d_model\": 30", "32"), // 4 heads do not divide 30 either
        ("dim_feedforward", "\"dim_feedforward\": 64", "\"dim_feedforward\": 128", "64"),
        ("num_encoder_layers", "\"num_encoder_layers\": 1", "\"num_encoder_layers\": 2", "1"),
        ("num_decoder_layers", "\"num_decoder_layers\": 1", "\"num_decoder_layers\": 3", "1"),
        ("tie_embeddings", "\"tie_embeddings\": false", "\"tie_embeddings\": true", "false"),
    ] {
        let d = copy(&format!("cfg-{field}-{to}").replace(['"', ':', ' '], ""));
        edit_config(&d, from, to);
        let e = error_of(&d);
        let configured = to.rsplit(' ').next().unwrap();
        assert!(e.contains("config.json") && e.contains(&format!("field `{field}`: {configured}, but the weights imply {implied}")), "{field}: {e}");
    }
    let d = copy("vocab");
    edit_config(&d, "\"vocab_size\": 800", "\"vocab_size\": 801");
    let e = error_of(&d);
    assert!(e.contains("vocab_size") && e.contains("tokenizer.model"), "{e}");
}

/// The weights have one row fewer than the vocabulary that config.json and the tokenizer agree on.
#[test]
fn weights_disagree_with_the_vocabulary() {
    let d = copy("vocab-rows");
    edit_tensors(&d, |m| {
        for name in ["src_embedding.weight", "tgt_embedding.weight", "generator.weight", "generator.bias"] {
            let t = m.get_mut(name).unwrap();
            let row = t.1.len() / t.0[0];
            t.0[0] -= 1;
            t.1.truncate(t.0[0] * row);
        }
    });
    let e = error_of(&d);
    assert!(e.contains("field `vocab_size`: 800, but the weights imply 799") && e.contains("model.safetensors"), "{e}");
}

/// `nhead` leaves the shapes alone; the f32 check against PyTorch finds it.
#[test]
fn wrong_nhead_is_found_by_the_reference_check() {
    let d = copy("nhead");
    edit_config(&d, "\"nhead\": 4", "\"nhead\": 2");
    let ex = Export::load(&d).unwrap();
    let e = match check_reference(&ex.float_model(), &d) {
        Ok(_) => panic!("nhead 2 passed the reference check"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains("config.json: field `nhead`: 2, but the f32 forward pass matches PyTorch's") && e.contains("with nhead 4"), "{e}");
}

#[test]
fn missing_field() {
    let d = copy("field");
    edit_config(&d, "\"norm_first\": true,", "");
    let e = error_of(&d);
    assert!(e.contains("config.json") && e.contains("norm_first"), "{e}");
}

/// No calibration inputs: a clear error, not a blob of made-up scales.
#[test]
fn empty_calibration_data() {
    let ex = Export::load(&copy("calib")).unwrap();
    let vocab = ex.spm.as_ref().unwrap().tables().unwrap();
    let tok = Tokenizer::new(ex.spm.as_ref().unwrap().vocab(&vocab)).unwrap();
    let empty = CalibData::Pairs(SentencePairs { src: vec![], tgt: vec![] });
    let e = format!("{:#}", calibrate(&ex.float_model(), Some(&tok), &empty).err().unwrap());
    assert!(e.contains("no calibration inputs"), "{e}");
    let one = CalibData::Pairs(SentencePairs { src: vec!["Ein Hund.".into()], tgt: vec!["A dog.".into()] });
    assert!(calibrate(&ex.float_model(), Some(&tok), &one).is_ok());
}
