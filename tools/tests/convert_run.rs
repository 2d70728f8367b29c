//! `convert` end to end (`convert::run`, the CLI's stages) on small random models of each
//! kind: what the summary and the report say about the model, its calibration, its quality and
//! the budget sweep, and the default file names beside the committed models' exports.

mod common;

use std::path::{Path, PathBuf};

use common::root;
use picoformer::blob::ModelKind;
use picoformer_tools::convert::{run, ConvertOpts, Defaults, Summary};
use picoformer_tools::eval::Quality;
use picoformer_tools::export::Export;

/// A scratch directory of this test process, with the first `n` lines of `files` copied in.
fn scratch(tag: &str, files: &[(&str, usize)]) -> PathBuf {
    let d = std::env::temp_dir().join(format!("picoformer-convert-run-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    for &(f, n) in files {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        let head: String = text.lines().take(n).map(|l| format!("{l}\n")).collect();
        std::fs::write(d.join(Path::new(f).file_name().unwrap()), head).unwrap();
    }
    d
}

fn convert(o: &ConvertOpts) -> (Summary, String) {
    let s = run(o).unwrap_or_else(|e| panic!("{}: {e:#}", o.export.display()));
    let md = std::fs::read_to_string(&s.report.markdown).unwrap();
    assert!(o.out.exists() && s.report.svg.exists() && s.report.flash.exists());
    assert_eq!(std::fs::metadata(&o.out).unwrap().len() as usize, s.sizes.blob);
    // weights and quantization parameters, the vocabulary, and the header and table around them
    assert!(s.sizes.weights + s.sizes.vocab < s.sizes.blob && s.sizes.weights > s.sizes.blob / 2, "{:?}", (s.sizes.weights, s.sizes.vocab, s.sizes.blob));
    (s, md)
}

fn opts(variant: &str, out: PathBuf) -> ConvertOpts {
    ConvertOpts { export: root().join("models/variants").join(variant), out, calib_count: 20, vectors: 2, layer_sentences: 2, tune_count: 10, sensitivity_inputs: 2, ..Default::default() }
}

#[test]
fn a_language_model_and_its_budget_sweep() {
    let d = scratch("lm", &[("models/de-en/calib.en", 20), ("models/captions-lm/test2016.en", 12), ("models/captions-lm/prompts.txt", 5)]);
    let o = ConvertOpts { calib: Some(d.join("calib.en")), test: Some(d.join("test2016.en")), prompts: Some(d.join("prompts.txt")), ..opts("dec_gqa_rope_rmsnorm_swiglu", d.join("lm.pico")) };
    let (s, md) = convert(&o);
    assert!(s.config_line.contains("decoder layers") && s.config_line.contains("heads over") && s.config_line.contains("embeddings."), "{}", s.config_line);
    assert_eq!(s.calibration, "20 texts (teacher-forced)");
    assert!(s.reference_diff.is_some_and(|d| d < 1e-4));
    let Some(Quality::Language(q)) = &s.quality else { panic!("no language-model quality") };
    assert_eq!(q.prompts, 5);
    let share = q.identical as f64 / 5.0;
    assert!(!md.contains("## Flash against accuracy"));

    // the sweep: the all-int8 budget (the same blob, so the same quality) and a smaller one
    let base = s.sizes.blob;
    let o = ConvertOpts { budget_sweep: vec![base, base * 17 / 20], ..o };
    let (s2, md) = convert(&o);
    assert_eq!(s2.sizes.blob, base);
    assert!(md.contains("## Flash against accuracy"), "{md}");
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with(&format!("| {base} |")) || l.starts_with(&format!("| {} |", base * 17 / 20))).collect();
    assert_eq!(rows.len(), 2, "{md}");
    assert!(rows[0].starts_with(&format!("| {base} | {base} | 0 | {:.1}% | — |", 100.0 * share)), "{}", rows[0]);
    let cells: Vec<&str> = rows[1].split('|').map(str::trim).collect();
    assert!(cells[2].parse::<usize>().unwrap() <= base * 17 / 20 && cells[3].parse::<usize>().unwrap() > 0, "{}", rows[1]);
    assert!(std::fs::read_to_string(o.out.with_extension("budget.svg")).unwrap().contains("<polyline"));
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_feature_classifier() {
    let d = scratch("clf", &[]);
    let jv = root().join("models/japanese-vowels");
    let o = ConvertOpts { calib: Some(jv.join("train.csv")), test: Some(jv.join("test.csv")), labels: Some(jv.join("test.labels")), ..opts("enc_features_mean_rope_gqa_cls", d.join("clf.pico")) };
    // a sweep at a budget the int8 blob meets: the same blob, the same agreement
    let o = ConvertOpts { budget_sweep: vec![10_000_000], ..o };
    let (s, md) = convert(&o);
    assert!(s.config_line.contains("encoder layers") && s.config_line.contains("features per frame") && s.config_line.contains("pooling"), "{}", s.config_line);
    assert_eq!(s.calibration, "20 feature windows");
    let Some(Quality::Classification(q, labelled)) = &s.quality else { panic!("no classifier quality") };
    assert_eq!((q.windows, *labelled), (370, 370));
    assert!(q.agree > 300, "{} of 370 agree", q.agree);
    let row = format!("| 10000000 | {} | 0 | {:.1}% | — |", s.sizes.blob, 100.0 * q.agree as f64 / 370.0);
    assert!(md.contains(&row), "{row} not in\n{md}");
    std::fs::remove_dir_all(d).unwrap();
}

#[test]
fn a_translator_calibrated_on_its_own_translations() {
    let d = scratch("mt", &[("models/de-en/calib.de", 20), ("models/de-en/test2016.de", 6), ("models/de-en/test2016.en", 6)]);
    let o = ConvertOpts { calib: Some(d.join("calib.de")), test_src: Some(d.join("test2016.de")), test_ref: Some(d.join("test2016.en")), ..opts("postnorm_relu_tied", d.join("mt.pico")) };
    let o = ConvertOpts { budget_sweep: vec![10_000_000], ..o };
    let (s, md) = convert(&o);
    assert!(s.config_line.contains("encoder + ") && s.config_line.contains("tied embeddings"), "{}", s.config_line);
    assert_eq!(s.calibration, "20 sentence pairs (teacher-forced)");
    let Some(Quality::Translation(a)) = &s.quality else { panic!("no translation quality") };
    assert_eq!(a.sentences, 6);
    let row = format!("| 10000000 | {} | 0 | {:.1}% | {:.2} |", s.sizes.blob, 100.0 * a.identical as f64 / 6.0, a.bleu_int8.score);
    assert!(md.contains(&row), "{row} not in\n{md}");
    std::fs::remove_dir_all(d).unwrap();
}

/// A translator's calibration: the references beside the export unless told otherwise, the
/// same as naming both files; the sources alone take the float model's translations instead.
#[test]
fn a_translator_calibrates_on_the_pairs_beside_its_export() {
    let d = scratch("mt-defaults", &[("models/de-en/calib.de", 20), ("models/de-en/calib.en", 20)]);
    let export = d.join("export");
    std::fs::create_dir_all(&export).unwrap();
    for f in ["config.json", "model.safetensors", "reference.safetensors", "tokenizer.model"] {
        std::fs::copy(root().join("models/variants/postnorm_relu_tied").join(f), export.join(f)).unwrap();
    }
    let blob = |o: ConvertOpts| {
        let out = o.out.clone();
        run(&o).unwrap_or_else(|e| panic!("{e:#}"));
        std::fs::read(out).unwrap()
    };
    let base = || ConvertOpts { export: export.clone(), calib_count: 20, vectors: 1, layer_sentences: 1, ..Default::default() };
    let defaults = blob(ConvertOpts { out: d.join("a.pico"), ..base() });
    let named = blob(ConvertOpts { out: d.join("b.pico"), calib_src: Some(d.join("calib.de")), calib_tgt: Some(d.join("calib.en")), ..base() });
    let own = blob(ConvertOpts { out: d.join("c.pico"), calib: Some(d.join("calib.de")), ..base() });
    assert!(defaults == named, "the default calibration is not the named pairs'");
    assert!(own != defaults, "the float model's own translations calibrated the same as the references");
    std::fs::remove_dir_all(d).unwrap();
}

/// Without file options, convert reads the files beside the export: every committed model
/// keeps them there under the names [`Defaults`] gives.
#[test]
fn the_committed_models_keep_their_default_files() {
    for (m, kind) in [("de-en", ModelKind::EncoderDecoder), ("captions-lm", ModelKind::DecoderOnly), ("japanese-vowels", ModelKind::EncoderOnly), ("basic-motions", ModelKind::EncoderOnly)] {
        let dir = root().join("models").join(m);
        let ex = Export::load(&dir.join("export")).unwrap();
        assert_eq!(ex.blob_config.kind, kind, "{m}");
        // the special ids the blob records are the tokenizer's
        let c = ex.blob_config;
        if let Some(s) = ex.spm.as_ref() {
            assert_eq!([c.pad, c.unk, c.bos, c.eos], [s.pad, s.unk, s.bos, s.eos], "{m}");
        }
        let (calib, test, extra) = Defaults::names(&ex.blob_config);
        for f in [calib, test, extra] {
            assert!(dir.join(f).is_file(), "{m}: no {f}");
        }
    }
}
