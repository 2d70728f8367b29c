//! Arbitrary token ids (in and out of range), source lengths `0..=2·max_len`, beam
//! capacities `0..=MAX_BEAM + 1` and widths `0..=capacity + 1`, output buffers of any size,
//! on the valid tiny model in its four variants. Every call returns `Ok` or the typed error
//! its arguments call for; nothing panics.
//!
//! Input: `[variant, cap, width, src_len, out_len, ids (u16 LE)...]`; ids past the end of the
//! input repeat from its start.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use picoformer::observe::NoObserver;
use picoformer::{Error, Model, Translator, MAX_BEAM};
use picoformer_fuzz::{tiny_blob, translator_variants, AlignedBuf};

/// The tiny model in each variant, parsed once.
fn models() -> &'static [Model<'static>] {
    static M: OnceLock<Vec<Model<'static>>> = OnceLock::new();
    M.get_or_init(|| {
        let blob = |(i, c): (usize, &_)| &*Box::leak(Box::new(tiny_blob(c, i as u64 + 7)));
        translator_variants().iter().enumerate().map(blob).map(|b: &'static AlignedBuf| Model::parse(b.bytes()).expect("tiny model parses")).collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let [variant, cap, width, src_len, out_len, rest @ ..] = data else { return };
    let m = &models()[usize::from(*variant) % models().len()];
    let c = *m.config();
    let cap = usize::from(*cap) % (MAX_BEAM + 2);
    let width = usize::from(*width) % (cap + 2);
    let src_len = usize::from(*src_len) % (2 * c.max_len + 1);
    let out_len = usize::from(*out_len) % (c.max_len + 1);
    // low bit clear: an id folded into 0..vocab + 2; set: the raw u16
    let words: Vec<u16> = rest.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
    let src: Vec<u16> = (0..src_len)
        .map(|i| words.get(i % words.len().max(1)).copied().unwrap_or(4))
        .map(|w| if w & 1 == 0 { (w >> 1) % (c.vocab as u16 + 2) } else { w })
        .collect();

    let mut arena = AlignedBuf::zeroed(Translator::arena_bytes(m, cap));
    let mut t = match Translator::new(m, arena.bytes_mut(), cap) {
        Ok(t) => t,
        Err(Error::BadBeamWidth { .. }) if cap == 0 || cap > MAX_BEAM => return,
        Err(e) => panic!("Translator::new(cap {cap}): {e:?}"),
    };
    assert!(cap >= 1 && cap <= MAX_BEAM);

    let expected = if src.is_empty() {
        Some(Error::EmptyInput)
    } else if src.len() > c.max_len {
        Some(Error::InputTooLong { len: src.len(), max: c.max_len })
    } else {
        src.iter().find(|&&id| usize::from(id) >= c.vocab).map(|&id| Error::TokenOutOfRange { id: id.into(), vocab: c.vocab as u32 })
    };
    let mut out = vec![0u16; out_len];
    match (t.encode(&src), expected) {
        (Err(e), Some(x)) => {
            assert_eq!(e, x);
            // a failed encode leaves no usable source only if none was encoded before
            assert_eq!(t.next_token(), Err(Error::DecoderState));
            assert_eq!(t.beam_search(1, &mut out), Err(Error::DecoderState));
            return;
        }
        (Ok(()), None) => {}
        (r, x) => panic!("encode {src:?}: {r:?}, expected {x:?}"),
    }

    // greedy into `out`
    match t.greedy(&mut out) {
        Ok(n) => assert!(n <= out_len && n < c.max_len),
        Err(Error::OutputFull { capacity }) => assert!(capacity <= out_len),
        Err(e) => panic!("greedy: {e:?}"),
    }
    // streaming after the end stays finished
    assert!(matches!(t.next_token(), Ok(None) | Ok(Some(_))));

    // teacher forcing with the input's ids
    t.encode(&src).expect("re-encode");
    for (pos, &id) in src.iter().enumerate() {
        match t.force_observed(id, &mut NoObserver) {
            Ok(logits) => assert_eq!(logits.len(), c.vocab),
            Err(Error::TokenOutOfRange { .. }) => assert!(usize::from(id) >= c.vocab),
            Err(Error::DecoderState) => assert!(pos + 1 >= c.max_len),
            Err(e) => panic!("force: {e:?}"),
        }
    }

    // beam search of any width
    t.encode(&src).expect("re-encode");
    match t.beam_search(width, &mut out) {
        Ok(n) => assert!(width >= 1 && width <= cap && n <= out_len && n < c.max_len),
        Err(Error::BadBeamWidth { requested, capacity }) => {
            assert!((width == 0 || width > cap) && requested == width && capacity == cap)
        }
        Err(Error::OutputFull { .. }) => assert!(width >= 1 && width <= cap),
        Err(e) => panic!("beam {width}/{cap}: {e:?}"),
    }
});
