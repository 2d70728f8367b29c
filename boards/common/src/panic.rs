//! The panic handler every board shares: log through defmt, exit QEMU with code 101.

use core::sync::atomic::{AtomicBool, Ordering};

static PANICKED: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    // A panic inside the logger must not recurse into it.
    let again = critical_section::with(|_| {
        let again = PANICKED.load(Ordering::Relaxed);
        PANICKED.store(true, Ordering::Relaxed);
        again
    });
    if !again {
        defmt::error!("{}", defmt::Display2Format(info));
    }
    semihosting::process::exit(101)
}
