//! Any model in the export layout converts: differently shaped random models (pre-norm, GELU,
//! untied embeddings and generator, other sizes; `tools/export_variants.py`) go through the
//! whole converter, and their int8 outputs track their float outputs.

use std::path::Path;

use picoformer::observe::Site;
use picoformer::tokenizer::Tokenizer;
use picoformer::Model;
use picoformer_tools::calibrate::calibrate;
use picoformer_tools::check::check_reference;
use picoformer_tools::eval::layer_errors;
use picoformer_tools::export::Export;
use picoformer_tools::host::{read_lines, source_ids, AlignedBuf, SentencePairs};
use picoformer_tools::quantize::quantize;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn check(name: &str, min_logit_sqnr: f64) {
    let dir = root().join("models/variants").join(name);
    let de = root().join("models/de-en/calib.de");
    let en = root().join("models/de-en/calib.en");
    // convert's stages up to the blob, in memory
    let ex = Export::load(&dir).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let fm = ex.float_model();
    let check = check_reference(&fm, &dir).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    assert!(check.max_diff < 1e-4, "{name}: f32 vs PyTorch {}", check.max_diff);
    let vocab = ex.spm.tables().unwrap();
    let tok = Tokenizer::new(ex.spm.vocab(&vocab)).unwrap();
    let ranges = calibrate(&fm, &tok, &SentencePairs::read(&de, &en, 40).unwrap()).unwrap();
    let quantized = quantize(&fm, &ranges, &vocab).unwrap();
    let blob = AlignedBuf::from_bytes(&quantized.blob(&ex.blob_config).unwrap());
    let model = Model::parse(blob.bytes()).unwrap();
    let c = *model.config();
    assert_eq!(c, ex.blob_config);
    let test = read_lines(&root().join("models/de-en/test2016.de")).unwrap();
    let srcs: Vec<Vec<u16>> = test.iter().take(6).map(|s| source_ids(model.tokenizer(), s, c.max_len).unwrap()).collect();
    let errors = layer_errors(&model, &fm, &quantized.scales, &srcs).unwrap();
    let logits = errors.iter().find(|e| e.site == Site::Logits).unwrap();
    let memory = errors.iter().find(|e| e.site == Site::EncNorm).unwrap();
    println!("{name}: logits SQNR {:.1} dB cosine {:.5}; memory SQNR {:.1} dB", logits.sqnr_db, logits.cosine, memory.sqnr_db);
    assert!(logits.sqnr_db > min_logit_sqnr, "{name}: logits SQNR {:.1} dB", logits.sqnr_db);
    assert!(memory.sqnr_db > min_logit_sqnr, "{name}: memory SQNR {:.1} dB", memory.sqnr_db);
    for e in &errors {
        assert!(e.cosine > 0.98, "{name}: {} cosine {}", e.site, e.cosine);
    }
}

#[test]
fn prenorm_gelu_untied() {
    check("prenorm_gelu", 20.0);
}

#[test]
fn postnorm_relu_tied() {
    check("postnorm_relu_tied", 20.0);
}

#[test]
fn prenorm_relu_untied_short() {
    check("prenorm_relu_untied", 20.0);
}
