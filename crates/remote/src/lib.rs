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
//! * [`attach`]: `--pause`: every thread stopped with ptrace, always resumed.
//! * [`error`]: one line per failure, saying what to do.
//!
//! Memory of the target is read through lastwords-core's `ProcessMemory`
//! (`process_vm_readv`).
//!
//! How `lastwords dump PID` uses it:
//!
//! ```no_run
//! use lastwords_core::memory::ProcessMemory;
//! use lastwords_remote::{attach, discover};
//! # fn main() -> Result<(), lastwords_remote::RemoteError> {
//! let pid = 1234;
//! let interp = discover(pid)?; // ~0.1-0.4 ms; the target keeps running
//! let mem = ProcessMemory::new(pid);
//! // --pause: every thread stopped until `paused` is dropped or resumed.
//! let paused = attach::pause(pid, std::time::Duration::from_secs(2))?;
//! let threads = interp.read_threads(&mem)?; // tids, GIL holder
//! // walk: interp.layout (lastwords-core's Layout, 2.7 included),
//! // interp.known_types(), interp.interp_head, through `mem`.
//! drop(paused);
//! # let _ = threads; Ok(()) }
//! ```
//!
//! Every failure is a [`RemoteError`] whose `Display` is one line for the
//! user. See OFFSETS.md for the per-version facts and their sources.

#![deny(unsafe_code)]

pub mod attach;
pub mod discover;
pub mod elf;
pub mod error;
pub mod facts;
pub mod maps;
mod x86;

pub use discover::{Interpreter, discover};
pub use error::RemoteError;
