//! Test vectors the converter writes and the firmware checks: per case, the input (text and
//! ids, or feature frames), the output ids (a translation, a continuation, or the class), and a
//! digest of every step's logits (or of the head's outputs). [`replay`] runs a case on this
//! build and compares: the host tests and every firmware call it.
//!
//! ```text
//! "PVEC", u32 version (2), u32 count, then per case (little-endian, packed):
//!   u8 kind (CaseKind), u8 0, u16 text bytes, text (UTF-8),
//!   u16 n, n × u16 input ids,
//!   u32 f, f × i16 feature values (frames × n_features),
//!   u16 m, m × u16 output ids,
//!   u32 digest
//! ```

mod replay;

pub use replay::{replay, Buffers, Cost, Meter, NoMeter, Replay};

pub const MAGIC: [u8; 4] = *b"PVEC";
pub const VERSION: u32 = 2;

/// New tokens a language model's case runs to, at most (fewer when eos comes first or the
/// context fills).
pub const MAX_NEW: usize = 20;

/// What a case runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseKind {
    /// Encoder-decoder: the source ids, the greedy translation (eos included), every step's
    /// logits.
    Translate = 0,
    /// Decoder-only: the prompt ids, the greedy continuation (eos included), every step's
    /// logits.
    Generate = 1,
    /// Encoder-only: ids or feature frames, the class, the head's outputs.
    Classify = 2,
}

#[inline]
fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off.checked_add(2)?)?.try_into().ok()?))
}

#[inline]
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off.checked_add(4)?)?.try_into().ok()?))
}

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
    pub kind: CaseKind,
    pub text: &'a str,
    src: &'a [u8],
    features: &'a [u8],
    out: &'a [u8],
    pub logits_digest: u32,
}

fn u16s(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| u16::from_le_bytes([c.first().copied().unwrap_or(0), c.get(1).copied().unwrap_or(0)]))
}

impl<'a> Case<'a> {
    pub fn src(&self) -> impl Iterator<Item = u16> + 'a {
        u16s(self.src)
    }
    pub fn src_len(&self) -> usize {
        self.src.len() / 2
    }
    /// Feature values (classify over features), `i16`.
    pub fn features(&self) -> impl Iterator<Item = i16> + 'a {
        u16s(self.features).map(|v| v as i16)
    }
    pub fn features_len(&self) -> usize {
        self.features.len() / 2
    }
    pub fn out(&self) -> impl Iterator<Item = u16> + 'a {
        u16s(self.out)
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
        let kind = match *b.first()? {
            0 => CaseKind::Translate,
            1 => CaseKind::Generate,
            2 => CaseKind::Classify,
            _ => return None,
        };
        let tl = u16_at(b, 2)? as usize;
        let text = core::str::from_utf8(b.get(4..4 + tl)?).ok()?;
        let mut o = 4 + tl;
        let n = u16_at(b, o)? as usize * 2;
        let src = b.get(o + 2..o + 2 + n)?;
        o += 2 + n;
        let f = (u32_at(b, o)? as usize).checked_mul(2)?;
        let features = b.get(o + 4..(o + 4).checked_add(f)?)?;
        o += 4 + f;
        let m = u16_at(b, o)? as usize * 2;
        let out = b.get(o + 2..o + 2 + m)?;
        o += 2 + m;
        let logits_digest = u32_at(b, o)?;
        self.rest = b.get(o + 4..)?;
        self.left -= 1;
        Some(Case { kind, text, src, features, out, logits_digest })
    }
}

/// Host side: one case to write.
#[cfg(feature = "alloc")]
pub struct CaseData<'a> {
    pub kind: CaseKind,
    pub text: &'a str,
    pub src: &'a [u16],
    pub features: &'a [i16],
    pub out: &'a [u16],
    pub digest: u32,
}

/// Host side: serialize cases.
#[cfg(feature = "alloc")]
pub fn write(cases: &[CaseData<'_>]) -> alloc::vec::Vec<u8> {
    let mut v = alloc::vec::Vec::new();
    v.extend_from_slice(&MAGIC);
    v.extend_from_slice(&VERSION.to_le_bytes());
    v.extend_from_slice(&(cases.len() as u32).to_le_bytes());
    for c in cases {
        v.extend_from_slice(&[c.kind as u8, 0]);
        v.extend_from_slice(&(c.text.len() as u16).to_le_bytes());
        v.extend_from_slice(c.text.as_bytes());
        v.extend_from_slice(&(c.src.len() as u16).to_le_bytes());
        for id in c.src {
            v.extend_from_slice(&id.to_le_bytes());
        }
        v.extend_from_slice(&(c.features.len() as u32).to_le_bytes());
        for x in c.features {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(&(c.out.len() as u16).to_le_bytes());
        for id in c.out {
            v.extend_from_slice(&id.to_le_bytes());
        }
        v.extend_from_slice(&c.digest.to_le_bytes());
    }
    v
}
