//! Readers of this process: plain loads, `process_vm_readv` on the own pid,
//! a pipe probe where seccomp refuses that, and the choice between them.

#![allow(unsafe_code)]

use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};

use super::{BadAddress, Memory, plausible};

/// The page size of this kernel (a target on the same machine shares it):
/// 4096 if `sysconf` gives no power of two. Async-signal-safe.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|n| n.is_power_of_two())
        .unwrap_or(4096)
}

/// Plain loads from this process: only for memory known to be consistent
/// (the caller holds the GIL and the walker validates every pointer's shape).
#[derive(Clone, Copy, Default)]
pub struct LocalUnchecked;

impl Memory for LocalUnchecked {
    /// Async-signal-safe.
    fn read_bytes(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        plausible(addr, dst.len())?;
        // SAFETY: callers use this reader only while holding the GIL on
        // structures the interpreter keeps alive (thread states, frames, code
        // objects reached from them); the address range passed `plausible`.
        unsafe {
            core::ptr::copy_nonoverlapping(addr as *const u8, dst.as_mut_ptr(), dst.len());
        }
        Ok(())
    }

    /// Async-signal-safe.
    fn direct(&self, addr: usize, len: usize) -> Option<&[u8]> {
        plausible(addr, len).ok()?;
        // SAFETY: as in `read_bytes`: the range is part of a structure the
        // interpreter keeps alive and does not change while the caller holds
        // the GIL, for as long as this reader is borrowed (one dump).
        Some(unsafe { core::slice::from_raw_parts(addr as *const u8, len) })
    }
}

/// Reads of this process through `process_vm_readv(2)`: an unreadable address
/// returns `BadAddress` instead of raising SIGSEGV.
#[derive(Clone, Copy)]
pub struct LocalChecked {
    pid: libc::pid_t,
}

impl LocalChecked {
    /// A checked reader of the calling process. Async-signal-safe.
    pub fn new() -> Self {
        LocalChecked {
            // SAFETY: getpid has no preconditions and cannot fail.
            pid: unsafe { libc::getpid() },
        }
    }

    /// Whether the kernel lets this process use `process_vm_readv` on itself
    /// (seccomp profiles sometimes refuse it). Called once at enable time.
    pub fn works(&self) -> bool {
        let probe: u64 = 0x6c61_7374_776f_7264;
        let mut out = [0u8; 8];
        self.read_bytes(&probe as *const u64 as usize, &mut out)
            .is_ok()
            && u64::from_ne_bytes(out) == probe
    }
}

impl Default for LocalChecked {
    fn default() -> Self {
        Self::new()
    }
}

impl Memory for LocalChecked {
    /// Async-signal-safe.
    fn read_bytes(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        plausible(addr, dst.len())?;
        let local = libc::iovec {
            iov_base: dst.as_mut_ptr().cast(),
            iov_len: dst.len(),
        };
        let remote = libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: dst.len(),
        };
        if self.read_vectored(&[local], &[remote]) == dst.len() {
            Ok(())
        } else {
            Err(BadAddress(addr))
        }
    }

    /// Async-signal-safe.
    fn batches(&self) -> bool {
        true
    }

    /// One `process_vm_readv`. Async-signal-safe.
    fn read_vectored(&self, local: &[libc::iovec], remote: &[libc::iovec]) -> usize {
        super::vm_readv(self.pid, local, remote)
    }
}

/// How the signal paths read this process. Chosen at enable time by
/// [`choose_read_method`]; read in handlers with [`read_method`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMethod {
    /// `process_vm_readv` on the own pid.
    VmReadv,
    /// Where seccomp refuses `process_vm_readv`: `write(2)` the memory into a
    /// pipe (the kernel answers EFAULT for an unreadable address instead of
    /// faulting) and read it back.
    Pipe,
    /// Neither works: plain loads (a corrupt pointer can then fault again).
    Plain,
}

static READ_METHOD: AtomicU8 = AtomicU8::new(0);

/// Probe what works here and remember it. `LASTWORDS_READER=vm_readv|pipe|plain`
/// forces a method (for tests; `LASTWORDS_FORCE_UNCHECKED_READS=1` = plain).
pub fn choose_read_method() -> ReadMethod {
    let forced = std::env::var("LASTWORDS_READER").ok();
    let method = match forced.as_deref() {
        Some("vm_readv") => ReadMethod::VmReadv,
        Some("pipe") => ReadMethod::Pipe,
        Some("plain") => ReadMethod::Plain,
        _ if std::env::var_os("LASTWORDS_FORCE_UNCHECKED_READS").is_some() => ReadMethod::Plain,
        _ if LocalChecked::new().works() => ReadMethod::VmReadv,
        _ if PipeSlot::new().probe().is_some_and(|p| p.works()) => ReadMethod::Pipe,
        _ => ReadMethod::Plain,
    };
    READ_METHOD.store(method as u8, Ordering::Release);
    READ_METHOD_CHOSEN.store(true, Ordering::Release);
    method
}

/// Whether [`choose_read_method`] has run in this process (a forked child
/// inherits the choice, which still holds there).
static READ_METHOD_CHOSEN: AtomicBool = AtomicBool::new(false);

/// [`choose_read_method`], unless a method has been chosen already: for
/// calls that must stay cheap (arming the watchdog), where a probe would be
/// a system call each time.
pub fn ensure_read_method() {
    if !READ_METHOD_CHOSEN.load(Ordering::Acquire) {
        choose_read_method();
    }
}

/// The method chosen at enable time. Async-signal-safe.
pub fn read_method() -> ReadMethod {
    match READ_METHOD.load(Ordering::Acquire) {
        0 => ReadMethod::VmReadv,
        1 => ReadMethod::Pipe,
        _ => ReadMethod::Plain,
    }
}

/// A pipe for [`PipeProbe`] reads, one per code path that may dump (two
/// dumps must not share one). Created on first use, and again in a forked
/// child (which must not share its parent's). `pipe2` is async-signal-safe.
pub struct PipeSlot {
    read_end: AtomicI32,
    write_end: AtomicI32,
    pid: AtomicI32,
}

impl PipeSlot {
    pub const fn new() -> Self {
        PipeSlot {
            read_end: AtomicI32::new(-1),
            write_end: AtomicI32::new(-1),
            pid: AtomicI32::new(0),
        }
    }

    /// The pipe of this process, made if needed. Async-signal-safe.
    pub fn probe(&self) -> Option<PipeProbe> {
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        if self.pid.load(Ordering::Acquire) != pid {
            let mut fds = [-1; 2];
            // SAFETY: a valid two-int array for pipe2.
            if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
                return None;
            }
            self.read_end.store(fds[0], Ordering::Release);
            self.write_end.store(fds[1], Ordering::Release);
            self.pid.store(pid, Ordering::Release);
        }
        Some(PipeProbe {
            read_end: self.read_end.load(Ordering::Acquire),
            write_end: self.write_end.load(Ordering::Acquire),
        })
    }
}

impl Default for PipeSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PipeSlot {
    /// Only slots owned by a thread (the watchdog's) are ever dropped.
    fn drop(&mut self) {
        // SAFETY: getpid has no preconditions; the fds were opened by this
        // slot in this process and nothing else closes them.
        unsafe {
            if self.pid.load(Ordering::Acquire) == libc::getpid() {
                libc::close(self.read_end.load(Ordering::Acquire));
                libc::close(self.write_end.load(Ordering::Acquire));
            }
        }
    }
}

/// Checked reads through a pipe: `write(2)` copies from our own address
/// space in the kernel, which reports EFAULT for an unreadable address.
#[derive(Clone, Copy)]
pub struct PipeProbe {
    read_end: i32,
    write_end: i32,
}

impl PipeProbe {
    pub fn works(&self) -> bool {
        let probe: u64 = 0x6c61_7374_776f_7264;
        let mut out = [0u8; 8];
        self.read_bytes(&probe as *const u64 as usize, &mut out)
            .is_ok()
            && u64::from_ne_bytes(out) == probe
            && self.read_bytes((1usize << 47) - 4096, &mut out).is_err()
    }
}

impl Memory for PipeProbe {
    /// Async-signal-safe.
    fn read_bytes(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        plausible(addr, dst.len())?;
        let saved = crate::writer::errno_get();
        // PIPE_BUF bytes at a time: such a write is all or nothing, and it
        // always fits the (empty) pipe.
        let mut result = Ok(());
        let mut from = addr;
        for chunk in dst.chunks_mut(4096) {
            // SAFETY: write(2) reads `chunk.len()` bytes at `from` inside the
            // kernel and returns EFAULT if they are not readable.
            let written =
                unsafe { libc::write(self.write_end, from as *const libc::c_void, chunk.len()) };
            let written = usize::try_from(written).unwrap_or(0);
            let mut got = 0;
            while got < written {
                let rest = chunk.get_mut(got..written).unwrap_or(&mut []);
                // SAFETY: reading into our own buffer what we just wrote.
                let n = unsafe { libc::read(self.read_end, rest.as_mut_ptr().cast(), rest.len()) };
                match usize::try_from(n) {
                    Ok(n) if n > 0 => got = got.saturating_add(n),
                    _ => break,
                }
            }
            if written != chunk.len() || got != written {
                result = Err(BadAddress(from));
                break;
            }
            // Inside [addr, addr + dst.len()), which `plausible` checked.
            from = from.wrapping_add(chunk.len());
        }
        crate::writer::errno_set(saved);
        result
    }
}

/// A reader of this process by the method chosen at enable time.
pub enum SafeLocal {
    VmReadv(LocalChecked),
    Pipe(PipeProbe),
    Plain(LocalUnchecked),
}

impl SafeLocal {
    /// The reader of the chosen method; `pipe` is the calling path's own
    /// pipe. Async-signal-safe.
    pub fn new(pipe: &PipeSlot) -> Self {
        match read_method() {
            ReadMethod::VmReadv => SafeLocal::VmReadv(LocalChecked::new()),
            ReadMethod::Pipe => match pipe.probe() {
                Some(p) => SafeLocal::Pipe(p),
                None => SafeLocal::Plain(LocalUnchecked),
            },
            ReadMethod::Plain => SafeLocal::Plain(LocalUnchecked),
        }
    }

    /// A reader that never faults, even where plain loads were chosen (the
    /// pipe probe then), or None. For reads that may run off a mapping by
    /// design, like the scan of a stack for return addresses.
    /// Async-signal-safe.
    pub fn checked(pipe: &PipeSlot) -> Option<Self> {
        match read_method() {
            ReadMethod::VmReadv => Some(SafeLocal::VmReadv(LocalChecked::new())),
            _ => pipe.probe().map(SafeLocal::Pipe),
        }
    }

    /// Whether a fault is still possible while reading (plain loads).
    pub fn is_plain(&self) -> bool {
        matches!(self, SafeLocal::Plain(_))
    }
}

impl Memory for SafeLocal {
    /// Async-signal-safe.
    fn read_bytes(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        match self {
            SafeLocal::VmReadv(m) => m.read_bytes(addr, dst),
            SafeLocal::Pipe(m) => m.read_bytes(addr, dst),
            SafeLocal::Plain(m) => m.read_bytes(addr, dst),
        }
    }

    /// Async-signal-safe.
    fn batches(&self) -> bool {
        matches!(self, SafeLocal::VmReadv(_))
    }

    /// Async-signal-safe.
    fn read_vectored(&self, local: &[libc::iovec], remote: &[libc::iovec]) -> usize {
        match self {
            SafeLocal::VmReadv(m) => m.read_vectored(local, remote),
            _ => 0,
        }
    }
}
