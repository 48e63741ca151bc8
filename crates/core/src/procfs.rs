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
        self.push(b"\0");
        (!self.overflowed).then_some(self.bytes.as_ptr().cast())
    }
}

/// Read a small /proc file into `buf` (at most its length), without the
/// trailing newline; None when it cannot be read or is empty.
/// Async-signal-safe.
fn read_small(path: &mut PathBuf64, buf: &mut [u8]) -> Option<usize> {
    let c_path = path.c_str()?;
    // SAFETY: `c_path` is NUL-terminated and lives in `path`.
    let fd = unsafe { libc::open(c_path, libc::O_RDONLY | libc::O_CLOEXEC) };
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
/// works without /proc. Async-signal-safe.
pub fn thread_name(tid: u64, buf: &mut [u8; 100]) -> Option<&[u8]> {
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
    path.push(b"/proc/self/task/").number(tid).push(b"/comm");
    let n = read_small(&mut path, buf)?;
    buf.get(..n)
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
                thread_name(tid, &mut buf).map(|n| n.to_vec())
            })
            .unwrap();
        assert_eq!(
            handle.join().unwrap().as_deref(),
            Some(&b"lw-name-test"[..])
        );
        let mut buf = [0u8; 100];
        assert_eq!(thread_name(0, &mut buf), None);
        assert_eq!(thread_name(u64::MAX, &mut buf), None);
    }
}
