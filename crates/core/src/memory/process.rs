//! Another process's memory, by `process_vm_readv(2)` on its pid: the
//! target of `lastwords dump PID`. Nothing is written to the target and it
//! need not be stopped; the kernel checks every range (an unmapped address,
//! or a process that exited, is an error, never a fault).

use super::{BadAddress, Memory, plausible, vm_readv};

/// Reads of process `pid`.
#[derive(Clone, Copy, Debug)]
pub struct ProcessMemory {
    pid: libc::pid_t,
}

impl ProcessMemory {
    pub fn new(pid: libc::pid_t) -> Self {
        ProcessMemory { pid }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// A NUL-terminated string of at most `max` bytes at `addr`, read in
    /// one call (a string that runs into an unmapped page is read up to it).
    /// Allocates: not for signal context.
    pub fn read_c_string(&self, addr: usize, max: usize) -> Result<Vec<u8>, BadAddress> {
        let mut buf = vec![0u8; max];
        let mut len = max;
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

impl Memory for ProcessMemory {
    /// Async-signal-safe.
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
        if vm_readv(self.pid, &[local], &[remote]) == dst.len() {
            Ok(())
        } else {
            Err(BadAddress(addr))
        }
    }

    /// Async-signal-safe.
    fn batches(&self) -> bool {
        true
    }

    /// Async-signal-safe.
    fn read_vectored(&self, local: &[libc::iovec], remote: &[libc::iovec]) -> usize {
        vm_readv(self.pid, local, remote)
    }
}

#[cfg(test)]
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
