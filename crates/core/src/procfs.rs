//! Async-signal-safe reads from /proc: open(2), read(2) and close(2) only,
//! paths built on the stack.

#![allow(unsafe_code)]

/// The calling thread's kernel id. Through syscall(2), not glibc's
/// `gettid()`, which only exists from glibc 2.30: the wheel must load on
/// glibc 2.17. Async-signal-safe.
pub fn gettid() -> libc::pid_t {
    // SAFETY: SYS_gettid has no arguments and cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    libc::pid_t::try_from(tid).unwrap_or(0)
}

/// After `pthread_join`: wait until the kernel has released thread `tid` of
/// this process too, checking every 10 us, at most `checks` times; whether
/// it went. The join returns when the thread clears its thread id, a little
/// before the kernel removes its task (from the thread count, from
/// /proc/self/task). Async-signal-safe.
pub fn wait_until_thread_gone(tid: libc::pid_t, checks: u32) -> bool {
    if tid <= 0 {
        return true;
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    for _ in 0..checks {
        // SAFETY: signal 0 only checks that the thread exists.
        let gone = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            return true;
        }
        let pause = libc::timespec {
            tv_sec: 0,
            tv_nsec: 10_000,
        };
        // SAFETY: a valid timespec; no remainder wanted.
        unsafe { libc::nanosleep(&pause, core::ptr::null_mut()) };
    }
    false
}

/// A path built on the stack, NUL-terminated. Async-signal-safe.
struct PathBuf64 {
    bytes: [u8; 64],
    len: usize,
    overflowed: bool,
}

impl PathBuf64 {
    fn new() -> Self {
        PathBuf64 {
            bytes: [0; 64],
            len: 0,
            overflowed: false,
        }
    }

    fn push(&mut self, part: &[u8]) -> &mut Self {
        for &b in part {
            match self.bytes.get_mut(self.len) {
                Some(slot) => {
                    *slot = b;
                    self.len = self.len.saturating_add(1);
                }
                None => self.overflowed = true,
            }
        }
        self
    }

    fn number(&mut self, n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        self.push(crate::writer::format_decimal(n, &mut digits))
    }

    /// The path as a C string, if it fit. Async-signal-safe.
    fn c_str(&mut self) -> Option<*const libc::c_char> {
        if self.len == 0 || self.bytes.get(self.len.wrapping_sub(1)) != Some(&0) {
            self.push(b"\0");
        }
        (!self.overflowed).then_some(self.bytes.as_ptr().cast())
    }
}

/// Read a small /proc file into `buf` (at most its length), without the
/// trailing newline; None when it cannot be read or is empty.
/// Async-signal-safe.
fn read_small(path: &mut PathBuf64, buf: &mut [u8]) -> Option<usize> {
    read_small_at(libc::AT_FDCWD, path, buf)
}

/// [`read_small`] of a path relative to the directory `dir` (or absolute).
/// Async-signal-safe.
fn read_small_at(dir: i32, path: &mut PathBuf64, buf: &mut [u8]) -> Option<usize> {
    let c_path = path.c_str()?;
    // SAFETY: `c_path` is NUL-terminated and lives in `path`; a `dir` that
    // is not a directory (or not open) makes openat fail, nothing else.
    let fd = unsafe { libc::openat(dir, c_path, libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: reading into the caller's buffer, at most its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    let n = usize::try_from(n).ok()?;
    let text = buf.get(..n)?;
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    (!text.is_empty()).then_some(text.len())
}

/// The name of thread `tid` of this process (`/proc/self/task/<tid>/comm`,
/// what `pthread_getname_np` reads for another thread), without its newline;
/// None when it cannot be read or is empty. Unlike `pthread_getname_np` it
/// never dereferences a `pthread_t`, which may belong to a thread that is
/// gone. For the calling thread it asks the kernel directly
/// (`prctl(PR_GET_NAME)`, as `pthread_getname_np` does for itself), which
/// works without /proc; other threads' are read through `dir`, the dump's
/// [`TaskDir`]. Every call reads the name afresh: a renamed thread is never
/// shown by an old name. Async-signal-safe.
pub fn thread_name<'b>(tid: u64, buf: &'b mut [u8; 100], dir: &mut TaskDir) -> Option<&'b [u8]> {
    if tid == 0 {
        return None;
    }
    let me = gettid();
    if u64::try_from(me).ok() == Some(tid) {
        // PR_GET_NAME writes at most 16 bytes, NUL-terminated.
        let mut name = [0u8; 16];
        // SAFETY: prctl(PR_GET_NAME) writes at most 16 bytes into `name`.
        if unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) } == 0 {
            let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
            if len == 0 {
                return None;
            }
            buf.get_mut(..len)?.copy_from_slice(name.get(..len)?);
            return buf.get(..len);
        }
    }
    let mut path = PathBuf64::new();
    path.number(tid).push(b"/comm");
    let n = dir.read(&mut path, buf)?;
    buf.get(..n)
}

/// `/proc/self/task` of this process, opened on first use and kept open for
/// one dump: a name is then read with `openat(dir, "<tid>/comm")`, which
/// spares the kernel the lookup of `/proc/self/task` for every thread (a
/// quarter of the cost of a name). Closed when the dump ends (on drop), so
/// that nothing of lastwords' stays open between dumps, as with the stdlib.
///
/// # Internal workings
///
/// While a dump runs, the descriptor is the process's, not lastwords' alone:
/// another thread may close it (a daemon closing every descriptor) and get
/// its number again for another file. That cannot give a wrong name: a tid
/// is unique in the system, so `<tid>/comm` exists under no other process's
/// task directory, and under anything that is not a `/proc` directory it does
/// not exist either (under `/proc` itself it is the same thread's). So a
/// read through the kept descriptor that fails is tried again through a
/// fresh one: if that works, the fresh one is kept from then on (the old
/// number is never closed: it may be someone else's by now); if it fails
/// too (the thread is gone), it is closed and the kept one stays. On drop
/// the kept number is closed only if it is still the directory that was
/// opened (same device and inode).
pub struct TaskDir {
    /// The kept descriptor, -1 before the first use.
    fd: i32,
    /// (device, inode) of the directory behind `fd`.
    identity: (u64, u64),
}

impl Default for TaskDir {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskDir {
    /// Nothing open yet. Async-signal-safe.
    pub const fn new() -> Self {
        TaskDir {
            fd: -1,
            identity: (0, 0),
        }
    }

    /// Read `<dir>/<relative path>` into `buf` through the kept descriptor,
    /// else through a fresh one (see the type's docs). Async-signal-safe.
    fn read(&mut self, relative: &mut PathBuf64, buf: &mut [u8]) -> Option<usize> {
        if self.fd >= 0
            && let Some(n) = read_small_at(self.fd, relative, buf)
        {
            return Some(n);
        }
        let mut dir = PathBuf64::new();
        dir.push(b"/proc/self/task");
        let c_dir = dir.c_str()?;
        // SAFETY: `c_dir` is NUL-terminated and lives in `dir`.
        let fresh =
            unsafe { libc::open(c_dir, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
        if fresh < 0 {
            return None;
        }
        let n = read_small_at(fresh, relative, buf);
        match (n, fd_identity(fresh)) {
            (Some(_), Some(identity)) => {
                self.fd = fresh;
                self.identity = identity;
            }
            _ => {
                // SAFETY: `fresh` was opened above and nothing else knows it.
                unsafe { libc::close(fresh) };
            }
        }
        n
    }
}

impl Drop for TaskDir {
    /// Async-signal-safe.
    fn drop(&mut self) {
        if self.fd >= 0 && fd_identity(self.fd) == Some(self.identity) {
            // SAFETY: the directory this dump opened, still at its number.
            unsafe { libc::close(self.fd) };
        }
    }
}

/// (device, inode) of an open descriptor. Async-signal-safe.
fn fd_identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: an all-zero stat is a valid value; fstat only writes into it.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: fstat writes into `st`, which lives on this stack.
    (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// The name of thread `tid` of process `pid` (`/proc/<pid>/task/<tid>/comm`),
/// without its newline. Async-signal-safe.
pub fn task_name(pid: u64, tid: u64, buf: &mut [u8; 100]) -> Option<&[u8]> {
    let mut path = PathBuf64::new();
    path.push(b"/proc/")
        .number(pid)
        .push(b"/task/")
        .number(tid)
        .push(b"/comm");
    let n = read_small(&mut path, buf)?;
    buf.get(..n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_this_thread() {
        let handle = std::thread::Builder::new()
            .name("lw-name-test".into())
            .spawn(|| {
                let tid = gettid() as u64;
                let mut buf = [0u8; 100];
                thread_name(tid, &mut buf, &mut TaskDir::new()).map(|n| n.to_vec())
            })
            .unwrap();
        assert_eq!(
            handle.join().unwrap().as_deref(),
            Some(&b"lw-name-test"[..])
        );
        let mut buf = [0u8; 100];
        let mut dir = TaskDir::new();
        assert_eq!(thread_name(0, &mut buf, &mut dir), None);
        assert_eq!(thread_name(u64::MAX, &mut buf, &mut dir), None);
    }

    /// Open `path` (a directory) and return its fd.
    fn open_dir(path: &str) -> i32 {
        let c = std::ffi::CString::new(path).unwrap();
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
        assert!(fd >= 0, "open {path}");
        fd
    }

    #[test]
    fn names_of_other_threads_survive_the_kept_directory_being_taken() {
        // A named thread that waits; its name is read from this thread.
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::Builder::new()
            .name("lw-kept-dir".into())
            .spawn(move || {
                tx.send(gettid() as u64).unwrap();
                done_rx.recv().unwrap();
            })
            .unwrap();
        let tid = rx.recv().unwrap();
        let mut dir = TaskDir::new();
        let name = |tid, dir: &mut TaskDir| {
            let mut buf = [0u8; 100];
            thread_name(tid, &mut buf, dir).map(|n| n.to_vec())
        };
        let expected = Some(b"lw-kept-dir".to_vec());
        assert_eq!(name(tid, &mut dir), expected);
        let kept = dir.fd;
        assert!(kept >= 0, "the directory is kept after a read");
        assert_eq!(name(tid, &mut dir), expected);
        assert_eq!(dir.fd, kept, "and reused");
        // The program closes the kept number and gets it again for other
        // directories: `/`, another process's task list, /proc itself.
        // Names stay right, and lastwords never closes what is not its own.
        for other in ["/", "/proc/1/task", "/proc"] {
            let kept = dir.fd;
            let fd = open_dir(other);
            let before = fd_identity(fd);
            // SAFETY: dup2 onto the kept number closes lastwords' directory
            // and puts `other` there, as a program closing fds might.
            assert_eq!(unsafe { libc::dup2(fd, kept) }, kept);
            // SAFETY: closing the fd opened above (its copy stays at `kept`).
            unsafe { libc::close(fd) };
            assert_eq!(name(tid, &mut dir), expected, "kept number now on {other}");
            assert_eq!(name(tid, &mut dir), expected, "kept number now on {other}");
            assert_eq!(fd_identity(kept), before, "{other} was left open");
            if other != "/proc" {
                assert_ne!(dir.fd, kept, "a fresh one is kept");
            }
            // SAFETY: the program's fd, not kept by lastwords any more
            // (or, for /proc, closed under it: the next read reopens).
            unsafe { libc::close(kept) };
        }
        assert_eq!(name(tid, &mut dir), expected);
        done_tx.send(()).unwrap();
        worker.join().unwrap();
        // The join returns a little before the kernel removes the task.
        assert!(
            wait_until_thread_gone(tid as libc::pid_t, 3_000_000),
            "thread {tid} never went"
        );
        // The thread is gone: no name, and the kept directory stays.
        let kept = dir.fd;
        assert_eq!(name(tid, &mut dir), None);
        assert_eq!(dir.fd, kept);
        // The dump ends: its directory is closed, nothing is left open.
        assert!(fd_identity(kept).is_some());
        drop(dir);
        assert_eq!(fd_identity(kept), None, "closed at the end of the dump");
    }

    #[test]
    fn the_end_of_a_dump_never_closes_what_took_the_kept_number() {
        let mut dir = TaskDir::new();
        let mut buf = [0u8; 100];
        let me = std::thread::spawn(|| gettid() as u64);
        let gone = me.join().unwrap();
        // A read of any thread's name opens the directory.
        let _ = thread_name(gone, &mut buf, &mut dir);
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let worker = std::thread::spawn(move || {
            tx.send(gettid() as u64).unwrap();
            done_rx.recv().unwrap();
        });
        let tid = rx.recv().unwrap();
        assert!(thread_name(tid, &mut buf, &mut dir).is_some());
        let kept = dir.fd;
        assert!(kept >= 0);
        // The program closes the number and opens `/` there.
        let fd = open_dir("/");
        let root = fd_identity(fd);
        // SAFETY: dup2 onto the kept number, as a program closing fds might.
        assert_eq!(unsafe { libc::dup2(fd, kept) }, kept);
        // SAFETY: the copy opened above; `/` stays at `kept`.
        unsafe { libc::close(fd) };
        drop(dir);
        assert_eq!(fd_identity(kept), root, "the program's `/` stays open");
        // SAFETY: the program's descriptor, closed by the program.
        unsafe { libc::close(kept) };
        done_tx.send(()).unwrap();
        worker.join().unwrap();
    }
}
