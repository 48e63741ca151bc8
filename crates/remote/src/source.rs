//! What discovery reads a target through: a live process or a core file.
//!
//! Discovery needs three things of a target — which files are mapped where,
//! its memory, and the files themselves — plus a few facts for its checks
//! and messages (the pid, the main program, the kernel's thread ids). A
//! [`LiveProcess`] has them from `/proc/PID` and `process_vm_readv`; a
//! [`crate::core_source::CoreSource`] from a core's notes, segments and the
//! files they name. [`crate::discover::discover_in`] is written once, over
//! this trait.

use std::collections::HashSet;
use std::path::PathBuf;
use std::rc::Rc;

use lastwords_core::memory::{Memory, ProcessMemory};

use crate::elf::{MappedFile, OpenedThrough};
use crate::error::{RemoteError, classify};
use crate::maps::{self, Mapping};

/// A target discovery can read.
pub trait Source {
    type Mem: Memory;
    /// The process id (of the process a core was taken from).
    fn pid(&self) -> i32;
    /// A running process (it may exit while read), rather than a core.
    fn live(&self) -> bool;
    /// Its memory.
    fn memory(&self) -> &Self::Mem;
    /// Its file mappings (and, for a process, the others).
    fn mappings(&self) -> &[Mapping];
    /// The file behind a mapping, and how it was found.
    fn open(&self, m: &Mapping) -> std::io::Result<(Rc<MappedFile>, OpenedThrough)>;
    /// The main program, as the process saw it.
    fn executable(&self) -> Option<PathBuf>;
    /// The kernel thread ids of the process.
    fn tasks(&self) -> HashSet<u32>;
    /// Why the file of a mapping cannot be used, where the user must hear
    /// it (a core's file that is missing or another build): discovery then
    /// fails with that rather than "not a Python process".
    fn file_problem(&self, _m: &Mapping) -> Option<String> {
        None
    }
}

/// A running process, read through `/proc/PID` and `process_vm_readv`.
pub struct LiveProcess {
    pid: i32,
    /// The thread its address space is read through (see
    /// [`crate::error::reader_task`]): `pid`, unless its main thread exited.
    reader: i32,
    maps: Vec<Mapping>,
    mem: ProcessMemory,
}

impl LiveProcess {
    /// Read the mappings of `pid` (the process must exist and have some).
    pub fn new(pid: i32) -> Result<LiveProcess, RemoteError> {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() || pid <= 0 {
            return Err(RemoteError::NoSuchProcess(pid));
        }
        // No thread of it runs: a zombie, unless it is gone by now.
        let Some(reader) = crate::error::reader_task(pid) else {
            return Err(if std::path::Path::new(&format!("/proc/{pid}")).exists() {
                RemoteError::Zombie(pid)
            } else {
                RemoteError::Exited(pid)
            });
        };
        let maps = maps::read(reader).map_err(|e| classify(pid, "read the memory map of", e))?;
        if maps.is_empty() {
            // A kernel thread, or a process that exited since: nothing mapped.
            return Err(if crate::error::alive(pid) {
                RemoteError::NotPython {
                    pid,
                    exe: exe_name(reader),
                }
            } else {
                RemoteError::Exited(pid)
            });
        }
        Ok(LiveProcess {
            pid,
            reader,
            maps,
            mem: ProcessMemory::new(reader),
        })
    }

    /// The thread whose `/proc` entries and `process_vm_readv` reach the
    /// process's address space: the pid, or, when the main thread has
    /// exited, another thread of the process.
    pub fn reader(&self) -> i32 {
        self.reader
    }
}

/// `/proc/PID/exe`, for messages.
pub fn exe_name(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into())
}

impl Source for LiveProcess {
    type Mem = ProcessMemory;

    fn pid(&self) -> i32 {
        self.pid
    }

    fn live(&self) -> bool {
        true
    }

    fn memory(&self) -> &ProcessMemory {
        &self.mem
    }

    fn mappings(&self) -> &[Mapping] {
        &self.maps
    }

    fn open(&self, m: &Mapping) -> std::io::Result<(Rc<MappedFile>, OpenedThrough)> {
        crate::elf::open_mapped(self.reader, m).map(|(f, how)| (Rc::new(f), how))
    }

    fn executable(&self) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/{}/exe", self.reader)).ok()
    }

    fn tasks(&self) -> HashSet<u32> {
        crate::discover::task_ids(self.pid)
    }
}
