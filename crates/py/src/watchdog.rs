//! `dump_traceback_later`: a watchdog thread kept across re-arms, waiting on a deadline.
//!
//! The stdlib starts a new thread for every `dump_traceback_later()` and, on
//! cancel, waits for that thread with the GIL held — a dump stuck on a full
//! pipe then freezes the program. Here:
//!
//! * one thread serves arm after arm, blocked in `read()` on a timerfd.
//!   Arming updates the plan under a mutex and reprograms the timer only when
//!   the new deadline is earlier than the one the timer holds; cancelling only
//!   clears the plan and, if the timer is set later than that, brings it
//!   forward to the end of the grace period below. No re-arm wakes the
//!   thread, and most make no system call;
//! * like the stdlib's, the watchdog does not outlive what is armed: once
//!   nothing is (cancelled, or a one-shot timeout fired), the thread closes
//!   its timerfd and exits after a grace period (`GRACE_NS`) that only
//!   back-to-back re-arms fall into. Before `fork()` and at interpreter exit
//!   an idle watchdog is stopped and joined at once, so that the fork sees a
//!   process with no thread of ours (3.12+ warns about forking one that has
//!   threads, an error under `-W error`);
//! * the timer goes off a little before the deadline (an adaptive lead:
//!   about twice the thread's recent wake-up latency, plus the time a dump
//!   takes to render) and the thread spends the rest rehearsing the dump (a
//!   walk whose output is thrown away) and spinning on the clock. A sleeping
//!   thread wakes 0.1 ms late or more on a busy or virtual machine, a
//!   spinning one within a microsecond; and the real dump, which starts by
//!   reading again in one system call the memory blocks the rehearsal read,
//!   takes a third of the time of a cold one. This costs at most the lead in
//!   CPU time per timeout, and the lead is at most a tenth of the timeout (no
//!   rehearsal for a dump that renders in more than 1 ms);
//!   `LASTWORDS_WATCHDOG_SPIN=0` turns it off;
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
//!   survive the fork) with its own timerfd; `pthread_atfork` keeps the mutex
//!   consistent.
//!
//! The mutex is a raw pthread mutex: it must be re-initialised in the child
//! after fork, which `std::sync` cannot do.

#![allow(unsafe_code)]
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

use crate::cpython::walk::Walker;
use crate::headlock::HeadLockGuard;
use crate::memory::{BlockCache, Cached, PipeSlot, SafeLocal};
use crate::report::text::TextReport;
use crate::target;
use crate::writer::{FdSink, FlushPolicy, Sink, Writer};

/// How long an idle watchdog (nothing armed) waits for a re-arm before it
/// exits: longer than the gaps of back-to-back re-arms (pytest's per-test
/// timeouts, the benchmark's), short enough that nothing stays for long.
const GRACE_NS: u64 = 100_000_000;

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
    /// The timerfd the watchdog thread blocks on (-1: not created yet, or
    /// closed in a forked child, which must not share its parent's).
    timer_fd: i32,
    /// When the timer goes off (CLOCK_MONOTONIC ns; `u64::MAX`: not armed, or
    /// already gone off). Arming reprograms the timer only for an earlier time.
    timer_at: u64,
    /// Whether the watchdog wakes early and spins (`LASTWORDS_WATCHDOG_SPIN`).
    spin: bool,
    /// Since when nothing is armed (CLOCK_MONOTONIC ns), while nothing is.
    idle_since: u64,
    /// The watchdog is asked to exit now (before a fork, at exit).
    stop: bool,
    /// The current (or last) watchdog thread, to join it before a fork, and
    /// its kernel thread id (0 until it has started).
    handle: Option<std::thread::JoinHandle<()>>,
    tid: libc::pid_t,
    /// Smoothed lateness of the thread's wake-ups from the timer.
    wake_late_ns: u64,
    /// How long the watchdog's last render took (`u64::MAX`: none yet).
    render_ns: u64,
}

struct Shared {
    mutex: UnsafeCell<libc::pthread_mutex_t>,
    /// Signalled when the watchdog retires, ends a dump, or a stop request
    /// is withdrawn.
    retired: UnsafeCell<libc::pthread_cond_t>,
    state: UnsafeCell<State>,
}

// SAFETY: `state` is only accessed with `mutex` held (see `Guard`); the pthread
// mutex and condition variable are designed for concurrent use.
unsafe impl Sync for Shared {}

static SHARED: Shared = Shared {
    mutex: UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER),
    retired: UnsafeCell::new(libc::PTHREAD_COND_INITIALIZER),
    state: UnsafeCell::new(State {
        plan: None,
        generation: 0,
        epoch: 0,
        thread_alive: false,
        dumping: false,
        timer_fd: -1,
        timer_at: u64::MAX,
        spin: false,
        idle_since: 0,
        stop: false,
        handle: None,
        tid: 0,
        wake_late_ns: INITIAL_WAKE_LATE_NS,
        render_ns: u64::MAX,
    }),
};

/// Bumped (under the mutex) by every arm and cancel, so that a watchdog
/// spinning towards a deadline without the mutex notices a new plan.
static PLAN_CHANGES: AtomicU64 = AtomicU64::new(0);

/// When the last timeout dump was due, began and was written (CLOCK_MONOTONIC
/// ns), for the benchmark's breakdown of lateness (`_last_timeout_timing`).
static LAST_FIRE: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// (due, began, written) of the last timeout dump, if any fired.
pub fn last_fire_timing() -> Option<(u64, u64, u64)> {
    let [due, began, written] = &LAST_FIRE;
    let due = due.load(Ordering::Acquire);
    (due != 0).then(|| {
        (
            due,
            began.load(Ordering::Acquire),
            written.load(Ordering::Acquire),
        )
    })
}

/// The wake-up lateness assumed before any has been measured.
const INITIAL_WAKE_LATE_NS: u64 = 100_000;
/// Bounds of the spin margin (the lead without the rehearsal): at least a
/// typical wake-up on a virtual machine, at most the CPU time one timeout
/// may spin away.
const MIN_SPIN_MARGIN_NS: u64 = 100_000;
const MAX_SPIN_MARGIN_NS: u64 = 2_000_000;
/// No rehearsal for a dump that takes longer than this to render: it would
/// cost that much CPU again, for a gain of some tens of microseconds.
const MAX_REHEARSAL_NS: u64 = 1_000_000;

static INIT: Once = Once::new();

/// Read the spin switch and install the fork handlers. Once per process.
fn init() {
    INIT.call_once(|| {
        let spin = std::env::var_os("LASTWORDS_WATCHDOG_SPIN").is_none_or(|v| v != "0");
        let guard = Guard::lock();
        let state = guard.state();
        state.spin = spin;
        drop(guard);
        // SAFETY: registers three extern "C" functions that only lock, unlock
        // or reset this module's own state.
        unsafe {
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

    /// Wait for `retired` (the mutex is released meanwhile). References
    /// from `state()` must not be held across the wait.
    fn wait(&self) {
        // SAFETY: this thread holds the mutex (the guard); the condition
        // variable is valid.
        unsafe { libc::pthread_cond_wait(SHARED.retired.get(), SHARED.mutex.get()) };
    }

    /// `wait`, until CLOCK_REALTIME `until_ns` at the latest; false once
    /// that time has passed.
    fn wait_until(&self, until_ns: u64) -> bool {
        let deadline = libc::timespec {
            tv_sec: (until_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (until_ns % 1_000_000_000) as libc::c_long,
        };
        // SAFETY: as in `wait`; `deadline` is a valid timespec.
        let rc = unsafe {
            libc::pthread_cond_timedwait(SHARED.retired.get(), SHARED.mutex.get(), &deadline)
        };
        rc != libc::ETIMEDOUT
    }

    /// Wake the threads waiting in `wait`.
    fn notify(&self) {
        // SAFETY: a valid condition variable.
        unsafe { libc::pthread_cond_broadcast(SHARED.retired.get()) };
    }

    #[allow(clippy::mut_from_ref)]
    fn state(&self) -> &mut State {
        // SAFETY: the mutex is held while the guard lives, so this is the only
        // access to the state; callers do not keep the reference across an
        // unlock.
        unsafe { &mut *SHARED.state.get() }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // SAFETY: this thread holds the mutex (taken in `lock`).
        unsafe { libc::pthread_mutex_unlock(SHARED.mutex.get()) };
    }
}

extern "C" fn before_fork() {
    // An idle watchdog goes before the fork, as the stdlib's would have gone
    // at cancel: the parent then forks with no thread of ours.
    stop_idle_watchdog();
    // SAFETY: keep the state consistent across fork: no thread is halfway
    // through changing it. Released in both after_fork handlers.
    unsafe { libc::pthread_mutex_lock(SHARED.mutex.get()) };
}

/// Make an idle watchdog thread (nothing armed) exit now and wait until it
/// has; also wait for one that is already exiting. A dump in progress is
/// given `DUMP_WAIT_NS` to finish; a thread still inside one after that is
/// left alone (its write may block for ever), and so is a thread that
/// another thread arms meanwhile.
fn stop_idle_watchdog() {
    let guard = Guard::lock();
    let give_up = realtime_ns().saturating_add(DUMP_WAIT_NS);
    loop {
        let state = guard.state();
        if !state.thread_alive {
            break;
        }
        if state
            .plan
            .as_ref()
            .is_some_and(|p| p.deadline_ns != u64::MAX)
        {
            // Armed (perhaps again, which withdrew a stop request): it stays.
            return;
        }
        if state.dumping {
            if !guard.wait_until(give_up) {
                return;
            }
            continue;
        }
        if !state.stop {
            state.stop = true;
            // Wake it now (an absolute time in the past goes off at once).
            let _ = set_timer(state, 1);
        }
        guard.wait();
    }
    // The thread has retired (or is about to return): join it.
    let state = guard.state();
    let (handle, tid) = (state.handle.take(), core::mem::take(&mut state.tid));
    drop(guard);
    if let Some(handle) = handle {
        let _ = handle.join();
        // At most 100 ms: the kernel's thread count is what `os.fork()`
        // reads for its warning.
        crate::procfs::wait_until_thread_gone(tid, 10_000);
    }
}

/// How long `stop_idle_watchdog` waits for a dump in progress.
const DUMP_WAIT_NS: u64 = 100_000_000;

/// CLOCK_REALTIME in nanoseconds (the clock of `pthread_cond_timedwait`).
fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// At interpreter exit: cancel, and let no watchdog thread outlive the
/// interpreter (unless it is stuck in a dump's write).
pub fn shutdown() {
    cancel();
    stop_idle_watchdog();
}

extern "C" fn after_fork_parent() {
    // SAFETY: locked by before_fork in this thread.
    unsafe { libc::pthread_mutex_unlock(SHARED.mutex.get()) };
}

extern "C" fn after_fork_child() {
    // SAFETY: the child has a single thread; nobody else can touch the
    // state. The watchdog thread did not survive the fork: the child starts
    // disarmed, with a fresh mutex, and makes its own timer when it arms (the
    // inherited timerfd is the parent's timer: closing our copy leaves the
    // parent's alone).
    unsafe {
        let state = &mut *SHARED.state.get();
        state.plan = None;
        state.thread_alive = false;
        state.dumping = false;
        state.stop = false;
        // The thread does not exist here: neither join nor detach it.
        core::mem::forget(state.handle.take());
        state.tid = 0;
        state.generation = state.generation.wrapping_add(1);
        if state.timer_fd >= 0 {
            libc::close(state.timer_fd);
        }
        state.timer_fd = -1;
        state.timer_at = u64::MAX;
        libc::pthread_mutex_init(SHARED.mutex.get(), core::ptr::null());
        libc::pthread_cond_init(SHARED.retired.get(), core::ptr::null());
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

/// Make the timer go off at `at_ns` (CLOCK_MONOTONIC; `u64::MAX` disarms it)
/// and record it. Called with the mutex held.
fn set_timer(state: &mut State, at_ns: u64) -> std::io::Result<()> {
    // An absolute time of zero would disarm the timer: one nanosecond is as
    // good as "now" for a deadline already passed.
    let (sec, nsec) = match at_ns {
        u64::MAX => (0, 0),
        ns => (ns.max(1) / 1_000_000_000, ns.max(1) % 1_000_000_000),
    };
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: sec as libc::time_t,
            tv_nsec: nsec as libc::c_long,
        },
    };
    // SAFETY: a timerfd this module created; spec is a valid itimerspec.
    let rc = unsafe {
        libc::timerfd_settime(
            state.timer_fd,
            libc::TFD_TIMER_ABSTIME,
            &spec,
            core::ptr::null_mut(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    state.timer_at = at_ns;
    Ok(())
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
    if state.timer_fd < 0 {
        // SAFETY: plain system call; the fd is owned by this module.
        let timer_fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
        if timer_fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        state.timer_fd = timer_fd;
        state.timer_at = u64::MAX;
    }
    state.generation = state.generation.wrapping_add(1);
    if state.stop {
        // A stop request for an idle watchdog is void now: it serves this plan.
        state.stop = false;
        guard.notify();
    }
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
    PLAN_CHANGES.fetch_add(1, Ordering::Release);
    if !state.thread_alive || state.dumping {
        // No thread, or the thread is (maybe) stuck in a dump: start a new one
        // (it programs the timer itself); an old one exits when its dump
        // returns and it sees the new epoch.
        state.epoch = state.epoch.wrapping_add(1);
        let epoch = state.epoch;
        let spawned = std::thread::Builder::new()
            .name("lastwords-watchdog".into())
            .stack_size(256 * 1024)
            .spawn(move || watchdog_main(epoch));
        match spawned {
            Ok(handle) => {
                state.thread_alive = true;
                state.dumping = false;
                state.stop = false;
                // A replaced thread (exited, or stuck in a dump) is detached.
                state.handle = Some(handle);
                state.tid = 0;
            }
            Err(e) => {
                state.plan = None;
                return Err(e);
            }
        }
    } else {
        let wake_at = deadline_ns.saturating_sub(lead_for(state, timeout_us));
        if wake_at < state.timer_at
            && let Err(e) = set_timer(state, wake_at)
        {
            state.plan = None;
            return Err(e);
        }
    }
    Ok(())
}

/// Disarm. Idempotent; returns at once even if a dump is being written.
pub fn cancel() {
    init();
    let guard = Guard::lock();
    let state = guard.state();
    let Some(plan) = state.plan.take() else {
        return;
    };
    state.generation = state.generation.wrapping_add(1);
    PLAN_CHANGES.fetch_add(1, Ordering::Release);
    if plan.deadline_ns == u64::MAX && !state.dumping {
        // A one-shot plan that fired: idle since then already.
        return;
    }
    state.idle_since = now_ns();
    // The watchdog exits at the end of the grace period: make the timer go
    // off by then. After the first cancel of a run of re-arms the timer is
    // already that early, and neither arm nor cancel makes a system call.
    let end_of_grace = state.idle_since.saturating_add(GRACE_NS);
    if state.thread_alive && !state.dumping && state.timer_at > end_of_grace {
        let _ = set_timer(state, end_of_grace);
    }
}

/// What a timeout dump prints, copied from the plan.
#[derive(Clone, Copy)]
struct DumpSpec {
    timeout_us: u64,
    interp: usize,
    max_threads: usize,
}

/// A dump that is due, taken out of the plan under the lock.
struct Job {
    /// The dump's own duplicate of the fd, so that a cancel during the dump
    /// can close the plan's copy at once.
    fd: i32,
    spec: DumpSpec,
    exit: bool,
    generation: u64,
}

/// The body of the watchdog thread: wait for the deadline, dump without the
/// lock, settle the plan, again.
fn watchdog_main(epoch: u64) {
    block_all_signals();
    let mut scratch = Scratch::new();
    {
        let guard = Guard::lock();
        let state = guard.state();
        // What the last watchdog learnt about its renders.
        scratch.render_ns = state.render_ns;
        if state.epoch == epoch {
            state.tid = crate::procfs::gettid();
        }
    }
    loop {
        let Some(job) = wait_for_job(epoch, &mut scratch) else {
            return;
        };
        let ok = job.fd >= 0 && {
            let rendered = scratch.render(&job.spec, HEAD_LOCK_WAIT_US, Some(job.fd));
            scratch.write(job.fd, &rendered);
            rendered.ok
        };
        LAST_FIRE[2].store(now_ns(), Ordering::Release);
        if job.fd >= 0 {
            // SAFETY: our own duplicate, used only by this dump.
            unsafe { libc::close(job.fd) };
        }
        if !settle(&Guard::lock(), epoch, &job, ok) {
            return;
        }
    }
}

/// How the watchdog waits for the next deadline.
enum Wait {
    /// Block in read() on the timer, which goes off early (`lead_for`).
    Sleep { timer_fd: i32 },
    /// Close enough: rehearse the dump if there is time, then spin on the
    /// clock until the deadline or a plan change.
    Spin {
        deadline: u64,
        changes: u64,
        rehearse: Option<DumpSpec>,
    },
}

/// Wait until the plan is due; None when this thread has been replaced.
fn wait_for_job(epoch: u64, scratch: &mut Scratch) -> Option<Job> {
    loop {
        let guard = Guard::lock();
        let state = guard.state();
        if state.epoch != epoch {
            return None;
        }
        // Renders happen without the lock: bring their duration in.
        state.render_ns = scratch.render_ns;
        let deadline = state.plan.as_ref().map_or(u64::MAX, |p| p.deadline_ns);
        let now = now_ns();
        if now >= deadline {
            LAST_FIRE[0].store(deadline, Ordering::Release);
            LAST_FIRE[1].store(now, Ordering::Release);
            if let Some(job) = take_job(state) {
                return Some(job);
            }
        }
        let wake_at = match (deadline, state.plan.as_ref()) {
            (u64::MAX, _) | (_, None) => {
                // Nothing armed: exit once the grace period is over.
                let end_of_grace = state.idle_since.saturating_add(GRACE_NS);
                if state.stop || now >= end_of_grace {
                    retire(&guard, state);
                    return None;
                }
                end_of_grace
            }
            (due, Some(plan)) => due.saturating_sub(lead_for(state, plan.timeout_us)),
        };
        let wait = match state.plan.as_ref() {
            Some(plan) if now >= wake_at => Wait::Spin {
                deadline,
                changes: PLAN_CHANGES.load(Ordering::Acquire),
                // Once per dump, and only when the last render says it ends
                // before the deadline. (With no lead, the plan is due here.)
                rehearse: (!scratch.rehearsed
                    && scratch.render_ns <= MAX_REHEARSAL_NS
                    && now.saturating_add(scratch.render_ns) < deadline)
                    .then_some(plan.spec()),
            },
            _ => {
                // Not about to fire: a rehearsal done so far is stale.
                scratch.rehearsed = false;
                if state.timer_at != wake_at && set_timer(state, wake_at).is_err() {
                    // Cannot happen with a valid timerfd and time; if it did,
                    // waiting on the timer could mean waiting forever.
                    retire(&guard, state);
                    return None;
                }
                Wait::Sleep {
                    timer_fd: state.timer_fd,
                }
            }
        };
        drop(guard);
        match wait {
            Wait::Sleep { timer_fd } => {
                let mut expirations = 0u64;
                // SAFETY: reads 8 bytes into a u64; the timerfd lives as long
                // as the process (closed only in a forked child, where this
                // thread does not exist). All signals are blocked here.
                unsafe { libc::read(timer_fd, (&raw mut expirations).cast(), 8) };
                let woke = now_ns();
                let guard = Guard::lock();
                let state = guard.state();
                // (A stop request's wake-up is no measure of lateness.)
                if woke >= state.timer_at && !state.stop {
                    // Gone off (perhaps earlier than planned, reprogrammed by
                    // an arm): not armed any more.
                    learn_wake_latency(state, woke.saturating_sub(state.timer_at));
                    state.timer_at = u64::MAX;
                }
            }
            Wait::Spin {
                deadline,
                changes,
                rehearse,
            } => {
                if let Some(spec) = rehearse {
                    // A walk whose output is thrown away: it brings the
                    // interpreter's memory, the lock and the read path into
                    // the caches, and leaves the list of pages the real dump
                    // re-reads in one call (60 -> 35 us measured for a small
                    // dump). HEAD_LOCK is only tried.
                    scratch.render(&spec, 0, None);
                    scratch.rehearsed = true;
                }
                while now_ns() < deadline && PLAN_CHANGES.load(Ordering::Acquire) == changes {
                    core::hint::spin_loop();
                }
            }
        }
    }
}

/// The watchdog thread exits: it closes its timer (a later arm makes a new
/// thread and timer). Called with the mutex held, by the current thread;
/// `stop_idle_watchdog` is told.
fn retire(guard: &Guard, state: &mut State) {
    guard.notify();
    if state.timer_fd >= 0 {
        // SAFETY: the timerfd this module created; only the current watchdog
        // thread reads it, and that is the caller.
        unsafe { libc::close(state.timer_fd) };
    }
    state.timer_fd = -1;
    state.timer_at = u64::MAX;
    state.thread_alive = false;
    state.stop = false;
}

/// Fold one wake-up's lateness into the smoothed figure.
fn learn_wake_latency(state: &mut State, late_ns: u64) {
    // A wake-up seconds late (a suspended machine) says nothing about the
    // next one.
    let late_ns = late_ns.min(MAX_SPIN_MARGIN_NS);
    // Both are at most MAX_SPIN_MARGIN_NS: no overflow.
    state.wake_late_ns = state.wake_late_ns.saturating_mul(7).saturating_add(late_ns) / 8;
}

/// How long before the deadline of a `timeout_us` timeout the timer goes
/// off: the spin margin (about twice the wake-up lateness) plus the time a
/// rehearsal takes, never more than a tenth of the timeout (a short repeating
/// timeout must not keep a CPU spinning). Zero with
/// `LASTWORDS_WATCHDOG_SPIN=0`.
fn lead_for(state: &State, timeout_us: u64) -> u64 {
    if !state.spin {
        return 0;
    }
    let margin = state
        .wake_late_ns
        .saturating_mul(2)
        .saturating_add(20_000)
        .clamp(MIN_SPIN_MARGIN_NS, MAX_SPIN_MARGIN_NS);
    let rehearsal = if state.render_ns <= MAX_REHEARSAL_NS {
        state.render_ns
    } else {
        0
    };
    margin
        .saturating_add(rehearsal)
        .min(timeout_us.saturating_mul(100))
}

impl Plan {
    fn spec(&self) -> DumpSpec {
        DumpSpec {
            timeout_us: self.timeout_us,
            interp: self.interp,
            max_threads: self.max_threads,
        }
    }
}

/// Turn the due plan into a job: duplicate its fd, mark it fired.
fn take_job(state: &mut State) -> Option<Job> {
    let plan = state.plan.as_mut()?;
    // SAFETY: dup of the plan's fd, which is open while the plan exists.
    let fd = unsafe { libc::fcntl(plan.fd, libc::F_DUPFD_CLOEXEC, 0) };
    plan.deadline_ns = u64::MAX;
    let job = Job {
        fd,
        spec: plan.spec(),
        exit: plan.exit,
        generation: plan.generation,
    };
    state.dumping = true;
    Some(job)
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
    guard.notify();
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
        } else {
            // A one-shot timeout that fired (or a repeat whose dump failed,
            // which the stdlib stops too): nothing is armed any more.
            state.idle_since = now_ns();
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
/// A longer dump is written as it is rendered (see [`SpillSink`]).
const DUMP_BUFFER_BYTES: usize = 1 << 20;
/// How long the watchdog waits for HEAD_LOCK before walking without it.
const HEAD_LOCK_WAIT_US: u64 = 100_000;

/// Where a timeout dump is rendered: memory, while HEAD_LOCK is held (a
/// slow or full fd must never hold up thread creation). When the buffer is
/// full the lock is released, what is buffered is written to `fd` and the
/// rest goes straight there: the walk goes on without the lock, on checked
/// reads and validation as in a signal handler, and nothing is cut. A
/// rehearsal (no fd) just drops what does not fit. Async-signal-safe.
struct SpillSink<'b> {
    buf: &'b mut [u8],
    len: usize,
    fd: Option<i32>,
    lock: Option<HeadLockGuard>,
    spilled: bool,
}

impl Sink for SpillSink<'_> {
    /// Async-signal-safe.
    fn write_all(&mut self, bytes: &[u8]) {
        if !self.spilled {
            let end = self.len.saturating_add(bytes.len());
            if let Some(dst) = self.buf.get_mut(self.len..end) {
                dst.copy_from_slice(bytes);
                self.len = end;
                return;
            }
            let Some(fd) = self.fd else {
                return;
            };
            drop(self.lock.take());
            FdSink(fd).write_all(self.buf.get(..self.len).unwrap_or(&[]));
            self.len = 0;
            self.spilled = true;
        }
        if let Some(fd) = self.fd {
            FdSink(fd).write_all(bytes);
        }
    }
}

/// What the watchdog thread owns for its dumps, allocated once per thread
/// (never on the fire path): the render buffer, the read cache, the pipe of
/// the pipe read method, and how long the last render took.
struct Scratch {
    buffer: Vec<u8>,
    cache: Box<BlockCache>,
    pipe: PipeSlot,
    /// Duration of the last render (ns); `u64::MAX` before the first.
    render_ns: u64,
    /// The last render was a rehearsal: its blocks are worth reading again.
    rehearsed: bool,
}

/// The outcome of [`Scratch::render`]: `len` bytes of the buffer are left
/// to write.
struct Rendered {
    len: usize,
    /// False when there was nothing to dump (the stdlib then stops repeating).
    ok: bool,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            buffer: vec![0u8; DUMP_BUFFER_BYTES],
            // Made on the heap directly: 256 KiB would not fit the stack.
            // SAFETY: all-zero bytes are a valid BlockCache (empty tags,
            // zeroed blocks, counter 0), which is what BlockCache::new() builds.
            cache: unsafe { Box::<BlockCache>::new_zeroed().assume_init() },
            pipe: PipeSlot::new(),
            render_ns: u64::MAX,
            rehearsed: false,
        }
    }

    /// `Timeout (H:MM:SS[.uuuuuu])!` and every thread, like the stdlib's
    /// watchdog, rendered into the buffer (and, past its size, written to
    /// `fd` as it comes: see [`SpillSink`]; `fd` None: a rehearsal).
    ///
    /// The threads keep running while they are read. The walk holds
    /// HEAD_LOCK (waiting for it at most `head_lock_wait_us`), so no thread
    /// state is freed under it; without it, the walk relies on checked reads
    /// and validation. No allocation.
    fn render(&mut self, spec: &DumpSpec, head_lock_wait_us: u64, fd: Option<i32>) -> Rendered {
        let started = now_ns();
        let Some(target) = target::get() else {
            return Rendered { len: 0, ok: false };
        };
        let mem = Cached::new(SafeLocal::new(&self.pipe), &self.cache);
        let walker = Walker::new(&mem, &target.layout, target.types);
        let head_lock = target
            .head_lock
            .and_then(|l| l.lock_within(head_lock_wait_us));
        // Nothing read before this point: every block is read after the lock.
        if core::mem::take(&mut self.rehearsed) {
            // The blocks of the rehearsal are those this dump needs.
            mem.refresh();
        } else {
            self.cache.clear();
        }
        let mut out = Writer::new(
            SpillSink {
                buf: &mut self.buffer,
                len: 0,
                fd,
                lock: head_lock,
                spilled: false,
            },
            FlushPolicy::WhenFull,
        );
        write_timeout_header(&mut out, spec.timeout_us);
        // The watchdog thread has no thread state: no thread is "current".
        let cache = &*self.cache;
        let ok = TextReport {
            walker: &walker,
            format: &target.format,
            out: &mut out,
            // The threads run while they are read.
            reread: Some(&|| cache.clear()),
        }
        .threads(true, spec.interp, 0, spec.max_threads)
        .is_ok();
        let sink = out.into_sink();
        drop(sink.lock);
        let rendered = Rendered { len: sink.len, ok };
        self.render_ns = now_ns().saturating_sub(started);
        rendered
    }

    /// Write what `render` left in the buffer, after the lock is released,
    /// so that a slow or full fd never holds up thread creation.
    fn write(&self, fd: i32, rendered: &Rendered) {
        FdSink(fd).write_all(self.buffer.get(..rendered.len).unwrap_or(&[]));
    }
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
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
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
