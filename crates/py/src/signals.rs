//! What the fatal and user-signal handlers share: saved `sigaction`s, the
//! alternate signal stack, and the guard that keeps two dumps from running
//! at once in one process.

#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Set while a user-signal dump runs: a signal arriving during one (on
/// another thread) does not start a second one (the stdlib's `reentrant` flag).
pub static DUMPING: AtomicBool = AtomicBool::new(false);

/// The signature of an `SA_SIGINFO` handler.
pub type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// A `sigaction` saved by `install` and put back by `restore`.
pub struct SavedAction(UnsafeCell<MaybeUninit<libc::sigaction>>);

// SAFETY: a slot is written only by `install`, from code serialised by the
// binding layer's lock, before the handler that reads it is published (an
// atomic flag with Release/Acquire ordering in the caller).
unsafe impl Sync for SavedAction {}

impl SavedAction {
    pub const fn new() -> Self {
        SavedAction(UnsafeCell::new(MaybeUninit::zeroed()))
    }
}

impl Default for SavedAction {
    fn default() -> Self {
        Self::new()
    }
}

/// An empty signal set. Async-signal-safe.
pub fn empty_set() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is a valid value for sigemptyset to fill.
    let mut set: libc::sigset_t = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    set
}

/// A handler action with the given flags (`SA_SIGINFO` added) and an empty mask.
pub fn action(handler: Handler, flags: libc::c_int) -> libc::sigaction {
    // SAFETY: a zeroed sigaction is a valid "default action, empty mask" value.
    let mut action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = flags | libc::SA_SIGINFO;
    // SAFETY: sa_mask is a valid sigset_t inside `action`.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    action
}

/// Install `action` for `signum`, saving the previous action into `saved`
/// (when given). Async-signal-safe.
pub fn install(
    signum: libc::c_int,
    action: &libc::sigaction,
    saved: Option<&SavedAction>,
) -> std::io::Result<()> {
    let old = saved.map_or(core::ptr::null_mut(), |s| {
        s.0.get().cast::<libc::sigaction>()
    });
    // SAFETY: `action` is a valid sigaction; `old` is null or a slot that only
    // this (serialised) caller writes.
    if unsafe { libc::sigaction(signum, action, old) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Put back the action saved for `signum`. Async-signal-safe.
pub fn restore(signum: libc::c_int, saved: &SavedAction) {
    // SAFETY: the slot was filled by `install` before any handler that calls
    // this could run.
    unsafe {
        libc::sigaction(
            signum,
            saved.0.get().cast::<libc::sigaction>(),
            core::ptr::null_mut(),
        )
    };
}

/// Run the action saved in `saved` for a signal that our handler `ours` is
/// handling: a function is called directly (with the siginfo and context when
/// it takes them); SIG_IGN does nothing; SIG_DFL is put back and the signal
/// raised again, then `ours` is reinstalled (SIG_DFL of most signals ends the
/// process there). A saved action that is `ours` itself (a register racing an
/// unregister) is not followed. Async-signal-safe.
pub fn call_previous(
    signum: libc::c_int,
    saved: &SavedAction,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
    ours: Handler,
) {
    // SAFETY: the slot was filled by `install` before our handler was
    // published; reading a copy of it is a plain load.
    let previous: libc::sigaction = unsafe { saved.0.get().cast::<libc::sigaction>().read() };
    let handler = previous.sa_sigaction;
    if handler == libc::SIG_IGN || handler == ours as usize {
        return;
    }
    if handler == libc::SIG_DFL {
        // The default action must happen now, as the stdlib's SA_NODEFER
        // handler lets it: terminate or dump core (the process ends here),
        // stop (raise returns once the process is continued) or ignore. The
        // signal is blocked while its handler runs, so it is unblocked for
        // the raise: a raise while blocked would stay pending, be delivered
        // to the reinstalled handler on return, and start the dump again,
        // for ever.
        restore(signum, saved);
        let mut only = empty_set();
        // SAFETY: `only` is a valid sigset_t; sigaddset, pthread_sigmask and
        // raise are async-signal-safe.
        unsafe {
            libc::sigaddset(&mut only, signum);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &only, core::ptr::null_mut());
            libc::raise(signum);
            // Blocked again before our handler is back: another instance of
            // the signal waits for this handler to return.
            libc::pthread_sigmask(libc::SIG_BLOCK, &only, core::ptr::null_mut());
        }
        let action = action(ours, libc::SA_RESTART | libc::SA_ONSTACK);
        let _ = install(signum, &action, None);
        return;
    }
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous action declared itself an SA_SIGINFO handler.
        let f: Handler = unsafe { core::mem::transmute::<usize, Handler>(handler) };
        f(signum, info, context);
    } else {
        // SAFETY: a plain sa_handler takes the signal number only.
        let f: extern "C" fn(libc::c_int) =
            unsafe { core::mem::transmute::<usize, extern "C" fn(libc::c_int)>(handler) };
        f(signum);
    }
}

/// Bytes of alternate signal stack: the stdlib's `SIGSTKSZ * 2` is too tight
/// for a walker with its write buffer, so give it room.
const ALT_STACK_SIZE: usize = 256 * 1024;
static ALT_STACK: AtomicUsize = AtomicUsize::new(0);

/// A fresh, private mapping of ALT_STACK_SIZE bytes (committed lazily).
fn map_stack() -> std::io::Result<*mut libc::c_void> {
    // SAFETY: an anonymous private mapping; the result is checked.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            ALT_STACK_SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(p)
}

/// The calling thread's alternate stack, as sigaltstack reports it.
fn current_alt_stack() -> libc::stack_t {
    // SAFETY: zeroed stack_t is valid; sigaltstack only writes into it.
    let mut current: libc::stack_t = unsafe { MaybeUninit::zeroed().assume_init() };
    // SAFETY: querying the current alternate stack into a valid struct.
    unsafe { libc::sigaltstack(core::ptr::null(), &mut current) };
    current
}

/// Make the ALT_STACK_SIZE bytes at `base` the calling thread's alternate
/// stack.
///
/// # Safety
/// `base` must be a mapping of ALT_STACK_SIZE bytes that stays mapped while
/// it is the thread's alternate stack.
unsafe fn set_alt_stack(base: *mut libc::c_void) -> std::io::Result<()> {
    let stack = libc::stack_t {
        ss_sp: base,
        ss_flags: 0,
        ss_size: ALT_STACK_SIZE,
    };
    // SAFETY: `stack` describes the caller's mapping (see # Safety).
    if unsafe { libc::sigaltstack(&stack, core::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Give the calling thread an alternate signal stack, so that a stack
/// overflow can still be reported. The memory is allocated once per process.
pub fn install_alt_stack() -> std::io::Result<()> {
    let mut base = ALT_STACK.load(Ordering::Acquire);
    if base == 0 {
        base = map_stack()? as usize;
        ALT_STACK.store(base, Ordering::Release);
    }
    let current = current_alt_stack();
    let usable = current.ss_flags & libc::SS_DISABLE == 0 && current.ss_size >= ALT_STACK_SIZE;
    if !usable {
        // SAFETY: the process-wide mapping is never unmapped.
        unsafe { set_alt_stack(base as *mut libc::c_void)? };
    }
    Ok(())
}

/// An alternate signal stack owned by one thread, unmapped when it exits.
struct ThreadAltStack(usize);

impl Drop for ThreadAltStack {
    fn drop(&mut self) {
        let off = libc::stack_t {
            ss_sp: core::ptr::null_mut(),
            ss_flags: libc::SS_DISABLE,
            ss_size: 0,
        };
        // SAFETY: runs at thread exit, outside any signal handler of this
        // thread: the stack is disabled before it is unmapped.
        unsafe {
            libc::sigaltstack(&off, core::ptr::null_mut());
            libc::munmap(self.0 as *mut libc::c_void, ALT_STACK_SIZE);
        }
    }
}

std::thread_local! {
    static THREAD_ALT_STACK: core::cell::Cell<Option<ThreadAltStack>> = const { core::cell::Cell::new(None) };
}

/// Give the calling thread (a thread other than the one that called
/// `enable()`) its own alternate signal stack, so that a stack overflow there
/// can be reported too; freed when the thread exits. Nothing happens if the
/// thread already has one.
pub fn install_thread_alt_stack() -> std::io::Result<()> {
    if current_alt_stack().ss_flags & libc::SS_DISABLE == 0 {
        return Ok(());
    }
    let p = map_stack()?;
    // SAFETY: the mapping is owned by this thread until ThreadAltStack's Drop
    // disables it at thread exit.
    if let Err(err) = unsafe { set_alt_stack(p) } {
        // SAFETY: the mapping made above, not installed.
        unsafe { libc::munmap(p, ALT_STACK_SIZE) };
        return Err(err);
    }
    THREAD_ALT_STACK.with(|slot| slot.set(Some(ThreadAltStack(p as usize))));
    Ok(())
}
