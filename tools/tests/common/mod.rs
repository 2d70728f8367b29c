//! What the converter's integration tests over `models/variants` share.

use std::path::Path;

use picoformer::blob::{Config, InputKind};
use picoformer_tools::calibrate::CalibData;
use picoformer_tools::host::{read_lines, read_windows};

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// 20 calibration inputs for a variant of config `c`: japanese-vowels' training windows for a
/// feature model, de-en's English calibration sentences for a token model.
pub fn calib_for(c: &Config) -> CalibData {
    match c.input {
        InputKind::Features => CalibData::Windows(read_windows(&root().join("models/japanese-vowels/train.csv"), c.n_features).unwrap().into_iter().take(20).collect()),
        InputKind::Tokens => CalibData::Texts(read_lines(&root().join("models/de-en/calib.en")).unwrap().into_iter().take(20).collect()),
    }
}
