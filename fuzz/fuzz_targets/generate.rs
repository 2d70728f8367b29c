//! Prompts of any ids and length with any sampling settings (temperature, top-k, top-p, seed),
//! greedy, sampled and beam continuations of any width and length on the tiny Llama-block
//! language model. Every call returns `Ok` or exactly the typed error its arguments call for; a
//! seed gives the same tokens twice; temperature 0 is greedy; nothing panics.
//!
//! Input: `[temp, top_k, top_p, seed, cap, width, max_new, out_len, prompt_len, ids (u16 LE)...]`
//! (one byte each before the ids); ids past the end repeat from its start.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use picoformer::{Error, Generator, Model, Sampler, Sampling, TokenId, MAX_BEAM};
use picoformer_fuzz::{tiny_blob, tiny_lm, AlignedBuf};

fn model() -> &'static Model<'static> {
    static M: OnceLock<Model<'static>> = OnceLock::new();
    M.get_or_init(|| {
        let b: &'static AlignedBuf = Box::leak(Box::new(tiny_blob(&tiny_lm(), 21)));
        Model::parse(b.bytes()).expect("tiny model parses")
    })
}

/// The sampled continuation of the current prompt, to its end.
fn sample(g: &mut Generator<'_, '_>, s: &mut Sampler, vocab: usize) -> Vec<TokenId> {
    let mut out = Vec::new();
    while let Some(id) = g.sample_next(s).expect("sample_next after a prompt") {
        assert!(usize::from(id) < vocab);
        out.push(id);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [temp, top_k, top_p, seed, cap, width, max_new, out_len, prompt_len, rest @ ..] = data else { return };
    let m = model();
    let c = *m.config();
    // temperatures 0..=5.1 in steps of 0.02, the highest bytes far past it
    let temperature_milli = if *temp > 250 { u32::from(*temp) << 20 } else { u32::from(*temp) * 20 };
    let settings = Sampling { temperature_milli, top_k: u32::from(*top_k) % (c.vocab as u32 + 4), top_p_milli: u32::from(*top_p) * 5 };
    let seed = u64::from(*seed).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let cap = usize::from(*cap) % (MAX_BEAM + 2);
    let width = usize::from(*width) % (cap + 2);
    let max_new = usize::from(*max_new) % (c.max_len + 2);
    let out_len = usize::from(*out_len) % (c.max_len + 2);
    let prompt_len = usize::from(*prompt_len) % (c.max_len + 2);
    let words: Vec<u16> = rest.chunks_exact(2).map(|p| u16::from_le_bytes([p[0], p[1]])).collect();
    // low bit clear: an id folded into 0..vocab + 2; set: the raw u16
    let prompt: Vec<u16> = (0..prompt_len)
        .map(|i| words.get(i % words.len().max(1)).copied().unwrap_or(8))
        .map(|w| if w & 1 == 0 { (w >> 1) % (c.vocab as u16 + 2) } else { w })
        .collect();

    let mut arena = AlignedBuf::zeroed(Generator::arena_bytes(m, cap));
    let mut g = match Generator::new(m, arena.bytes_mut(), cap) {
        Ok(g) => g,
        Err(Error::BadBeamWidth { .. }) if cap == 0 || cap > MAX_BEAM => return,
        Err(e) => panic!("Generator::new(cap {cap}): {e:?}"),
    };
    let max_prompt = c.max_len - 1;
    assert_eq!(g.max_prompt(), max_prompt);
    let expected = if prompt.is_empty() {
        Some(Error::EmptyInput)
    } else if prompt.len() > max_prompt {
        Some(Error::InputTooLong { len: prompt.len(), max: max_prompt })
    } else {
        prompt.iter().find(|&&id| usize::from(id) >= c.vocab).map(|&id| Error::TokenOutOfRange { id: id.into(), vocab: c.vocab as u32 })
    };
    match (g.prompt(&prompt), expected) {
        (Err(e), Some(x)) => {
            assert_eq!(e, x);
            assert_eq!(g.next_token(), Err(Error::DecoderState), "no stream after a refused prompt");
            let mut out = vec![0; out_len];
            let r = g.beam_search(&prompt, width.max(1), max_new, &mut out);
            assert!(r.is_err(), "beam search of a refused prompt: {r:?}");
            return;
        }
        (Ok(()), None) => {}
        (r, x) => panic!("prompt {prompt:?}: {r:?}, expected {x:?}"),
    }
    let room = c.max_len - prompt.len();

    // greedy
    let mut greedy = Vec::new();
    while let Some(id) = g.next_token().expect("greedy step") {
        assert!(usize::from(id) < c.vocab && id != c.eos);
        greedy.push(id);
    }
    assert!(greedy.len() <= room);
    assert!(g.len() <= c.max_len);

    // sampled, twice with the same seed; temperature 0 is the greedy continuation
    g.prompt(&prompt).expect("the same prompt again");
    let a = sample(&mut g, &mut Sampler::new(settings, seed), c.vocab);
    assert!(a.len() <= room);
    g.prompt(&prompt).expect("the same prompt again");
    assert_eq!(sample(&mut g, &mut Sampler::new(settings, seed), c.vocab), a, "{settings:?} seed {seed}");
    if settings.temperature_milli == 0 {
        assert_eq!(a, greedy);
    }

    // beam search of any width into any buffer
    let mut out = vec![0; out_len];
    let r = g.beam_search(&prompt, width, max_new, &mut out);
    match r {
        Ok(n) => {
            assert!(width >= 1 && width <= cap);
            assert!(n <= max_new.min(room) && n <= out_len, "beam: {n} tokens, max_new {max_new}, room {room}, out {out_len}");
            assert!(out[..n].iter().all(|&id| usize::from(id) < c.vocab));
        }
        Err(Error::BadBeamWidth { requested, capacity }) => assert!((requested, capacity) == (width, cap) && (width == 0 || width > cap)),
        Err(Error::OutputFull { capacity }) => assert_eq!(capacity, out_len),
        Err(e) => panic!("beam_search(width {width}, max_new {max_new}, out {out_len}): {e:?}"),
    }
    if matches!(r, Err(Error::BadBeamWidth { .. })) {
        // a refused width leaves the finished stream as it was
        assert_eq!(g.next_token(), Ok(None));
    } else {
        // after a search the stream needs a new prompt
        assert_eq!(g.next_token(), Err(Error::DecoderState));
    }
});
