//! The C stack section of CPython 3.14+'s faulthandler, async-signal-safe.
//!
//! The stdlib prints, after the Python threads of a fatal report and in
//! `dump_c_stack()`, the native stack of the current thread: glibc
//! `backtrace()` for the addresses and `dladdr1()` for the names. Neither is
//! async-signal-safe (`dladdr1` takes the loader lock, `backtrace` may load
//! libgcc). lastwords does both halves itself, with the generic parts of
//! `lastwords_core::unwind` and, here, what only this process has:
//!
//! * [`prepare`] (enable time) notes where the loader's object list is
//!   (`_r_debug`). That is all: nothing is loaded, so `enable()` costs what
//!   the stdlib's does, and nothing is kept that could grow.
//! * [`capture`] (in the handler) takes a snapshot of the loaded objects from
//!   the loader's `link_map` list and unwinds the current thread with the
//!   DWARF call-frame information of `.eh_frame`, found through each
//!   object's `.eh_frame_hdr`, which is mapped: every read goes through a
//!   checked [`Memory`], so a corrupt stack ends the walk instead of
//!   faulting again. The registers come from the signal's `ucontext`
//!   ([`context`]).
//! * [`write_c_stack`] (in the handler) names each frame from the symbol
//!   tables of its object's file, read now into an anonymous mapping
//!   ([`files`]), so that static functions are named, in every object, the
//!   ones loaded after `enable()` included; an object whose file cannot be
//!   read, or is not the loaded one, is named from `.dynsym` in memory, as
//!   `dladdr` would. [`output`] prints the stdlib's lines.
//!
//! Why DWARF CFI and not frame pointers: neither the Debian `python3.14`
//! binary, nor its `libpython3.14.so`, nor the pyenv 3.9–3.13 builds, nor
//! glibc keep frame pointers (fewer than 5% of their functions set up `%rbp`;
//! Debian's `python3.15` does for about 77%). A frame-pointer walk stops, or
//! worse, wanders, at the first function without one. `.eh_frame` is present
//! in all of them, stripped or not, because C++ exceptions and
//! `pthread_cancel` need it.

#![allow(unsafe_code)]

pub mod context;
pub mod files;
pub mod output;
#[cfg(test)]
mod tests;

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::memory::{LocalChecked, Memory};
use crate::writer::{Sink, Writer};
use lastwords_core::unwind::objects::{Objects, Process};

/// The stdlib's `BACKTRACE_SIZE`: at most this many frames are printed, and a
/// full buffer is followed by `  <truncated rest of calls>`.
pub const MAX_FRAMES: usize = 32;

/// Whether this build can capture C stacks at all (otherwise the section says
/// `<cannot get C stack on this system>`, as the stdlib does).
pub const SUPPORTED: bool = cfg!(all(
    target_os = "linux",
    target_pointer_width = "64",
    target_endian = "little",
    any(target_arch = "x86_64", target_arch = "aarch64")
));

/// `&_r_debug`, from the loader's own symbol; 0 until [`prepare`] (the
/// handler then finds it through the main program's `DT_DEBUG`).
static R_DEBUG: AtomicUsize = AtomicUsize::new(0);
static PREPARED: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    /// glibc's (and musl's) copy of argv[0], the string `dladdr` reports as
    /// the main program's `dli_fname`.
    static program_invocation_name: *const libc::c_char;
}

/// Note where the loader's object list is. Called at enable time (and by
/// `dump_c_stack`); after the first call, one atomic load.
pub fn prepare() -> std::io::Result<()> {
    if !SUPPORTED || PREPARED.load(Ordering::Acquire) {
        return Ok(());
    }
    // SAFETY: dlsym with a NUL-terminated name; RTLD_DEFAULT searches the
    // global scope, where the dynamic loader exports _r_debug.
    let r_debug = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_r_debug".as_ptr()) };
    R_DEBUG.store(r_debug as usize, Ordering::Release);
    PREPARED.store(true, Ordering::Release);
    Ok(())
}

/// Where this process's object list is. Async-signal-safe.
pub fn process() -> Process {
    // SAFETY: getauxval reads the saved auxiliary vector: no lock, no
    // allocation.
    let (phdr, phnum) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR),
            libc::getauxval(libc::AT_PHNUM),
        )
    };
    Process {
        r_debug: R_DEBUG.load(Ordering::Acquire),
        main_phdr: phdr as usize,
        main_phnum: phnum as usize,
        // SAFETY: a plain read of a C library global, set before main().
        main_name: unsafe { program_invocation_name } as usize,
    }
}

/// Capture the current thread's C stack into `frames` (most recent first) and
/// return how many were stored. With a signal handler's `ucontext` the walk
/// starts at the interrupted instruction; with a null context, in the
/// function that called `capture` (as the stdlib's first frame is
/// `_Py_DumpStack`, the caller of `backtrace()`). Reads go through
/// `process_vm_readv`; see [`capture_with`] to choose the reader.
///
/// Async-signal-safe.
#[inline(always)]
pub fn capture(context: *mut libc::c_void, frames: &mut [usize]) -> usize {
    capture_with(&LocalChecked::new(), context, frames)
}

/// [`capture`] with a chosen reader (the fatal handler's reader, which
/// falls back to plain loads where seccomp refuses `process_vm_readv`). With
/// a null context the first frame is the caller of `capture_with`.
///
/// Async-signal-safe.
#[inline(never)]
pub fn capture_with<M: Memory>(mem: &M, context: *mut libc::c_void, frames: &mut [usize]) -> usize {
    if !SUPPORTED || frames.is_empty() {
        return 0;
    }
    let objects = Objects::snapshot(mem, process());
    if context.is_null() {
        // Skip capture_here and this function. The result goes through
        // black_box so that the call is not a tail call: this frame must be
        // on the stack for the count to be right.
        core::hint::black_box(context::capture_here(&objects, frames, 2))
    } else {
        match context::context_regs(context) {
            Some(regs) => lastwords_core::unwind::step::unwind(mem, &objects, regs, frames, 0),
            None => 0,
        }
    }
}

/// Write the stdlib's C stack section for `frames` (from [`capture`]),
/// preceded by a blank line when `leading_blank_line` (the fatal report).
/// See [`output`].
///
/// Async-signal-safe.
pub fn write_c_stack<S: Sink>(out: &mut Writer<S>, frames: &[usize], leading_blank_line: bool) {
    write_c_stack_with(&LocalChecked::new(), out, frames, leading_blank_line);
}

/// [`write_c_stack`] with a chosen reader.
///
/// Async-signal-safe.
pub fn write_c_stack_with<M: Memory, S: Sink>(
    mem: &M,
    out: &mut Writer<S>,
    frames: &[usize],
    leading_blank_line: bool,
) {
    let objects = Objects::snapshot(mem, process());
    let files = files::LocalFiles::new(mem);
    output::write_section(&objects, &files, out, frames, leading_blank_line);
}
