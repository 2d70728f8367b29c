//! Test vectors (STYLE 10): the int8 model's greedy run on a few test sentences, which the host
//! tests and every firmware recompute bit for bit.
//!
//! `<stem>.vectors.bin` (the runtime's compact format, for firmware: text, source ids, output
//! ids, logits digest) and `<stem>.vectors.safetensors` (everything, per case `i`:
//! `case.i.{src,greedy,logits_digest,logits0,float_logits0}`, `case.i.digest.<site>` for every
//! site, and `case.0.site.<site>` with the first case's raw values).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use picoformer::observe::{Data, NoObserver, Observer, Site};
use picoformer::reference::FloatModel;
use picoformer::vectors::Fnv1a;
use picoformer::{Model, TokenId};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::host::{source_ids, Float, Int8};

/// The raw integer values of one site over a whole run, in order.
pub struct SiteValues {
    pub site: Site,
    pub values: Vec<i32>,
    /// The width the site is stored in: 8, 16 or 32.
    pub bits: u8,
}

/// Raw int8 values per site, in the order the sites first appear, for test vectors.
#[derive(Default)]
pub struct Sites {
    pub data: Vec<SiteValues>,
}

impl Observer for Sites {
    fn observe(&mut self, site: Site, data: Data<'_>) {
        let (v, bits): (Vec<i32>, u8) = match data {
            Data::I8(x) => (x.iter().map(|&q| q as i32).collect(), 8),
            Data::I16(x) => (x.iter().map(|&q| q as i32).collect(), 16),
            Data::I32(x) => (x.to_vec(), 32),
            _ => return,
        };
        match self.data.iter_mut().find(|s| s.site == site) {
            Some(s) => s.values.extend(v),
            None => self.data.push(SiteValues { site, values: v, bits }),
        }
    }
}

/// A case of the test vectors: ids, greedy output, every step's logits digest, and raw sites.
pub struct Case {
    pub text: String,
    pub src: Vec<TokenId>,
    pub out: Vec<TokenId>,
    pub logits_digest: u32,
    pub first_logits: Vec<i32>,
    pub float_first_logits: Vec<f32>,
    pub sites: Sites,
}

/// Run the int8 model (the integer simulation the firmware must match) on `texts`.
pub fn cases(model: &Model<'_>, fm: &FloatModel<'_>, texts: &[String]) -> Result<Vec<Case>> {
    let c = *model.config();
    let tok = model.tokenizer();
    let mut q = Int8::new(model, 1);
    let mut fl = Float::new(fm)?;
    let mut cases = Vec::new();
    for text in texts {
        let src = source_ids(tok, text, c.max_len)?;
        let mut sites = Sites::default();
        let mut digest = Fnv1a::default();
        let mut first_logits = Vec::new();
        let mut out = Vec::new();
        {
            let mut sess = q.session()?;
            sess.encode_observed(&src, &mut sites)?;
            while let Some(t) = sess.greedy_step(&mut sites)? {
                digest.i32s(sess.logits());
                if first_logits.is_empty() {
                    first_logits = sess.logits().to_vec();
                }
                out.push(t);
            }
        }
        let mut st = fl.state()?;
        fm.encode(&src, &mut st, &mut NoObserver)?;
        fm.decode_step(c.bos, 0, &mut st, &mut NoObserver)?;
        let float_first_logits = st.logits().to_vec();
        cases.push(Case { text: text.clone(), src, out, logits_digest: digest.0, first_logits, float_first_logits, sites });
    }
    Ok(cases)
}

/// One tensor of the safetensors file, owned until the file is written.
struct Named {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// Write `<stem>.vectors.bin` and `<stem>.vectors.safetensors`.
pub fn write(stem: &Path, cases: &[Case]) -> Result<()> {
    let compact: Vec<(&str, &[u16], &[u16], u32)> = cases.iter().map(|c| (c.text.as_str(), c.src.as_slice(), c.out.as_slice(), c.logits_digest)).collect();
    std::fs::write(stem.with_extension("vectors.bin"), picoformer::vectors::write(&compact))?;

    let mut owned: Vec<Named> = Vec::new();
    let mut push = |name: String, dtype, shape, data| owned.push(Named { name, dtype, shape, data });
    let le16 = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let le32 = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (i, c) in cases.iter().enumerate() {
        push(format!("case.{i}.src"), Dtype::U16, vec![c.src.len()], le16(&c.src));
        push(format!("case.{i}.greedy"), Dtype::U16, vec![c.out.len()], le16(&c.out));
        push(format!("case.{i}.logits_digest"), Dtype::U32, vec![1], c.logits_digest.to_le_bytes().to_vec());
        push(format!("case.{i}.logits0"), Dtype::I32, vec![c.first_logits.len()], le32(&c.first_logits));
        push(format!("case.{i}.float_logits0"), Dtype::F32, vec![c.float_first_logits.len()], c.float_first_logits.iter().flat_map(|x| x.to_le_bytes()).collect());
        for SiteValues { site, values, bits } in &c.sites.data {
            let mut d = Fnv1a::default();
            d.i32s(values);
            push(format!("case.{i}.digest.{site}"), Dtype::U32, vec![1], d.0.to_le_bytes().to_vec());
            if i == 0 {
                let (dtype, bytes) = match bits {
                    8 => (Dtype::I8, values.iter().map(|&v| v as i8 as u8).collect()),
                    16 => (Dtype::I16, values.iter().flat_map(|&v| (v as i16).to_le_bytes()).collect()),
                    _ => (Dtype::I32, le32(values)),
                };
                push(format!("case.{i}.site.{site}"), dtype, vec![values.len()], bytes);
            }
        }
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|t| Ok((t.name.clone(), TensorView::new(t.dtype, t.shape.clone(), &t.data).map_err(|e| anyhow!("{}: {e}", t.name))?)))
        .collect::<Result<_>>()?;
    let path = stem.with_extension("vectors.safetensors");
    safetensors::serialize_to_file(views, None, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
