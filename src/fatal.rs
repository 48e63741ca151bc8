//! Fatal signals: SIGSEGV, SIGFPE, SIGABRT, SIGBUS, SIGILL.
//!
//! `enable()` installs one handler for all five on an alternate stack and keeps
//! the previous actions; the handler puts the previous action back, writes the
//! report, and raises the signal again, so the process ends exactly as it would
//! have without lastwords (same exit status, same core dump policy).
//!
//! // # Internal workings
//!
//! Everything the handler needs is published before the handler is installed,
//! in atomics (fd, all_threads, interpreter) and in the `PREVIOUS` table. The
//! table is written only by `enable()`, which runs serialised by the binding
//! layer's lock; the handler only reads it. Orderings: stores are
//! Release and the handler's loads Acquire, so a handler that sees
//! `INSTALLED == true` sees the fd and previous actions stored before it.

#![allow(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use crate::cpython::memory::{LocalChecked, LocalUnchecked, SignalReader};
use crate::cpython::walk::Walker;
use crate::dump::Dumper;
use crate::signals::{self, SavedAction};
use crate::writer::{FdSink, FlushPolicy, Writer, errno_get, errno_set};
use crate::{pyfatal, target};

/// The signals handled, in the stdlib's order, with the names it prints.
const FATAL_SIGNALS: [libc::c_int; 5] = [
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGSEGV,
];

/// The report name of a fatal signal (the SIGFPE spelling is per version).
/// Async-signal-safe.
pub fn signal_name(signum: libc::c_int, fpe_name: &'static str) -> &'static str {
    match signum {
        libc::SIGBUS => "Bus error",
        libc::SIGILL => "Illegal instruction",
        libc::SIGFPE => fpe_name,
        libc::SIGABRT => "Aborted",
        libc::SIGSEGV => "Segmentation fault",
        _ => "Unknown signal",
    }
}

/// Whether `signum` is one of the fatal signals lastwords handles.
pub fn is_fatal(signum: libc::c_int) -> bool {
    FATAL_SIGNALS.contains(&signum)
}

/// The actions that were in place before `enable()`, one per fatal signal.
static PREVIOUS: [SavedAction; 5] = [const { SavedAction::new() }; 5];
static INSTALLED: AtomicBool = AtomicBool::new(false);
static FD: AtomicI32 = AtomicI32::new(2);
static ALL_THREADS: AtomicBool = AtomicBool::new(true);
static INTERP: AtomicUsize = AtomicUsize::new(0);
static USE_CHECKED_READS: AtomicBool = AtomicBool::new(true);

/// Whether the fatal handlers are installed.
pub fn is_enabled() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

/// Point the handlers at a new fd / thread selection / interpreter, and install
/// them if they are not installed yet. The caller holds the binding layer's
/// lock.
pub fn enable(fd: i32, all_threads: bool, interp: usize) -> std::io::Result<()> {
    FD.store(fd, Ordering::Release);
    ALL_THREADS.store(all_threads, Ordering::Release);
    INTERP.store(interp, Ordering::Release);
    USE_CHECKED_READS.store(
        matches!(SignalReader::choose(), SignalReader::Checked(_)),
        Ordering::Release,
    );
    if INSTALLED.load(Ordering::Acquire) {
        return Ok(());
    }
    pyfatal::prepare();
    signals::install_alt_stack()?;
    let action = signals::action(on_fatal_signal, libc::SA_NODEFER | libc::SA_ONSTACK);
    for (index, &signum) in FATAL_SIGNALS.iter().enumerate() {
        if let Err(err) = signals::install(signum, &action, PREVIOUS.get(index)) {
            restore_first(index);
            return Err(err);
        }
    }
    INSTALLED.store(true, Ordering::Release);
    Ok(())
}

/// Put back the previous actions of the first `count` signals.
fn restore_first(count: usize) {
    for index in 0..count {
        restore_previous(index);
    }
}

/// Put the previous action of one signal back. Async-signal-safe.
fn restore_previous(index: usize) {
    if let (Some(&signum), Some(saved)) = (FATAL_SIGNALS.get(index), PREVIOUS.get(index)) {
        signals::restore(signum, saved);
    }
}

/// Restore the handlers that were there before `enable()`. Returns whether
/// lastwords was enabled. The caller holds the binding layer's lock.
pub fn disable() -> bool {
    if !INSTALLED.swap(false, Ordering::AcqRel) {
        return false;
    }
    restore_first(FATAL_SIGNALS.len());
    true
}

/// The handler of the five fatal signals.
///
/// Async-signal-safe.
extern "C" fn on_fatal_signal(
    signum: libc::c_int,
    _info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let saved_errno = errno_get();
    let Some(index) = FATAL_SIGNALS.iter().position(|&s| s == signum) else {
        return;
    };
    if !INSTALLED.load(Ordering::Acquire) {
        return;
    }
    // Like the stdlib: the previous action first, so that the re-raise below
    // (or a second fault inside the dump) goes to it.
    restore_previous(index);
    // getpid() here rather than at enable time: after fork() the checked
    // reader must read the child.
    let mem = if USE_CHECKED_READS.load(Ordering::Acquire) {
        SignalReader::Checked(LocalChecked::new())
    } else {
        SignalReader::Unchecked(LocalUnchecked)
    };
    let already_reported = signum == libc::SIGABRT
        && pyfatal::interrupted_sp(context).is_some_and(|sp| pyfatal::in_progress(&mem, sp));
    if let (Some(target), false) = (target::get(), already_reported) {
        report(&mem, target, signum);
    }
    errno_set(saved_errno);
    // SAFETY: raise() is async-signal-safe; the previous action is in place.
    unsafe { libc::raise(signum) };
}

/// Write the fatal report: header, threads, extension modules.
///
/// Async-signal-safe.
fn report(mem: &SignalReader, target: &target::Target, signum: libc::c_int) {
    let mut out = Writer::new(FdSink(FD.load(Ordering::Acquire)), FlushPolicy::EachLine);
    out.str("Fatal Python error: ");
    out.str(signal_name(signum, target.format.fpe_name));
    out.end_line();
    out.end_line();
    if signals::DUMPING.swap(true, Ordering::AcqRel) {
        return;
    }
    let interp = INTERP.load(Ordering::Acquire);
    let all_threads = ALL_THREADS.load(Ordering::Acquire);
    // SAFETY: a TSS read (pthread_getspecific): no lock, no allocation; the
    // stdlib's handler makes the same call.
    let current = unsafe { pyo3::ffi::PyGILState_GetThisThreadState() } as usize;
    let walker = Walker::new(mem, &target.layout, target.types);
    let mut d = Dumper {
        walker: &walker,
        format: &target.format,
        out: &mut out,
    };
    // Errors are ignored, as the stdlib ignores them here.
    let _ = d.threads(all_threads, interp, current);
    d.extension_modules(interp, &target::module_filter());
    signals::DUMPING.store(false, Ordering::Release);
}
