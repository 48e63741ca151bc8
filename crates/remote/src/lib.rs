//! lastwords-remote: another process, up to the point where the walker can
//! start reading its interpreter.
//!
//! * [`maps`]: `/proc/PID/maps`, parsed as hostile input.
//! * [`elf`]: the file behind a mapping (through the target's own root):
//!   symbols, sections, load segments, build-id.
//! * [`discover`]: which mapping is the interpreter, its version and build,
//!   and the addresses the walker needs, validated. [`discover::discover`] is
//!   the one call from a pid to an [`discover::Interpreter`].
//! * [`facts`]: per-version facts the walker's layouts lack (the GIL, kernel
//!   thread ids, the interpreter list), as data.
//! * [`native`]: native stacks (`--native`): registers unwound by
//!   lastwords-core's unwinder, frames named from the target's files.
//! * [`attach`]: `--pause`: every thread stopped with ptrace, always resumed.
//! * [`error`]: one line per failure, saying what to do.
//! * [`source`]: what discovery reads through: a [`source::LiveProcess`], or
//!   a core file ([`core_source::CoreSource`], over [`core_file`], which
//!   [`decompress`] opens when systemd-coredump compressed it).
//!
//! Memory of a live target is read through lastwords-core's `ProcessMemory`
//! (`process_vm_readv`); a core is its own `Memory`.
//!
//! How `lastwords dump PID` uses it:
//!
//! ```no_run
//! use lastwords_core::memory::ProcessMemory;
//! use lastwords_remote::{attach, discover};
//! # fn main() -> Result<(), lastwords_remote::RemoteError> {
//! let pid = 1234;
//! let interp = discover(pid)?; // ~0.1-0.4 ms; the target keeps running
//! // Through the pid, or through a thread that runs once the main one exited.
//! let reader = lastwords_remote::error::reader_task(pid).unwrap_or(pid);
//! let mem = ProcessMemory::new(reader);
//! // --pause: every thread stopped until `paused` is dropped or resumed.
//! let paused = attach::pause(pid, std::time::Duration::from_secs(2))?;
//! let tasks = lastwords_remote::discover::task_ids(pid);
//! let threads = interp.read_threads(&mem, &tasks)?; // tids, GIL holder
//! // walk: interp.layout (lastwords-core's Layout, 2.7 included),
//! // interp.known_types(), interp.interp_head, through `mem`.
//! drop(paused);
//! # let _ = threads; Ok(()) }
//! ```
//!
//! A core file instead of a pid:
//!
//! ```no_run
//! use lastwords_remote::core_file::CoreFile;
//! use lastwords_remote::core_source::{CoreOptions, CoreSource};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let core = CoreFile::open("core.1234".as_ref())?;
//! let source = CoreSource::new(core, CoreOptions::default())?;
//! let interp = lastwords_remote::discover::discover_in(&source)?;
//! // walk through `source` (a lastwords-core `Memory`).
//! # let _ = interp; Ok(()) }
//! ```
//!
//! Every failure is a [`RemoteError`] whose `Display` is one line for the
//! user. See OFFSETS.md for the per-version facts and their sources.

#![deny(unsafe_code)]

pub mod attach;
pub mod core_file;
pub mod core_source;
pub mod decompress;
pub mod discover;
pub mod elf;
pub mod error;
pub mod facts;
pub mod maps;
pub mod native;
pub mod source;
pub mod symbol_index;
mod x86;

pub use discover::{Interpreter, discover, discover_in};
pub use error::RemoteError;
