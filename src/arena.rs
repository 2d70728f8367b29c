//! The caller's arena, carved into typed buffers by a bump allocator.
//!
//! The same carving code runs twice: once "dry" over no memory to count the bytes a config
//! needs ([`crate::Translator::arena_bytes`]), and once over the caller's memory. There is one
//! definition of the layout, so the count is exact. Every buffer starts on an 8-byte boundary;
//! the arena itself must too.

use crate::blob::ModelKind;
use crate::{Error, Model};

/// A bump allocator over `&'a mut [u8]`, or a counter when dry (which may also report each
/// buffer it counts, for a map of the arena).
pub(crate) struct Arena<'a> {
    rest: &'a mut [u8],
    used: usize,
    dry: bool,
    trace: Option<&'a mut dyn FnMut(Region)>,
    phase: Phase,
    /// Zero what it hands out (a fresh arena); a view over buffers already carved once does not.
    zero: bool,
}

pub(crate) const ARENA_ALIGN: usize = 8;

impl<'a> Arena<'a> {
    /// An arena that counts, and reports each buffer to `f` as used in `phase`, with its offset
    /// from `base`.
    pub(crate) fn traced(base: usize, phase: Phase, f: &'a mut dyn FnMut(Region)) -> Arena<'a> {
        Arena { rest: &mut [], used: base, dry: true, trace: Some(f), phase, zero: false }
    }

    /// An arena that only counts.
    pub(crate) fn dry() -> Arena<'static> {
        Arena { rest: &mut [], used: 0, dry: true, trace: None, phase: Phase::Session, zero: false }
    }

    /// The arena of a new session of `kind` over `mem`: the model's config valid (a parsed model
    /// always is; `Model::default()` is not), of that kind, and `mem` at least `needed()` bytes
    /// (counted only for a valid config) and 8-byte aligned.
    pub(crate) fn session(model: &Model<'_>, kind: ModelKind, mem: &'a mut [u8], needed: impl FnOnce() -> usize) -> Result<Arena<'a>, Error> {
        model.config.validate()?;
        if model.config.kind != kind {
            return Err(Error::WrongModelKind);
        }
        let needed = needed();
        if mem.len() < needed {
            return Err(Error::ArenaTooSmall { needed, got: mem.len() });
        }
        Arena::new(mem)
    }

    pub(crate) fn new(mem: &'a mut [u8]) -> Result<Arena<'a>, Error> {
        // an empty slice holds no buffer, whatever its (dangling) address
        if !mem.is_empty() && mem.as_ptr() as usize % ARENA_ALIGN != 0 {
            return Err(Error::MisalignedArena { align: ARENA_ALIGN });
        }
        Ok(Arena { rest: mem, used: 0, dry: false, trace: None, phase: Phase::Session, zero: true })
    }

    /// An arena over memory carved and zeroed before: a session's typed view of an area its
    /// encoder and decoder take turns in. Hands out the bytes as they are.
    pub(crate) fn reuse(mem: &'a mut [u8]) -> Arena<'a> {
        // alignment was checked when `mem` was carved from an arena
        Arena { rest: mem, used: 0, dry: false, trace: None, phase: Phase::Session, zero: false }
    }

    /// Bytes handed out so far, padding included.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// Take `n` zeroed elements of `T` for the buffer `name`. Dry arenas return an empty slice.
    pub(crate) fn take<T: bytemuck::Pod>(&mut self, name: &'static str, n: usize) -> Result<&'a mut [T], Error> {
        let bytes = n.checked_mul(core::mem::size_of::<T>()).ok_or(Error::ArenaTooSmall { needed: usize::MAX, got: 0 })?;
        let padded = bytes.div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
        if let Some(f) = self.trace.as_mut() {
            if bytes > 0 {
                f(Region { phase: self.phase, name, offset: self.used, bytes: padded });
            }
        }
        self.used = self.used.saturating_add(padded);
        if self.dry {
            return Ok(&mut []);
        }
        let rest = core::mem::take(&mut self.rest);
        if rest.len() < padded {
            return Err(Error::ArenaTooSmall { needed: self.used, got: self.used - padded + rest.len() });
        }
        let (head, tail) = rest.split_at_mut(padded);
        self.rest = tail;
        let head = head.get_mut(..bytes).unwrap_or(&mut []);
        if self.zero {
            head.fill(0);
        }
        bytemuck::try_cast_slice_mut(head).map_err(|_| Error::MisalignedArena { align: ARENA_ALIGN })
    }
}

/// Report to `f` the buffers `session` carves, then those `encoding` and `decoding` carve in
/// turn over the session's `"work"` buffer (the same bytes, from its offset): a translator's
/// map, one session or many lanes.
pub(crate) fn map_work_phases(
    f: &mut dyn FnMut(Region),
    session: impl FnOnce(&mut Arena<'_>),
    encoding: impl FnOnce(&mut Arena<'_>),
    decoding: impl FnOnce(&mut Arena<'_>),
) {
    let mut work = 0;
    {
        let mut s = |r: Region| {
            if r.name == "work" {
                work = r.offset;
            }
            f(r)
        };
        session(&mut Arena::traced(0, Phase::Session, &mut s));
    }
    encoding(&mut Arena::traced(work, Phase::Encoding, f));
    decoding(&mut Arena::traced(work, Phase::Decoding, f));
}

/// One buffer of a session's arena, as [`crate::Translator::arena_map`] and its kin report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// When the buffer is live.
    pub phase: Phase,
    /// The buffer (`"x"`, `"cross k"`, `"logits"`, …).
    pub name: &'static str,
    /// Bytes from the arena's start.
    pub offset: usize,
    /// Bytes, padding to the next 8-byte boundary included.
    pub bytes: usize,
}

/// When a buffer is live: for the whole session, or (the translator's work area) while encoding
/// or while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Session,
    Encoding,
    Decoding,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_padded_zeroed_buffers_and_names_a_shortfall_exactly() {
        let mut m = [u64::MAX; 4]; // 32 bytes, 8-byte aligned
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut m);
        let mut a = Arena::new(bytes).unwrap();
        let x: &mut [i16] = a.take("x", 3).unwrap(); // 6 bytes, padded to 8
        assert_eq!(x, [0; 3]);
        assert_eq!(a.used(), 8);
        let y: &mut [i32] = a.take("y", 4).unwrap(); // 16 bytes
        assert_eq!(y.len(), 4);
        assert_eq!(a.used(), 24);
        // 12 bytes (16 padded) wanted, 8 left: 40 needed of the 32 there are
        let e = a.take::<u8>("z", 12).unwrap_err();
        assert_eq!(e, Error::ArenaTooSmall { needed: 40, got: 32 });
        // a dry arena counts the same layout
        let mut d = Arena::dry();
        for n in [3usize, 8, 12] {
            d.take::<u8>("w", n * 2).unwrap();
        }
        assert_eq!(d.used(), 8 + 16 + 24);
    }
}
