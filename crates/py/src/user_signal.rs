//! `register(signum)`: dump the tracebacks when a user signal arrives.
//!
//! One slot per signal number, in atomics, published before the handler is
//! installed. The handler dumps through the checked reader (the other threads
//! keep running while it reads them), then, with `chain`, runs the previous
//! action (see `signals::call_previous`).

#![allow(unsafe_code)]
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use crate::cpython::walk::Walker;
use crate::memory::{BlockCache, Cached, PipeSlot, SafeLocal};
use crate::report::text::TextReport;
use crate::signals::{self, SavedAction};
use crate::target;
use crate::writer::{FdSink, FlushPolicy, Writer, errno_get, errno_set};

/// Signal numbers are 1..NSIG (64 real-time included on Linux).
pub const NSIG: i32 = 65;

struct UserSignal {
    enabled: AtomicBool,
    fd: AtomicI32,
    all_threads: AtomicBool,
    chain: AtomicBool,
    interp: AtomicUsize,
    max_threads: AtomicUsize,
    previous: SavedAction,
}

static SIGNALS: [UserSignal; NSIG as usize] = [const {
    UserSignal {
        enabled: AtomicBool::new(false),
        fd: AtomicI32::new(2),
        all_threads: AtomicBool::new(true),
        chain: AtomicBool::new(false),
        interp: AtomicUsize::new(0),
        max_threads: AtomicUsize::new(crate::report::MAX_THREADS),
        previous: SavedAction::new(),
    }
}; NSIG as usize];

/// SA_RESTART: system calls interrupted by the dump go on. No SA_NODEFER
/// (the stdlib sets it with `chain`): the signal stays blocked while its
/// handler runs, so a flood of it cannot nest handlers until the alternate
/// stack overflows; the previous handler is called directly instead.
const FLAGS: libc::c_int = libc::SA_RESTART | libc::SA_ONSTACK;

/// Register (or update) a user signal. The previous action is saved only the
/// first time, so that `unregister` restores the original one. The caller
/// holds the binding layer's lock and has checked `signum`.
pub fn register(
    signum: i32,
    fd: i32,
    all_threads: bool,
    chain: bool,
    max_threads: usize,
    interp: usize,
) -> std::io::Result<()> {
    let slot = SIGNALS
        .get(signum as usize)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    slot.fd.store(fd, Ordering::Release);
    slot.all_threads.store(all_threads, Ordering::Release);
    slot.chain.store(chain, Ordering::Release);
    slot.interp.store(interp, Ordering::Release);
    slot.max_threads.store(max_threads, Ordering::Release);
    if !slot.enabled.load(Ordering::Acquire) {
        signals::install_alt_stack()?;
        let action = signals::action(on_user_signal, FLAGS);
        signals::install(signum, &action, Some(&slot.previous))?;
        slot.enabled.store(true, Ordering::Release);
    }
    Ok(())
}

/// Restore the action that was there before the first `register`. Returns
/// whether the signal was registered.
pub fn unregister(signum: i32) -> bool {
    let Some(slot) = SIGNALS.get(signum as usize) else {
        return false;
    };
    if !slot.enabled.swap(false, Ordering::AcqRel) {
        return false;
    }
    signals::restore(signum, &slot.previous);
    true
}

/// The handler of registered signals.
///
/// Async-signal-safe.
extern "C" fn on_user_signal(
    signum: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    let saved_errno = errno_get();
    let Some(slot) = SIGNALS.get(signum as usize) else {
        return;
    };
    if !slot.enabled.load(Ordering::Acquire) {
        return;
    }
    dump(slot);
    if slot.chain.load(Ordering::Acquire) {
        errno_set(saved_errno);
        signals::call_previous(signum, &slot.previous, info, context, on_user_signal);
    }
    errno_set(saved_errno);
}

/// Blocks of interpreter memory read by a user-signal dump (one at a time:
/// signals::DUMPING).
static USER_CACHE: BlockCache = BlockCache::new();
static USER_PIPE: PipeSlot = PipeSlot::new();

/// The dump of a user signal: no header; all threads or the receiving
/// thread's stack. Async-signal-safe.
fn dump(slot: &UserSignal) {
    let Some(target) = target::get() else {
        return;
    };
    if signals::DUMPING.swap(true, Ordering::AcqRel) {
        return;
    }
    let mut out = Writer::new(
        FdSink(slot.fd.load(Ordering::Acquire)),
        FlushPolicy::WhenFull,
    );
    // SAFETY: a TSS read (pthread_getspecific), as in the stdlib's handler.
    let current = unsafe { pyo3::ffi::PyGILState_GetThisThreadState() } as usize;
    USER_CACHE.clear();
    let mem = Cached::new(SafeLocal::new(&USER_PIPE), &USER_CACHE);
    let walker = Walker::new(&mem, &target.layout, target.types);
    let mut d = TextReport {
        walker: &walker,
        format: &target.format,
        out: &mut out,
        // Threads without the GIL may run Python code meanwhile (the
        // signal may have come to a thread that does not hold it).
        reread: Some(&|| USER_CACHE.clear()),
    };
    // Errors are ignored, as the stdlib ignores them here.
    let _ = d.threads(
        slot.all_threads.load(Ordering::Acquire),
        slot.interp.load(Ordering::Acquire),
        current,
        slot.max_threads.load(Ordering::Acquire),
    );
    drop(out);
    signals::DUMPING.store(false, Ordering::Release);
}
