//! Calibration (DESIGN §3): the f32 model, teacher-forced on real sentence pairs, records the
//! range of every activation site; quantization turns those ranges into scales.

use std::collections::HashMap;

use anyhow::Result;
use picoformer::observe::{Data, Observer, Site};
use picoformer::reference::FloatModel;
use picoformer::tokenizer::Tokenizer;

use crate::host::{pieces, progress_bar, source_ids, Float, SentencePairs};

/// Largest absolute value seen at each site.
#[derive(Default, Debug, Clone)]
pub struct Ranges {
    pub max: HashMap<Site, f32>,
}

impl Observer for Ranges {
    fn observe(&mut self, site: Site, data: Data<'_>) {
        if let Data::F32(v) = data {
            let m = v.iter().fold(0f32, |m, x| m.max(x.abs()));
            let e = self.max.entry(site).or_insert(0.0);
            *e = e.max(m);
        }
    }
}

/// Run the f32 model over every pair, the target teacher-forced after bos (cut at
/// `max_len - 1` tokens, then eos), and record every site's range.
pub fn calibrate(fm: &FloatModel<'_>, tok: &Tokenizer<'_>, pairs: &SentencePairs) -> Result<Ranges> {
    let c = fm.config;
    let mut ranges = Ranges::default();
    let mut fl = Float::new(fm)?;
    let pb = progress_bar(pairs.src.len(), "calibrate");
    for (s, t) in pairs.src.iter().zip(&pairs.tgt) {
        let ids = source_ids(tok, s, c.max_len)?;
        let mut tgt_ids = pieces(tok, t)?;
        tgt_ids.truncate(c.max_len - 1);
        let mut st = fl.state()?;
        fm.encode(&ids, &mut st, &mut ranges)?;
        let mut last = c.bos;
        for (pos, &next) in tgt_ids.iter().chain(std::iter::once(&c.eos)).enumerate().take(c.max_len - 1) {
            fm.decode_step(last, pos, &mut st, &mut ranges)?;
            last = next;
        }
        pb.inc(1);
    }
    pb.finish();
    Ok(ranges)
}
