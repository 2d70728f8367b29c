//! Every committed model against its converter's test vectors, bit for bit: each case replayed
//! as the firmware replays it ([`picoformer::vectors::replay`]), and every activation site's
//! digest against the converter's (`<model>.vectors.safetensors`), the first case's raw values
//! too. Then the real tokenizers against python `sentencepiece`.

mod common;

use common::AlignedBuf;
use picoformer::blob::ModelKind;
use picoformer::observe::{Data, NoObserver, Observer, Site};
use picoformer::tokenizer::{Node, Tokenizer};
use picoformer::vectors::{replay, Buffers, CaseData, CaseKind, Cost, Fnv1a, Meter, NoMeter, Vectors};
use picoformer::{Classifier, Generator, Model, TokenId, Translator};
use safetensors::SafeTensors;

/// `(directory and file stem, kind)`.
const MODELS: [(&str, ModelKind); 6] = [
    ("de-en", ModelKind::EncoderDecoder),
    // de-en fitted to 1 MiB of flash with int4 weights (`--flash-budget 830000`)
    ("de-en-fit", ModelKind::EncoderDecoder),
    ("captions-lm", ModelKind::DecoderOnly),
    ("japanese-vowels", ModelKind::EncoderOnly),
    ("basic-motions", ModelKind::EncoderOnly),
    // the tiny BERT of models/hf-tiny/bert: WordPiece text in, embedding norm, tanh pooler
    ("bert-tiny", ModelKind::EncoderOnly),
];

fn read(model: &str, file: &str) -> Vec<u8> {
    let p = format!("{}/models/{model}/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e} (run the converter: see README)"))
}

fn ints(st: &SafeTensors<'_>, name: &str) -> Vec<i32> {
    let t = st.tensor(name).unwrap_or_else(|_| panic!("{name}"));
    match t.dtype() {
        safetensors::Dtype::I8 => t.data().iter().map(|&b| b as i8 as i32).collect(),
        safetensors::Dtype::I16 => t.data().chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as i32).collect(),
        safetensors::Dtype::U16 => t.data().chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]]) as i32).collect(),
        _ => t.data().chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap())).collect(),
    }
}

/// Every site's raw values, in the order the forward pass reports them.
#[derive(Default)]
struct Sites(Vec<(Site, Vec<i32>)>);

impl Observer for Sites {
    fn observe(&mut self, site: Site, data: Data<'_>) {
        let v: Vec<i32> = match data {
            Data::I8(x) => x.iter().map(|&q| q as i32).collect(),
            Data::I16(x) => x.iter().map(|&q| q as i32).collect(),
            Data::I32(x) => x.to_vec(),
            _ => return, // f32 data, from the reference forward pass only
        };
        match self.0.iter_mut().find(|(s, _)| *s == site) {
            Some((_, d)) => d.extend(v),
            None => self.0.push((site, v)),
        }
    }
}

/// A clock that ticks once per reading: each stage `replay` meters costs exactly 1.
struct Ticks(u64);

impl Meter for Ticks {
    fn now(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

fn replays_bit_for_bit(name: &str, kind: ModelKind) {
    let blob = AlignedBuf::from_bytes(&read(name, &format!("{name}.pico")));
    let m = Model::parse(blob.bytes()).unwrap();
    let c = *m.config();
    assert_eq!(c.kind, kind, "{name}");
    let st_bytes = read(name, &format!("{name}.vectors.safetensors"));
    let st = SafeTensors::deserialize(&st_bytes).unwrap();
    let compact = read(name, &format!("{name}.vectors.bin"));
    let cases = Vectors::parse(&compact).expect("vectors.bin parses");
    assert!(cases.len() >= 8, "{name}: {} cases", cases.len());

    let arena_bytes = match kind {
        ModelKind::EncoderDecoder => Translator::arena_bytes(&m, 1),
        ModelKind::DecoderOnly => Generator::arena_bytes(&m, 1),
        ModelKind::EncoderOnly => Classifier::arena_bytes(&m),
    };
    let mut arena = AlignedBuf::zeroed(arena_bytes);
    let mut scratch = vec![Node::default(); Tokenizer::scratch_len(512)];
    let mut ids = vec![0; c.max_len + 1];
    let mut features = vec![0; c.max_len * c.n_features];
    let mut checked_sites = 0;
    let (mut total, mut sum) = (Cost::default(), Cost::default());
    for (i, case) in cases.enumerate() {
        let want_kind = match kind {
            ModelKind::EncoderDecoder => CaseKind::Translate,
            ModelKind::DecoderOnly => CaseKind::Generate,
            ModelKind::EncoderOnly => CaseKind::Classify,
        };
        assert_eq!(case.kind, want_kind, "{name} case {i}");
        let mut sites = Sites::default();
        let mut text = String::new();
        let mut buf = Buffers { arena: arena.bytes_mut(), scratch: &mut scratch, ids: &mut ids, features: &mut features };
        let r = replay(&m, &case, &mut buf, &mut Ticks(0), &mut sites, &mut text).unwrap();
        assert!(r.input_ok, "{name} case {i}: input ids");
        // what the firmware prints: input ids (or frames) and output ids
        let inputs = if case.features_len() > 0 { case.features_len() / c.n_features } else { case.src().count() };
        assert_eq!((r.inputs, r.outputs), (inputs, case.out_len()), "{name} case {i}: counts");
        // one tick per metered stage: every greedy step, the final one that ends it included
        let k = r.cost;
        let tokens = u64::from(case.features_len() == 0);
        let want = match kind {
            ModelKind::EncoderDecoder => Cost { tokenize: 1, prefill: 1, decode: k.steps as u64 + 1, steps: k.steps },
            // a prompt stops at the step limit without a final step
            ModelKind::DecoderOnly => Cost { tokenize: 1, prefill: 1, decode: k.decode.clamp(k.steps as u64, k.steps as u64 + 1), steps: k.steps },
            ModelKind::EncoderOnly => Cost { tokenize: tokens, prefill: 1, decode: 0, steps: 0 },
        };
        assert_eq!(k, want, "{name} case {i}: cost");
        assert!(kind == ModelKind::EncoderOnly || k.steps > 0, "{name} case {i}: no steps");
        total.add(&k);
        (sum.tokenize, sum.prefill, sum.decode, sum.steps) = (sum.tokenize + k.tokenize, sum.prefill + k.prefill, sum.decode + k.decode, sum.steps + k.steps);
        assert_eq!(r.first_diff, None, "{name} case {i}: output ids ({} of {})", r.outputs, case.out_len());
        assert_eq!(r.digest, case.logits_digest, "{name} case {i}: logits digest");
        assert!(r.ok(&case));
        // the same outputs as the safetensors file, which the report's figures come from
        let out: Vec<i32> = case.out().map(i32::from).collect();
        assert_eq!(out, ints(&st, &format!("case.{i}.greedy")), "{name} case {i}");
        if kind != ModelKind::EncoderOnly {
            assert!(!text.is_empty() || case.out_len() <= 1, "{name} case {i}: no text for {:?}", out);
        }
        // every layer's activations
        for (site, data) in &sites.0 {
            let mut d = Fnv1a::default();
            d.i32s(data);
            let want = ints(&st, &format!("case.{i}.digest.{site}"))[0] as u32;
            assert_eq!(d.0, want, "{name} case {i}: site {site}");
            if i == 0 {
                assert_eq!(data, &ints(&st, &format!("case.0.site.{site}")), "{name} case 0: site {site}");
            }
            checked_sites += 1;
        }
    }
    let per_case = 3 * (c.n_enc + c.n_dec);
    assert!(checked_sites >= 8 * per_case, "{name}: {checked_sites} sites");
    assert_eq!(total, sum, "{name}: Cost::add");
    assert_eq!(total.total(), sum.tokenize + sum.prefill + sum.decode, "{name}: Cost::total");
}

#[test]
fn de_en_replays_its_vectors_bit_for_bit() {
    replays_bit_for_bit(MODELS[0].0, MODELS[0].1);
}

#[test]
fn de_en_fit_replays_its_vectors_bit_for_bit() {
    replays_bit_for_bit(MODELS[1].0, MODELS[1].1);
}

#[test]
fn captions_lm_replays_its_vectors_bit_for_bit() {
    replays_bit_for_bit(MODELS[2].0, MODELS[2].1);
}

#[test]
fn japanese_vowels_replays_its_vectors_bit_for_bit() {
    replays_bit_for_bit(MODELS[3].0, MODELS[3].1);
}

#[test]
fn basic_motions_replays_its_vectors_bit_for_bit() {
    replays_bit_for_bit(MODELS[4].0, MODELS[4].1);
}

#[test]
fn bert_tiny_replays_its_vectors_bit_for_bit() {
    replays_bit_for_bit(MODELS[5].0, MODELS[5].1);
}

/// The tiny BERT's WordPiece tokenizer, from the blob, against `BertTokenizerFast` on the
/// strings of `models/hf-tiny/bert/tokenizer_vectors.json`; and `Classifier::classify_text`
/// runs the ids it gives.
#[test]
fn bert_tiny_tokenizer_matches_transformers() {
    let blob = AlignedBuf::from_bytes(&read("bert-tiny", "bert-tiny.pico"));
    let m = Model::parse(blob.bytes()).unwrap();
    let tok = m.tokenizer();
    let text = String::from_utf8(read("hf-tiny/bert", "tokenizer_vectors.json")).unwrap();
    let mut n = 0;
    // one case a line: {"text": …, "ids": [...]}
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let line = line.trim_end_matches(',');
        let (t, ids) = line.split_once(", \"ids\": [").unwrap();
        let t: String = serde_json_str(t.strip_prefix("{\"text\": ").unwrap());
        let want: Vec<TokenId> = ids.trim_end_matches("]}").split(", ").map(|x| x.parse().unwrap()).collect();
        let mut scratch = vec![Node::default(); Tokenizer::scratch_len(t.len())];
        let mut got = vec![0; 512];
        let k = tok.encode_prompt(&t, &mut scratch, &mut got, 512).unwrap();
        assert_eq!(&got[..k], &want[..], "{t:?}");
        n += 1;
    }
    assert_eq!(n, 21);
    let mut arena = AlignedBuf::zeroed(Classifier::arena_bytes(&m));
    let mut clf = Classifier::new(&m, arena.bytes_mut()).unwrap();
    let (mut scratch, mut ids) = (vec![Node::default(); Tokenizer::scratch_len(64)], vec![0; 64]);
    let by_text = clf.classify_text("A dog runs through the grass.", &mut scratch, &mut ids).unwrap().to_vec();
    let n = tok.encode_prompt("A dog runs through the grass.", &mut scratch, &mut ids, 64).unwrap();
    assert_eq!(&ids[..n], &[2, 499, 644, 986, 374, 1099, 1094, 741, 480, 3]);
    let by_ids = clf.classify_tokens(&ids[..n]).unwrap().to_vec();
    assert_eq!(by_text, by_ids);
}

/// Hostile WordPiece tables are refused, not trusted; random text through the real ones gives
/// ids in range, framed, with a scratch of [`Tokenizer::scratch_len`].
#[test]
fn bert_tiny_tokenizer_refuses_bad_tables_and_survives_any_text() {
    let blob = AlignedBuf::from_bytes(&read("bert-tiny", "bert-tiny.pico"));
    let m = Model::parse(blob.bytes()).unwrap();
    let v = *m.tokenizer().vocab();
    let bad = |v: picoformer::tokenizer::Vocab<'_>| matches!(Tokenizer::new(v), Err(picoformer::Error::BadVocab { .. }));
    let mut classes = v.classes.to_vec();
    classes.swap(3, 4);
    assert!(bad(picoformer::tokenizer::Vocab { classes: &classes, ..v }), "runs out of order");
    assert!(bad(picoformer::tokenizer::Vocab { classes: &v.classes[1..], ..v }), "runs not from 0");
    assert!(bad(picoformer::tokenizer::Vocab { classes: &[7], ..v }), "unknown class");
    assert!(bad(picoformer::tokenizer::Vocab { map_offsets: &v.map_offsets[1..], ..v }), "offsets");
    let mut from = v.map_from.to_vec();
    from[0] = 0xD800;
    assert!(bad(picoformer::tokenizer::Vocab { map_from: &from, ..v }), "a surrogate key");
    // 'A' (one byte) replaced by four bytes: past the 3× the scratch allows
    let (f, o, b) = ([0x41u32], [0u32, 4], *b"abcd");
    assert!(bad(picoformer::tokenizer::Vocab { map_from: &f, map_offsets: &o, map_bytes: &b, ..v }), "a long replacement");
    assert!(!bad(v));
    let tok = m.tokenizer();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = ["a", "B", "é", "É", "e\u{301}", " ", "\t", "!", ",", "中", "\u{0}", "\u{200b}", "ß", "İ", "≠", "##", "[UNK]", "ﬁ", "😀", "x"];
    let mut got = vec![0; 64];
    for _ in 0..5000 {
        let len = (next() % 60) as usize;
        let s: String = (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
        let mut scratch = vec![Node::default(); Tokenizer::scratch_len(s.len())];
        let k = tok.encode_prompt(&s, &mut scratch, &mut got, 64).unwrap();
        assert!(k >= 2 && got[0] == 2 && got[k - 1] == 3, "{s:?}");
        assert!(got[..k].iter().all(|&id| (id as usize) < m.config().vocab), "{s:?}");
    }
}

/// A JSON string literal (`"…"` with `\\`, `\"`, `\n`, `\t`, `\uXXXX` escapes) as text.
fn serde_json_str(lit: &str) -> String {
    let body = lit.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap();
    let (mut out, mut it) = (String::new(), body.chars());
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next().unwrap() {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'u' => {
                let hex: String = it.by_ref().take(4).collect();
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
            }
            other => out.push(other),
        }
    }
    out
}

/// A replay notices a changed case: the digest, the prompt, the outputs; and refuses a case
/// of another kind.
#[test]
fn replay_fails_on_a_changed_case() {
    let blob = AlignedBuf::from_bytes(&read("captions-lm", "captions-lm.pico"));
    let m = Model::parse(blob.bytes()).unwrap();
    let compact = read("captions-lm", "captions-lm.vectors.bin");
    let case = Vectors::parse(&compact).unwrap().next().unwrap();
    let (src, out): (Vec<u16>, Vec<u16>) = (case.src().collect(), case.out().collect());
    let fewer = &out[..out.len() - 1];
    let variants = [
        (CaseKind::Generate, case.text, &out[..], case.logits_digest ^ 1),
        (CaseKind::Generate, "Two dogs", &out[..], case.logits_digest),
        (CaseKind::Generate, case.text, fewer, case.logits_digest),
        (CaseKind::Classify, case.text, &out[..], case.logits_digest),
    ];
    let data: Vec<CaseData<'_>> = std::iter::once((case.kind, case.text, &out[..], case.logits_digest))
        .chain(variants)
        .map(|(kind, text, out, digest)| CaseData { kind, text, src: &src, features: &[], out, digest })
        .collect();
    let bin = picoformer::vectors::write(&data);
    let c = m.config();
    let mut arena = AlignedBuf::zeroed(Generator::arena_bytes(&m, 1));
    let (mut scratch, mut ids) = (vec![Node::default(); 1024], vec![0; c.max_len + 1]);
    let results: Vec<_> = Vectors::parse(&bin)
        .unwrap()
        .map(|k| {
            let mut buf = Buffers { arena: arena.bytes_mut(), scratch: &mut scratch, ids: &mut ids, features: &mut [] };
            replay(&m, &k, &mut buf, &mut NoMeter, &mut NoObserver, &mut String::new()).map(|r| (r, r.ok(&k)))
        })
        .collect();
    let (r0, ok0) = results[0].unwrap();
    assert!(ok0 && r0.input_ok && r0.first_diff.is_none());
    let (r, ok) = results[1].unwrap();
    assert!(!ok && r.input_ok && r.first_diff.is_none(), "digest: {r:?}");
    let (r, ok) = results[2].unwrap();
    assert!(!ok && !r.input_ok, "prompt: {r:?}");
    let (r, ok) = results[3].unwrap();
    assert!(!ok && r.first_diff == Some(fewer.len()), "outputs: {r:?}");
    assert_eq!(results[4], Err(picoformer::Error::WrongModelKind));
}

/// The language model's BPE tokenizer (byte fallback), from the blob, against
/// `sentencepiece` on the 1,000 test2016 captions and the hostile cases; decoding restores
/// every line.
#[test]
fn captions_lm_tokenizer_matches_sentencepiece() {
    let blob = AlignedBuf::from_bytes(&read("captions-lm", "captions-lm.pico"));
    let m = Model::parse(blob.bytes()).unwrap();
    let tok = m.tokenizer();
    let mut n = 0;
    for (text, ids) in [("test2016.en", "tokenizer_test2016.txt"), ("tokenizer_cases.txt", "tokenizer_cases_ids.txt")] {
        let text = String::from_utf8(read("captions-lm", text)).unwrap();
        let ids = String::from_utf8(read("captions-lm", ids)).unwrap();
        for (s, want) in text.lines().zip(ids.lines()) {
            let want: Vec<TokenId> = want.split_whitespace().map(|x| x.parse().unwrap()).collect();
            let mut scratch = vec![Node::default(); Tokenizer::scratch_len(s.len())];
            let mut got = vec![0; 4 * s.len() + 2];
            let k = tok.encode(s, &mut scratch, &mut got).unwrap();
            assert_eq!(&got[..k], &want[..], "{s:?}");
            let mut buf = vec![0u8; 8 * s.len() + 8];
            assert_eq!(tok.decode(&want, &mut buf).unwrap(), s, "decode of {s:?}");
            n += 1;
        }
    }
    assert_eq!(n, 1012);
}
