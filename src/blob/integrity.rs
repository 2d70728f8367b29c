//! The blob's integrity in the field: the CRC-32 [`Model::parse`] checked once, recomputed in
//! chunks of the caller's size so a device can spread it over idle time (a periodic ROM test,
//! see `docs/robustness.md`). No heap; every call is bounded by its chunk.
//!
//! ```text
//! let mut check = model.integrity();
//! loop {
//!     // between sentences, or in an idle task
//!     match check.step(&model, 4096)? {
//!         Progress::Checking { .. } => {}
//!         Progress::Done => { /* one whole pass agreed; the next step starts another */ }
//!     }
//! }
//! ```

use super::{read_header, CRC, CRC_START, HEADER_LEN, MAGIC, VERSION};
use crate::{Error, Model};

/// The table the running digest borrows (`crc::Digest` needs a `'static` [`crc::Crc`]).
static TABLE: crc::Crc<u32> = CRC;

/// How far a pass has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// `done` of the blob's `total` bytes checked so far in this pass.
    Checking { done: usize, total: usize },
    /// The pass ended and the blob is what `parse` verified: header fields and CRC-32 agree.
    /// The next step starts a new pass.
    Done,
}

/// An integrity pass over one parsed model's blob ([`Model::integrity`]): the CRC-32 of bytes
/// `16..total` against the CRC `parse` accepted (kept in RAM, not re-read from flash), then the
/// unchecksummed header bytes `0..16` (magic, version, lengths, the stored CRC) against what
/// `parse` accepted.
#[derive(Clone)]
pub struct Integrity {
    /// The CRC `parse` verified.
    crc: u32,
    /// The blob's length `parse` verified.
    total: usize,
    /// The next byte to fold in: `CRC_START..=total`.
    pos: usize,
    digest: crc::Digest<'static, u32>,
}

impl core::fmt::Debug for Integrity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Integrity").field("crc", &self.crc).field("total", &self.total).field("pos", &self.pos).finish()
    }
}

impl Integrity {
    pub(crate) fn new(crc: u32, total: usize) -> Self {
        Integrity { crc, total, pos: CRC_START, digest: TABLE.digest() }
    }

    /// Check the next `chunk` bytes (at least one) of `model`'s blob, the one this pass was
    /// made from. `Err` (the pass starts again after it):
    /// - `ChecksumMismatch { stored, computed }`: the bytes, or the CRC field in the header,
    ///   changed since `parse` (`stored` is the header's CRC as it reads now);
    /// - `BadMagic`, `UnsupportedVersion`, `BadConfig { field: "total length" | "header
    ///   length" }`: a header field changed, as `parse` would now report it;
    /// - `Truncated`: the blob is shorter than the length `parse` verified (another model's, or
    ///   `Model::default()`'s).
    pub fn step(&mut self, model: &Model<'_>, chunk: usize) -> Result<Progress, Error> {
        self.step_bytes(model.blob, chunk)
    }

    /// [`Integrity::step`] over the blob's bytes as the caller holds them: the same bytes the
    /// model was parsed from, read again (a copy from external flash, say).
    pub fn step_bytes(&mut self, blob: &[u8], chunk: usize) -> Result<Progress, Error> {
        let r = self.advance(blob, chunk);
        if !matches!(r, Ok(Progress::Checking { .. })) {
            self.pos = CRC_START;
            self.digest = TABLE.digest();
        }
        r
    }

    fn advance(&mut self, blob: &[u8], chunk: usize) -> Result<Progress, Error> {
        let total = self.total;
        let short = Error::Truncated { needed: total.max(HEADER_LEN), got: blob.len() };
        // a total under 16 (an empty `Model`) fails the first `get`, as `pos` starts at 16
        let end = self.pos.saturating_add(chunk.max(1)).min(total);
        self.digest.update(blob.get(self.pos..end).ok_or(short)?);
        self.pos = end;
        if end < total {
            return Ok(Progress::Checking { done: end, total });
        }
        let computed = core::mem::replace(&mut self.digest, TABLE.digest()).finalize();
        let h = read_header(blob).ok_or(short)?;
        if h.magic != MAGIC {
            return Err(Error::BadMagic);
        }
        if h.version != VERSION {
            return Err(Error::UnsupportedVersion { found: h.version, supported: VERSION });
        }
        if h.header_len as usize != HEADER_LEN {
            return Err(Error::BadConfig { field: "header length" });
        }
        if h.total_len as usize != total {
            return Err(Error::BadConfig { field: "total length" });
        }
        if computed != self.crc || h.crc != self.crc {
            return Err(Error::ChecksumMismatch { stored: h.crc, computed });
        }
        Ok(Progress::Done)
    }

    /// Bytes a whole pass reads: the blob's length less the first 16 (the header fields are
    /// compared, not summed).
    pub fn pass_bytes(&self) -> usize {
        self.total.saturating_sub(CRC_START)
    }
}
