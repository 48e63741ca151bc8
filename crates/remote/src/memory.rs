//! Reading another process's memory: `process_vm_readv(2)`.
//!
//! Read-only by construction (no write path exists), and every address the
//! walker passes comes from the target, so each read is checked by the
//! kernel (an unmapped address is an error, never a fault here).

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]
#![allow(unsafe_code)]

use lastwords_core::cpython::memory::{BadAddress, Memory};

/// User space ends below 2^57 even with 5-level page tables.
const USER_END: usize = 1 << 57;
/// The NULL page and its neighbours are never objects.
const LOW_LIMIT: usize = 0x1000;

/// The memory of process `pid` (any thread of it: they share it).
#[derive(Clone, Copy, Debug)]
pub struct ProcessMemory {
    pid: libc::pid_t,
}

impl ProcessMemory {
    pub fn new(pid: i32) -> Self {
        ProcessMemory { pid }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// A NUL-terminated string of at most `max` bytes at `addr` (read in
    /// one call; a string that runs into an unmapped page is read up to it).
    pub fn read_c_string(&self, addr: usize, max: usize) -> Result<Vec<u8>, BadAddress> {
        let mut buf = vec![0u8; max];
        let mut len = max;
        // Shrink to the end of the page if the whole range is not readable.
        if self.read_bytes(addr, &mut buf).is_err() {
            let to_page_end = 4096usize.wrapping_sub(addr & 4095);
            len = len.min(to_page_end);
            let part = buf.get_mut(..len).ok_or(BadAddress(addr))?;
            self.read_bytes(addr, part)?;
        }
        let text = buf.get(..len).ok_or(BadAddress(addr))?;
        let nul = text.iter().position(|&b| b == 0).ok_or(BadAddress(addr))?;
        Ok(text.get(..nul).ok_or(BadAddress(addr))?.to_vec())
    }
}

/// Reject what can never be a readable range of user memory.
fn plausible(addr: usize, len: usize) -> Result<(), BadAddress> {
    match addr.checked_add(len) {
        Some(end) if addr >= LOW_LIMIT && end <= USER_END => Ok(()),
        _ => Err(BadAddress(addr)),
    }
}

impl Memory for ProcessMemory {
    fn read_bytes(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        plausible(addr, dst.len())?;
        if dst.is_empty() {
            return Ok(());
        }
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

    fn batches(&self) -> bool {
        true
    }

    /// One `process_vm_readv` (at most IOV_MAX ranges are passed on).
    fn read_vectored(&self, local: &[libc::iovec], remote: &[libc::iovec]) -> usize {
        const IOV_MAX: usize = 1024;
        let local = local.get(..local.len().min(IOV_MAX)).unwrap_or(&[]);
        let remote = remote.get(..remote.len().min(IOV_MAX)).unwrap_or(&[]);
        if local.is_empty() || remote.is_empty() {
            return 0;
        }
        // SAFETY: `local` describes live buffers of the caller; `remote`
        // describes ranges of the other process, which the kernel checks
        // (EFAULT, or a short count, instead of a fault). Both counts are at
        // most IOV_MAX.
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
        usize::try_from(n).unwrap_or(0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_process_and_refuses_bad_addresses() {
        let m = ProcessMemory::new(std::process::id() as i32);
        let value: u64 = 0x1122_3344_5566_7788;
        assert_eq!(m.read::<u64>(&value as *const u64 as usize), Ok(value));
        assert!(m.read::<u64>(0).is_err());
        assert!(m.read::<u64>(usize::MAX - 3).is_err());
        assert!(m.read::<u64>((1usize << 47) - 4096).is_err());
        let text = b"hello\0world";
        assert_eq!(
            m.read_c_string(text.as_ptr() as usize, 64).unwrap(),
            b"hello"
        );
        // No such process: every read fails.
        let gone = ProcessMemory::new(i32::MAX);
        assert!(gone.read::<u64>(&value as *const u64 as usize).is_err());
    }
}
