//! The caller's arena, carved into typed buffers by a bump allocator.
//!
//! The same carving code runs twice: once "dry" over no memory to count the bytes a config
//! needs ([`crate::Translator::arena_bytes`]), and once over the caller's memory. There is one
//! definition of the layout, so the count is exact. Every buffer starts on an 8-byte boundary;
//! the arena itself must too.

use crate::Error;

/// A bump allocator over `&'a mut [u8]`, or a counter when dry.
pub(crate) struct Arena<'a> {
    rest: &'a mut [u8],
    used: usize,
    dry: bool,
    /// Zero what it hands out (a fresh arena); a view over buffers already carved once does not.
    zero: bool,
}

pub(crate) const ARENA_ALIGN: usize = 8;

impl<'a> Arena<'a> {
    /// An arena that only counts.
    pub(crate) fn dry() -> Arena<'static> {
        Arena { rest: &mut [], used: 0, dry: true, zero: false }
    }

    pub(crate) fn new(mem: &'a mut [u8]) -> Result<Arena<'a>, Error> {
        // an empty slice holds no buffer, whatever its (dangling) address
        if !mem.is_empty() && mem.as_ptr() as usize % ARENA_ALIGN != 0 {
            return Err(Error::MisalignedArena { align: ARENA_ALIGN });
        }
        Ok(Arena { rest: mem, used: 0, dry: false, zero: true })
    }

    /// An arena over memory carved and zeroed before: a session's typed view of an area its
    /// encoder and decoder take turns in. Hands out the bytes as they are.
    pub(crate) fn reuse(mem: &'a mut [u8]) -> Arena<'a> {
        // alignment was checked when `mem` was carved from an arena
        Arena { rest: mem, used: 0, dry: false, zero: false }
    }

    /// Bytes handed out so far, padding included.
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// Take `n` zeroed elements of `T`. Dry arenas return an empty slice.
    pub(crate) fn take<T: bytemuck::Pod>(&mut self, n: usize) -> Result<&'a mut [T], Error> {
        let bytes = n.checked_mul(core::mem::size_of::<T>()).ok_or(Error::ArenaTooSmall { needed: usize::MAX, got: 0 })?;
        let padded = bytes.div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
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
