//! lastwords-core: what a dump needs to read an interpreter and write its
//! report, whoever asks for it (a signal handler in the process, the
//! watchdog thread, or another process).
//!
//! No PyO3 and no signal handling here: this crate builds and is tested
//! without Python. Modules, from the bottom up:
//! * [`writer`]: the fd writer (fixed buffer, no allocation).
//! * [`memory`]: readers of this process, another process, a page cache.
//! * [`cpython`]: layouts, line tables and the walker.
//! * [`report`]: one traversal of threads and frames, into the stdlib's text
//!   (version by version) or JSON.
//! * [`procfs`]: thread names from /proc, signal-safely.
//! * [`unwind`]: native stacks: CFI, the unwinder's steps, loaded objects,
//!   symbol tables.

#![deny(unsafe_code)]
// Everything in this crate may run in a signal handler, on the watchdog's
// fire path, or on memory of another process: no panic may be reachable, in
// any build. Arithmetic on values read from a target is checked, slices are
// reached with `get`, nothing unwraps. (Unit tests may.)
#![cfg_attr(
    not(test),
    deny(
        clippy::arithmetic_side_effects,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::cast_possible_truncation,
    )
)]

pub mod cpython;
pub mod memory;
pub mod procfs;
pub mod report;
pub mod unwind;
pub mod writer;
