//! SentencePiece unigram encode: Viterbi over the normalized bytes, as `EncodeOptimized`.
//!
//! At each character boundary every NORMAL piece that is a prefix of the rest competes; a
//! character with no one-character piece gets an `unk` node scored `min_score − 10`. Ties keep
//! the candidate found first (earlier start, then shorter piece), as SentencePiece does. Runs
//! of consecutive `unk` tokens are merged into one, as `SentencePieceProcessor` does.
//!
//! Scratch: `nodes[i]` is the best path ending at byte `i` of the normalized text
//! (`n + 1` nodes). Cost: O(n · L · log V) for the longest piece length L.

use super::{utf8_len, Node, Tokenizer, NONE};
use crate::{Error, TokenId};

/// Encode the normalized text in `nodes[..n].byte` into `out`, keeping the first
/// `max_pieces` ids; `nodes` holds exactly `n + 1` nodes.
pub(super) fn encode(tok: &Tokenizer<'_>, nodes: &mut [Node], n: usize, out: &mut [TokenId], max_pieces: usize) -> Result<usize, Error> {
    for node in nodes.iter_mut() {
        node.score = 0;
        node.start = NONE;
        node.id = tok.v.unk;
    }

    // viterbi, lattice built on the fly
    let mut start = 0usize;
    while start < n {
        let lead = nodes.get(start).map_or(0, |x| x.byte);
        let char_len = utf8_len(lead).min(n - start);
        let base = nodes.get(start).map_or(0, |x| x.score);
        let mut has_single = false;
        // All sorted pieces in [lo, hi) share the prefix text[start..end].
        let (mut lo, mut hi) = (0usize, tok.v.sorted.len());
        let mut end = start;
        while let Some(c) = nodes.get(end).map(|x| x.byte).filter(|_| end < n) {
            let depth = end - start;
            let range = tok.v.sorted.get(lo..hi).unwrap_or(&[]);
            let byte_at = |id: &u16| tok.piece(*id).get(depth).copied().unwrap_or(0);
            let a = range.partition_point(|id| byte_at(id) < c);
            let b = range.partition_point(|id| byte_at(id) <= c);
            (lo, hi) = (lo + a, lo + b);
            if lo >= hi {
                break;
            }
            end += 1;
            let Some(&id) = tok.v.sorted.get(lo) else {
                break;
            };
            if tok.piece(id).len() == end - start {
                // The one piece equal to the prefix sorts first; the rest are longer.
                lo += 1;
                let s = tok.v.scores.get(usize::from(id)).copied().unwrap_or(0);
                relax(nodes, start, end, id, base.saturating_add(i64::from(s)));
                has_single |= end - start == char_len;
            }
        }
        if !has_single {
            let unk = base.saturating_add(tok.unk_score);
            relax(nodes, start, start + char_len, tok.v.unk, unk);
        }
        start += char_len.max(1);
    }

    // backtrack: count merged tokens, then write them right to left
    let count = backtrack(tok, nodes, n, |_| {});
    let keep = count.min(max_pieces);
    let capacity = out.len();
    let out = out.get_mut(..keep).ok_or(Error::OutputFull { capacity })?;
    let mut i = count;
    backtrack(tok, nodes, n, |id| {
        i = i.saturating_sub(1);
        if let Some(o) = out.get_mut(i) {
            *o = id;
        }
    });
    Ok(keep)
}

/// Walk the best path from the end, merging runs of `unk`; calls `put(id)` right to
/// left and returns the token count.
fn backtrack(tok: &Tokenizer<'_>, nodes: &[Node], n: usize, mut put: impl FnMut(TokenId)) -> usize {
    let mut count = 0usize;
    let mut end = n;
    let mut prev_unk = false;
    while let Some(node) = nodes.get(end).filter(|_| end > 0) {
        let is_unk = node.id == tok.v.unk;
        if !(is_unk && prev_unk) {
            count += 1;
            put(node.id);
        }
        prev_unk = is_unk;
        // Starts strictly decrease on a reached path; stop on anything else.
        if node.start as usize >= end {
            break;
        }
        end = node.start as usize;
    }
    count
}

/// Keep the first best candidate for the path ending at `end` (strictly greater replaces).
fn relax(nodes: &mut [Node], start: usize, end: usize, id: TokenId, score: i64) {
    if let Some(t) = nodes.get_mut(end) {
        if t.start == NONE || score > t.score {
            t.score = score;
            t.start = start as u32;
            t.id = id;
        }
    }
}
