//! Tests for `src/bleu.rs` against python sacrebleu 2.6 (values in `expected` below were
//! produced with `sacrebleu.corpus_bleu(hyps, [refs])` and sacrebleu's `Tokenizer13a`).
//!
//! Run: `cargo test -p picoformer-tools --test bleu`

#[path = "../src/bleu.rs"]
mod bleu;

use bleu::{corpus_bleu, tokenize_13a, Bleu};

const TEST2016_EN: &str = "/work/shared/data/multi30k/test_2016_flickr.en.gz";

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn check(got: &Bleu, exp: &expected::Expected) {
    let (name, score, precisions, bp, sys_len, ref_len, display) = *exp;
    assert_eq!(got.sys_len, sys_len, "{name}: sys_len");
    assert_eq!(got.ref_len, ref_len, "{name}: ref_len");
    assert!(
        close(got.score, score),
        "{name}: score {} vs sacrebleu {}",
        got.score,
        score
    );
    assert!(
        close(got.bp, bp),
        "{name}: bp {} vs sacrebleu {}",
        got.bp,
        bp
    );
    for (n, (&ours, &theirs)) in got.precisions.iter().zip(precisions.iter()).enumerate() {
        assert!(close(ours, theirs), "{name}: precision {} {} vs sacrebleu {}", n + 1, ours, theirs);
    }
    assert_eq!(got.to_string(), display, "{name}: Display");
}

#[test]
fn tokenize_13a_matches_sacrebleu() {
    for (input, want) in expected::TOKENIZE_13A {
        assert_eq!(tokenize_13a(input), *want, "input {input:?}");
    }
}

#[test]
fn small_sets_match_sacrebleu() {
    let sets = expected::small_sets();
    assert_eq!(sets.len(), expected::SMALL_EXPECTED.len());
    for ((name, hyps, refs), exp) in sets.iter().zip(expected::SMALL_EXPECTED) {
        assert_eq!(*name, exp.0);
        let got = corpus_bleu(&strings(hyps), &strings(refs));
        check(&got, exp);
    }
}

#[test]
fn display_format() {
    let b = Bleu {
        score: 34.5249,
        precisions: [65.14, 41.04, 28.06, 19.55],
        bp: 0.9701,
        sys_len: 12345,
        ref_len: 12700,
    };
    assert_eq!(
        b.to_string(),
        "BLEU = 34.52 65.1/41.0/28.1/19.6 (BP = 0.970 ratio = 0.972 hyp_len = 12345 ref_len = 12700)"
    );
}

#[test]
fn empty_corpus() {
    let b = corpus_bleu(&[], &[]);
    assert_eq!(b.score, 0.0);
    assert_eq!((b.sys_len, b.ref_len), (0, 0));
}

#[test]
#[should_panic]
fn length_mismatch_panics() {
    corpus_bleu(&strings(&["a"]), &strings(&["a", "b"]));
}

/// The 1000 test2016 English references, read with `gzip -dc` (std only).
fn test2016_refs() -> Vec<String> {
    let out = std::process::Command::new("gzip")
        .args(["-dc", TEST2016_EN])
        .output()
        .expect("run gzip -dc");
    assert!(out.status.success(), "gzip -dc {TEST2016_EN} failed");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let refs: Vec<String> = text.lines().map(str::to_string).collect();
    assert_eq!(refs.len(), 1000);
    refs
}

/// Every 3rd sentence (index % 3 == 0) loses its last space-separated word.
fn drop3(refs: &[String]) -> Vec<String> {
    refs.iter()
        .enumerate()
        .map(|(i, r)| {
            if i % 3 == 0 {
                let w: Vec<&str> = r.split(' ').collect();
                w[..w.len() - 1].join(" ")
            } else {
                r.clone()
            }
        })
        .collect()
}

/// Swaps, drops, missing final periods, extra words and empty lines (same as the generator).
fn mix(refs: &[String]) -> Vec<String> {
    refs.iter()
        .enumerate()
        .map(|(i, r)| {
            let mut w: Vec<&str> = r.split(' ').collect();
            if i % 4 == 1 && w.len() >= 3 {
                w.swap(1, 2);
            }
            if i % 5 == 2 {
                w = w
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| j % 3 != 1)
                    .map(|(_, x)| *x)
                    .collect();
            }
            let mut s = w.join(" ");
            if i % 2 == 0 && s.ends_with('.') {
                s.pop();
            }
            if i % 7 == 3 {
                s.push_str(" extra words here");
            }
            if i % 11 == 5 {
                s.clear();
            }
            s
        })
        .collect()
}

fn shift(refs: &[String]) -> Vec<String> {
    (0..refs.len())
        .map(|i| refs[(i + 1) % refs.len()].clone())
        .collect()
}

#[test]
fn full_test2016_matches_sacrebleu() {
    let refs = test2016_refs();
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("full_identity", refs.clone()),
        ("full_drop3", drop3(&refs)),
        ("full_mix", mix(&refs)),
        ("full_shift", shift(&refs)),
    ];
    assert_eq!(cases.len(), expected::FULL_EXPECTED.len());
    for ((name, hyps), exp) in cases.iter().zip(expected::FULL_EXPECTED) {
        assert_eq!(*name, exp.0);
        let got = corpus_bleu(hyps, &refs);
        println!("{name}: {got}");
        check(&got, exp);
    }
}

#[rustfmt::skip]
mod expected {
    // Expected values from python sacrebleu 2.6 (`sacrebleu.corpus_bleu(hyps, [refs])`);
    // generated by a throwaway script, values pasted verbatim.

    pub const TOKENIZE_13A: &[(&str, &str)] = &[
        ("Hello, world!", "Hello , world !"),
        ("Hello , world !", "Hello , world !"),
        ("a...b", "a . . . b"),
        ("Wait... what?!", "Wait . . . what ? !"),
        ("3.14 and 1,000,000.50 dollars.", "3.14 and 1,000,000.50 dollars ."),
        ("U.S.A. e.g. i.e., etc.", "U . S . A . e . g . i . e . , etc ."),
        ("end.", "end ."),
        ("x.,y", "x . , y"),
        (",.,.", ", . , ."),
        ("9.", "9 ."),
        (".9", ". 9"),
        ("a.9", "a . 9"),
        ("9.a", "9 . a"),
        ("9,a", "9 , a"),
        ("a,9", "a , 9"),
        ("He said \"hi\" (twice) [really] {yes} <tag> @home #1 $5 %6 ^7 *8 +9 =0 ~ | ` _ ;:'?/\\", "He said \" hi \" ( twice ) [ really ] { yes } < tag > @ home # 1 $ 5 % 6 ^ 7 * 8 + 9 = 0 ~ | ` _ ; : ' ? / \\"),
        ("&amp;lt; AT&amp;T &quot;hi&quot; &gt; &lt;b&gt; &amp;amp; & alone &#39;", "< AT & T \" hi \" > < b > & amp ; & alone & # 39 ;"),
        ("well-known 1990-2000 3-year-old -5 5- a - b --", "well-known 1990 - 2000 3 - year-old -5 5 - a - b --"),
        ("line one-\u{a}line two\u{a}three <skipped> four", "line oneline two three four"),
        ("Caf\u{e9} na\u{ef}ve \u{2014} \u{201c}quoted\u{201d} text\u{2026} Stra\u{df}e \u{6771}\u{4eac} \u{1f44d} \u{bd} \u{663}-\u{664} \u{663}.\u{664} \u{ff13}.", "Caf\u{e9} na\u{ef}ve \u{2014} \u{201c}quoted\u{201d} text\u{2026} Stra\u{df}e \u{6771}\u{4eac} \u{1f44d} \u{bd} \u{663}-\u{664} \u{663} . \u{664} \u{ff13} ."),
        ("nbsp\u{a0}here thin\u{2009}space\u{3000}ideo \u{1c}fs\u{1d}\u{1e}\u{1f} tab\u{9}end\u{d}\u{a}", "nbsp here thin space ideo fs tab end"),
        ("  leading and trailing   ", "leading and trailing"),
        ("", ""),
        ("   ", ""),
        ("\u{85}next\u{2028}sep", "next sep"),
        ("'quoted' it's dogs' o'clock", "'quoted' it's dogs' o'clock"),
        ("A man in an orange hat starring at something.", "A man in an orange hat starring at something ."),
        ("2.5-3.5 km, 10,5 %, 1.000.000", "2.5 - 3.5 km , 10,5 % , 1.000.000"),
        ("a..", "a . ."),
        ("..a", ". . a"),
        ("1..2", "1 . . 2"),
        ("1.,2", "1 . , 2"),
        ("1,.2", "1 , . 2"),
        ("-\u{a}-\u{a}", ""),
        ("&ampamp;", "& ampamp ;"),
        ("<skipped>-\u{a}", ""),
        ("x&quot;-\u{a}y", "x \" y"),
    ];

    /// (name, hyps, refs)
    pub fn small_sets() -> Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)> {
        vec![
            ("basic", vec!["The cat sat on the mat.", "A dog is running in the park", "Two men are playing soccer on a field."], vec!["The cat sat on the mat.", "A dog is running through the park.", "Two men play soccer on a grassy field."]),
            ("punct", vec!["Hello , world !", "It costs 1,000.50 dollars.", "U.S.A. is big...", "e.g., this one", "Wait... what?!"], vec!["Hello, world!", "It costs 1,000.50 dollars .", "U.S.A. is big.", "e.g. this one", "Wait ... what ?!"]),
            ("empty_all", vec!["", "", ""], vec!["A man walks.", "Two dogs.", "Sun."]),
            ("empty_some", vec!["A man walks down the street.", "", "The sun is shining brightly today."], vec!["A man walks down the street.", "Two dogs play in the snow.", "The sun is shining today."]),
            ("empty_refs", vec!["Something here.", "More text"], vec!["", ""]),
            ("both_empty", vec!["", ""], vec!["", ""]),
            ("unicode", vec!["Caf\u{e9} na\u{ef}ve \u{2014} \u{201c}quoted\u{201d} text\u{2026} Stra\u{df}e", "\u{6771}\u{4eac} \u{306f} \u{5927}\u{304d}\u{3044} \u{1f44d}", "nbsp\u{a0}here thin\u{2009}space", "\u{bd} \u{663}-\u{664} \u{663}.\u{664} \u{ff13}."], vec!["Caf\u{e9} naive \u{2014} \"quoted\" text... Strasse", "\u{6771}\u{4eac} \u{306f} \u{5927}\u{304d}\u{3044} \u{1f44d}", "nbsp here thin space", "\u{bd} \u{663}-\u{664} \u{663}.\u{664} \u{ff13}."]),
            ("entities", vec!["AT&amp;T &quot;rocks&quot; &lt;b&gt;", "fish &amp;amp; chips", "&amp;lt;tag&amp;gt; done"], vec!["AT&T \"rocks\" <b>", "fish & chips", "<tag> done"]),
            ("hyphens", vec!["A well-known 3-year-old from 1990-2000.", "state-of-the-art line-\u{a}break", "a - b -- c <skipped> d"], vec!["A well known 3 - year - old from 1990 - 2000.", "state-of-the-art linebreak", "a-b--c d"]),
            ("numbers", vec!["It is 3.14 or 3,14 or 1,000,000.", "Pay $5.00 now, 10% off.", "Room 101.5-102"], vec!["It is 3.14 or 3, 14 or 1,000,000 .", "Pay $ 5.00 now , 10 % off.", "Room 101.5 - 102"]),
            ("unigram_only", vec!["cat dog", "bird"], vec!["dog cat", "bird fish"]),
            ("no_4gram_match", vec!["the big red dog runs fast", "a small cat sleeps"], vec!["the big red cat runs fast", "a small dog sleeps"]),
            ("longer_hyp", vec!["A man in a blue shirt is standing on a ladder cleaning windows with a big sponge today."], vec!["A man in a blue shirt is standing on a ladder cleaning windows."]),
            ("no_match", vec!["xyz qqq"], vec!["abc def"]),
            ("whitespace", vec!["  A man   walks.\u{9}\u{a}", "Two dogs.\u{d}\u{a}", "\u{3000}sun\u{2028}"], vec!["A man walks.", "Two dogs.", "sun"]),
            ("smooth_twice", vec!["a b c d e", "p q r s t"], vec!["a b x c d y e", "p q z r s w t"]),
            ("repeats", vec!["the the the the the the the", "a a a b b b"], vec!["the cat is on the mat", "a b a b"]),
        ]
    }

    /// (name, score, precisions, bp, sys_len, ref_len, display)
    pub type Expected = (&'static str, f64, [f64; 4], f64, usize, usize, &'static str);
    pub const SMALL_EXPECTED: &[Expected] = &[
            ("basic", 54.14875051419456f64, [86.95652173913044f64, 70.0f64, 47.05882352941177f64, 35.714285714285715f64], 0.9574533680683809f64, 23, 24, "BLEU = 54.15 87.0/70.0/47.1/35.7 (BP = 0.957 ratio = 0.958 hyp_len = 23 ref_len = 24)"),
            ("punct", 82.28778938084511f64, [91.17647058823529f64, 86.20689655172414f64, 79.16666666666667f64, 73.6842105263158f64], 1.0f64, 34, 31, "BLEU = 82.29 91.2/86.2/79.2/73.7 (BP = 1.000 ratio = 1.097 hyp_len = 34 ref_len = 31)"),
            ("empty_all", 0.0f64, [0.0f64, 0.0f64, 0.0f64, 0.0f64], 0.0f64, 0, 9, "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 0.000 ratio = 0.000 hyp_len = 0 ref_len = 9)"),
            ("empty_some", 49.69089573339969f64, [92.85714285714286f64, 83.33333333333333f64, 70.0f64, 62.5f64], 0.6514390575310556f64, 14, 20, "BLEU = 49.69 92.9/83.3/70.0/62.5 (BP = 0.651 ratio = 0.700 hyp_len = 14 ref_len = 20)"),
            ("empty_refs", 0.0f64, [0.0f64, 0.0f64, 0.0f64, 0.0f64], 1.0f64, 5, 0, "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 0.000 hyp_len = 5 ref_len = 0)"),
            ("both_empty", 0.0f64, [0.0f64, 0.0f64, 0.0f64, 0.0f64], 1.0f64, 0, 0, "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 0.000 hyp_len = 0 ref_len = 0)"),
            ("unicode", 56.479262131215265f64, [80.95238095238095f64, 70.58823529411765f64, 69.23076923076923f64, 66.66666666666667f64], 0.788127627745311f64, 21, 26, "BLEU = 56.48 81.0/70.6/69.2/66.7 (BP = 0.788 ratio = 0.808 hyp_len = 21 ref_len = 26)"),
            ("entities", 80.25342290018105f64, [88.88888888888889f64, 80.0f64, 75.0f64, 77.77777777777777f64], 1.0f64, 18, 16, "BLEU = 80.25 88.9/80.0/75.0/77.8 (BP = 1.000 ratio = 1.125 hyp_len = 18 ref_len = 16)"),
            ("hyphens", 33.24968566445603f64, [61.111111111111114f64, 40.0f64, 25.0f64, 20.0f64], 1.0f64, 18, 17, "BLEU = 33.25 61.1/40.0/25.0/20.0 (BP = 1.000 ratio = 1.059 hyp_len = 18 ref_len = 17)"),
            ("numbers", 74.52514803465546f64, [95.23809523809524f64, 88.88888888888889f64, 80.0f64, 66.66666666666667f64], 0.909156442876713f64, 21, 23, "BLEU = 74.53 95.2/88.9/80.0/66.7 (BP = 0.909 ratio = 0.913 hyp_len = 21 ref_len = 23)"),
            ("unigram_only", 0.0f64, [100.0f64, 50.0f64, 0.0f64, 0.0f64], 0.7165313105737893f64, 3, 4, "BLEU = 0.00 100.0/50.0/0.0/0.0 (BP = 0.717 ratio = 0.750 hyp_len = 3 ref_len = 4)"),
            ("no_4gram_match", 30.213753973567677f64, [80.0f64, 50.0f64, 16.666666666666668f64, 12.5f64], 1.0f64, 10, 10, "BLEU = 30.21 80.0/50.0/16.7/12.5 (BP = 1.000 ratio = 1.000 hyp_len = 10 ref_len = 10)"),
            ("longer_hyp", 66.76160043354595f64, [73.6842105263158f64, 66.66666666666667f64, 64.70588235294117f64, 62.5f64], 1.0f64, 19, 14, "BLEU = 66.76 73.7/66.7/64.7/62.5 (BP = 1.000 ratio = 1.357 hyp_len = 19 ref_len = 14)"),
            ("no_match", 0.0f64, [0.0f64, 0.0f64, 0.0f64, 0.0f64], 1.0f64, 2, 2, "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 2 ref_len = 2)"),
            ("whitespace", 100.00000000000004f64, [100.0f64, 100.0f64, 100.0f64, 100.0f64], 1.0f64, 8, 8, "BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 8 ref_len = 8)"),
            ("smooth_twice", 15.142563416441178f64, [100.0f64, 50.0f64, 8.333333333333334f64, 6.25f64], 0.6703200460356393f64, 10, 14, "BLEU = 15.14 100.0/50.0/8.3/6.2 (BP = 0.670 ratio = 0.714 hyp_len = 10 ref_len = 14)"),
            ("repeats", 9.55204080682377f64, [46.15384615384615f64, 9.090909090909092f64, 5.555555555555555f64, 3.5714285714285716f64], 1.0f64, 13, 10, "BLEU = 9.55 46.2/9.1/5.6/3.6 (BP = 1.000 ratio = 1.300 hyp_len = 13 ref_len = 10)"),
    ];
    pub const FULL_EXPECTED: &[Expected] = &[
            ("full_identity", 100.00000000000004f64, [100.0f64, 100.0f64, 100.0f64, 100.0f64], 1.0f64, 12955, 12955, "BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 12955 ref_len = 12955)"),
            ("full_drop3", 94.81410199957311f64, [100.0f64, 100.0f64, 100.0f64, 100.0f64], 0.9481410199957306f64, 12300, 12955, "BLEU = 94.81 100.0/100.0/100.0/100.0 (BP = 0.948 ratio = 0.949 hyp_len = 12300 ref_len = 12955)"),
            ("full_mix", 69.2829177541277f64, [96.43575214768781f64, 84.10246187580982f64, 77.42218325295923f64, 76.59160073037127f64], 0.8319607425063992f64, 10942, 12955, "BLEU = 69.28 96.4/84.1/77.4/76.6 (BP = 0.832 ratio = 0.845 hyp_len = 10942 ref_len = 12955)"),
            ("full_shift", 0.4350141060223876f64, [20.640679274411426f64, 1.4554579673776662f64, 0.11866727521679599f64, 0.010045203415369162f64], 1.0f64, 12955, 12955, "BLEU = 0.44 20.6/1.5/0.1/0.0 (BP = 1.000 ratio = 1.000 hyp_len = 12955 ref_len = 12955)"),
    ];
}
