//! Test vectors (STYLE 10): the int8 model's run on a few test inputs (a greedy translation, a
//! greedy continuation, or a classification), which the host tests and every firmware
//! recompute bit for bit.
//!
//! `<stem>.vectors.bin` (the runtime's compact format, `picoformer::vectors`, for firmware) and
//! `<stem>.vectors.safetensors` (everything, per case `i`:
//! `case.i.{src,greedy,logits_digest,logits0,float_logits0}`, `case.i.digest.<site>` for every
//! site, and `case.0.site.<site>` with the first case's raw values).

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use picoformer::observe::{Data, NoObserver, Observer, Site};
use picoformer::blob::ModelKind;
use picoformer::reference::{FSource, FloatModel};
use picoformer::align::AlignedBuf;
use picoformer::tokenizer::{Node, Tokenizer};
use picoformer::vectors::{replay, Buffers, CaseData, CaseKind, Fnv1a, NoMeter, Vectors};
use picoformer::{Classifier, Generator, Model, TokenId, Translator};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::calibrate::{text_ids, Window};
use crate::host::{quantize_window, source_ids, Clf, Float, Int8, Lm};

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

/// A case of the test vectors: input, output, the digest of every step's logits (or of the
/// head's outputs), and raw sites.
pub struct Case {
    pub kind: CaseKind,
    pub text: String,
    /// Feature input, quantized.
    pub features: Vec<i16>,
    pub src: Vec<TokenId>,
    pub out: Vec<TokenId>,
    pub logits_digest: u32,
    pub first_logits: Vec<i32>,
    pub float_first_logits: Vec<f32>,
    pub sites: Sites,
}

/// The inputs of the test vectors.
#[derive(Clone, Copy)]
pub enum Inputs<'a> {
    /// Sentences to translate, prompts to continue, or texts to classify.
    Texts(&'a [String]),
    /// Feature windows to classify.
    Windows(&'a [Window]),
}

impl Inputs<'_> {
    pub fn len(&self) -> usize {
        match self {
            Inputs::Texts(t) => t.len(),
            Inputs::Windows(w) => w.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub use picoformer::vectors::MAX_NEW;

/// Run the int8 model (the integer simulation the firmware must match) on `inputs`.
pub fn cases(model: &Model<'_>, fm: &FloatModel<'_>, inputs: Inputs<'_>) -> Result<Vec<Case>> {
    let c = *model.config();
    let mut fl = Float::new(fm)?;
    let mut cases = Vec::new();
    match (c.kind, inputs) {
        (ModelKind::EncoderDecoder, Inputs::Texts(texts)) => {
            let tok = model.tokenizer();
            let mut q = Int8::new(model, 1);
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
                cases.push(Case { kind: CaseKind::Translate, text: text.clone(), features: Vec::new(), src, out, logits_digest: digest.0, first_logits, float_first_logits, sites });
            }
        }
        (ModelKind::DecoderOnly, Inputs::Texts(prompts)) => {
            let tok = model.tokenizer();
            let mut q = Lm::new(model, 1);
            for text in prompts {
                let src = text_ids(tok, text, c.max_len - 1, false)?;
                let mut sites = Sites::default();
                let mut digest = Fnv1a::default();
                let mut out = Vec::new();
                let first_logits;
                {
                    let mut g = q.session()?;
                    g.prompt_observed(&src, &mut sites)?;
                    first_logits = g.logits().to_vec();
                    // every step that chose a token, eos included
                    while out.len() < MAX_NEW {
                        let Some(t) = g.greedy_step(&mut sites)? else { break };
                        digest.i32s(g.logits());
                        out.push(t);
                    }
                }
                let mut st = fl.state()?;
                for (pos, &t) in src.iter().enumerate() {
                    fm.decode_step(t, pos, &mut st, &mut NoObserver)?;
                }
                let float_first_logits = st.logits().to_vec();
                cases.push(Case { kind: CaseKind::Generate, text: text.clone(), features: Vec::new(), src, out, logits_digest: digest.0, first_logits, float_first_logits, sites });
            }
        }
        (ModelKind::EncoderOnly, inputs) => {
            let mut q = Clf::new(model);
            // (text, ids) or (quantized, real) frames
            type Item = (String, Vec<u16>, Vec<i16>, Vec<f32>);
            let items: Vec<Item> = match inputs {
                Inputs::Texts(texts) => texts.iter().map(|t| Ok((t.clone(), text_ids(model.tokenizer(), t, c.max_len, false)?, Vec::new(), Vec::new()))).collect::<Result<_>>()?,
                Inputs::Windows(ws) => ws.iter().map(|w| (String::new(), Vec::new(), quantize_window(model, w), w.clone())).collect(),
            };
            for (text, src, features, real) in items {
                let mut sites = Sites::default();
                let outputs = {
                    let mut k = q.session()?;
                    let ids = (!src.is_empty()).then_some(&src[..]);
                    let frames = (!features.is_empty()).then_some(&features[..]);
                    k.run_observed(ids, frames, &mut sites)?.to_vec()
                };
                let mut digest = Fnv1a::default();
                digest.i32s(&outputs);
                let class = picoformer::argmax(&outputs) as u16;
                let float_first_logits = if src.is_empty() { fl.classify(FSource::Features(&real))? } else { fl.classify(FSource::Tokens(&src))? };
                cases.push(Case { kind: CaseKind::Classify, text, features, src, out: vec![class], logits_digest: digest.0, first_logits: outputs, float_first_logits, sites });
            }
        }
        _ => anyhow::bail!("test-vector inputs of the wrong kind for this model"),
    }
    Ok(cases)
}

/// Replay every case of a compact vector file on `model`; the first that differs is an error.
pub fn replay_all(model: &Model<'_>, bin: &[u8]) -> Result<usize> {
    let vectors = Vectors::parse(bin).ok_or_else(|| anyhow!("malformed test vectors"))?;
    let c = model.config();
    let longest = vectors.clone().map(|k| k.text.len()).max().unwrap_or(0);
    let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(model, 1).max(Generator::arena_bytes(model, 1)).max(Classifier::arena_bytes(model)));
    let mut scratch = vec![Node::default(); Tokenizer::scratch_len(longest)];
    let mut ids = vec![0; c.max_len + 1];
    let mut features = vec![0; c.max_len * c.n_features];
    let n = vectors.len();
    for (i, case) in vectors.enumerate() {
        let mut buf = Buffers { arena: arena.bytes_mut(), scratch: &mut scratch, ids: &mut ids, features: &mut features };
        let r = replay(model, &case, &mut buf, &mut NoMeter, &mut NoObserver, &mut String::new()).map_err(|e| anyhow!("test vector {i}: {e}"))?;
        if !r.ok(&case) {
            anyhow::bail!("test vector {i} does not replay: {r:?}");
        }
    }
    Ok(n)
}

/// One tensor of the safetensors file, owned until the file is written.
struct Named {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// Write `<stem>.vectors.bin` and `<stem>.vectors.safetensors`. The compact file is read back
/// and every case replayed as the firmware replays it ([`picoformer::vectors::replay`]), so a
/// vector file that its own model fails is never written.
pub fn write(stem: &Path, model: &Model<'_>, cases: &[Case]) -> Result<()> {
    let compact: Vec<CaseData<'_>> = cases.iter().map(|c| CaseData { kind: c.kind, text: &c.text, src: &c.src, features: &c.features, out: &c.out, digest: c.logits_digest }).collect();
    let bin = picoformer::vectors::write(&compact);
    replay_all(model, &bin)?;
    std::fs::write(stem.with_extension("vectors.bin"), &bin)?;

    let mut owned: Vec<Named> = Vec::new();
    let mut push = |name: String, dtype, shape, data| owned.push(Named { name, dtype, shape, data });
    let le16 = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let le32 = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for (i, c) in cases.iter().enumerate() {
        push(format!("case.{i}.src"), Dtype::U16, vec![c.src.len()], le16(&c.src));
        if !c.features.is_empty() {
            push(format!("case.{i}.features"), Dtype::I16, vec![c.features.len()], c.features.iter().flat_map(|x| x.to_le_bytes()).collect());
        }
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
