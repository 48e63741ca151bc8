//! Native stacks: what a C-stack unwinder needs besides the signal handler.
//!
//! Nothing here knows PyO3, signals, or which process it reads: every read of
//! target memory goes through a [`Memory`](crate::memory::Memory), and files
//! come in through [`symbolise::Files`]. The in-process C stack of CPython
//! 3.14+'s report (`crates/py/src/native/`) is built from these parts, and
//! so is `lastwords dump --native` (`lastwords-remote`'s `native`: registers
//! from ptrace or a core's notes, memory by `process_vm_readv` or the core).
//!
//! Modules, by job:
//! * [`regs`]: a register set in DWARF numbering, for this architecture.
//! * [`dwarf`]: DWARF call-frame information with gimli, read through a
//!   `Memory`: the FDE of a pc (`.eh_frame_hdr`), its row, the caller's
//!   registers.
//! * [`step`]: the unwinder: a CFI step, a frame-pointer step, the walk.
//! * [`objects`]: the loaded objects, from the dynamic loader's `link_map`
//!   list.
//! * [`dynsym`]: the `.dynsym` lookup `dladdr` does, in memory.
//! * [`image`]: the headers and symbol tables of an ELF file, read into an
//!   anonymous mapping (no heap, no file mapping that could fault).
//! * [`symbols`]: naming addresses from an image's `.symtab` and `.dynsym`
//!   (parsed with the `object` crate), batched per object.
//! * [`symbolise`]: the frames of a stack, named: file symbols where the
//!   file can be read and is the loaded one, else `.dynsym` in memory.
//!
//! Everything here is async-signal-safe unless its documentation says
//! otherwise: fixed-size state, checked arithmetic, bounded loops, no
//! allocation. What is still hand-written, and why, is in the README
//! (Architecture).

pub mod dwarf;
pub mod dynsym;
pub mod image;
pub mod objects;
pub mod regs;
pub mod step;
pub mod symbolise;
pub mod symbols;

#[cfg(test)]
mod tests;

pub use regs::{Regs, arch};
