//! sacreBLEU-compatible corpus BLEU (one reference per sentence).
//!
//! Port of python `sacrebleu` 2.x `BLEU` with its default settings:
//! tokenize `13a`, case-sensitive, smoothing `exp`, max n-gram order 4,
//! no effective order, sacreBLEU's brevity penalty. Only `std` is used.
//!
//! The score is the same as `sacrebleu.corpus_bleu(hyps, [refs]).score`, and
//! [`Bleu`]'s `Display` prints sacreBLEU's line, e.g.
//! `BLEU = 34.52 65.1/41.0/28.1/19.6 (BP = 0.970 ratio = 0.972 hyp_len = 12345 ref_len = 12700)`.

use std::collections::HashMap;
use std::fmt;

/// Maximum n-gram order (sacreBLEU's `MAX_NGRAM_ORDER`).
const MAX_ORDER: usize = 4;

/// Corpus BLEU result, as sacreBLEU's `BLEUScore`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bleu {
    /// BLEU score, 0..100.
    pub score: f64,
    /// n-gram precisions (1..=4) in percent, after `exp` smoothing.
    pub precisions: [f64; 4],
    /// Brevity penalty.
    pub bp: f64,
    /// Total hypothesis length in 13a tokens.
    pub sys_len: usize,
    /// Total reference length in 13a tokens.
    pub ref_len: usize,
}

impl Bleu {
    /// `sys_len / ref_len`, or 0 when `ref_len` is 0 (as sacreBLEU).
    pub fn ratio(&self) -> f64 {
        if self.ref_len > 0 {
            self.sys_len as f64 / self.ref_len as f64
        } else {
            0.0
        }
    }
}

impl fmt::Display for Bleu {
    /// sacreBLEU's `BLEUScore.format()` without signature:
    /// `BLEU = {score:.2f} {p1:.1f}/{p2:.1f}/{p3:.1f}/{p4:.1f} (BP = {bp:.3f} ratio = {ratio:.3f} hyp_len = {sys_len} ref_len = {ref_len})`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.precisions;
        write!(
            f,
            "BLEU = {:.2} {:.1}/{:.1}/{:.1}/{:.1} (BP = {:.3} ratio = {:.3} hyp_len = {} ref_len = {})",
            self.score,
            p[0],
            p[1],
            p[2],
            p[3],
            self.bp,
            self.ratio(),
            self.sys_len,
            self.ref_len
        )
    }
}

/// Python's `str.isspace()` (used by `str.split()` / `str.rstrip()`): Unicode
/// `White_Space` plus U+001C..U+001F.
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// First `TokenizerRegexp` rule's class `[\{-\~\[-\` -\&\(-\+\:-\@\/]`.
fn is_rule1_punct(c: char) -> bool {
    matches!(c, '{'..='~' | '['..='`' | ' '..='&' | '('..='+' | ':'..='@' | '/')
}

/// Python `re.sub` of a two-character pattern `(A)(B)` with non-overlapping,
/// left-to-right matching; `repl(a, b, out)` writes the replacement.
fn sub_pairs(
    s: &str,
    first: impl Fn(char) -> bool,
    second: impl Fn(char) -> bool,
    repl: impl Fn(char, char, &mut String),
) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        if i + 1 < chars.len() && first(chars[i]) && second(chars[i + 1]) {
            repl(chars[i], chars[i + 1], &mut out);
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// sacreBLEU's `TokenizerRegexp.__call__` (the post-tokenizer of 13a).
fn tokenize_re(line: &str) -> String {
    // ([\{-\~\[-\` -\&\(-\+\:-\@\/]) -> ' \1 '
    let mut s = String::with_capacity(line.len() * 2);
    for c in line.chars() {
        if is_rule1_punct(c) {
            s.push(' ');
            s.push(c);
            s.push(' ');
        } else {
            s.push(c);
        }
    }
    let is_digit = |c: char| c.is_ascii_digit();
    let is_pc = |c: char| c == '.' || c == ',';
    // ([^0-9])([\.,]) -> '\1 \2 '
    let s = sub_pairs(
        &s,
        |c| !is_digit(c),
        is_pc,
        |a, b, o| {
            o.push(a);
            o.push(' ');
            o.push(b);
            o.push(' ');
        },
    );
    // ([\.,])([^0-9]) -> ' \1 \2'
    let s = sub_pairs(
        &s,
        is_pc,
        |c| !is_digit(c),
        |a, b, o| {
            o.push(' ');
            o.push(a);
            o.push(' ');
            o.push(b);
        },
    );
    // ([0-9])(-) -> '\1 \2 '
    let s = sub_pairs(
        &s,
        is_digit,
        |c| c == '-',
        |a, b, o| {
            o.push(a);
            o.push(' ');
            o.push(b);
            o.push(' ');
        },
    );
    // ' '.join(line.split())
    let mut out = String::with_capacity(s.len());
    for tok in s.split(py_isspace).filter(|t| !t.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(tok);
    }
    out
}

/// sacreBLEU's `Tokenizer13a` (mteval-v13a), exactly as in sacrebleu 2.x.
///
/// Note: `corpus_bleu` additionally right-strips each segment (Python
/// `str.rstrip()`) before calling this, as sacreBLEU's `_preprocess_segment`.
pub fn tokenize_13a(line: &str) -> String {
    let mut line = line.replace("<skipped>", "");
    line = line.replace("-\n", "");
    line = line.replace('\n', " ");
    if line.contains('&') {
        line = line.replace("&quot;", "\"");
        line = line.replace("&amp;", "&");
        line = line.replace("&lt;", "<");
        line = line.replace("&gt;", ">");
    }
    tokenize_re(&format!(" {line} "))
}

/// Segment preprocessing as sacreBLEU (`lowercase=False`): rstrip, then 13a.
fn preprocess(sent: &str) -> String {
    tokenize_13a(sent.trim_end_matches(py_isspace))
}

/// Counts of all 1..=MAX_ORDER n-grams of `tokens`.
fn ngram_counts<'a>(tokens: &'a [&'a str]) -> HashMap<&'a [&'a str], usize> {
    let mut m = HashMap::new();
    for n in 1..=MAX_ORDER {
        if tokens.len() < n {
            break;
        }
        for w in tokens.windows(n) {
            *m.entry(w).or_insert(0) += 1;
        }
    }
    m
}

/// Sufficient statistics: (hyp_len, ref_len, correct[4], total[4]).
fn segment_stats(hyp: &str, reference: &str) -> (usize, usize, [u64; 4], [u64; 4]) {
    let h_tok: Vec<&str> = hyp.split(py_isspace).filter(|t| !t.is_empty()).collect();
    let r_tok: Vec<&str> = reference
        .split(py_isspace)
        .filter(|t| !t.is_empty())
        .collect();
    let h = ngram_counts(&h_tok);
    let r = ngram_counts(&r_tok);
    let mut correct = [0u64; 4];
    let mut total = [0u64; 4];
    for (g, &c) in &h {
        let n = g.len() - 1;
        total[n] += c as u64;
        if let Some(&rc) = r.get(g) {
            correct[n] += c.min(rc) as u64;
        }
    }
    (h_tok.len(), r_tok.len(), correct, total)
}

/// sacreBLEU's `BLEU.compute_bleu` with `smooth_method='exp'`,
/// `effective_order=False`, `max_ngram_order=4`.
fn compute_bleu(correct: [u64; 4], total: [u64; 4], sys_len: usize, ref_len: usize) -> Bleu {
    let mut bp = 1.0f64;
    if sys_len < ref_len {
        bp = if sys_len > 0 {
            (1.0 - ref_len as f64 / sys_len as f64).exp()
        } else {
            0.0
        };
    }
    let mut precisions = [0.0f64; 4];
    if correct.iter().all(|&c| c == 0) {
        return Bleu {
            score: 0.0,
            precisions,
            bp,
            sys_len,
            ref_len,
        };
    }
    let mut smooth_mteval = 1.0f64;
    for n in 0..MAX_ORDER {
        if total[n] == 0 {
            break;
        }
        if correct[n] == 0 {
            smooth_mteval *= 2.0;
            precisions[n] = 100.0 / (smooth_mteval * total[n] as f64);
        } else {
            precisions[n] = 100.0 * correct[n] as f64 / total[n] as f64;
        }
    }
    // my_log floors log(0) to -9999999999; sum() accumulates from 0 left to right.
    let mut sum = 0.0f64;
    for &p in &precisions {
        sum += if p == 0.0 { -9999999999.0 } else { p.ln() };
    }
    let score = bp * (sum / MAX_ORDER as f64).exp();
    Bleu {
        score,
        precisions,
        bp,
        sys_len,
        ref_len,
    }
}

/// Corpus BLEU of `hyps` against one reference per sentence, equal to python
/// `sacrebleu.corpus_bleu(hyps, [refs])` (sacrebleu 2.x defaults).
///
/// Panics if `hyps` and `refs` differ in length.
pub fn corpus_bleu(hyps: &[String], refs: &[String]) -> Bleu {
    assert_eq!(
        hyps.len(),
        refs.len(),
        "corpus_bleu: {} hypotheses but {} references",
        hyps.len(),
        refs.len()
    );
    let mut sys_len = 0usize;
    let mut ref_len = 0usize;
    let mut correct = [0u64; 4];
    let mut total = [0u64; 4];
    for (h, r) in hyps.iter().zip(refs) {
        let (hl, rl, c, t) = segment_stats(&preprocess(h), &preprocess(r));
        sys_len += hl;
        ref_len += rl;
        for n in 0..MAX_ORDER {
            correct[n] += c[n];
            total[n] += t[n];
        }
    }
    compute_bleu(correct, total, sys_len, ref_len)
}
