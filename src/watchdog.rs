//! `dump_traceback_later`: one long-lived watchdog thread waiting on a deadline.
//!
//! The stdlib starts a new thread for every `dump_traceback_later()` and, on
//! cancel, waits for that thread with the GIL held — a dump stuck on a full
//! pipe then freezes the program. Here:
//!
//! * one thread lives on between arms; arming or cancelling only updates the
//!   plan under a mutex and signals a condition variable (microseconds);
//! * the mutex is never held during a dump, so arm, cancel, `disable()` and
//!   interpreter exit never wait for one. A dump that is stuck in write(2)
//!   keeps its own duplicate of the fd and finishes (or stays blocked) on its
//!   own; if a new plan is armed meanwhile, a fresh watchdog thread takes it
//!   and the stuck one exits when its write returns;
//! * the dump itself (header, threads) allocates nothing and reads the
//!   interpreter through the checked reader, because the threads it lists keep
//!   running while it reads them; it walks the thread list holding CPython's
//!   HEAD_LOCK (taken with a time limit), so that no thread state is freed
//!   under it, renders into memory, and writes after releasing the lock;
//! * after `fork()` the child starts disarmed (the watchdog thread did not
//!   survive the fork); `pthread_atfork` keeps the mutex consistent.
//!
//! The mutex and condition variable are raw pthread objects: they must be
//! re-initialised in the child after fork, which `std::sync` cannot do.

#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use std::sync::Once;

use crate::cpython::memory::{BlockCache, Cached, PipeSlot, SafeLocal};
use crate::cpython::walk::Walker;
use crate::dump::Dumper;
use crate::target;
use crate::writer::{FdSink, FlushPolicy, Sink, SliceSink, Writer};

/// What is armed.
struct Plan {
    /// The caller's fd, used as the stdlib uses it: the binding layer keeps
    /// the file object alive while armed. A dump works on its own duplicate.
    fd: i32,
    timeout_us: u64,
    /// CLOCK_MONOTONIC nanoseconds; `u64::MAX` once a one-shot plan fired.
    deadline_ns: u64,
    repeat: bool,
    exit: bool,
    interp: usize,
    max_threads: usize,
    generation: u64,
}

struct State {
    plan: Option<Plan>,
    generation: u64,
    /// Incremented whenever a new watchdog thread is started; a thread whose
    /// epoch is no longer current exits.
    epoch: u64,
    thread_alive: bool,
    /// The current thread is inside a dump (the mutex is not held then).
    dumping: bool,
    /// The deadline the watchdog thread is blocked on (u64::MAX: no deadline;
    /// 0: not blocked). Arming wakes it only for an earlier deadline, and
    /// cancelling never does: a wake-up costs more than the rest of a re-arm.
    sleeping_until: u64,
}

struct Shared {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    cond: UnsafeCell<libc::pthread_cond_t>,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only accessed with `mutex` held (see `Guard`); the pthread
// objects are designed for concurrent use.
unsafe impl Sync for Shared {}

static SHARED: Shared = Shared {
    mutex: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER),
    cond: UnsafeCell::new(libc::PTHREAD_COND_INITIALIZER),
    state: UnsafeCell::new(State {
        plan: None,
        generation: 0,
        epoch: 0,
        thread_alive: false,
        dumping: false,
        sleeping_until: 0,
    }),
};

static INIT: Once = Once::new();

/// Give the condition variable CLOCK_MONOTONIC (wall-clock jumps must not
/// move a deadline) and install the fork handlers. Once per process.
fn init() {
    INIT.call_once(|| {
        // SAFETY: initialising the static condvar before any thread uses it
        // (call_once runs before the first lock in this module); attr is a
        // valid, initialised attribute object.
        unsafe {
            let mut attr: libc::pthread_condattr_t = core::mem::zeroed();
            libc::pthread_condattr_init(&mut attr);
            libc::pthread_condattr_setclock(&mut attr, libc::CLOCK_MONOTONIC);
            libc::pthread_cond_init(SHARED.cond.get(), &attr);
            libc::pthread_condattr_destroy(&mut attr);
            libc::pthread_atfork(
                Some(before_fork),
                Some(after_fork_parent),
                Some(after_fork_child),
            );
        }
    });
}

/// The mutex, held for the guard's lifetime.
struct Guard;

impl Guard {
    fn lock() -> Guard {
        // SAFETY: the mutex is a valid, initialised pthread mutex.
        unsafe { libc::pthread_mutex_lock(SHARED.mutex.get()) };
        Guard
    }

    #[allow(clippy::mut_from_ref)]
    fn state(&self) -> &mut State {
        // SAFETY: the mutex is held while the guard lives, so this is the only
        // access to the state; callers do not keep the reference across waits.
        unsafe { &mut *SHARED.state.get() }
    }

    /// Wait for a signal on the condvar (or until `deadline_ns`, monotonic).
    fn wait(&self, deadline_ns: Option<u64>) {
        match deadline_ns {
            None => {
                // SAFETY: the mutex is held by this thread.
                unsafe { libc::pthread_cond_wait(SHARED.cond.get(), SHARED.mutex.get()) };
            }
            Some(ns) => {
                let ts = libc::timespec {
                    tv_sec: (ns / 1_000_000_000) as libc::time_t,
                    tv_nsec: (ns % 1_000_000_000) as libc::c_long,
                };
                // SAFETY: the mutex is held by this thread; ts is valid.
                unsafe { libc::pthread_cond_timedwait(SHARED.cond.get(), SHARED.mutex.get(), &ts) };
            }
        }
    }

    fn wake_all(&self) {
        // SAFETY: a valid condvar.
        unsafe { libc::pthread_cond_broadcast(SHARED.cond.get()) };
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: this thread holds the mutex (taken in `lock`).
        unsafe { libc::pthread_mutex_unlock(SHARED.mutex.get()) };
    }
}

extern "C" fn before_fork() {
    // SAFETY: keep the state consistent across fork: no thread is halfway
    // through changing it. Released in both after_fork handlers.
    unsafe { libc::pthread_mutex_lock(SHARED.mutex.get()) };
}

extern "C" fn after_fork_parent() {
    // SAFETY: locked by before_fork in this thread.
    unsafe { libc::pthread_mutex_unlock(SHARED.mutex.get()) };
}

extern "C" fn after_fork_child() {
    // SAFETY: the child has a single thread; nobody else can touch the
    // state. The watchdog thread did not survive the fork: the child starts
    // disarmed, with fresh pthread objects.
    unsafe {
        let state = &mut *SHARED.state.get();
        state.plan = None;
        state.thread_alive = false;
        state.dumping = false;
        state.sleeping_until = 0;
        state.generation += 1;
        libc::pthread_mutex_init(SHARED.mutex.get(), core::ptr::null());
        let mut attr: libc::pthread_condattr_t = core::mem::zeroed();
        libc::pthread_condattr_init(&mut attr);
        libc::pthread_condattr_setclock(&mut attr, libc::CLOCK_MONOTONIC);
        libc::pthread_cond_init(SHARED.cond.get(), &attr);
        libc::pthread_condattr_destroy(&mut attr);
    }
}

/// CLOCK_MONOTONIC in nanoseconds. Async-signal-safe.
fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Arm (or re-arm) the watchdog. The caller keeps `fd` open while armed.
/// Never waits for a dump in progress.
pub fn arm(
    fd: i32,
    timeout_us: u64,
    repeat: bool,
    exit: bool,
    max_threads: usize,
    interp: usize,
) -> std::io::Result<()> {
    init();
    let guard = Guard::lock();
    let state = guard.state();
    state.generation += 1;
    let deadline_ns = now_ns().saturating_add(timeout_us.saturating_mul(1000));
    state.plan = Some(Plan {
        fd,
        timeout_us,
        deadline_ns,
        repeat,
        exit,
        interp,
        max_threads,
        generation: state.generation,
    });
    if !state.thread_alive || state.dumping {
        // No thread, or the thread is (maybe) stuck in a dump: start a new one;
        // an old one exits when its dump returns and it sees the new epoch.
        state.epoch += 1;
        let epoch = state.epoch;
        let spawned = std::thread::Builder::new()
            .name("lastwords-watchdog".into())
            .stack_size(256 * 1024)
            .spawn(move || watchdog_main(epoch));
        match spawned {
            Ok(_) => {
                state.thread_alive = true;
                state.dumping = false;
            }
            Err(e) => {
                state.plan = None;
                return Err(e);
            }
        }
    } else if deadline_ns < state.sleeping_until {
        guard.wake_all();
    }
    Ok(())
}

/// Disarm. Idempotent; returns at once even if a dump is being written.
pub fn cancel() {
    init();
    let guard = Guard::lock();
    let state = guard.state();
    if state.plan.take().is_some() {
        state.generation += 1;
    }
    // No wake-up: the watchdog finds no plan at its deadline and sleeps on.
}

/// A dump that is due, taken out of the plan under the lock.
struct Job {
    /// The dump's own duplicate of the fd, so that a cancel during the dump
    /// can close the plan's copy at once.
    fd: i32,
    timeout_us: u64,
    interp: usize,
    max_threads: usize,
    exit: bool,
    generation: u64,
}

/// The body of the watchdog thread: wait for the deadline, dump without the
/// lock, settle the plan, again.
fn watchdog_main(epoch: u64) {
    block_all_signals();
    // Wake at the deadline, not up to 50 µs later (the default timer slack).
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's timer slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    // Allocated here, once per thread, never on the fire path.
    let mut buffer = vec![0u8; DUMP_BUFFER_BYTES];
    // Made on the heap directly: 256 KiB would not fit this thread's stack.
    // SAFETY: all-zero bytes are a valid BlockCache (empty tags, zeroed
    // blocks, counter 0), which is what BlockCache::new() builds.
    let cache: Box<BlockCache> = unsafe { Box::<BlockCache>::new_zeroed().assume_init() };
    // This thread's pipe, for the pipe read method.
    let pipe = PipeSlot::new();
    loop {
        let Some(job) = wait_for_job(&Guard::lock(), epoch) else {
            return;
        };
        let ok = job.fd >= 0 && dump_timeout(&job, &mut buffer, &cache, &pipe);
        if job.fd >= 0 {
            // SAFETY: our own duplicate, used only by this dump.
            unsafe { libc::close(job.fd) };
        }
        if !settle(&Guard::lock(), epoch, &job, ok) {
            return;
        }
    }
}

/// Sleep until the plan is due; None when this thread has been replaced.
fn wait_for_job(guard: &Guard, epoch: u64) -> Option<Job> {
    loop {
        let state = guard.state();
        if state.epoch != epoch {
            return None;
        }
        let Some(plan) = state.plan.as_mut() else {
            state.sleeping_until = u64::MAX;
            guard.wait(None);
            guard.state().sleeping_until = 0;
            continue;
        };
        if now_ns() < plan.deadline_ns {
            let deadline = plan.deadline_ns;
            state.sleeping_until = deadline;
            guard.wait((deadline != u64::MAX).then_some(deadline));
            guard.state().sleeping_until = 0;
            continue;
        }
        // SAFETY: dup of the plan's fd, which is open while the plan exists.
        let fd = unsafe { libc::fcntl(plan.fd, libc::F_DUPFD_CLOEXEC, 0) };
        plan.deadline_ns = u64::MAX;
        let job = Job {
            fd,
            timeout_us: plan.timeout_us,
            interp: plan.interp,
            max_threads: plan.max_threads,
            exit: plan.exit,
            generation: plan.generation,
        };
        state.dumping = true;
        return Some(job);
    }
}

/// After a dump: exit the process if asked, schedule the next repeat.
/// Returns false when this thread has been replaced meanwhile.
fn settle(guard: &Guard, epoch: u64, job: &Job, ok: bool) -> bool {
    let state = guard.state();
    if state.epoch != epoch {
        // Replaced while dumping: the new thread owns the state now.
        return false;
    }
    state.dumping = false;
    if let Some(plan) = state
        .plan
        .as_mut()
        .filter(|p| p.generation == job.generation)
    {
        if job.exit {
            // SAFETY: _exit ends the process without running atexit handlers
            // or flushing stdio, as the stdlib's watchdog does.
            unsafe { libc::_exit(1) };
        }
        if ok && plan.repeat {
            plan.deadline_ns = now_ns().saturating_add(plan.timeout_us.saturating_mul(1000));
        }
    }
    true
}

/// The watchdog must not receive signals meant for the program.
fn block_all_signals() {
    // SAFETY: a full set applied to the calling thread only.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
    }
}

/// Room for one rendered dump: 100 threads × 100 frames of ordinary lines.
const DUMP_BUFFER_BYTES: usize = 1 << 20;
/// How long the watchdog waits for HEAD_LOCK before walking without it.
const HEAD_LOCK_WAIT_US: u64 = 100_000;
/// Printed when a dump did not fit the buffer.
const TRUNCATED: &[u8] = b"<dump truncated: more than 1 MiB>\n";

/// `Timeout (H:MM:SS[.uuuuuu])!` and every thread, like the stdlib's watchdog.
/// Returns false when there was nothing to dump (the stdlib then stops
/// repeating).
///
/// The threads keep running while they are read. The walk holds HEAD_LOCK, so
/// no thread state is freed under it, and renders into `buffer`; the lock is
/// released before the bytes are written, so a slow or full fd never holds up
/// thread creation. No allocation; the only lock is HEAD_LOCK, taken with a
/// time limit (without it, the walk relies on checked reads and validation).
fn dump_timeout(job: &Job, buffer: &mut [u8], cache: &BlockCache, pipe: &PipeSlot) -> bool {
    let Some(target) = target::get() else {
        return false;
    };
    cache.clear();
    let mem = Cached {
        inner: SafeLocal::new(pipe),
        cache,
    };
    let walker = Walker::new(&mem, &target.layout, target.types);
    let head_lock = target
        .head_lock
        .and_then(|l| l.lock_within(HEAD_LOCK_WAIT_US));
    let mut out = Writer::new(
        SliceSink {
            buf: buffer,
            len: 0,
            overflowed: false,
        },
        FlushPolicy::WhenFull,
    );
    write_timeout_header(&mut out, job.timeout_us);
    // The watchdog thread has no thread state: no thread is "current".
    let ok = Dumper {
        walker: &walker,
        format: &target.format,
        out: &mut out,
    }
    .all_threads(job.interp, 0, job.max_threads)
    .is_ok();
    let rendered = out.into_sink();
    drop(head_lock);
    let mut fd_out = FdSink(job.fd);
    fd_out.write_all(rendered.buf.get(..rendered.len).unwrap_or(&[]));
    if rendered.overflowed {
        fd_out.write_all(TRUNCATED);
    }
    ok
}

/// The header line, formatted as `format_timeout()` in faulthandler.c.
/// Async-signal-safe.
pub fn write_timeout_header<S: Sink>(out: &mut Writer<S>, timeout_us: u64) {
    let us = timeout_us % 1_000_000;
    let sec = timeout_us / 1_000_000;
    let (hour, min, sec) = (sec / 3600, (sec / 60) % 60, sec % 60);
    out.str("Timeout (");
    out.decimal(hour);
    out.byte(b':');
    out.decimal_padded(min, 2);
    out.byte(b':');
    out.decimal_padded(sec, 2);
    if us != 0 {
        out.byte(b'.');
        out.decimal_padded(us, 6);
    }
    out.str(")!");
    out.end_line();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::VecSink;

    fn header(us: u64) -> String {
        let mut w = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
        write_timeout_header(&mut w, us);
        String::from_utf8(w.into_sink().bytes).unwrap()
    }

    #[test]
    fn header_matches_format_timeout() {
        assert_eq!(header(5_000_000), "Timeout (0:00:05)!\n");
        assert_eq!(header(500_000), "Timeout (0:00:00.500000)!\n");
        assert_eq!(header(1), "Timeout (0:00:00.000001)!\n");
        assert_eq!(header(3_661_000_001), "Timeout (1:01:01.000001)!\n");
        assert_eq!(header(100 * 3_600_000_000), "Timeout (100:00:00)!\n");
    }
}
