//! Host soak: a million random inputs through every public entry point of the runtime, on every
//! committed model kind, in one process (`scripts/soak`, docs/robustness.md).
//!
//!     cargo run --profile soak --example soak -- [INPUTS] [SEED]
//!
//! Each input is one random call, all buffers allocated once before the loop:
//! - text (random Unicode: ASCII words, German, any scalar value, controls, combining marks,
//!   emoji; 0 to 600 bytes) through both models' tokenizers (`encode`, `encode_source`,
//!   `encode_prompt`, `encode_prefix`) with scratch and output of random size, and random ids
//!   through `decode`, `surface` and streamed `decode_piece`;
//! - the translator (models/de-en): text or raw random ids, then greedy into a random-sized
//!   buffer, a random number of `next_token` / `force_observed` steps, or beam search of width
//!   0..=5 (capacity 4);
//! - the language model (models/captions-lm): a prompt (text or ids, random length), then greedy,
//!   sampled (random temperature, top-k, top-p, seed) or beam continuation of random width and
//!   length;
//! - both classifiers (models/japanese-vowels, models/basic-motions): windows of random frames
//!   and values, lengths that are not whole frames, token ids to a feature model;
//! - `Model::parse` of the tiny blobs with random bit flips (resealed or not) and of random
//!   bytes; what parses runs, and the integrity check steps over it.
//!
//! Counts every result by entry point and error kind, catches panics (there must be none: the
//! exit status is 1 if any), and prints the resident set size (`/proc/self/statm`) at start,
//! every tenth of the run and at the end.
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use picoformer::align::AlignedBuf;
use picoformer::blob::{self, synthetic::random_blob, Config};
use picoformer::observe::NoObserver;
use picoformer::tokenizer::{DecodeState, Node, Tokenizer};
use picoformer::{Classifier, Error, Generator, Model, Progress, Sampler, Sampling, TokenId, Translator};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const MAX_TEXT: usize = 600;
const BEAM_CAP: usize = 4;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Random text of at most `MAX_TEXT` bytes.
fn text(r: &mut Rng, s: &mut String) {
    s.clear();
    let words = ["ein", "Hund", "rennt", "durch", "den", "Schnee", "a", "dog", "the", "Fußgängerüberweg", "Straße", "über", "Mädchen", ".", ",", "?"];
    let target = r.below(MAX_TEXT + 1);
    while s.len() < target {
        let c: Option<char> = match r.below(10) {
            0..=2 => {
                let w = words[r.below(words.len())];
                if s.len() + w.len() < MAX_TEXT {
                    s.push_str(w);
                }
                Some(' ')
            }
            3 => Some(['ä', 'ö', 'ü', 'ß', 'Ä', 'é', 'ñ', '€', '▁', '\u{301}'][r.below(10)]),
            4 => char::from_u32(r.below(0x11_0000) as u32),
            5 => char::from_u32(r.below(0x20) as u32),
            6 => char::from_u32(0x1f600 + r.below(80) as u32),
            7 => Some([' ', '\t', '\n', '\u{a0}', '\u{3000}', '\u{200b}'][r.below(6)]),
            _ => char::from_u32(0x20 + r.below(0x5f) as u32),
        };
        if let Some(c) = c {
            if s.len() + c.len_utf8() > MAX_TEXT {
                break;
            }
            s.push(c);
        }
    }
}

fn read_blob(path: &str) -> &'static [u8] {
    let bytes = std::fs::read(format!("{ROOT}/{path}")).unwrap_or_else(|e| panic!("{path}: {e} (see models/README)"));
    Box::leak(Box::new(AlignedBuf::from_bytes(&bytes))).bytes()
}

fn parse(path: &str) -> &'static Model<'static> {
    Box::leak(Box::new(Model::parse(read_blob(path)).unwrap_or_else(|e| panic!("{path}: {e}"))))
}

/// Kilobytes resident.
fn rss_kb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4
}

/// The name of an error's kind: `OutputFull`, not `OutputFull { capacity: 3 }`.
fn kind(e: &Error) -> String {
    let d = format!("{e:?}");
    d.split([' ', '{', '(']).next().unwrap_or("").to_string()
}

#[derive(Default)]
struct Tally(BTreeMap<String, u64>);

impl Tally {
    fn note<T>(&mut self, what: &str, r: &Result<T, Error>) {
        let k = match r {
            Ok(_) => format!("{what}: Ok"),
            Err(e) => format!("{what}: {}", kind(e)),
        };
        *self.0.entry(k).or_default() += 1;
    }
}

/// Everything the loop reuses.
struct Bench {
    tr: Translator<'static, 'static>,
    lm: Generator<'static, 'static>,
    cls: Vec<Classifier<'static, 'static>>,
    de_en: &'static Model<'static>,
    captions: &'static Model<'static>,
    tiny: Vec<Vec<u8>>,
    flip: AlignedBuf,
    scratch: Vec<Node>,
    ids: Vec<TokenId>,
    out: Vec<TokenId>,
    bytes: Vec<u8>,
    frames: Vec<i16>,
    text: String,
    decoded: String,
}

/// An arena, every page written once so the RSS at the start already counts it.
fn arena(n: usize) -> &'static mut [u8] {
    let a = Box::leak(Box::new(AlignedBuf::zeroed(n))).bytes_mut();
    a.fill(0x55);
    a
}

/// A decode length: mostly short (the soak is about inputs, not long outputs), a fifth of the
/// time anything up to `max`.
fn out_len(r: &mut Rng, max: usize) -> usize {
    if r.chance(20) {
        r.below(max + 1)
    } else {
        r.below(17.min(max + 1))
    }
}

fn tokenizer_input(b: &mut Bench, r: &mut Rng, t: &mut Tally) {
    let tok: &Tokenizer<'_> = if r.chance(50) { b.de_en.tokenizer() } else { b.captions.tokenizer() };
    text(r, &mut b.text);
    let scratch_len = if r.chance(80) { Tokenizer::scratch_len(b.text.len()) } else { r.below(Tokenizer::scratch_len(b.text.len()) + 2) };
    let out_len = if r.chance(70) { b.ids.len() } else { r.below(80) };
    let scratch_len = scratch_len.min(b.scratch.len());
    let (scratch, out) = (&mut b.scratch[..scratch_len], &mut b.ids[..out_len]);
    match r.below(4) {
        0 => t.note("tokenizer.encode", &tok.encode(&b.text, scratch, out)),
        1 => t.note("tokenizer.encode_source", &tok.encode_source(&b.text, scratch, out, r.below(80))),
        2 => t.note("tokenizer.encode_prompt", &tok.encode_prompt(&b.text, scratch, out, r.below(80))),
        _ => t.note("tokenizer.encode_prefix", &tok.encode_prefix(&b.text, scratch, out, r.below(80))),
    }
    // random ids, some out of range, through decode and the streamed pieces
    let n = r.below(64);
    let v = tok.vocab_size();
    for id in &mut b.ids[..n] {
        *id = if r.chance(95) { r.below(v) as TokenId } else { r.next() as TokenId };
    }
    let cap = if r.chance(80) { b.bytes.len() } else { r.below(64) };
    t.note("tokenizer.decode", &tok.decode(&b.ids[..n], &mut b.bytes[..cap]));
    let mut state = DecodeState::default();
    b.decoded.clear();
    let mut r2 = Ok(());
    for &id in &b.ids[..n] {
        r2 = tok.decode_piece(id, &mut state, &mut b.decoded);
        if r2.is_err() {
            break;
        }
        if r.chance(10) {
            let _ = tok.surface(id, &mut DecodeState::default());
        }
    }
    if r2.is_ok() {
        r2 = state.finish(&mut b.decoded);
    }
    t.note("tokenizer.decode_piece", &r2);
}

/// A source: tokenized random text, or random ids of random length.
fn source(b: &mut Bench, m: &Model<'_>, r: &mut Rng, t: &mut Tally, what: &str) -> usize {
    let c = m.config();
    if r.chance(70) {
        text(r, &mut b.text);
        let res = if what == "translate" {
            m.tokenizer().encode_source(&b.text, &mut b.scratch, &mut b.ids, c.max_len)
        } else {
            m.tokenizer().encode_prompt(&b.text, &mut b.scratch, &mut b.ids, c.max_len - 1)
        };
        t.note(&format!("{what}.tokenize"), &res);
        res.unwrap_or(0)
    } else {
        let n = r.below(c.max_len + 3);
        for id in &mut b.ids[..n] {
            *id = if r.chance(97) { r.below(c.vocab) as TokenId } else { r.next() as TokenId };
        }
        n
    }
}

fn translate_input(b: &mut Bench, r: &mut Rng, t: &mut Tally) {
    let m = b.de_en;
    let n = source(b, m, r, t, "translate");
    let res = b.tr.encode(&b.ids[..n]);
    t.note("translate.encode", &res);
    let max_len = m.config().max_len;
    match r.below(10) {
        0..=3 => {
            let cap = out_len(r, max_len);
            t.note("translate.greedy", &b.tr.greedy(&mut b.out[..cap]));
        }
        4..=5 => {
            for _ in 0..out_len(r, max_len + 1) {
                let step = b.tr.next_token();
                let done = !matches!(step, Ok(Some(_)));
                t.note("translate.next_token", &step);
                if done {
                    break;
                }
            }
        }
        6 => {
            for _ in 0..out_len(r, max_len + 1) {
                let id = r.below(m.config().vocab + 2) as TokenId;
                let step = b.tr.force_observed(id, &mut NoObserver).map(|_| ());
                let bad = step.is_err();
                t.note("translate.force", &step);
                if bad {
                    break;
                }
            }
        }
        _ => {
            let cap = out_len(r, max_len);
            t.note("translate.beam_search", &b.tr.beam_search(r.below(BEAM_CAP + 2), &mut b.out[..cap]));
        }
    }
}

fn generate_input(b: &mut Bench, r: &mut Rng, t: &mut Tally) {
    let m = b.captions;
    let c = *m.config();
    let n = source(b, m, r, t, "generate");
    let prompt = &b.ids[..n];
    match r.below(10) {
        0..=2 => {
            t.note("generate.prompt", &b.lm.prompt(prompt));
            let steps = out_len(r, c.max_len + 1);
            for _ in 0..steps {
                let s = b.lm.next_token();
                let done = !matches!(s, Ok(Some(_)));
                t.note("generate.next_token", &s);
                if done {
                    break;
                }
            }
        }
        3..=6 => {
            t.note("generate.prompt", &b.lm.prompt(prompt));
            let settings = Sampling {
                temperature_milli: [0, 1, 300, 700, 1000, 1500, 5000, u32::MAX][r.below(8)],
                top_k: [0, 1, 2, 10, 40, 100_000][r.below(6)],
                top_p_milli: [0, 1, 500, 900, 1000, 5000][r.below(6)],
            };
            let mut s = Sampler::new(settings, r.next());
            for _ in 0..out_len(r, c.max_len + 1) {
                let step = b.lm.sample_next(&mut s);
                let done = !matches!(step, Ok(Some(_)));
                t.note("generate.sample_next", &step);
                if done {
                    break;
                }
            }
        }
        7 => {
            t.note("generate.prompt", &b.lm.prompt(prompt));
            for _ in 0..r.below(8) {
                let s = b.lm.force_observed(r.below(c.vocab + 2) as TokenId, &mut NoObserver).map(|_| ());
                t.note("generate.force", &s);
            }
        }
        _ => {
            let cap = if r.chance(80) { c.max_len } else { r.below(c.max_len + 1) };
            let res = b.lm.beam_search(prompt, r.below(BEAM_CAP + 2), out_len(r, c.max_len + 1), &mut b.out[..cap]);
            t.note("generate.beam_search", &res);
        }
    }
}

fn classify_input(b: &mut Bench, r: &mut Rng, t: &mut Tally) {
    let i = r.below(b.cls.len());
    let k = &mut b.cls[i];
    let c = *k.model().config();
    let f = c.n_features;
    let len = match r.below(10) {
        0 => r.below(b.frames.len()),
        1 => (c.max_len + 1 + r.below(3)) * f,
        _ => (1 + r.below(c.max_len)) * f,
    };
    let wide = r.chance(20);
    for v in &mut b.frames[..len] {
        *v = if wide { r.next() as i16 } else { (r.below(2001) as i16) - 1000 };
    }
    let res = k.classify_features(&b.frames[..len]).map(|o| o.len());
    if let Ok(n) = res {
        assert_eq!(n, c.n_outputs);
        assert!(k.class() < c.n_outputs);
    }
    t.note("classify.features", &res);
    if r.chance(5) {
        t.note("classify.tokens", &k.classify_tokens(&b.ids[..r.below(4)]).map(|_| ()));
    }
}

fn parse_input(b: &mut Bench, r: &mut Rng, t: &mut Tally) {
    let bytes = if r.chance(90) {
        let src = &b.tiny[r.below(b.tiny.len())];
        b.flip = AlignedBuf::from_bytes(src);
        let buf = b.flip.bytes_mut();
        for _ in 0..1 + r.below(3) {
            let at = r.below(buf.len() * 8);
            buf[at / 8] ^= 1 << (at % 8);
        }
        if r.chance(60) {
            blob::reseal(buf);
        }
        b.flip.bytes()
    } else {
        b.flip = AlignedBuf::zeroed(r.below(4096));
        let buf = b.flip.bytes_mut();
        buf.iter_mut().for_each(|x| *x = r.next() as u8);
        if buf.len() >= 4 && r.chance(50) {
            buf[..4].copy_from_slice(&blob::MAGIC);
        }
        b.flip.bytes()
    };
    let res = Model::parse(bytes);
    t.note("parse", &res.as_ref().map(|_| ()).map_err(|e| *e));
    if let Ok(m) = res {
        let mut check = m.integrity();
        let mut end = Ok(Progress::Done);
        for _ in 0..bytes.len() + 1 {
            end = check.step(&m, 1 + r.below(2048));
            if !matches!(end, Ok(Progress::Checking { .. })) {
                break;
            }
        }
        t.note("integrity", &end);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let inputs: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let seed: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0x5eed_50a4);
    let de_en = parse("models/de-en/de-en.pico");
    let captions = parse("models/captions-lm/captions-lm.pico");
    let classifiers = [parse("models/japanese-vowels/japanese-vowels.pico"), parse("models/basic-motions/basic-motions.pico")];
    // the parse inputs start from small valid blobs of every kind, made by the format's generator
    let small = |m: &Model<'_>| Config { d_model: 16, nhead: 2, n_kv_heads: 2.min(m.config().n_kv_heads.max(1)), d_ff: 32, max_len: 8, ..*m.config() };
    let tiny: Vec<Vec<u8>> = [de_en, captions, classifiers[0], classifiers[1]]
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let mut c = small(m);
            if c.vocab > 0 {
                c.vocab = 40;
                (c.pad, c.unk, c.bos, c.eos) = (0, 1, 2, 3);
            }
            random_blob(&c, i as u64 + 1, i % 2 == 0).map_err(|e| eprintln!("tiny blob {i}: {e}")).ok()
        })
        .collect();
    assert!(!tiny.is_empty(), "no tiny blob");
    let mut b = Bench {
        tr: Translator::new(de_en, arena(Translator::arena_bytes(de_en, BEAM_CAP)), BEAM_CAP).expect("translator"),
        lm: Generator::new(captions, arena(Generator::arena_bytes(captions, BEAM_CAP)), BEAM_CAP).expect("generator"),
        cls: classifiers.iter().map(|m| Classifier::new(m, arena(Classifier::arena_bytes(m))).expect("classifier")).collect(),
        de_en,
        captions,
        flip: AlignedBuf::zeroed(0),
        tiny,
        scratch: vec![Node::EMPTY; Tokenizer::scratch_len(MAX_TEXT)],
        ids: vec![1; MAX_TEXT + 2],
        out: vec![1; 1024],
        bytes: vec![1; 64 * 1024],
        frames: vec![1; 4096],
        text: String::with_capacity(MAX_TEXT * 2),
        decoded: String::with_capacity(64 * 1024),
    };
    let mut t = Tally::default();
    let mut r = Rng(seed | 1);
    let (mut panics, mut by_kind) = (0u64, [0u64; 5]);
    let start = Instant::now();
    let rss0 = rss_kb();
    println!("soak: {inputs} inputs, seed {seed:#x}; RSS at start {rss0} kB");
    for i in 0..inputs {
        let which = match r.below(100) {
            0..=44 => 0,
            45..=54 => 1,
            55..=64 => 2,
            65..=84 => 3,
            _ => 4,
        };
        by_kind[which] += 1;
        let res = catch_unwind(AssertUnwindSafe(|| match which {
            0 => tokenizer_input(&mut b, &mut r, &mut t),
            1 => translate_input(&mut b, &mut r, &mut t),
            2 => generate_input(&mut b, &mut r, &mut t),
            3 => classify_input(&mut b, &mut r, &mut t),
            _ => parse_input(&mut b, &mut r, &mut t),
        }));
        if res.is_err() {
            panics += 1;
            eprintln!("soak: PANIC at input {i} (kind {which})");
        }
        if (i + 1) % (inputs / 10).max(1) == 0 {
            println!("  {:>8} inputs, {:>6.1} s, RSS {} kB, panics {panics}", i + 1, start.elapsed().as_secs_f64(), rss_kb());
            // the counts so far, so a run stopped early still has them
            let line: Vec<String> = t.0.iter().map(|(k, n)| format!("{k}={n}")).collect();
            println!("    counts: {}", line.join(", "));
        }
    }
    let rss1 = rss_kb();
    println!(
        "inputs by kind: tokenizer {}, translate {}, generate {}, classify {}, parse {}",
        by_kind[0], by_kind[1], by_kind[2], by_kind[3], by_kind[4]
    );
    println!("results by entry point and kind:");
    for (k, n) in &t.0 {
        println!("  {k:<40} {n:>9}");
    }
    println!("soak: {inputs} inputs in {:.1} s; {panics} panics; RSS {rss0} kB at start, {rss1} kB at the end", start.elapsed().as_secs_f64());
    std::process::exit(i32::from(panics > 0));
}
