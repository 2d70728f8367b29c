//! Calibration (DESIGN §3): the f32 model runs over real inputs and records the range of every
//! activation site; quantization turns those ranges into scales. What the model reads decides
//! the input: sentence pairs (the encoder-decoder, target teacher-forced), texts (language
//! models, teacher-forced; token classifiers), or feature windows.

use std::collections::HashMap;

use anyhow::{anyhow, bail, Result};
use picoformer::blob::ModelKind;
use picoformer::observe::{Data, Observer, Site};
use picoformer::reference::{FSource, FloatModel};
use picoformer::tokenizer::{Node, Tokenizer};

use crate::host::{pieces, progress_bar, source_ids, Float, SentencePairs};
use crate::quantize::{site_qmax, FeatureScales};

/// Largest absolute value seen at each site, and every |x| seen at the `i8` sites (Q, K, V),
/// from which [`crate::clip`] picks their clipping.
#[derive(Default, Debug, Clone)]
pub struct Ranges {
    pub max: HashMap<Site, f32>,
    pub samples: HashMap<Site, Vec<f32>>,
    /// Each linear's input Gram matrix, for `--weights gptq` ([`crate::gptq`]); empty otherwise.
    pub grams: crate::gptq::Grams,
}

impl Observer for Ranges {
    fn observe(&mut self, site: Site, data: Data<'_>) {
        if let Data::F32(v) = data {
            let m = v.iter().fold(0f32, |m, x| m.max(x.abs()));
            let e = self.max.entry(site).or_insert(0.0);
            *e = e.max(m);
            if site_qmax(site) == 127.0 {
                self.samples.entry(site).or_default().extend(v.iter().map(|x| x.abs()));
            }
        }
    }
}

/// A feature window: `(frames, n_features)` real values.
pub type Window = Vec<f32>;

/// What a model is calibrated on.
pub enum CalibData {
    /// The encoder-decoder: source and target sentences.
    Pairs(SentencePairs),
    /// A language model or a token classifier: one text per line.
    Texts(Vec<String>),
    /// A feature classifier: windows of frames.
    Windows(Vec<Window>),
}

impl CalibData {
    pub fn len(&self) -> usize {
        match self {
            CalibData::Pairs(p) => p.src.len(),
            CalibData::Texts(t) => t.len(),
            CalibData::Windows(w) => w.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The ids a language model or token classifier reads for `text`: bos and the pieces
/// ([`Tokenizer::encode_prompt`], `max_len` ids in all), and with `eos` the pieces are cut one
/// earlier and eos follows.
pub fn text_ids(tok: &Tokenizer<'_>, text: &str, max_len: usize, eos: bool) -> Result<Vec<u16>> {
    let mut scratch = vec![Node::default(); Tokenizer::scratch_len(text.len())];
    let mut ids = vec![0; max_len + 1];
    let n = tok.encode_prompt(text, &mut scratch, &mut ids, max_len - eos as usize).map_err(|e| anyhow!("tokenizing {text:?}: {e}"))?;
    ids.truncate(n);
    if eos {
        ids.push(tok.vocab().eos);
    }
    Ok(ids)
}

/// Run the f32 model over every input and record every site's range; for feature input also
/// each feature's `[min, max]`.
pub fn calibrate(fm: &FloatModel<'_>, tok: Option<&Tokenizer<'_>>, data: &CalibData) -> Result<(Ranges, Option<FeatureScales>)> {
    let mut ranges = Ranges::default();
    let features = calibrate_with(fm, tok, data, &mut ranges)?;
    Ok((ranges, features))
}

/// The f32 model over every calibration input with observer `obs`; for feature input each
/// feature's `[min, max]` too.
pub fn calibrate_with<O: Observer>(fm: &FloatModel<'_>, tok: Option<&Tokenizer<'_>>, data: &CalibData, obs: &mut O) -> Result<Option<FeatureScales>> {
    let c = fm.config;
    if data.is_empty() {
        bail!("no calibration inputs: every activation's range comes from them");
    }
    let mut fl = Float::new(fm)?;
    let pb = progress_bar(data.len(), "calibrate");
    let mut features = None;
    match (data, tok) {
        (CalibData::Pairs(pairs), Some(tok)) => {
            for (s, t) in pairs.src.iter().zip(&pairs.tgt) {
                let ids = source_ids(tok, s, c.max_len)?;
                let tgt_ids = pieces(tok, t)?;
                let mut st = fl.state()?;
                fm.encode(&ids, &mut st, obs)?;
                let mut last = c.bos;
                for (pos, &next) in tgt_ids.iter().chain(std::iter::once(&c.eos)).enumerate().take(c.max_len - 1) {
                    fm.decode_step(last, pos, &mut st, obs)?;
                    last = next;
                }
                pb.inc(1);
            }
        }
        (CalibData::Texts(texts), Some(tok)) => {
            for t in texts {
                let mut st = fl.state()?;
                if c.kind == ModelKind::DecoderOnly {
                    // teacher-forced: every position but the last (eos) is fed
                    let ids = text_ids(tok, t, c.max_len, true)?;
                    for (pos, &id) in ids.iter().enumerate().take(ids.len() - 1) {
                        fm.decode_step(id, pos, &mut st, obs)?;
                    }
                } else {
                    let ids = text_ids(tok, t, c.max_len, false)?;
                    fm.classify(FSource::Tokens(&ids), &mut st, obs)?;
                }
                pb.inc(1);
            }
        }
        (CalibData::Windows(windows), _) => {
            let n = c.n_features;
            let (mut lo, mut hi) = (vec![f32::MAX; n], vec![f32::MIN; n]);
            for w in windows {
                for frame in w.chunks_exact(n) {
                    for (j, &x) in frame.iter().enumerate() {
                        lo[j] = lo[j].min(x);
                        hi[j] = hi[j].max(x);
                    }
                }
                let mut st = fl.state()?;
                fm.classify(FSource::Features(w), &mut st, obs)?;
                pb.inc(1);
            }
            features = Some(FeatureScales::from_ranges(&lo, &hi));
        }
        _ => bail!("calibration data of the wrong kind for this model (a tokenizer is needed for text)"),
    }
    pb.finish();
    Ok(features)
}
