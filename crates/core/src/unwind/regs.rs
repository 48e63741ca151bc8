//! A register set in DWARF numbering, for the architecture lastwords runs on
//! (the unwinder reads stacks of this machine's processes).

/// The registers tracked, and which DWARF numbers play which part.
#[cfg(target_arch = "x86_64")]
pub mod arch {
    /// rax..r15 (0-15) and the return address column (16).
    pub const NREGS: usize = 17;
    pub const SP: u16 = 7;
    pub const FP: u16 = 6;
    /// The stack pointer of a caller is at least one word above its callee's.
    pub const STRICT_SP: bool = true;
}

/// The registers tracked, and which DWARF numbers play which part.
#[cfg(target_arch = "aarch64")]
pub mod arch {
    /// x0..x30 (0-30), sp (31), pc (32).
    pub const NREGS: usize = 33;
    pub const SP: u16 = 31;
    pub const FP: u16 = 29;
    pub const LR: u16 = 30;
    /// A leaf function may leave sp where its caller had it.
    pub const STRICT_SP: bool = false;
}

/// No unwinding on other architectures (the register set is empty).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub mod arch {
    pub const NREGS: usize = 1;
    pub const SP: u16 = 0;
    pub const FP: u16 = 0;
    pub const STRICT_SP: bool = true;
}

use arch::NREGS;

/// Register values of one frame, and its program counter.
#[derive(Clone, Copy, Debug)]
pub struct Regs {
    val: [u64; NREGS],
    /// Bit i: `val[i]` is known.
    known: u64,
    pub pc: u64,
}

/// The bit of register `r` in [`Regs::known`]. Async-signal-safe.
fn bit(r: u16) -> u64 {
    1u64.checked_shl(u32::from(r)).unwrap_or(0)
}

impl Regs {
    /// No register known. Async-signal-safe.
    pub const fn empty() -> Self {
        Regs {
            val: [0; NREGS],
            known: 0,
            pc: 0,
        }
    }

    /// A register's value, if known. Async-signal-safe.
    pub fn get(&self, r: u16) -> Option<u64> {
        if self.known & bit(r) != 0 {
            self.val.get(usize::from(r)).copied()
        } else {
            None
        }
    }

    /// Set a register (ignored past the tracked ones). Async-signal-safe.
    pub fn set(&mut self, r: u16, v: u64) {
        if let Some(slot) = self.val.get_mut(usize::from(r)) {
            *slot = v;
            self.known |= bit(r);
        }
    }

    /// Forget every register but those listed. Async-signal-safe.
    pub fn keep_only(&mut self, keep: &[u16]) {
        let mask = keep.iter().fold(0u64, |m, &r| m | bit(r));
        self.known &= mask;
    }
}
