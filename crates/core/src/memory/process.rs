//! Another process's memory, by `process_vm_readv(2)` on its pid: the
//! target of `lastwords dump PID`. Nothing is written to the target and it
//! need not be stopped; the kernel checks every range (an unmapped address,
//! or a process that exited, is an error, never a fault).

use super::{BadAddress, Memory, plausible, vm_readv};

/// Reads of process `pid`.
#[derive(Clone, Copy, Debug)]
pub struct ProcessMemory {
    pub pid: libc::pid_t,
}

impl Memory for ProcessMemory {
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
