//! `--pause`: stop every thread of a process with ptrace for a consistent
//! snapshot, and always let it go again.
//!
//! Each thread is attached with `PTRACE_SEIZE` (which, unlike
//! `PTRACE_ATTACH`, sends no SIGSTOP and so leaves no signal behind) and
//! stopped with `PTRACE_INTERRUPT`; `PTRACE_O_TRACECLONE` attaches the
//! threads that the stopped ones create meanwhile, and the task list is read
//! again until it holds no thread we have not stopped.
//!
//! Resuming, on every path:
//! * [`Paused::resume`], or dropping the [`Paused`] (an early return, an
//!   error, a panic that unwinds): `PTRACE_DETACH` of every thread, giving
//!   back any signal that arrived while it was stopped.
//! * An error while pausing: the threads stopped so far are detached before
//!   the error is returned.
//! * The target exits meanwhile: its threads are simply gone.
//! * The dumper dies (SIGINT, SIGTERM, SIGKILL, a crash): the kernel detaches
//!   every tracee of an exiting tracer and wakes it up (`exit_ptrace`), so a
//!   target is never left stopped. tests/remote checks this by killing a
//!   dumper that holds a pause. (A signal that reached a target thread
//!   while it was stopped is then lost; the kernel does not re-deliver it.)
//!
//! ptrace requests must come from the thread that attached, so [`Paused`] is
//! not `Send`.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![allow(unsafe_code)]

use std::collections::HashSet;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::discover::task_ids;
use crate::error::{RemoteError, classify, thread_runs, thread_state};

/// Rounds of "read the task list, stop what is new" before giving up on a
/// process that creates threads faster than we stop them.
const MAX_ROUNDS: usize = 100;

#[derive(Debug)]
struct Tracee {
    tid: i32,
    stopped: bool,
    /// A signal that stopped the thread (signal-delivery-stop) instead of
    /// our interrupt: handed back at detach so that it is not lost.
    pending_signal: i32,
}

/// Every thread of a process, stopped. Dropping it resumes them.
#[derive(Debug)]
pub struct Paused {
    pid: i32,
    tracees: Vec<Tracee>,
    /// When the first thread was asked to stop.
    since: Instant,
    /// ptrace requests must come from the attaching thread.
    _not_send: PhantomData<*const ()>,
}

/// What resuming did.
#[derive(Clone, Copy, Debug)]
pub struct Resumed {
    /// From the first stop request to the last thread resumed: the longest
    /// time any thread stayed stopped.
    pub stopped_for: Duration,
    /// Threads detached (the others had exited).
    pub resumed: usize,
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `ptrace(request, tid, addr, data)`.
fn ptrace(request: libc::c_uint, tid: i32, addr: usize, data: usize) -> Result<libc::c_long, i32> {
    // SAFETY: the requests used here (SEIZE, INTERRUPT, DETACH, GETEVENTMSG
    // with `data` pointing at a live u64, GETREGSET with `data` pointing at
    // a live iovec) only write to memory we pass and own.
    let r = unsafe { libc::ptrace(request, tid, addr, data) };
    if r == -1 { Err(errno()) } else { Ok(r) }
}

/// Stop every thread of `pid`, waiting at most `timeout` for them to stop.
pub fn pause(pid: i32, timeout: Duration) -> Result<Paused, RemoteError> {
    let mut paused = Paused {
        pid,
        tracees: Vec::new(),
        since: Instant::now(),
        _not_send: PhantomData,
    };
    let deadline = paused.since.checked_add(timeout);
    let mut attached: HashSet<i32> = HashSet::new();
    for round in 0..MAX_ROUNDS {
        let tasks = task_ids(pid);
        if tasks.is_empty() && round == 0 {
            return Err(if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                RemoteError::Exited(pid)
            } else {
                RemoteError::NoSuchProcess(pid)
            });
        }
        let mut new: Vec<i32> = tasks
            .iter()
            .filter_map(|&t| i32::try_from(t).ok())
            .filter(|t| !attached.contains(t))
            .collect();
        // The main thread first (it is the one that does not come and go):
        // a refusal there is a refusal of the process.
        new.sort_unstable_by_key(|&t| (t != pid, t));
        if new.is_empty() && paused.tracees.iter().all(|t| t.stopped) {
            if paused.tracees.is_empty() {
                return Err(RemoteError::Exited(pid));
            }
            return Ok(paused);
        }
        for tid in new {
            // A zombie thread (a main thread that called pthread_exit) runs
            // nothing and never stops: the kernel refuses to attach it
            // (EPERM, below), and it is left. (Not asked of /proc for every
            // thread beforehand: that read costs more than the attach.)
            match ptrace(
                libc::PTRACE_SEIZE,
                tid,
                0,
                libc::PTRACE_O_TRACECLONE as usize,
            ) {
                Ok(_) => {}
                // The thread exited since the task list was read.
                Err(libc::ESRCH) => continue,
                // The kernel refuses a thread that is exiting (its
                // exit_state is set) with EPERM too. Once one thread of the
                // process is attached, or when this thread is on its way
                // out, permission is not what is missing.
                Err(libc::EPERM) if !paused.tracees.is_empty() || !thread_runs(pid, tid) => {
                    attached.insert(tid);
                    continue;
                }
                Err(e) => {
                    // `paused` drops here: the threads stopped so far resume.
                    return Err(classify(
                        pid,
                        crate::error::ATTACH,
                        std::io::Error::from_raw_os_error(e),
                    ));
                }
            }
            attached.insert(tid);
            paused.tracees.push(Tracee {
                tid,
                stopped: false,
                pending_signal: 0,
            });
            // ESRCH: it is exiting; its wait below will say so.
            let _ = ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0);
        }
        paused.wait_all(deadline, &mut attached)?;
    }
    Err(RemoteError::Inconsistent {
        pid,
        what: format!("threads kept appearing after {MAX_ROUNDS} rounds of stopping them"),
    })
}

impl Paused {
    /// The stopped threads' tids.
    pub fn tids(&self) -> Vec<i32> {
        self.tracees
            .iter()
            .filter(|t| t.stopped)
            .map(|t| t.tid)
            .collect()
    }

    /// When the first thread was asked to stop.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Wait until every tracee has stopped (or exited).
    fn wait_all(
        &mut self,
        deadline: Option<Instant>,
        attached: &mut HashSet<i32>,
    ) -> Result<(), RemoteError> {
        let mut spins = 0u32;
        loop {
            let mut waiting = false;
            let mut clones = Vec::new();
            let mut i = 0;
            while let Some(t) = self.tracees.get_mut(i) {
                i = i.saturating_add(1);
                if t.stopped {
                    continue;
                }
                // Collect the stop if it came already (most threads stop
                // at once); else block until the thread stops, unless it is
                // in an uninterruptible sleep (D), which an interrupt cannot
                // cut short: that one is polled, under the deadline.
                // Blocking wakes us the moment the thread stops, and leaves
                // the CPU to the threads that must run to stop.
                let mut status = 0;
                // SAFETY: waitpid writes the status into a live int.
                let mut r =
                    unsafe { libc::waitpid(t.tid, &mut status, libc::WNOHANG | libc::__WALL) };
                if r == 0 && thread_state(self.pid, t.tid) != Some('D') {
                    // SAFETY: as above.
                    r = unsafe { libc::waitpid(t.tid, &mut status, libc::__WALL) };
                }
                if r == 0 {
                    waiting = true;
                    continue;
                }
                if r < 0 && errno() == libc::EINTR {
                    waiting = true;
                    continue;
                }
                if r < 0 {
                    // ECHILD: no longer ours (it exited and was reaped).
                    t.stopped = true;
                    t.tid = 0;
                    continue;
                }
                if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                    t.stopped = true;
                    t.tid = 0;
                    continue;
                }
                if !libc::WIFSTOPPED(status) {
                    waiting = true;
                    continue;
                }
                t.stopped = true;
                let event = status >> 16;
                let sig = libc::WSTOPSIG(status);
                if event == libc::PTRACE_EVENT_CLONE {
                    // A thread created while we were stopping: attached by
                    // the kernel (TRACECLONE); it will report its own stop.
                    let mut child: u64 = 0;
                    if ptrace(
                        libc::PTRACE_GETEVENTMSG,
                        t.tid,
                        0,
                        &mut child as *mut u64 as usize,
                    )
                    .is_ok()
                        && let Ok(child) = i32::try_from(child)
                    {
                        clones.push(child);
                    }
                } else if event == 0 && sig != libc::SIGTRAP {
                    // Signal-delivery-stop: a signal reached the thread
                    // before our interrupt did; give it back at detach.
                    // (Group-stops report as PTRACE_EVENT_STOP: left alone.)
                    t.pending_signal = sig;
                }
            }
            for child in clones {
                if attached.insert(child) {
                    self.tracees.push(Tracee {
                        tid: child,
                        stopped: false,
                        pending_signal: 0,
                    });
                    waiting = true;
                }
            }
            self.tracees.retain(|t| t.tid != 0);
            if !waiting {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() > d) {
                let late: Vec<String> = self
                    .tracees
                    .iter()
                    .filter(|t| !t.stopped)
                    .map(|t| t.tid.to_string())
                    .collect();
                return Err(RemoteError::Inconsistent {
                    pid: self.pid,
                    what: format!("threads {} did not stop in time", late.join(", ")),
                });
            }
            // A stop takes microseconds: yield first, then sleep a little.
            spins = spins.saturating_add(1);
            if spins < 64 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// The general-purpose registers of a stopped thread (for native
    /// unwinding).
    pub fn registers(&self, tid: i32) -> std::io::Result<Registers> {
        if !self.tracees.iter().any(|t| t.tid == tid && t.stopped) {
            return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
        }
        // SAFETY: user_regs_struct is plain integers: all-zero is valid.
        let mut raw: libc::user_regs_struct = unsafe { core::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: (&mut raw as *mut libc::user_regs_struct).cast(),
            iov_len: size_of::<libc::user_regs_struct>(),
        };
        ptrace(
            libc::PTRACE_GETREGSET,
            tid,
            libc::NT_PRSTATUS as usize,
            &mut iov as *mut libc::iovec as usize,
        )
        .map_err(std::io::Error::from_raw_os_error)?;
        Ok(Registers::from_raw(raw))
    }

    /// Resume every thread.
    pub fn resume(mut self) -> Resumed {
        self.detach_all()
    }

    fn detach_all(&mut self) -> Resumed {
        let mut resumed = 0usize;
        for t in self.tracees.drain(..) {
            if !t.stopped {
                // Interrupted but not seen stopping (an error path): it
                // stops promptly; wait a bounded time so that the detach
                // below can succeed. If it cannot, our exit releases it.
                let until = Instant::now().checked_add(Duration::from_millis(100));
                loop {
                    let mut status = 0;
                    // SAFETY: waitpid writes the status into a live int.
                    let r =
                        unsafe { libc::waitpid(t.tid, &mut status, libc::WNOHANG | libc::__WALL) };
                    if r != 0 || until.is_none_or(|u| Instant::now() > u) {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
            let sig = usize::try_from(t.pending_signal).unwrap_or(0);
            if ptrace(libc::PTRACE_DETACH, t.tid, 0, sig).is_ok() {
                resumed = resumed.saturating_add(1);
            }
        }
        Resumed {
            stopped_for: self.since.elapsed(),
            resumed,
        }
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        self.detach_all();
    }
}

/// A stopped thread's registers.
#[derive(Clone, Copy)]
pub struct Registers {
    /// Instruction pointer, stack pointer, frame pointer.
    pub pc: u64,
    pub sp: u64,
    pub fp: u64,
    /// Everything `PTRACE_GETREGSET(NT_PRSTATUS)` gave.
    pub raw: libc::user_regs_struct,
}

impl Registers {
    #[cfg(target_arch = "x86_64")]
    fn from_raw(raw: libc::user_regs_struct) -> Registers {
        Registers {
            pc: raw.rip,
            sp: raw.rsp,
            fp: raw.rbp,
            raw,
        }
    }

    #[cfg(target_arch = "aarch64")]
    fn from_raw(raw: libc::user_regs_struct) -> Registers {
        Registers {
            pc: raw.pc,
            sp: raw.sp,
            fp: raw.regs.get(29).copied().unwrap_or(0),
            raw,
        }
    }
}

impl std::fmt::Debug for Registers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Registers {{ pc: 0x{:x}, sp: 0x{:x}, fp: 0x{:x} }}",
            self.pc, self.sp, self.fp
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::process::{Command, Stdio};

    /// A child shell that answers each line on stdin with one on stdout
    /// (proof that it runs), with a few background subshells as threads of
    /// other processes would be: we pause the shell itself.
    #[test]
    fn pause_stops_and_resume_resumes() {
        let mut child = Command::new("sh")
            .args(["-c", "while read l; do echo \"$l\"; done"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut ping = |n: u8| {
            stdin.write_all(&[b'0' + n, b'\n']).unwrap();
            let mut buf = [0u8; 2];
            stdout.read_exact(&mut buf).unwrap();
            assert_eq!(buf, [b'0' + n, b'\n']);
        };
        ping(1);
        let paused = pause(pid, Duration::from_secs(5)).unwrap();
        assert_eq!(paused.tids(), vec![pid]);
        assert_eq!(thread_state(pid, pid), Some('t'));
        let regs = paused.registers(pid).unwrap();
        assert!(regs.pc != 0 && regs.sp != 0);
        assert!(paused.registers(1).is_err());
        let r = paused.resume();
        assert_eq!(r.resumed, 1);
        ping(2);
        // Dropping resumes too.
        {
            let _p = pause(pid, Duration::from_secs(5)).unwrap();
            assert_eq!(thread_state(pid, pid), Some('t'));
        }
        ping(3);
        assert_ne!(thread_state(pid, pid), Some('t'));
        child.kill().unwrap();
        child.wait().unwrap();
        // Gone.
        assert!(matches!(
            pause(pid, Duration::from_secs(1)),
            Err(RemoteError::NoSuchProcess(_) | RemoteError::Exited(_))
        ));
    }
}
