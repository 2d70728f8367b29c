//! Reset and clock setup for 400 MHz at voltage scale 1 (RM0433 rev 8: §6.8 power supply, §8.5
//! PLLs, §4.3.8 flash wait states), register by register.
//!
//! ```text
//! HSE 8 MHz (bypass: the ST-LINK's MCO) /4 ─┐
//!                                           ├─ 2 MHz ×400 = VCO 800 MHz ─ /2 ─ sys_ck 400 MHz
//! HSI 64 MHz (fallback)               /32 ──┘
//! sys_ck /1 = CPU 400 MHz; /2 = AXI/AHB 200 MHz; /2 = APB1..4 100 MHz (USART3's kernel clock)
//! ```

use crate::pac;

/// Core clock after [`init`].
pub const CPU_HZ: u32 = 400_000_000;
/// APB1 clock after [`init`]: rcc_pclk1, USART2/3's default kernel clock.
pub const PCLK1_HZ: u32 = 100_000_000;

/// Polls of HSERDY before falling back to HSI (the HSE starts within about 2 ms; at the 64 MHz
/// reset clock this is well over 10 ms).
const HSE_POLLS: u32 = 1_000_000;

/// Where the PLL's reference came from.
#[derive(Clone, Copy)]
pub enum Source {
    /// 8 MHz from the ST-LINK's MCO, HSE in bypass mode (the NUCLEO default).
    Hse,
    /// The internal 64 MHz RC oscillator (HSE did not start: solder bridges changed?).
    Hsi,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Hse => "HSE 8 MHz (ST-LINK MCO)",
            Source::Hsi => "HSI 64 MHz",
        }
    }
}

/// Sets up the power supply, VOS1, flash wait states and PLL1, then switches the system clock to
/// PLL1's P output. Call once, right after reset.
pub fn init(pwr: &pac::PWR, rcc: &pac::RCC, flash: &pac::FLASH) -> Source {
    // Supply: LDO on, bypass off. CR3 may be written once after reset (SCUEN), and the write
    // must match the board's supply (the NUCLEO-H743ZI feeds VCORE from the LDO).
    pwr.cr3().modify(|_, w| w.scuen().set_bit().ldoen().set_bit().bypass().clear_bit());
    while pwr.csr1().read().actvosrdy().bit_is_clear() {}

    // Voltage scale 1 (VOS = 0b11): up to 400 MHz CPU, 200 MHz AXI.
    // SAFETY: 0b11 is a valid VOS value (scale 1).
    pwr.d3cr().write(|w| unsafe { w.vos().bits(0b11) });
    while pwr.d3cr().read().vosrdy().bit_is_clear() {}

    // HSE in bypass mode: HSEBYP may only be written while HSE is off.
    rcc.cr().modify(|_, w| w.hsebyp().set_bit());
    rcc.cr().modify(|_, w| w.hseon().set_bit());
    let mut polls = 0;
    while rcc.cr().read().hserdy().bit_is_clear() && polls < HSE_POLLS {
        polls += 1;
    }
    let source = if rcc.cr().read().hserdy().bit_is_set() {
        Source::Hse
    } else {
        rcc.cr().modify(|_, w| w.hseon().clear_bit());
        Source::Hsi
    };

    // PLL1: reference 2 MHz (input range 2..4 MHz), wide VCO at 800 MHz, P = 2 -> 400 MHz,
    // Q = 8 -> 100 MHz, R = 2 -> 400 MHz. DIVN, DIVP, DIVQ, DIVR hold the factor minus one.
    let (pllsrc, divm) = match source {
        Source::Hse => (0b10, 4),
        Source::Hsi => (0b00, 32),
    };
    // SAFETY: PLLSRC 0b00 (HSI) and 0b10 (HSE) are valid; DIVM 4 and 32 are in 1..=63.
    rcc.pllckselr().modify(|_, w| unsafe { w.pllsrc().bits(pllsrc).divm1().bits(divm) });
    rcc.pllcfgr().modify(|_, w| {
        w.pll1fracen().reset();
        w.pll1rge().range2();
        w.pll1vcosel().wide_vco();
        w.divp1en().enabled();
        w.divq1en().enabled();
        w.divr1en().enabled()
    });
    // SAFETY: N = 400, P = 2 (even, as PLL1's P must be), Q = 8, R = 2: all in range.
    rcc.pll1divr().write(|w| unsafe { w.divn1().bits(400 - 1).divp1().bits(2 - 1).divq1().bits(8 - 1).divr1().bits(2 - 1) });
    rcc.cr().modify(|_, w| w.pll1on().set_bit());
    while rcc.cr().read().pll1rdy().bit_is_clear() {}

    // Flash: 2 wait states and WRHIGHFREQ = 0b10 for a 185..210 MHz AXI clock at VOS1
    // (RM0433 table 17). Raise them before the clock goes up, and read back to be sure.
    // SAFETY: LATENCY 2 and WRHIGHFREQ 0b10 are valid values.
    flash.acr().write(|w| unsafe { w.latency().bits(2).wrhighfreq().bits(0b10) });
    while flash.acr().read().latency().bits() != 2 {}

    // Bus prescalers before the switch: CPU /1, AXI/AHB /2, APB3 /2, APB1 /2, APB2 /2, APB4 /2.
    rcc.d1cfgr().modify(|_, w| {
        w.d1cpre().div1();
        w.hpre().div2();
        w.d1ppre().div2()
    });
    rcc.d2cfgr().modify(|_, w| {
        w.d2ppre1().div2();
        w.d2ppre2().div2()
    });
    rcc.d3cfgr().modify(|_, w| w.d3ppre().div2());

    // System clock: PLL1 P.
    rcc.cfgr().modify(|_, w| w.sw().pll1());
    while !rcc.cfgr().read().sws().is_pll1() {}
    source
}
