//! Async-signal-safe reads from /proc: open(2), read(2) and close(2) only,
//! paths built on the stack.

#![allow(unsafe_code)]

/// The name of thread `tid` of this process (`/proc/self/task/<tid>/comm`,
/// what `pthread_getname_np` reads for another thread), without its newline;
/// None when it cannot be read or is empty. Unlike `pthread_getname_np` it
/// never dereferences a `pthread_t`, which may belong to a thread that is
/// gone. Async-signal-safe.
pub fn thread_name(tid: u64, buf: &mut [u8; 100]) -> Option<&[u8]> {
    let mut path = [0u8; 48];
    let mut len = 0;
    let mut push = |bytes: &[u8]| {
        for &b in bytes {
            if let Some(slot) = path.get_mut(len) {
                *slot = b;
                len += 1;
            }
        }
    };
    push(b"/proc/self/task/");
    let mut digits = [0u8; 20];
    push(crate::writer::format_decimal(tid, &mut digits));
    push(b"/comm\0");
    if tid == 0 || len >= path.len() {
        return None;
    }
    // SAFETY: `path` is NUL-terminated (pushed above, and len < capacity).
    let fd = unsafe { libc::open(path.as_ptr().cast(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: reading into our own buffer, at most its length minus one.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len() - 1) };
    // SAFETY: closing the fd opened above.
    unsafe { libc::close(fd) };
    let n = usize::try_from(n).ok()?;
    let name = buf.get(..n)?;
    let name = name.strip_suffix(b"\n").unwrap_or(name);
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_this_thread() {
        let handle = std::thread::Builder::new()
            .name("lw-name-test".into())
            .spawn(|| {
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() } as u64;
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
