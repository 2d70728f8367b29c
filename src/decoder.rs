//! The decoding state a translator and a language model share: the scratch, the KV cache of
//! every beam slot and the logits, with one step that feeds tokens to a slot.

use crate::arena::Arena;
use crate::beam::Step;
use crate::blob::Stack;
use crate::forward::{embed_target, output, run_stack, Keys, Scratch};
use crate::kv::{CrossMemory, KvCache};
use crate::model::Model;
use crate::observe::{NoObserver, Observer};
use crate::{Error, TokenId};

/// A decoder's buffers.
pub(crate) struct Decoder<'m, 'a> {
    pub model: &'m Model<'m>,
    pub s: Scratch<'a>,
    pub cache: KvCache<'a>,
    /// `(vocab,)` logits of the last row fed.
    pub logits: &'a mut [i32],
    /// Beam slots.
    pub slots: usize,
}

impl<'m, 'a> Decoder<'m, 'a> {
    /// Carve the buffers for `slots` beams from `a`: the logits first, scratch for `rows` rows
    /// fed at once (`own_keys` when an encoder also runs in it), then the cache.
    pub(crate) fn carve(model: &'m Model<'m>, slots: usize, rows: usize, own_keys: bool, a: &mut Arena<'a>) -> Result<Self, Error> {
        let c = &model.config;
        let logits = a.take("logits", c.vocab)?;
        let s = Scratch::carve(c, rows, own_keys, a)?;
        let cache = KvCache::carve(a, slots, c.n_dec, c.max_len, c.kv_width())?;
        Ok(Decoder { model, s, cache, logits, slots })
    }

    /// Feed `tokens` at positions `pos0..` to slot `slot` (`cross`: the encoded source, for the
    /// encoder-decoder), leaving the last row's logits in [`Decoder::logits`].
    pub(crate) fn feed<O: Observer>(&mut self, slot: usize, tokens: &[TokenId], pos0: usize, cross: Option<&CrossMemory<'_>>, obs: &mut O) -> Result<(), Error> {
        let c = &self.model.config;
        let end = pos0.checked_add(tokens.len()).ok_or(Error::DecoderState)?;
        if tokens.is_empty() || end > c.max_len || slot >= self.slots {
            return Err(Error::DecoderState);
        }
        check_ids(c.vocab, tokens)?;
        embed_target(self.model, tokens.len(), tokens.iter().zip(pos0..).map(|(&t, p)| (t, p)), &mut self.s, obs)?;
        run_stack(self.model, Stack::Decoder, &mut self.s, tokens.len(), pos0, Keys::Cache(&mut self.cache, slot), cross, obs)?;
        output(self.model, &self.s, tokens.len() - 1..tokens.len(), self.logits, obs)
    }
}

/// Every id is below the vocabulary size.
pub(crate) fn check_ids(vocab: usize, ids: &[TokenId]) -> Result<(), Error> {
    match ids.iter().find(|&&id| id as usize >= vocab) {
        Some(&id) => Err(Error::TokenOutOfRange { id: id as u32, vocab: vocab as u32 }),
        None => Ok(()),
    }
}

/// A decoder as beam search drives it: one token per step, with the source (if any).
pub(crate) struct BeamStep<'d, 'm, 'a, 'c> {
    pub dec: &'d mut Decoder<'m, 'a>,
    pub cross: Option<&'c CrossMemory<'a>>,
}

impl Step for BeamStep<'_, '_, '_, '_> {
    fn step(&mut self, slot: usize, token: TokenId, pos: usize) -> Result<&[i32], Error> {
        self.dec.feed(slot, &[token], pos, self.cross, &mut NoObserver)?;
        Ok(self.dec.logits)
    }

    fn copy_slot(&mut self, from: usize, to: usize, positions: usize) -> Result<(), Error> {
        self.dec.cache.copy_prefix(from, to, positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::align::AlignedBuf;
    use crate::blob::synthetic::{random_blob, tiny_lm};

    /// `feed` refuses what its callers never send (no tokens, positions past `max_len`, a slot
    /// it does not have) with `DecoderState`, and takes the largest valid feed.
    #[test]
    fn feed_refuses_empty_long_and_out_of_slot_feeds() {
        let blob = AlignedBuf::from_bytes(&random_blob(&tiny_lm(), 5, false).unwrap());
        let m = Model::parse(blob.bytes()).unwrap();
        let mut mem = AlignedBuf::zeroed(1 << 16);
        let mut a = Arena::new(mem.bytes_mut()).unwrap();
        let mut d = Decoder::carve(&m, 2, m.config.max_len, true, &mut a).unwrap();
        let full = [4u16; 12];
        assert_eq!(m.config.max_len, full.len());
        let mut feed = |slot, tokens: &[TokenId], pos0| d.feed(slot, tokens, pos0, None, &mut NoObserver);
        assert_eq!(feed(0, &[], 0), Err(Error::DecoderState));
        assert_eq!(feed(0, &[4], 12), Err(Error::DecoderState));
        assert_eq!(feed(0, &full, 1), Err(Error::DecoderState));
        assert_eq!(feed(0, &[4], usize::MAX), Err(Error::DecoderState));
        assert_eq!(feed(2, &[4], 0), Err(Error::DecoderState));
        assert_eq!(feed(1, &full, 0), Ok(()));
        assert_eq!(feed(0, &[4], 11), Ok(()));
    }
}
