//! HEAD_LOCK: the lock CPython holds while it links or unlinks a thread state.
//!
//! A thread state is unlinked under this lock and freed only after, so a
//! walker that holds it can follow `next` pointers without ever reaching freed
//! memory. The watchdog thread takes it (with a time limit, never forever);
//! signal handlers do not, because the thread they interrupted may hold it.
//!
//! Not async-signal-safe: for the watchdog thread only.

#![allow(unsafe_code)]
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_possible_truncation
)]

use core::sync::atomic::{AtomicU8, Ordering};

use crate::cpython::layout::{HeadLockKind, Layout};

unsafe extern "C" {
    /// `PyThread_acquire_lock_timed`: exported by every CPython 3.
    fn PyThread_acquire_lock_timed(
        lock: *mut libc::c_void,
        microseconds: libc::c_longlong,
        intr_flag: libc::c_int,
    ) -> libc::c_int;
    fn PyThread_release_lock(lock: *mut libc::c_void);
}

/// `PY_LOCK_ACQUIRED`.
const PY_LOCK_ACQUIRED: libc::c_int = 1;
/// `_Py_LOCKED` of a PyMutex.
const PYMUTEX_LOCKED: u8 = 1;

/// The head lock of the running interpreter.
#[derive(Clone, Copy, Debug)]
pub struct HeadLock {
    kind: HeadLockKind,
    /// Address of the `interpreters.mutex` field inside `_PyRuntime`.
    field: usize,
    /// `PyMutex_Unlock` (3.13+), resolved with the lock: releasing a PyMutex
    /// that has waiters needs it, and the release path must not look
    /// anything up while the lock is held.
    unlock: Option<extern "C" fn(*mut u8)>,
}

/// Held until dropped.
pub struct HeadLockGuard {
    lock: HeadLock,
    /// The PyThread lock object (3.9–3.12).
    thread_lock: usize,
}

impl HeadLock {
    /// The head lock of the runtime at `runtime` (the address of `_PyRuntime`),
    /// or None when it cannot be used safely: `_PyRuntime` not exported, or
    /// (3.13+) no `PyMutex_Unlock` to wake the waiters with. The watchdog then
    /// walks without the lock, validating what it reads.
    pub fn new(layout: &Layout, runtime: usize) -> Option<HeadLock> {
        if runtime == 0 {
            return None;
        }
        let field = runtime.checked_add(layout.runtime_head_lock)?;
        let unlock = match layout.head_lock_kind {
            HeadLockKind::ThreadLock => None,
            HeadLockKind::PyMutex => Some(pymutex_unlock()?),
        };
        Some(HeadLock {
            kind: layout.head_lock_kind,
            field,
            unlock,
        })
    }

    /// Take the lock, waiting at most `timeout_us`; None if it stayed busy.
    pub fn lock_within(&self, timeout_us: u64) -> Option<HeadLockGuard> {
        match self.kind {
            HeadLockKind::ThreadLock => {
                // SAFETY: the field is a PyThread_type_lock in the live
                // _PyRuntime (a static of libpython); reading it is a plain load.
                let lock = unsafe { *(self.field as *const usize) };
                if lock == 0 {
                    return None;
                }
                // SAFETY: a valid PyThread lock; a timed acquire without
                // interrupt handling needs no GIL.
                let status = unsafe {
                    PyThread_acquire_lock_timed(lock as *mut _, timeout_us as libc::c_longlong, 0)
                };
                // `then`, not `then_some`: a guard built eagerly and thrown
                // away on failure would release a lock this thread does not
                // hold (one extra sem_post, and HEAD_LOCK stops excluding).
                (status == PY_LOCK_ACQUIRED).then(|| HeadLockGuard {
                    lock: *self,
                    thread_lock: lock,
                })
            }
            HeadLockKind::PyMutex => {
                let bits = self.pymutex();
                let mut waited = 0u64;
                loop {
                    // The PyMutex fast path: 0 → LOCKED.
                    if bits
                        .compare_exchange(0, PYMUTEX_LOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return Some(HeadLockGuard {
                            lock: *self,
                            thread_lock: 0,
                        });
                    }
                    if waited >= timeout_us {
                        return None;
                    }
                    std::thread::sleep(std::time::Duration::from_micros(50));
                    waited = waited.saturating_add(50);
                }
            }
        }
    }

    fn pymutex(&self) -> &'static AtomicU8 {
        // SAFETY: the field is the one-byte PyMutex inside the static
        // _PyRuntime, which lives as long as the process; CPython itself
        // accesses it atomically.
        unsafe { &*(self.field as *const AtomicU8) }
    }
}

impl Drop for HeadLockGuard {
    fn drop(&mut self) {
        match self.lock.kind {
            HeadLockKind::ThreadLock => {
                // SAFETY: acquired in lock_within by this thread.
                unsafe { PyThread_release_lock(self.thread_lock as *mut _) };
            }
            HeadLockKind::PyMutex => {
                let bits = self.lock.pymutex();
                if bits
                    .compare_exchange(PYMUTEX_LOCKED, 0, Ordering::Release, Ordering::Relaxed)
                    .is_err()
                    && let Some(unlock) = self.lock.unlock
                {
                    // Waiters parked meanwhile: CPython's own unlock wakes them.
                    unlock(self.lock.field as *mut u8);
                }
            }
        }
    }
}

/// `PyMutex_Unlock` (exported from 3.13), looked up at run time so that the
/// extension still loads on older versions.
fn pymutex_unlock() -> Option<extern "C" fn(*mut u8)> {
    if std::env::var_os("_LASTWORDS_TEST_NO_PYMUTEX_UNLOCK").is_some() {
        return None;
    }
    // SAFETY: dlsym with a NUL-terminated name; NULL when absent.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"PyMutex_Unlock".as_ptr()) };
    if f.is_null() {
        return None;
    }
    // SAFETY: PyMutex_Unlock(PyMutex *) is the exported function's signature.
    Some(unsafe { core::mem::transmute::<*mut libc::c_void, extern "C" fn(*mut u8)>(f) })
}
