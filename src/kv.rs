//! The decoder's memory: the self-attention KV cache of every beam slot, and the
//! cross-attention keys and values of the encoded source. Both own their layout; the forward
//! pass and beam search ask them for rows and never compute strides themselves.
//!
//! ```text
//! KvCache:      k, v: (slots, layers, max_len, kv_width) i8
//! CrossMemory:  k, v: (sources, layers, max_len, kv_width) i8, of which rows 0..len are filled
//!               (a translator holds one source; a batch one per sentence)
//! ```

use crate::arena::Arena;
use crate::Error;

/// Self-attention keys and values of `slots` hypotheses, `layers` decoder layers each.
pub(crate) struct KvCache<'a> {
    k: &'a mut [i8],
    v: &'a mut [i8],
    slots: usize,
    layers: usize,
    max_len: usize,
    width: usize,
}

impl<'a> KvCache<'a> {
    pub(crate) fn carve(a: &mut Arena<'a>, slots: usize, layers: usize, max_len: usize, width: usize) -> Result<Self, Error> {
        let n = slots * layers * max_len * width;
        Ok(KvCache { k: a.take("self k", n)?, v: a.take("self v", n)?, slots, layers, max_len, width })
    }

    fn layer_range(&self, slot: usize, layer: usize) -> Result<core::ops::Range<usize>, Error> {
        if slot >= self.slots || layer >= self.layers {
            return Err(Error::DecoderState);
        }
        let rows = self.max_len * self.width;
        let start = (slot * self.layers + layer) * rows;
        Ok(start..start + rows)
    }

    /// Keys and values of one slot and layer, `(max_len, kv_width)` each.
    pub(crate) fn layer(&mut self, slot: usize, layer: usize) -> Result<(&mut [i8], &mut [i8]), Error> {
        let r = self.layer_range(slot, layer)?;
        match (self.k.get_mut(r.clone()), self.v.get_mut(r)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(Error::DecoderState),
        }
    }

    /// Copy positions `0..positions` of every layer from slot `from` to slot `to` (a beam that
    /// forks continues from its parent's cache).
    pub(crate) fn copy_prefix(&mut self, from: usize, to: usize, positions: usize) -> Result<(), Error> {
        let n = positions.min(self.max_len) * self.width;
        for layer in 0..self.layers {
            let (src, dst) = (self.layer_range(from, layer)?.start, self.layer_range(to, layer)?.start);
            for buf in [&mut *self.k, &mut *self.v] {
                if src + n > buf.len() || dst + n > buf.len() {
                    return Err(Error::DecoderState);
                }
                buf.copy_within(src..src + n, dst);
            }
        }
        Ok(())
    }
}

/// The encoded sources' keys and values for each decoder layer's cross-attention.
pub(crate) struct CrossMemory<'a> {
    k: &'a mut [i8],
    v: &'a mut [i8],
    sources: usize,
    layers: usize,
    max_len: usize,
    width: usize,
    /// Rows filled of source 0 (0: nothing encoded); a batch keeps each source's length itself.
    pub(crate) len: usize,
}

impl<'a> CrossMemory<'a> {
    pub(crate) fn carve(a: &mut Arena<'a>, sources: usize, layers: usize, max_len: usize, width: usize) -> Result<Self, Error> {
        let n = sources * layers * max_len * width;
        Ok(CrossMemory { k: a.take("cross k", n)?, v: a.take("cross v", n)?, sources, layers, max_len, width, len: 0 })
    }

    fn range(&self, src: usize, layer: usize, rows: usize) -> Result<core::ops::Range<usize>, Error> {
        if src >= self.sources || layer >= self.layers || rows > self.max_len {
            return Err(Error::DecoderState);
        }
        let start = (src * self.layers + layer) * self.max_len * self.width;
        Ok(start..start + rows * self.width)
    }

    /// Rows `0..rows` of one source and layer, to fill.
    pub(crate) fn layer_mut(&mut self, src: usize, layer: usize, rows: usize) -> Result<(&mut [i8], &mut [i8]), Error> {
        let r = self.range(src, layer, rows)?;
        match (self.k.get_mut(r.clone()), self.v.get_mut(r)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(Error::DecoderState),
        }
    }

    /// Rows `0..rows` of one source and layer.
    pub(crate) fn source(&self, src: usize, layer: usize, rows: usize) -> Result<(&[i8], &[i8]), Error> {
        let r = self.range(src, layer, rows)?;
        match (self.k.get(r.clone()), self.v.get(r)) {
            (Some(k), Some(v)) => Ok((k, v)),
            _ => Err(Error::DecoderState),
        }
    }

    /// The filled rows of source 0's layer `layer`.
    pub(crate) fn layer(&self, layer: usize) -> Result<(&[i8], &[i8]), Error> {
        self.source(0, layer, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_copies_the_prefix_of_every_layer_and_nothing_else() {
        let (slots, layers, max_len, width) = (3, 2, 5, 4);
        let mut mem = [0u64; 64];
        let mut a = Arena::reuse(bytemuck::cast_slice_mut(&mut mem));
        let mut c = KvCache::carve(&mut a, slots, layers, max_len, width).unwrap();
        for l in 0..layers {
            let (k, v) = c.layer(0, l).unwrap();
            for (i, (k, v)) in k.iter_mut().zip(v.iter_mut()).enumerate() {
                (*k, *v) = (1 + i as i8 + 20 * l as i8, -1 - i as i8);
            }
        }
        c.copy_prefix(0, 2, 3).unwrap();
        for l in 0..layers {
            let (k, v) = c.layer(2, l).unwrap();
            for i in 0..max_len * width {
                let copied = i < 3 * width;
                assert_eq!(k[i], if copied { 1 + i as i8 + 20 * l as i8 } else { 0 }, "layer {l} k[{i}]");
                assert_eq!(v[i], if copied { -1 - i as i8 } else { 0 }, "layer {l} v[{i}]");
            }
            assert!(c.layer(1, l).unwrap().0.iter().all(|&x| x == 0));
        }
        // positions beyond max_len copy the whole slot; slots and layers out of range are errors
        c.copy_prefix(0, 1, 99).unwrap();
        assert_eq!(c.layer(1, 1).unwrap().1[max_len * width - 1], -(max_len as i8 * width as i8));
        assert_eq!(c.copy_prefix(0, 3, 1), Err(Error::DecoderState));
        assert!(c.layer(0, 2).is_err() && c.layer(3, 0).is_err());
    }

    #[test]
    fn cross_memory_refuses_a_source_layer_or_length_out_of_range() {
        let mut mem = [0u64; 16];
        let mut a = Arena::reuse(bytemuck::cast_slice_mut(&mut mem));
        let mut m = CrossMemory::carve(&mut a, 2, 2, 4, 2).unwrap();
        assert_eq!(m.layer_mut(1, 1, 4).map(|(k, v)| (k.len(), v.len())), Ok((8, 8)));
        for (src, layer, rows) in [(2, 0, 1), (0, 2, 1), (0, 0, 5), (2, 2, 1), (0, 2, 5), (2, 0, 5)] {
            assert!(m.layer_mut(src, layer, rows).is_err(), "{src} {layer} {rows}");
        }
    }
}
