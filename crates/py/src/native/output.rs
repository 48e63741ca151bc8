//! The stdlib's C stack section, in the format of CPython's
//! `_Py_DumpStack` / `_Py_backtrace_symbols_fd`:
//!
//! ```text
//! Current thread's C stack trace (most recent call first):
//!   Binary file "python3.14", at _PyEval_EvalFrameDefault+0x4a [0x49b2f9]
//!   Binary file "/usr/lib/x86_64-linux-gnu/libc.so.6", at +0x406b0 [0x7f...]
//!   Binary file '<unknown>' [0x7f...]
//!   <truncated rest of calls>
//! ```
//!
//! Names are printed raw, as the stdlib prints them (no demangling).

use super::{MAX_FRAMES, SUPPORTED};
use crate::memory::Memory;
use crate::writer::{Sink, Writer};
use lastwords_core::unwind::objects::Objects;
use lastwords_core::unwind::symbolise::{Files, Frame, Name, Symbolised};

/// Write the section for `frames`. Async-signal-safe.
pub fn write_section<M: Memory, F: Files, S: Sink>(
    objects: &Objects<'_, M>,
    files: &F,
    out: &mut Writer<S>,
    frames: &[usize],
    leading_blank_line: bool,
) {
    if leading_blank_line {
        out.end_line();
    }
    out.str("Current thread's C stack trace (most recent call first):");
    out.end_line();
    if !SUPPORTED {
        out.str("  <cannot get C stack on this system>");
        out.end_line();
        return;
    }
    if frames.is_empty() {
        out.str("  <system returned no stack trace>");
        out.end_line();
        return;
    }
    let shown = frames.get(..frames.len().min(MAX_FRAMES)).unwrap_or(&[]);
    let named = Symbolised::new(objects, files, shown);
    for frame in named.frames() {
        write_frame(objects.mem(), &named, out, frame);
    }
    if frames.len() >= MAX_FRAMES {
        out.str("  <truncated rest of calls>");
        out.end_line();
    }
}

/// Whether a name is empty. Async-signal-safe.
fn name_is_empty(mem: &impl Memory, name: Name<'_>) -> bool {
    match name {
        Name::Bytes(bytes) => bytes.is_empty(),
        Name::Remote(0) => true,
        Name::Remote(at) => mem.read::<u8>(at).map_or(true, |b| b == 0),
    }
}

/// Write a name (a remote one up to its NUL, at most 4 KiB).
/// Async-signal-safe.
pub fn write_name<M: Memory, S: Sink>(mem: &M, out: &mut Writer<S>, name: Name<'_>) {
    match name {
        Name::Bytes(bytes) => out.bytes(bytes),
        Name::Remote(mut at) => {
            let mut chunk = [0u8; 64];
            let mut total = 0usize;
            while total < 4096 && at != 0 {
                // Never cross a page: the next one may be unmapped.
                let n = chunk.len().min(4096usize.wrapping_sub(at & 4095));
                let Some(dst) = chunk.get_mut(..n) else {
                    return;
                };
                if mem.read_bytes(at, dst).is_err() {
                    return;
                }
                match dst.iter().position(|&b| b == 0) {
                    Some(end) => {
                        out.bytes(dst.get(..end).unwrap_or(&[]));
                        return;
                    }
                    None => out.bytes(dst),
                }
                at = at.wrapping_add(n);
                total = total.saturating_add(n);
            }
        }
    }
}

/// One frame's line. Async-signal-safe.
fn write_frame<M: Memory, S: Sink>(
    mem: &M,
    named: &Symbolised,
    out: &mut Writer<S>,
    frame: &Frame,
) {
    let object = frame
        .object
        .filter(|o| !name_is_empty(mem, Name::Remote(o.name)))
        .map(|o| (Name::Remote(o.name), o.bias));
    let symbol = frame.symbol.map(|(start, name)| (start, named.name(name)));
    write_line(mem, out, frame.addr, object, symbol);
}

/// One line, in the stdlib's `_Py_backtrace_symbols_fd` format: `object` is
/// the object's name and load bias, `symbol` the start and name of the
/// symbol containing the address. Async-signal-safe.
pub fn write_line<M: Memory, S: Sink>(
    mem: &M,
    out: &mut Writer<S>,
    addr: usize,
    object: Option<(Name<'_>, usize)>,
    symbol: Option<(usize, Option<Name<'_>>)>,
) {
    let Some((object, bias)) = object else {
        out.str("  Binary file '<unknown>' [0x");
        out.hex(addr as u64, 1);
        out.str("]");
        out.end_line();
        return;
    };
    out.str("  Binary file \"");
    write_name(mem, out, object);
    let (base, symbol) = match symbol {
        Some((start, name)) => (start, name),
        // No symbol: relative to the load bias, or bare when there is none
        // (a non-PIE executable).
        None if bias == 0 => {
            out.str("\" [0x");
            out.hex(addr as u64, 1);
            out.str("]");
            out.end_line();
            return;
        }
        None => (bias, None),
    };
    out.str("\", at ");
    if let Some(name) = symbol {
        write_name(mem, out, name);
    }
    if addr >= base {
        out.str("+0x");
        out.hex(addr.wrapping_sub(base) as u64, 1);
    } else {
        out.str("-0x");
        out.hex(base.wrapping_sub(addr) as u64, 1);
    }
    out.str(" [0x");
    out.hex(addr as u64, 1);
    out.str("]");
    out.end_line();
}
