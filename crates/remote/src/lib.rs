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
