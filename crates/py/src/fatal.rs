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
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use crate::cpython::walk::Walker;
use crate::memory::{
    BlockCache, Cached, LocalUnchecked, Memory, PipeSlot, SafeLocal, ensure_read_method,
};
use crate::report::text::TextReport;
use crate::signals::{self, SavedAction};
use crate::writer::{FdSink, FlushPolicy, Sink, Writer, errno_get, errno_set};
use crate::{native, pyfatal, target};

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
static MAX_THREADS: AtomicUsize = AtomicUsize::new(crate::report::MAX_THREADS);
static C_STACK: AtomicBool = AtomicBool::new(false);
/// The thread (kernel tid) that owns the process's fatal report, from the
/// moment it claims it until its re-raise returns (0: none). Other threads
/// with a fatal signal wait for it.
static REPORT_OWNER: AtomicI32 = AtomicI32::new(0);
/// The thread writing a fatal report right now, and the signal it reports:
/// a fault on that thread while it writes ends the process.
static REPORTING_TID: AtomicI32 = AtomicI32::new(0);
static REPORTING_SIGNUM: AtomicI32 = AtomicI32::new(0);
static INTERP: AtomicUsize = AtomicUsize::new(0);

/// Whether the fatal handlers are installed.
pub fn is_enabled() -> bool {
    INSTALLED.load(Ordering::Acquire)
}

/// What a fatal report writes, and where.
pub struct Options {
    pub fd: i32,
    pub all_threads: bool,
    /// The C stack section after the threads (3.14+).
    pub c_stack: bool,
    pub max_threads: usize,
    /// The interpreter whose threads are listed.
    pub interp: usize,
}

/// Point the handlers at new options, and install them if they are not
/// installed yet. The caller holds the binding layer's lock.
pub fn enable(options: &Options) -> std::io::Result<()> {
    FD.store(options.fd, Ordering::Release);
    ALL_THREADS.store(options.all_threads, Ordering::Release);
    C_STACK.store(options.c_stack, Ordering::Release);
    MAX_THREADS.store(options.max_threads, Ordering::Release);
    INTERP.store(options.interp, Ordering::Release);
    // Probed once per process (a system call): enable() stays cheap.
    ensure_read_method();
    if options.c_stack {
        // Symbol tables are read now: the handler only looks them up.
        native::prepare()?;
    }
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
/// Unlike the stdlib, the handler stays installed while the report is
/// written, and the previous action is put back only for the re-raise: a
/// fatal signal on another thread then reaches this handler, which waits for
/// the report under way instead of writing into it and ending the process
/// before it is complete (the stdlib, having restored the previous action
/// first, dies at once of the second signal). A fault inside the report on
/// the reporting thread is caught by the same handler and ends the process
/// with the signal being reported.
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
    let tid = crate::procfs::gettid();
    if REPORTING_TID.load(Ordering::Acquire) == tid {
        // A fault inside our own report (possible only with unchecked reads):
        // the report ends where it got to, and the process dies of the signal
        // it was reporting, as it would have without lastwords.
        die_of(REPORTING_SIGNUM.load(Ordering::Acquire));
    }
    let already_reported = signum == libc::SIGABRT
        && pyfatal::interrupted_sp(context)
            .zip(SafeLocal::checked(&SCAN_PIPE))
            .is_some_and(|(sp, mem)| pyfatal::in_progress(&mem, sp));
    // One report per process at a time: a thread that comes second waits
    // (bounded) for the first one's report, whose re-raise normally ends the
    // process before the wait does.
    let claim = if already_reported {
        Claim::None
    } else {
        claim_report(tid)
    };
    if claim != Claim::None
        && let Some(target) = target::get()
    {
        REPORTING_SIGNUM.store(signum, Ordering::Release);
        REPORTING_TID.store(tid, Ordering::Release);
        report(target, signum, context, FD.load(Ordering::Acquire));
        REPORTING_TID.store(0, Ordering::Release);
    }
    restore_previous(index);
    errno_set(saved_errno);
    // SAFETY: raise() is async-signal-safe; the previous action is in place.
    // A fault inside a previous handler that runs now is a new crash, and
    // is reported as one (this thread owns the report already).
    unsafe { libc::raise(signum) };
    // The previous action returned (a handler that did not end the
    // process): the next fatal signal may report again.
    if claim == Claim::Fresh {
        REPORT_OWNER.store(0, Ordering::Release);
    }
}

/// How long a thread with a fatal signal waits for another thread's report
/// before it goes on without a report of its own: long enough for any report
/// written to a responsive file, short enough that a report stuck on a full
/// pipe does not hold the process forever.
const OTHER_REPORT_WAIT_MS: u32 = 5_000;

/// How [`claim_report`] went.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// This thread now owns the report (and releases it).
    Fresh,
    /// This thread owned it already: a fatal signal raised by a previous
    /// handler that our re-raise called.
    Nested,
    /// Another thread's report did not end in time: no report from here.
    None,
}

/// Take the right to write the report for this process, waiting for another
/// thread's report to end first (at most [`OTHER_REPORT_WAIT_MS`]).
/// Async-signal-safe.
fn claim_report(tid: libc::pid_t) -> Claim {
    for _ in 0..=OTHER_REPORT_WAIT_MS {
        match REPORT_OWNER.compare_exchange(0, tid, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Claim::Fresh,
            Err(owner) if owner == tid => return Claim::Nested,
            Err(_) => {}
        }
        let one_ms = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        // SAFETY: nanosleep is async-signal-safe; valid timespec, no remainder.
        unsafe { libc::nanosleep(&one_ms, core::ptr::null_mut()) };
    }
    Claim::None
}

/// End the process by `signum` with its default action. Async-signal-safe.
fn die_of(signum: libc::c_int) -> ! {
    // SAFETY: a zeroed sigaction is SIG_DFL with an empty mask; raise and
    // _exit are async-signal-safe.
    unsafe {
        let default: libc::sigaction = MaybeUninit::zeroed().assume_init();
        libc::sigaction(signum, &default, core::ptr::null_mut());
        let mut set: libc::sigset_t = MaybeUninit::zeroed().assume_init();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signum);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut());
        libc::raise(signum);
        libc::_exit(signum.wrapping_add(128))
    }
}

/// Blocks of interpreter memory read by the fatal report (one report at a
/// time: REPORT_OWNER).
static FATAL_CACHE: BlockCache = BlockCache::new();
/// The pipes of the pipe read method: the report's, and the Py_FatalError
/// scan's (which runs before the report is claimed).
static FATAL_PIPE: PipeSlot = PipeSlot::new();
static SCAN_PIPE: PipeSlot = PipeSlot::new();

/// Write the fatal report: header, threads, C stack (3.14+), extension
/// modules. The caller owns the report (REPORT_OWNER: one at a time; a user
/// signal dump in another thread, which holds signals::DUMPING, does not stop
/// this one: the process is dying, its report comes first).
///
/// Async-signal-safe.
fn report(target: &target::Target, signum: libc::c_int, context: *mut libc::c_void, fd: i32) {
    // getpid() (process_vm_readv) and the pipe are taken now, not at enable
    // time: after fork() the child must read itself.
    let mem = SafeLocal::new(&FATAL_PIPE);
    // With checked reads no second fault can cut the report short, so it is
    // written in 4 KiB pieces; with plain loads (where no checked method
    // works) every line is written as soon as it is complete.
    let checked = !mem.is_plain();
    let policy = if checked {
        FlushPolicy::WhenFull
    } else {
        FlushPolicy::EachLine
    };
    let mut out = Writer::new(FdSink(fd), policy);
    out.str("Fatal Python error: ");
    out.str(signal_name(signum, target.format.fpe_name));
    out.end_line();
    out.end_line();
    if checked {
        FATAL_CACHE.clear();
        let mem = Cached::new(mem, &FATAL_CACHE);
        // The other threads may run Python code meanwhile (this one need not
        // hold the GIL).
        report_body(
            &mem,
            Some(&|| FATAL_CACHE.clear()),
            target,
            context,
            &mut out,
        );
    } else {
        report_body(&LocalUnchecked, None, target, context, &mut out);
    }
}

/// Everything after the header, through `mem`. Async-signal-safe.
fn report_body<M: Memory, S: Sink>(
    mem: &M,
    reread: Option<&dyn Fn()>,
    target: &target::Target,
    context: *mut libc::c_void,
    out: &mut Writer<S>,
) {
    let interp = INTERP.load(Ordering::Acquire);
    let all_threads = ALL_THREADS.load(Ordering::Acquire);
    // SAFETY: a TSS read (pthread_getspecific): no lock, no allocation; the
    // stdlib's handler makes the same call.
    let current = unsafe { pyo3::ffi::PyGILState_GetThisThreadState() } as usize;
    let walker = Walker::new(mem, &target.layout, target.types);
    let mut d = TextReport {
        walker: &walker,
        format: &target.format,
        out,
        reread,
    };
    // Errors are ignored, as the stdlib ignores them here.
    let _ = d.threads(
        all_threads,
        interp,
        current,
        MAX_THREADS.load(Ordering::Acquire),
    );
    if C_STACK.load(Ordering::Acquire) {
        // 3.14+: the C stack of the faulting thread, from the interrupted
        // context, between the threads and the extension modules.
        let mut frames = [0usize; native::MAX_FRAMES];
        let n = native::capture_with(mem, context, &mut frames);
        native::write_c_stack_with(mem, d.out, frames.get(..n).unwrap_or(&[]), true);
    }
    d.extension_modules(interp, &target::module_filter());
}

/// Write the report a SIGSEGV would write, to `fd`, from the calling thread,
/// without a signal: the same reader, walk and flushing as the handler. For
/// the benchmark of the fatal path (`bench/bench_dump.py --fatal-path`).
pub fn rehearse(fd: i32) {
    let Some(target) = target::get() else {
        return;
    };
    let tid = crate::procfs::gettid();
    if claim_report(tid) == Claim::Fresh {
        report(target, libc::SIGSEGV, core::ptr::null_mut(), fd);
        REPORT_OWNER.store(0, Ordering::Release);
    }
}
