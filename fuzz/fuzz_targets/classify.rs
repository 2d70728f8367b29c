//! Feature windows of any length and value for the tiny encoder-only classifier (and the
//! wrong input or model kind): every call returns `Ok` or exactly the typed error its window
//! calls for, the same window classifies the same way twice, and nothing panics.
//!
//! Input: `[variant, extra, values (i16 LE)...]`: `variant` picks the classifier (mean or
//! first-row pooling, ReLU or GELU); `extra` below 8 asks for `extra` values more or fewer than
//! the input holds, so lengths that are not whole frames and windows past `max_len` come up.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use picoformer::blob::{ActKind, Pooling};
use picoformer::{Classifier, Error, Model, Translator};
use picoformer_fuzz::{tiny_blob, tiny_classifier, tiny_config, AlignedBuf};

/// The classifiers, then a translator (the wrong kind), parsed once.
fn models() -> &'static [Model<'static>] {
    static M: OnceLock<Vec<Model<'static>>> = OnceLock::new();
    M.get_or_init(|| {
        let first = picoformer::blob::Config { pooling: Pooling::First, act: ActKind::Relu, ..tiny_classifier() };
        [tiny_classifier(), first, tiny_config(0)]
            .iter()
            .enumerate()
            .map(|(i, c)| &*Box::leak(Box::new(tiny_blob(c, i as u64 + 11))))
            .map(|b: &'static AlignedBuf| Model::parse(b.bytes()).expect("tiny model parses"))
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let [variant, extra, rest @ ..] = data else { return };
    let ms = models();
    let m = &ms[usize::from(*variant) % ms.len()];
    let c = *m.config();
    let mut arena = AlignedBuf::zeroed(Classifier::arena_bytes(m));
    let mut k = match Classifier::new(m, arena.bytes_mut()) {
        Ok(k) => k,
        Err(Error::WrongModelKind) if c.n_outputs == 0 || c.vocab > 0 => {
            // a translator is not a classifier, and a classifier is not a translator
            let mut a = AlignedBuf::zeroed(Translator::arena_bytes(&ms[0], 1));
            assert_eq!(Translator::new(&ms[0], a.bytes_mut(), 1).err(), Some(Error::WrongModelKind));
            return;
        }
        Err(e) => panic!("Classifier::new: {e:?}"),
    };
    let mut values: Vec<i16> = rest.chunks_exact(2).map(|p| i16::from_le_bytes([p[0], p[1]])).collect();
    match *extra {
        0..=3 => values.truncate(values.len().saturating_sub(usize::from(*extra))),
        4..=7 => values.extend((0..usize::from(*extra - 3)).map(|i| i as i16 * 4099)),
        _ => {}
    }
    let f = c.n_features;
    let rows = values.len() / f;
    let expected = if values.len() % f != 0 {
        Some(Error::BadFeatureCount { len: values.len(), per_frame: f })
    } else if rows == 0 {
        Some(Error::EmptyInput)
    } else if rows > c.max_len {
        Some(Error::InputTooLong { len: rows, max: c.max_len })
    } else {
        None
    };
    let first = k.classify_features(&values).map(|o| o.to_vec());
    match (&first, expected) {
        (Err(e), Some(x)) => assert_eq!(*e, x),
        (Ok(o), None) => {
            assert_eq!(o.len(), c.n_outputs);
            let class = k.class();
            assert!(class < c.n_outputs);
            assert!(o.iter().all(|&v| v <= o[class]));
            // no state survives a call: the same window gives the same outputs
            assert_eq!(k.classify_features(&values).map(|o| o.to_vec()).as_ref(), Ok(o));
        }
        (r, x) => panic!("classify_features of {} values: {r:?}, expected {x:?}", values.len()),
    }
    // token ids for a feature model: the wrong input, whatever they are
    let ids: Vec<u16> = rest.iter().map(|&b| u16::from(b)).take(c.max_len).collect();
    assert_eq!(k.classify_tokens(&ids).err(), Some(Error::WrongInput));
    assert_eq!(k.run_observed(None, None, &mut picoformer::observe::NoObserver).err(), Some(Error::WrongInput));
});
