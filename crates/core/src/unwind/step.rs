//! The unwinder: from one frame's registers to its caller's, by CFI where
//! the code has some, else by frame pointer; and the walk that chains steps.

use super::regs::{Regs, arch};
use crate::memory::Memory;

pub use super::dwarf::{RowCache, is_outermost, step_cfi, step_cfi_cached};

/// Where the unwind tables of the code at an address are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnwindInfo {
    /// Address and size of the object's `.eh_frame_hdr` (0 if none).
    pub eh_frame_hdr: usize,
    pub eh_frame_hdr_len: usize,
    /// The end of the segment holding `.eh_frame_hdr` (and, in practice,
    /// `.eh_frame` after it); 0 if unknown.
    pub eh_frame_end: usize,
}

/// What the walk needs to know about the code of a process.
pub trait CodeMap {
    /// The unwind tables of the object containing `addr`, or None when no
    /// loaded object contains it. Async-signal-safe.
    fn unwind_info(&self, addr: usize) -> Option<UnwindInfo>;
}

/// The largest frame a frame-pointer step believes in.
const MAX_FRAME: u64 = 1 << 26;

/// A step without CFI (JIT code, a call through a bad pointer, hand-written
/// assembly): a frame-pointer step, or for the interrupted frame, a return
/// address on top of the stack (x86-64) or in the link register (aarch64).
/// Accepted only if the return address lies in a known object.
/// Async-signal-safe.
pub fn step_heuristic<M: Memory, C: CodeMap>(
    mem: &M,
    code: &C,
    regs: &Regs,
    first: bool,
    in_object: bool,
) -> Option<Regs> {
    let sp = regs.get(arch::SP)?;
    let is_code = |a: u64| {
        a != 0
            && usize::try_from(a)
                .ok()
                .and_then(|a| code.unwind_info(a.wrapping_sub(1)))
                .is_some()
    };
    let read = |a: u64| mem.read::<u64>(usize::try_from(a).ok()?).ok();
    #[cfg(target_arch = "x86_64")]
    if first && !in_object {
        // Jumped to a bad address: the call's return address is on top.
        if let Some(ra) = read(sp)
            && is_code(ra)
        {
            let mut next = *regs;
            next.keep_only(&[arch::SP, arch::FP]);
            next.set(arch::SP, sp.wrapping_add(8));
            next.pc = ra;
            return Some(next);
        }
    }
    #[cfg(target_arch = "aarch64")]
    if first && !in_object {
        // Jumped to a bad address: the return address is still in lr.
        if let Some(lr) = regs.get(arch::LR)
            && is_code(lr)
        {
            let mut next = *regs;
            next.keep_only(&[arch::SP, arch::FP]);
            next.pc = lr;
            return Some(next);
        }
    }
    let _ = (first, in_object);
    let fp = regs.get(arch::FP)?;
    if fp < sp || fp % 8 != 0 || fp.wrapping_sub(sp) > MAX_FRAME {
        return None;
    }
    let saved_fp = read(fp)?;
    let ra = read(fp.wrapping_add(8))?;
    if !is_code(ra) {
        return None;
    }
    let mut next = Regs::empty();
    next.set(arch::SP, fp.wrapping_add(16));
    next.set(arch::FP, saved_fp);
    next.pc = ra;
    Some(next)
}

/// The most steps one walk takes, whatever `frames` holds.
pub const MAX_STEPS: usize = 4096;

/// How a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// At the outermost frame: a null return address, or CFI that says the
    /// return address is undefined (`_start`, `clone`).
    Outermost,
    /// `frames` is full (or [`MAX_STEPS`] were taken): there may be more.
    Limit,
    /// A step failed: no unwind information, a stack pointer into nowhere,
    /// a caller's frame below its callee's.
    Lost,
}

/// Walk from `regs`, storing pcs in `frames` after skipping `skip` frames;
/// returns how many were stored. The first pc is exact (an interrupted
/// instruction, or a capture point); later ones are return addresses, looked
/// up one byte back. The walk ends at a null return address, a step that
/// fails, a stack pointer that does not grow (except across a signal frame),
/// or after [`MAX_STEPS`]. Async-signal-safe.
pub fn unwind<M: Memory, C: CodeMap>(
    mem: &M,
    code: &C,
    regs: Regs,
    frames: &mut [usize],
    skip: usize,
) -> usize {
    walk(mem, code, regs, frames, skip, None).0
}

/// [`unwind`] without skipping, saying how the walk ended (for a report
/// that marks a stack it could not follow to its end). Async-signal-safe.
pub fn unwind_ends<M: Memory, C: CodeMap>(
    mem: &M,
    code: &C,
    regs: Regs,
    frames: &mut [usize],
) -> (usize, End) {
    walk(mem, code, regs, frames, 0, None)
}

/// [`unwind_ends`] with the CFI rows found kept in `cache` for the next
/// walks of the same process (its other threads). Not async-signal-safe.
pub fn unwind_ends_cached<M: Memory, C: CodeMap>(
    mem: &M,
    code: &C,
    regs: Regs,
    frames: &mut [usize],
    cache: &mut RowCache,
) -> (usize, End) {
    walk(mem, code, regs, frames, 0, Some(cache))
}

/// The walk of [`unwind`] and [`unwind_ends`]. Async-signal-safe.
fn walk<M: Memory, C: CodeMap>(
    mem: &M,
    code: &C,
    mut regs: Regs,
    frames: &mut [usize],
    mut skip: usize,
    mut cache: Option<&mut RowCache>,
) -> (usize, End) {
    let mut n = 0usize;
    let mut exact = true;
    let mut first = true;
    let steps = frames
        .len()
        .saturating_add(skip)
        .saturating_add(1)
        .min(MAX_STEPS);
    for _ in 0..steps {
        // A null return address ends the stack; a null first pc is a call
        // through a null pointer, printed and stepped over.
        if regs.pc == 0 && !first {
            return (n, End::Outermost);
        }
        if skip > 0 {
            skip = skip.saturating_sub(1);
        } else {
            let Some(slot) = frames.get_mut(n) else {
                return (n, End::Limit);
            };
            let Ok(pc) = usize::try_from(regs.pc) else {
                return (n, End::Lost);
            };
            *slot = pc;
            n = n.saturating_add(1);
            if n == frames.len() {
                return (n, End::Limit);
            }
        }
        let Some(sp) = regs.get(arch::SP) else {
            return (n, End::Lost);
        };
        let lookup = if exact {
            regs.pc
        } else {
            regs.pc.wrapping_sub(1)
        };
        let info = usize::try_from(lookup)
            .ok()
            .and_then(|a| code.unwind_info(a));
        let stepped = match info
            .and_then(|i| step_cfi_cached(mem, &i, &regs, lookup, cache.as_deref_mut()))
        {
            Some(step) => Some(step),
            None => step_heuristic(mem, code, &regs, first, info.is_some()).map(|r| (r, false)),
        };
        let Some((next, signal)) = stepped else {
            let outermost = info.is_some_and(|i| is_outermost(mem, &i, lookup));
            return (n, if outermost { End::Outermost } else { End::Lost });
        };
        let Some(next_sp) = next.get(arch::SP) else {
            return (n, End::Lost);
        };
        // Stacks grow down: a caller's frame is above its callee's, except
        // across a signal frame (the handler may run on another stack).
        if !signal {
            let ok = if arch::STRICT_SP {
                next_sp > sp
            } else {
                next_sp > sp || (next_sp == sp && next.pc != regs.pc)
            };
            if !ok {
                return (n, End::Lost);
            }
        }
        exact = signal;
        first = false;
        regs = next;
    }
    (n, End::Limit)
}
