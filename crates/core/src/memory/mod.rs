//! Reading interpreter memory: the one door the walker goes through.
//!
//! The walker never dereferences a pointer itself; it asks a [`Memory`] for
//! bytes at an address, and every reader treats the address as hostile:
//!
//! * [`local`]: this process. [`LocalUnchecked`] (plain loads, for explicit
//!   dumps with the GIL held), [`LocalChecked`] (`process_vm_readv(2)` on the
//!   own pid: an unmapped address is an error, not a second fault; the
//!   signal paths), [`PipeProbe`] (the same through a pipe, where seccomp
//!   refuses `process_vm_readv`), and [`SafeLocal`], the one chosen.
//! * [`process`]: another process (`lastwords dump PID`), by
//!   `process_vm_readv` on its pid.
//! * [`cache`]: a page cache in front of any of them ([`Cached`]).

#![allow(unsafe_code)]

pub mod cache;
pub mod local;
pub mod process;

pub use cache::{BlockCache, Cached};
pub use local::{
    LocalChecked, LocalUnchecked, PipeProbe, PipeSlot, ReadMethod, SafeLocal, choose_read_method,
    ensure_read_method, page_size, read_method,
};
pub use process::ProcessMemory;

use core::mem::MaybeUninit;

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

    /// The `len` bytes at `addr` in place, without a copy, from a reader of
    /// this very process whose reads are plain loads of memory that stays
    /// put during the dump ([`LocalUnchecked`]); None from every other
    /// reader, and for a range a plain read would refuse. Lets the hot paths
    /// scan strings and code objects where they are. Async-signal-safe.
    fn direct(&self, _addr: usize, _len: usize) -> Option<&[u8]> {
        None
    }

    /// A hint that the objects at `addrs` are about to be read: a caching
    /// reader may fetch their blocks together. Never changes what a later
    /// read returns. Async-signal-safe.
    fn prefetch(&self, _addrs: &[usize]) {}

    /// [`Memory::read_bytes`] of an object that never changes once made (a
    /// code object's fields, a string, a line table): a caching reader may
    /// keep such blocks for longer than one walk (see
    /// [`Cached::with_stable`]). Async-signal-safe.
    fn read_immutable(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        self.read_bytes(addr, dst)
    }

    /// One value of an immutable object ([`Memory::read_immutable`]).
    /// Async-signal-safe.
    fn read_immutable_value<T: Pod>(&self, addr: usize) -> Result<T, BadAddress> {
        let mut value = MaybeUninit::<T>::zeroed();
        // SAFETY: the slice covers exactly the (zero-initialised) bytes of `value`.
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(value.as_mut_ptr().cast::<u8>(), size_of::<T>())
        };
        self.read_immutable(addr, bytes)?;
        // SAFETY: T is Pod, so any bytes form a valid value; all were written.
        Ok(unsafe { value.assume_init() })
    }
}

/// Addresses below this are never valid objects (the NULL page and its
/// neighbours); rejecting them early saves a system call and catches
/// `NULL + offset` reads.
const LOW_ADDRESS_LIMIT: usize = 0x1000;

/// Reject what can never be a readable range of user memory. Async-signal-safe.
pub fn plausible(addr: usize, len: usize) -> Result<(), BadAddress> {
    match addr.checked_add(len) {
        // User space ends below 2^57, even with 5-level page tables.
        Some(end) if addr >= LOW_ADDRESS_LIMIT && end <= (1usize << 57) => Ok(()),
        _ => Err(BadAddress(addr)),
    }
}

/// One `process_vm_readv(2)` of `pid`: the number of bytes read, in order (the
/// kernel stops at the first range it cannot read), errno left as it was.
/// Async-signal-safe.
pub fn vm_readv(pid: libc::pid_t, local: &[libc::iovec], remote: &[libc::iovec]) -> usize {
    // The kernel refuses more than IOV_MAX ranges (EINVAL): pass the first
    // ones, and the caller sees a short count.
    const IOV_MAX: usize = 1024;
    let local = local.get(..local.len().min(IOV_MAX)).unwrap_or(&[]);
    let remote = remote.get(..remote.len().min(IOV_MAX)).unwrap_or(&[]);
    if local.is_empty() || remote.is_empty() {
        return 0;
    }
    let saved = crate::writer::errno_get();
    // SAFETY: `local` describes live, writable buffers of the caller; `remote`
    // is checked by the kernel (EFAULT/ESRCH instead of a fault).
    let n = unsafe {
        libc::process_vm_readv(
            pid,
            local.as_ptr(),
            local.len() as libc::c_ulong,
            remote.as_ptr(),
            remote.len() as libc::c_ulong,
            0,
        )
    };
    crate::writer::errno_set(saved);
    usize::try_from(n).unwrap_or(0)
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
        let m = Cached::new(LocalChecked::new(), &CACHE);
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
        let m = Cached::new(LocalChecked::new(), &CACHE);
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
