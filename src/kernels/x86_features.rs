//! Which x86-64 SIMD level the kernels' x86 paths (`<family>/x86.rs`) may use, detected at run
//! time: the runtime is `no_std`, so `is_x86_feature_detected!` is not available, and the
//! answer comes from `CPUID` (and `XGETBV` for the operating system's AVX state) once, cached
//! in an atomic. Every `x86.rs` asks [`level`] per call and runs the best path up to it.
//!
//! | level | needs | what the paths use |
//! |---|---|---|
//! | [`Level::Portable`] | — | the family's portable Rust |
//! | [`Level::Sse41`] | SSSE3 + SSE4.1 | 128-bit `PMADDWD`, `PMOVSXBW`, `PSHUFB`, `PMULDQ` |
//! | [`Level::Avx`] | AVX, enabled by the OS (`XCR0` bits 1-2) | the same 128-bit code, VEX-encoded (three operands, unaligned memory operands) |
//! | [`Level::Avx2`] | AVX2 (and AVX) | 256-bit integer code, variable shifts (`VPSRAVD`), gathers |
//! | [`Level::Avx512Vnni`] | AVX2, AVX-512 F, VL and VNNI, the AVX-512 state enabled by the OS (`XCR0` bits 5-7) | the AVX2 code; the linear layer's `VPMADDWD` + `VPADDD` fused into one `VPDPWSSD` (256-bit, EVEX) |
//!
//! [`set_cap`] lowers the level for the whole process (the self-test runs every level the CPU
//! has; the benchmarks compare them). It only ever lowers: a level the CPU lacks is never used.
//! The module exists on every x86-64 build; with `PICOFORMER_PORTABLE=1` (core `"none"`) no
//! kernel reads it.

use core::sync::atomic::{AtomicU8, Ordering};

/// A SIMD level, ordered: each includes the ones below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    Portable = 0,
    Sse41 = 1,
    Avx = 2,
    Avx2 = 3,
    Avx512Vnni = 4,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 5] = [Level::Portable, Level::Sse41, Level::Avx, Level::Avx2, Level::Avx512Vnni];

    /// The level's name, as the benchmarks print it.
    pub const fn name(self) -> &'static str {
        match self {
            Level::Portable => "portable",
            Level::Sse41 => "sse4.1",
            Level::Avx => "avx",
            Level::Avx2 => "avx2",
            Level::Avx512Vnni => "avx512vnni",
        }
    }

    /// The level of a name (as [`Level::name`] prints it), if any.
    pub fn from_name(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == name)
    }

    const fn from_u8(v: u8) -> Level {
        match v {
            1 => Level::Sse41,
            2 => Level::Avx,
            3 => Level::Avx2,
            4 => Level::Avx512Vnni,
            _ => Level::Portable,
        }
    }
}

/// Not yet detected.
const UNKNOWN: u8 = u8::MAX;

/// What the CPU has ([`UNKNOWN`] until the first call).
static DETECTED: AtomicU8 = AtomicU8::new(UNKNOWN);

/// The highest level the paths may use ([`set_cap`]); `u8::MAX`: no cap.
static CAP: AtomicU8 = AtomicU8::new(u8::MAX);

/// The level the kernels run at: the CPU's, lowered by [`set_cap`] if it was called.
#[inline(always)]
pub fn level() -> Level {
    let cap = CAP.load(Ordering::Relaxed);
    let got = detected() as u8;
    Level::from_u8(if cap < got { cap } else { got })
}

/// The highest level this CPU (and operating system) supports.
#[inline(always)]
pub fn detected() -> Level {
    let v = DETECTED.load(Ordering::Relaxed);
    if v != UNKNOWN {
        return Level::from_u8(v);
    }
    let l = detect();
    DETECTED.store(l as u8, Ordering::Relaxed);
    l
}

/// Lower the level every kernel runs at to `cap` (`None`: back to what the CPU has). For the
/// self-test and the benchmarks; every level gives the same bits, only the speed differs.
#[doc(hidden)]
pub fn set_cap(cap: Option<Level>) {
    CAP.store(cap.map_or(u8::MAX, |l| l as u8), Ordering::Relaxed);
}

/// `CPUID` leaves 1 and 7, and `XGETBV(0)` when the OS has enabled `XSAVE`.
#[cold]
fn detect() -> Level {
    // SAFETY: CPUID exists on every x86-64 CPU; leaf 0 reports the highest basic leaf.
    #[allow(unused_unsafe)]
    let max_leaf = unsafe { core::arch::x86_64::__cpuid(0) }.eax;
    if max_leaf < 1 {
        return Level::Portable;
    }
    // SAFETY: leaf 1 is at most `max_leaf`.
    #[allow(unused_unsafe)]
    let ecx1 = unsafe { core::arch::x86_64::__cpuid(1) }.ecx;
    let bit = |r: u32, b: u32| r >> b & 1 == 1;
    let (ssse3, sse41, osxsave, avx) = (bit(ecx1, 9), bit(ecx1, 19), bit(ecx1, 27), bit(ecx1, 28));
    if !(ssse3 && sse41) {
        return Level::Portable;
    }
    // AVX needs the OS to save the YMM state: XCR0 bits 1 (SSE) and 2 (AVX).
    // SAFETY: XGETBV is available when CPUID.1:ECX.OSXSAVE[bit 27] is set, checked first.
    let os_avx = osxsave && unsafe { xcr0() } & 0b110 == 0b110;
    if !(avx && os_avx) {
        return Level::Sse41;
    }
    if max_leaf < 7 {
        return Level::Avx;
    }
    // SAFETY: leaf 7 is at most `max_leaf`.
    #[allow(unused_unsafe)]
    let leaf7 = unsafe { core::arch::x86_64::__cpuid_count(7, 0) };
    if !bit(leaf7.ebx, 5) {
        return Level::Avx;
    }
    // AVX-512 F (EBX 16), VL (EBX 31), VNNI (ECX 11); the OS saves the opmask and ZMM state
    // (XCR0 bits 5-7; OSXSAVE was checked with AVX)
    let (f, vl, vnni) = (bit(leaf7.ebx, 16), bit(leaf7.ebx, 31), bit(leaf7.ecx, 11));
    // SAFETY: as above, OSXSAVE is set.
    if f && vl && vnni && unsafe { xcr0() } & 0xe0 == 0xe0 {
        Level::Avx512Vnni
    } else {
        Level::Avx2
    }
}

/// `XCR0`, the OS-enabled state components.
///
/// # Safety
/// The CPU must report OSXSAVE (CPUID.1:ECX bit 27).
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    core::arch::x86_64::_xgetbv(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detection agrees with std's.
    #[test]
    #[cfg_attr(miri, ignore = "cpuid is inline assembly, which Miri does not run")]
    fn agrees_with_std() {
        let vnni = std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512vl") && std::is_x86_feature_detected!("avx512vnni");
        let want = if vnni && std::is_x86_feature_detected!("avx2") {
            Level::Avx512Vnni
        } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("avx") {
            Level::Avx2
        } else if std::is_x86_feature_detected!("avx") {
            Level::Avx
        } else if std::is_x86_feature_detected!("sse4.1") && std::is_x86_feature_detected!("ssse3") {
            Level::Sse41
        } else {
            Level::Portable
        };
        assert_eq!(detected(), want);
        for l in Level::ALL {
            assert_eq!(Level::from_name(l.name()), Some(l));
            assert_eq!(Level::from_u8(l as u8), l);
        }
    }
}
