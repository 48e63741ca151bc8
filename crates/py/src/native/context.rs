//! Where a walk starts: the registers of an interrupted context (a signal's
//! `ucontext`), or of the calling function itself.

use lastwords_core::unwind::Regs;
#[cfg(target_arch = "aarch64")]
use lastwords_core::unwind::arch;
use lastwords_core::unwind::step::{CodeMap, unwind};

use crate::memory::Memory;
use lastwords_core::unwind::objects::Objects;

/// The registers of an interrupted context. Async-signal-safe.
#[cfg(target_arch = "x86_64")]
pub fn context_regs(context: *mut libc::c_void) -> Option<Regs> {
    if context.is_null() {
        return None;
    }
    let uc = context.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers,
    // and the caller passes only that pointer.
    let g = unsafe { &(*uc).uc_mcontext.gregs };
    let mut regs = Regs::empty();
    // DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8..r15.
    let order = [
        libc::REG_RAX,
        libc::REG_RDX,
        libc::REG_RCX,
        libc::REG_RBX,
        libc::REG_RSI,
        libc::REG_RDI,
        libc::REG_RBP,
        libc::REG_RSP,
        libc::REG_R8,
        libc::REG_R9,
        libc::REG_R10,
        libc::REG_R11,
        libc::REG_R12,
        libc::REG_R13,
        libc::REG_R14,
        libc::REG_R15,
    ];
    for (dwarf, &greg) in (0u16..).zip(order.iter()) {
        regs.set(dwarf, *g.get(greg as usize)? as u64);
    }
    regs.pc = *g.get(libc::REG_RIP as usize)? as u64;
    Some(regs)
}

/// The registers of an interrupted context. Async-signal-safe.
#[cfg(target_arch = "aarch64")]
pub fn context_regs(context: *mut libc::c_void) -> Option<Regs> {
    if context.is_null() {
        return None;
    }
    let uc = context.cast::<libc::ucontext_t>();
    // SAFETY: the kernel passes a valid ucontext_t to SA_SIGINFO handlers,
    // and the caller passes only that pointer.
    let m = unsafe { &(*uc).uc_mcontext };
    let mut regs = Regs::empty();
    for (i, &v) in (0u16..).zip(m.regs.iter()) {
        regs.set(i, v);
    }
    regs.set(arch::SP, m.sp);
    regs.pc = m.pc;
    Some(regs)
}

/// No registers on other architectures. Async-signal-safe.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn context_regs(_context: *mut libc::c_void) -> Option<Regs> {
    None
}

/// Capture this function's own registers and unwind from here, skipping
/// `skip` frames (this one and its callers inside this module).
/// Async-signal-safe.
#[inline(never)]
pub fn capture_here<M: Memory>(
    objects: &Objects<'_, M>,
    frames: &mut [usize],
    skip: usize,
) -> usize {
    capture_here_in(objects.mem(), objects, frames, skip)
}

/// [`capture_here`] with any code map. Async-signal-safe.
#[inline(always)]
pub fn capture_here_in<M: Memory, C: CodeMap>(
    mem: &M,
    code: &C,
    frames: &mut [usize],
    skip: usize,
) -> usize {
    let mut saved = [0u64; 8];
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: stores seven registers and the current pc into `saved`
        // (eight u64 slots); no stack use, flags untouched.
        unsafe {
            core::arch::asm!(
                "mov [{p}], rbx",
                "mov [{p} + 8], rbp",
                "mov [{p} + 16], rsp",
                "mov [{p} + 24], r12",
                "mov [{p} + 32], r13",
                "mov [{p} + 40], r14",
                "mov [{p} + 48], r15",
                "lea {t}, [rip]",
                "mov [{p} + 56], {t}",
                p = in(reg) saved.as_mut_ptr(),
                t = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
        let mut regs = Regs::empty();
        for (dwarf, &v) in [3u16, 6, 7, 12, 13, 14, 15].iter().zip(saved.iter()) {
            regs.set(*dwarf, v);
        }
        regs.pc = saved[7];
        unwind(mem, code, regs, frames, skip)
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: stores fp, lr, sp and the current pc into `saved` (eight
        // u64 slots); no stack use, flags untouched.
        unsafe {
            core::arch::asm!(
                "str x29, [{p}]",
                "str x30, [{p}, #8]",
                "mov {t}, sp",
                "str {t}, [{p}, #16]",
                "adr {t}, .",
                "str {t}, [{p}, #24]",
                p = in(reg) saved.as_mut_ptr(),
                t = out(reg) _,
                options(nostack, preserves_flags),
            );
        }
        let mut regs = Regs::empty();
        regs.set(arch::FP, saved[0]);
        regs.set(arch::LR, saved[1]);
        regs.set(arch::SP, saved[2]);
        regs.pc = saved[3];
        unwind(mem, code, regs, frames, skip)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (mem, code, frames, saved, skip);
        0
    }
}
