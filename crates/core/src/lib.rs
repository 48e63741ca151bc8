//! lastwords-core: what a dump needs to read an interpreter and write its
//! report, whoever asks for it (a signal handler in the process, the
//! watchdog thread, or another process).
//!
//! No PyO3 and no signal handling here: this crate builds and is tested
//! without Python. Modules, from the bottom up:
//! * [`writer`]: the fd writer (fixed buffer, no allocation).
//! * [`cpython`]: layouts, memory readers, line tables and the walker.
//! * [`dump`]: the renderer: the stdlib's text, version by version.
//! * [`procfs`]: thread names from /proc, signal-safely.

#![deny(unsafe_code)]

pub mod cpython;
pub mod dump;
pub mod procfs;
pub mod writer;
