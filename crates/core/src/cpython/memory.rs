//! Reading interpreter memory: the one door the walker goes through.
//!
//! The walker never dereferences a pointer itself; it asks a [`Memory`] for
//! bytes at an address. Two readers exist today:
//!
//! * [`LocalUnchecked`]: plain loads. Used by explicit dumps, where the caller
//!   holds the GIL and the interpreter's structures are consistent.
//! * [`LocalChecked`]: `process_vm_readv(2)` on the own pid, so that an unmapped
//!   address comes back as an error instead of a second fault. Used on the
//!   fatal-signal path, where the heap may be corrupt.
//!
//! A reader of another process (`lastwords dump PID`) is the same trait with a
//! different pid; the walker does not change.

#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};

/// An address that could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAddress(pub usize);

/// Plain old data that may be filled from raw bytes: integers and addresses.
///
/// # Safety
/// Every bit pattern must be a valid value of the type.
pub unsafe trait Pod: Copy {}
// SAFETY: every bit pattern is a valid integer.
unsafe impl Pod for u8 {}
// SAFETY: as above.
unsafe impl Pod for u16 {}
// SAFETY: as above.
unsafe impl Pod for u32 {}
// SAFETY: as above.
unsafe impl Pod for i32 {}
// SAFETY: as above.
unsafe impl Pod for u64 {}
// SAFETY: as above.
unsafe impl Pod for i64 {}
// SAFETY: as above.
unsafe impl Pod for usize {}
// SAFETY: as above.
unsafe impl Pod for isize {}
// SAFETY: an array of Pod values is Pod.
unsafe impl<T: Pod, const N: usize> Pod for [T; N] {}

/// Where the walker reads interpreter memory from.
pub trait Memory {
    /// Fill `dst` with the bytes at `addr`, or fail without side effects.
    ///
    /// Async-signal-safe for every implementation in this crate.
    fn read_bytes(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress>;

    /// Read one value of a plain type. Async-signal-safe.
    fn read<T: Pod>(&self, addr: usize) -> Result<T, BadAddress> {
        let mut value = MaybeUninit::<T>::zeroed();
        // SAFETY: the slice covers exactly the (zero-initialised) bytes of `value`.
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<u8>(), size_of::<T>())
        };
        self.read_bytes(addr, bytes)?;
        // SAFETY: T is Pod, so any bytes form a valid value; all were written.
        Ok(unsafe { value.assume_init() })
    }

    /// Read a pointer-sized field at `base + offset`. Async-signal-safe.
    fn read_ptr(&self, base: usize, offset: usize) -> Result<usize, BadAddress> {
        self.read::<usize>(base.checked_add(offset).ok_or(BadAddress(base))?)
    }

    /// Several ranges in one system call, where the reader can: returns how
    /// many bytes were read, in order (a reader stops at the first range it
    /// cannot read; 0 from readers that cannot batch). Async-signal-safe.
    fn read_vectored(&self, _local: &[libc::iovec], _remote: &[libc::iovec]) -> usize {
        0
    }

    /// Whether `read_vectored` can read anything. Async-signal-safe.
    fn batches(&self) -> bool {
        false
    }

    /// A hint that the objects at `addrs` are about to be read: a caching
    /// reader may fetch their blocks together. Never changes what a later
    /// read returns. Async-signal-safe.
    fn prefetch(&self, _addrs: &[usize]) {}
}

/// Addresses below this are never valid objects (the NULL page and its
/// neighbours); rejecting them early saves a system call and catches
/// `NULL + offset` reads.
const LOW_ADDRESS_LIMIT: usize = 0x1000;

/// Reject what can never be a readable range of user memory. Async-signal-safe.
fn plausible(addr: usize, len: usize) -> Result<(), BadAddress> {
    match addr.checked_add(len) {
        // x86-64 and aarch64 user space ends at 2^47 / 2^48.
        Some(end) if addr >= LOW_ADDRESS_LIMIT && end <= (1usize << 48) => Ok(()),
        _ => Err(BadAddress(addr)),
    }
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
        if local.is_empty() {
            return 0;
        }
        let saved = crate::writer::errno_get();
        // SAFETY: `local` describes live buffers of the caller, `remote`
        // ranges the kernel checks (EFAULT instead of a fault).
        let n = unsafe {
            libc::process_vm_readv(
                self.pid,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        crate::writer::errno_set(saved);
        n.max(0) as usize
    }
}

/// Bytes per cached block: a page (blocks are aligned, so a block is mapped
/// whole or not at all).
const BLOCK: usize = 4096;
/// Blocks per cache: 256 KiB (untouched pages cost nothing), enough for the
/// frames, code objects, strings and module objects of a deep dump.
const BLOCKS: usize = 64;

/// Storage for a [`Cached`] reader: blocks of interpreter memory copied by
/// one system call each. A dump reads the same few blocks over and over (a
/// frame's fields, a code object's, a string's header and data): the checked
/// reader costs a system call per read, the cache one per block.
///
/// // # Internal workings
///
/// The storage is a static of the code path that uses it (the fatal handler,
/// the user-signal handler) or owned by one thread (the watchdog); each path
/// already lets only one dump run at a time (its re-entrancy flag), which is
/// what makes the unsynchronised block copies sound. Tags are atomics only to
/// make the type `Sync`; Relaxed ordering suffices under that exclusion.
pub struct BlockCache {
    blocks: UnsafeCell<[[u8; BLOCK]; BLOCKS]>,
    tags: [AtomicUsize; BLOCKS],
    next: AtomicUsize,
}

// SAFETY: only one dump at a time uses a given BlockCache (see above).
unsafe impl Sync for BlockCache {}

impl BlockCache {
    pub const fn new() -> Self {
        BlockCache {
            blocks: UnsafeCell::new([[0; BLOCK]; BLOCKS]),
            tags: [const { AtomicUsize::new(0) }; BLOCKS],
            next: AtomicUsize::new(0),
        }
    }

    /// Forget every block: memory may have changed since the last dump.
    /// Async-signal-safe.
    pub fn clear(&self) {
        for tag in &self.tags {
            tag.store(0, Ordering::Relaxed);
        }
    }
}

impl Default for BlockCache {
    fn default() -> Self {
        Self::new()
    }
}

/// A reader that serves reads from whole blocks read through `inner`.
pub struct Cached<'c, M: Memory> {
    pub inner: M,
    pub cache: &'c BlockCache,
}

/// Blocks a single prefetch brings in at most: half the cache, so that two
/// in a row (objects, then what they point to) fit in it together.
const PREFETCH_MAX: usize = BLOCKS / 2;

const NO_IOVEC: libc::iovec = libc::iovec {
    iov_base: core::ptr::null_mut(),
    iov_len: 0,
};

impl<M: Memory> Cached<'_, M> {
    /// Read again every block the cache holds from its last use, in one
    /// system call where the reader can batch, and forget the blocks that
    /// could not be read (all of them with a reader that cannot batch). For
    /// a dump that follows a rehearsal of itself (the watchdog's): it starts
    /// with the blocks it is about to need. Async-signal-safe.
    pub fn refresh(&self) {
        let mut local = [NO_IOVEC; BLOCKS];
        let mut remote = [NO_IOVEC; BLOCKS];
        let mut slots = [0usize; BLOCKS];
        let mut count = 0;
        for (i, tag) in self.cache.tags.iter().enumerate() {
            let base = tag.load(Ordering::Relaxed);
            if base == 0 {
                continue;
            }
            self.describe(i, base, &mut local[count], &mut remote[count]);
            slots[count] = i;
            count += 1;
        }
        let fresh = self.inner.read_vectored(&local[..count], &remote[..count]) / BLOCK;
        for &slot in slots.get(fresh..count).unwrap_or(&[]) {
            self.cache.tags[slot].store(0, Ordering::Relaxed);
        }
    }

    /// The iovecs that read block `base` into slot `i`. Async-signal-safe.
    fn describe(&self, i: usize, base: usize, local: &mut libc::iovec, remote: &mut libc::iovec) {
        // SAFETY: exclusive use of the cache during one dump (see
        // BlockCache); the pointer is only handed to the kernel.
        let block = unsafe { &mut (*self.cache.blocks.get())[i] };
        local.iov_base = block.as_mut_ptr().cast();
        local.iov_len = BLOCK;
        remote.iov_base = base as *mut libc::c_void;
        remote.iov_len = BLOCK;
    }

    /// The slot holding the block at `base`, if cached. Async-signal-safe.
    fn slot_of(&self, base: usize) -> Option<usize> {
        self.cache
            .tags
            .iter()
            .position(|t| t.load(Ordering::Relaxed) == base)
    }

    /// The index of the cached copy of the block at `base`, reading it if
    /// needed. Async-signal-safe.
    fn block(&self, base: usize) -> Result<usize, BadAddress> {
        if let Some(i) = self.slot_of(base) {
            return Ok(i);
        }
        let i = self.cache.next.fetch_add(1, Ordering::Relaxed) % BLOCKS;
        self.cache.tags[i].store(0, Ordering::Relaxed);
        // SAFETY: exclusive use of the cache during one dump (see BlockCache);
        // no reference to block `i` is alive (its tag was cleared).
        let block = unsafe { &mut (*self.cache.blocks.get())[i] };
        self.inner.read_bytes(base, block)?;
        self.cache.tags[i].store(base, Ordering::Relaxed);
        Ok(i)
    }
}

impl<M: Memory> Memory for Cached<'_, M> {
    /// The blocks of up to [`PREFETCH_MAX`] of `addrs` not cached yet, in
    /// one system call. Blocks past one that cannot be read are left out
    /// (read on demand, or found unreadable, later). Async-signal-safe.
    fn prefetch(&self, addrs: &[usize]) {
        if !self.inner.batches() {
            return;
        }
        let mut local = [NO_IOVEC; PREFETCH_MAX];
        let mut remote = [NO_IOVEC; PREFETCH_MAX];
        let mut slots = [0usize; PREFETCH_MAX];
        let mut bases = [0usize; PREFETCH_MAX];
        let mut count = 0;
        for &addr in addrs {
            if count == PREFETCH_MAX {
                break;
            }
            let base = addr & !(BLOCK - 1);
            if plausible(base, BLOCK).is_err()
                || self.slot_of(base).is_some()
                || bases.get(..count).is_some_and(|b| b.contains(&base))
            {
                continue;
            }
            // At most half the cache per call: distinct slots.
            let i = self.cache.next.fetch_add(1, Ordering::Relaxed) % BLOCKS;
            self.cache.tags[i].store(0, Ordering::Relaxed);
            self.describe(i, base, &mut local[count], &mut remote[count]);
            slots[count] = i;
            bases[count] = base;
            count += 1;
        }
        let fresh = self.inner.read_vectored(&local[..count], &remote[..count]) / BLOCK;
        for k in 0..fresh.min(count) {
            self.cache.tags[slots[k]].store(bases[k], Ordering::Relaxed);
        }
    }

    /// Async-signal-safe.
    fn read_bytes(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        plausible(addr, dst.len())?;
        let mut done = 0;
        while done < dst.len() {
            let at = addr + done;
            let base = at & !(BLOCK - 1);
            let offset = at - base;
            let take = (BLOCK - offset).min(dst.len() - done);
            let i = match self.block(base) {
                Ok(i) => i,
                // A block that cannot be read whole (never for an aligned
                // page, but cheap to handle): read the range itself.
                Err(_) => return self.inner.read_bytes(addr, dst),
            };
            // SAFETY: as in `block`: the cache is ours for this dump.
            let block = unsafe { &(*self.cache.blocks.get())[i] };
            if let (Some(out), Some(src)) = (
                dst.get_mut(done..done + take),
                block.get(offset..offset + take),
            ) {
                out.copy_from_slice(src);
            }
            done += take;
        }
        Ok(())
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
    fn works(&self) -> bool {
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
        for (i, chunk) in dst.chunks_mut(4096).enumerate() {
            let from = addr + i * 4096;
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
                    Ok(n) if n > 0 => got += n,
                    _ => break,
                }
            }
            if written != chunk.len() || got != written {
                result = Err(BadAddress(from));
                break;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_reader_reads_and_refuses() {
        let m = LocalChecked::new();
        assert!(m.works());
        let value: u64 = 42;
        assert_eq!(m.read::<u64>(&value as *const u64 as usize), Ok(42));
        assert!(m.read::<u64>(0).is_err());
        assert!(m.read::<u64>(8).is_err());
        // An address that is plausible but unmapped: the top of user space.
        assert!(m.read::<u64>((1usize << 47) - 4096).is_err());
    }

    #[test]
    fn cached_reader_reads_across_blocks() {
        static CACHE: BlockCache = BlockCache::new();
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let m = Cached {
            inner: LocalChecked::new(),
            cache: &CACHE,
        };
        let mut out = vec![0u8; 3000];
        m.read_bytes(data.as_ptr() as usize + 700, &mut out)
            .unwrap();
        assert_eq!(&out[..], &data[700..3700]);
        // Served again from the cache.
        m.read_bytes(data.as_ptr() as usize + 701, &mut out[..10])
            .unwrap();
        assert_eq!(&out[..10], &data[701..711]);
        assert!(m.read::<u64>(8).is_err());
        CACHE.clear();
    }

    #[test]
    fn prefetch_and_refresh_change_no_result() {
        static CACHE: BlockCache = BlockCache::new();
        let mut data: Vec<u64> = (0..4096u64).collect(); // 32 KiB: 8+ blocks
        let base = data.as_ptr() as usize;
        let m = Cached {
            inner: LocalChecked::new(),
            cache: &CACHE,
        };
        // An unreadable address in the middle: the blocks after it are left
        // to on-demand reads, which still see the right bytes.
        let unmapped = (1usize << 47) - 4096;
        m.prefetch(&[base, base + 8192, unmapped, base + 16384, base + 24576]);
        for i in [0usize, 1024, 2048, 3072, 4095] {
            assert_eq!(m.read::<u64>(base + i * 8), Ok(i as u64));
        }
        assert!(m.read::<u64>(unmapped).is_err());
        // Blocks read again after the memory changed show the new bytes.
        data[5] = 77;
        data[3000] = 99;
        m.refresh();
        assert_eq!(m.read::<u64>(base + 5 * 8), Ok(77));
        assert_eq!(m.read::<u64>(base + 3000 * 8), Ok(99));
        CACHE.clear();
    }

    #[test]
    fn pipe_reader_reads_and_refuses() {
        static SLOT: PipeSlot = PipeSlot::new();
        let m = SLOT.probe().unwrap();
        assert!(m.works());
        let data: Vec<u8> = (0..10000u32).map(|i| (i % 253) as u8).collect();
        let mut out = vec![0u8; 9000];
        m.read_bytes(data.as_ptr() as usize + 500, &mut out)
            .unwrap();
        assert_eq!(&out[..], &data[500..9500]);
        assert!(m.read::<u64>((1usize << 47) - 4096).is_err());
        assert!(m.read::<u64>(8).is_err());
        // Still usable after a refused read: nothing was left in the pipe.
        assert_eq!(m.read::<u8>(data.as_ptr() as usize + 7), Ok(data[7]));
    }

    #[test]
    fn unchecked_reader_rejects_null_page() {
        assert!(LocalUnchecked.read::<u64>(16).is_err());
        let value: u32 = 7;
        assert_eq!(
            LocalUnchecked.read::<u32>(&value as *const u32 as usize),
            Ok(7)
        );
    }
}
