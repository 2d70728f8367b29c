//! Test vectors the converter writes and the firmware checks: for each sentence, the source
//! text, the source ids the tokenizer must produce, the greedy output ids, and a digest of
//! every decoder step's logits.
//!
//! ```text
//! "PVEC", u32 version (1), u32 count, then per case (little-endian, packed):
//!   u16 text bytes, text (UTF-8), u16 n, n × u16 source ids, u16 m, m × u16 output ids,
//!   u32 logits digest
//! ```

use crate::blob::{u16_at, u32_at};

pub const MAGIC: [u8; 4] = *b"PVEC";
pub const VERSION: u32 = 1;

/// 32-bit FNV-1a, fed with little-endian bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a(pub u32);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0x811c_9dc5)
    }
}

impl Fnv1a {
    pub fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ x as u32).wrapping_mul(0x0100_0193);
        }
    }
    pub fn i32s(&mut self, v: &[i32]) {
        for x in v {
            self.bytes(&x.to_le_bytes());
        }
    }
}

/// One case, as views into the vector file.
#[derive(Debug, Clone, Copy)]
pub struct Case<'a> {
    pub text: &'a str,
    src: &'a [u8],
    out: &'a [u8],
    pub logits_digest: u32,
}

fn ids(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| u16::from_le_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)]))
}

impl<'a> Case<'a> {
    pub fn src(&self) -> impl Iterator<Item = u16> + 'a {
        ids(self.src)
    }
    pub fn src_len(&self) -> usize {
        self.src.len() / 2
    }
    pub fn out(&self) -> impl Iterator<Item = u16> + 'a {
        ids(self.out)
    }
    pub fn out_len(&self) -> usize {
        self.out.len() / 2
    }
}

/// Iterate the cases of a vector file; `None` on a malformed file (checked up front by
/// [`Vectors::parse`]).
#[derive(Debug, Clone)]
pub struct Vectors<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Vectors<'a> {
    pub fn parse(b: &'a [u8]) -> Option<Vectors<'a>> {
        if b.get(0..4)? != MAGIC || u32_at(b, 4)? != VERSION {
            return None;
        }
        let v = Vectors { rest: b.get(12..)?, left: u32_at(b, 8)? };
        // walk once so iteration cannot fail half-way
        let mut probe = v.clone();
        for _ in 0..v.left {
            probe.next()?;
        }
        Some(v)
    }

    pub fn len(&self) -> usize {
        self.left as usize
    }

    pub fn is_empty(&self) -> bool {
        self.left == 0
    }
}

impl<'a> Iterator for Vectors<'a> {
    type Item = Case<'a>;

    fn next(&mut self) -> Option<Case<'a>> {
        if self.left == 0 {
            return None;
        }
        let b = self.rest;
        let tl = u16_at(b, 0)? as usize;
        let text = core::str::from_utf8(b.get(2..2 + tl)?).ok()?;
        let mut o = 2 + tl;
        let n = u16_at(b, o)? as usize * 2;
        let src = b.get(o + 2..o + 2 + n)?;
        o += 2 + n;
        let m = u16_at(b, o)? as usize * 2;
        let out = b.get(o + 2..o + 2 + m)?;
        o += 2 + m;
        let logits_digest = u32_at(b, o)?;
        self.rest = b.get(o + 4..)?;
        self.left -= 1;
        Some(Case { text, src, out, logits_digest })
    }
}

/// Host side: serialize cases `(text, source ids, output ids, digest)`.
#[cfg(feature = "alloc")]
pub fn write(cases: &[(&str, &[u16], &[u16], u32)]) -> alloc::vec::Vec<u8> {
    let mut v = alloc::vec::Vec::new();
    v.extend_from_slice(&MAGIC);
    v.extend_from_slice(&VERSION.to_le_bytes());
    v.extend_from_slice(&(cases.len() as u32).to_le_bytes());
    for (text, src, out, digest) in cases {
        v.extend_from_slice(&(text.len() as u16).to_le_bytes());
        v.extend_from_slice(text.as_bytes());
        for ids in [src, out] {
            v.extend_from_slice(&(ids.len() as u16).to_le_bytes());
            for id in ids.iter() {
                v.extend_from_slice(&id.to_le_bytes());
            }
        }
        v.extend_from_slice(&digest.to_le_bytes());
    }
    v
}
