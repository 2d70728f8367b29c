//! What the converter's integration tests over `models/variants` share.
#![allow(dead_code)] // each test binary uses a part of it

use std::path::Path;

use picoformer::blob::{Config, InputKind, ModelKind};
use picoformer_tools::calibrate::CalibData;
use picoformer_tools::host::{read_lines, read_windows, SentencePairs};

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// 20 calibration inputs for a variant of config `c`: japanese-vowels' training windows for a
/// feature model, de-en's calibration pairs for a translator, its English calibration
/// sentences for another token model.
pub fn calib_for(c: &Config) -> CalibData {
    let de_en = root().join("models/de-en");
    if c.kind == ModelKind::EncoderDecoder {
        return CalibData::Pairs(SentencePairs::read(&de_en.join("calib.de"), &de_en.join("calib.en"), 20).unwrap());
    }
    match c.input {
        InputKind::Features => CalibData::Windows(read_windows(&root().join("models/japanese-vowels/train.csv"), c.n_features).unwrap().into_iter().take(20).collect()),
        InputKind::Tokens => CalibData::Texts(read_lines(&de_en.join("calib.en")).unwrap().into_iter().take(20).collect()),
    }
}
