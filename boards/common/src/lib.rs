//! The application every picoformer board runs, written once.
//!
//! A board crate holds glue only: the entry point, the log sink (a defmt global logger), an
//! instruction counter (its [`Platform`] impl) and the exit. It calls [`run`] and exits with code 0
//! if `run` returned `true`, 1 otherwise; a panic exits with code 101 (the handler lives here).
//!
//! The workload is a PLACEHOLDER ([`workload`]): integer matrix-vector products over a static
//! table, checked against digests computed independently on the host. It will be replaced by
//! translating test sentences with the int8 model and comparing token ids and a logits digest with
//! host vectors; the report format (one line per item, then totals, RAM and stack) stays.
#![no_std]

pub mod mem;
#[cfg(target_arch = "arm")]
pub mod systick;
pub mod workload;

#[cfg(target_os = "none")]
mod panic;

/// What the application needs from a board.
pub trait Platform {
    /// Instructions retired since some fixed point at start-up. Monotonic; only differences are
    /// meaningful. Under QEMU `-icount shift=0` this is exact on RISC-V (`minstret`) and has a
    /// resolution of 40 instructions on the mps2 boards (SysTick at 25 MHz).
    fn instructions(&mut self) -> u64;
}

/// Runs the workload, logs one line per item and a summary, and returns `true` only if every
/// check passed.
///
/// Paints the free stack first (see [`mem`]), so the reported high-water mark covers everything
/// `run` does.
pub fn run<P: Platform>(p: &mut P) -> bool {
    let ram = mem::Ram::from_linker();
    // SAFETY: called once, before anything else lives below the caller's stack frame.
    unsafe { mem::paint_stack(&ram) };

    defmt::println!(
        "picoformer board app: placeholder workload, {=usize} items",
        workload::ITEMS.len()
    );
    let mut passed = 0usize;
    let start = p.instructions();
    for (i, item) in workload::ITEMS.iter().enumerate() {
        let t0 = p.instructions();
        let got = workload::run_item(item);
        let t1 = p.instructions();
        let ok = got == item.expected;
        passed += ok as usize;
        defmt::println!(
            "item {=usize}: token {=u16} digest {=u32:#010x} (expected token {=u16} digest {=u32:#010x}) {=str} instructions {=u64}",
            i,
            got.token,
            got.digest,
            item.expected.token,
            item.expected.digest,
            if ok { "ok" } else { "MISMATCH" },
            t1 - t0
        );
    }
    let total = p.instructions() - start;
    let all = passed == workload::ITEMS.len();

    defmt::println!("instructions total {=u64}", total);
    defmt::println!("static RAM {=usize} bytes", ram.static_bytes());
    defmt::println!(
        "stack high-water {=usize} bytes of {=usize}",
        mem::stack_high_water(&ram),
        ram.stack_bytes()
    );
    defmt::println!(
        "{=usize} passed, {=usize} failed",
        passed,
        workload::ITEMS.len() - passed
    );
    all
}
