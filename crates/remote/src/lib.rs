//! lastwords-remote: another process, up to the point where the walker can
//! start reading its interpreter.
//!
//! * [`maps`]: `/proc/PID/maps`, parsed as hostile input.
//! * [`elf`]: the file behind a mapping (through the target's own root):
//!   symbols, sections, load segments, build-id.
//! * [`discover`]: which mapping is the interpreter, its version and build,
//!   and the addresses the walker needs, validated. [`discover::discover`] is
//!   the one call from a pid to an [`discover::Interpreter`].
//! * [`facts`]: per-version facts the walker's layouts lack (CPython 2.7's
//!   whole layout, the GIL, kernel thread ids), as data.
//! * [`memory`]: a [`lastwords_core::cpython::memory::Memory`] of another
//!   process (`process_vm_readv`).
//! * [`attach`]: `--pause`: every thread stopped with ptrace, always resumed.
//! * [`error`]: one line per failure, saying what to do.

//!
//! How `lastwords dump PID` uses it:
//!
//! ```no_run
//! use lastwords_remote::{attach, discover, memory::ProcessMemory};
//! # fn main() -> Result<(), lastwords_remote::RemoteError> {
//! let pid = 1234;
//! let interp = discover(pid)?; // ~0.1-0.4 ms; the target keeps running
//! let mem = ProcessMemory::new(pid);
//! // --pause: every thread stopped until `paused` is dropped or resumed.
//! let paused = attach::pause(pid, std::time::Duration::from_secs(2))?;
//! let threads = interp.read_threads(&mem)?; // tids, GIL holder
//! // walk: interp.layout (3.x: lastwords-core's Layout; 2.7: facts::Layout27),
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
pub mod memory;
mod x86;

pub use discover::{Interpreter, discover};
pub use error::RemoteError;
