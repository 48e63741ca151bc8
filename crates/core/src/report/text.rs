//! The stdlib's text, version by version ([`Format`]): the sink that makes a
//! traversal print what `faulthandler` prints, byte for byte, and the pieces
//! of a report that are not threads (the extension-module list).
//!
//! Every function here is async-signal-safe: no allocation, no locks, no
//! panics, bounded loops.

use super::{
    GilHolder, Limits, MAX_STRING_LENGTH, Marker, ReportSink, ThreadHeader, ThreadNames,
    ThreadsEnd, Traversal,
};
use crate::cpython::walk::{Frame, Str, Walker};
use crate::memory::Memory;
use crate::writer::{Sink, Writer};

/// `sys.modules` entries whose module objects are fetched together.
const MODULE_BATCH: usize = 32;

/// Marker printed instead of a frame that cannot be read. The stdlib would
/// fault here; lastwords ends that thread's listing and goes on.
pub const INVALID_FRAME: &str = "  <invalid frame>";
/// Marker printed when the next thread state cannot be read: the dump ends.
pub const INVALID_THREAD: &str = "<invalid thread state>";

/// The output details that differ between versions of the stdlib, and the
/// additions lastwords can make (off in the stdlib's own dialect).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// `<no Python frame>` is indented by two spaces (3.10+).
    pub no_frame_indented: bool,
    /// `  ...` after the 100th frame (≤3.12; 3.13 prints nothing).
    pub frame_limit_marker: bool,
    /// `Extension modules: ...` after a fatal error (3.10+).
    pub extension_modules: bool,
    /// `Garbage-collecting` under the current thread's header (3.10+).
    pub gc_line: bool,
    /// The SIGFPE name: "Floating point exception", from 3.13
    /// "Floating-point exception".
    pub fpe_name: &'static str,
    /// ` [name]` after the thread id (3.14+).
    pub thread_names: bool,
    /// Skipped shim frames count toward the frame limit (3.14+).
    pub shims_count: bool,
    /// A submodule is left out of the extension list when its top-level
    /// package is a stdlib name (`math.integer`, 3.15+).
    pub stdlib_by_package: bool,
    /// A frame printed with `???` for its file, line or function ends the
    /// thread's listing with `  <invalid frame>` (3.14+).
    pub stop_after_unknown: bool,
    /// lastwords' addition for dumps of another process: `, holds the GIL`
    /// in the header of the thread that holds it.
    pub gil_marker: bool,
}

impl Format {
    /// The format of the stdlib of CPython `major`.`minor` (2.7: the
    /// faulthandler backport's, which prints like 3.9's).
    pub fn for_version(major: u8, minor: u8) -> Format {
        let minor = if major < 3 { 9 } else { minor };
        Format {
            no_frame_indented: minor >= 10,
            frame_limit_marker: minor <= 12,
            extension_modules: minor >= 10,
            gc_line: minor >= 10,
            fpe_name: if minor >= 13 {
                "Floating-point exception"
            } else {
                "Floating point exception"
            },
            thread_names: minor >= 14,
            shims_count: minor >= 14,
            stdlib_by_package: minor >= 15,
            stop_after_unknown: minor >= 14,
            gil_marker: false,
        }
    }

    /// The format of the stdlib of CPython 3.`minor`.
    pub fn for_minor(minor: u8) -> Format {
        Format::for_version(3, minor)
    }
}

/// Names to leave out of the extension-module list: `sys.stdlib_module_names`
/// (sorted, captured with the GIL before any signal) and lastwords' own module.
pub struct ModuleFilter {
    pub sorted_stdlib_names: &'static [&'static str],
    pub own_module: &'static str,
}

impl ModuleFilter {
    /// Whether the module named `name` is left out; with `by_package`, a
    /// stdlib name matches the top-level package (3.15+). Async-signal-safe.
    fn excludes(&self, name: &[u8], by_package: bool) -> bool {
        let stdlib_key = if by_package {
            name.split(|&b| b == b'.').next().unwrap_or(name)
        } else {
            name
        };
        name == self.own_module.as_bytes()
            || self
                .sorted_stdlib_names
                .binary_search_by(|probe| probe.as_bytes().cmp(stdlib_key))
                .is_ok()
    }
}

/// A string as `_Py_DumpASCII` writes it: the first `max` code points,
/// escaped, then `...` if it was longer. One-byte strings (the usual file and
/// function names) are read in one piece and their printable runs copied
/// whole. Async-signal-safe.
pub fn write_str<M: Memory, S: Sink>(
    walker: &Walker<'_, M>,
    out: &mut Writer<S>,
    s: Str,
    max: usize,
) {
    let shown = s.length.min(max);
    let mut latin1 = [0u8; MAX_STRING_LENGTH];
    let fast = s.kind == 1
        && latin1
            .get_mut(..shown)
            .is_some_and(|dst| walker.mem.read_bytes(s.data, dst).is_ok());
    if fast {
        let mut rest = latin1.get(..shown).unwrap_or(&[]);
        while !rest.is_empty() {
            let run = rest
                .iter()
                .take_while(|b| (0x20..=0x7e).contains(*b))
                .count();
            let (printable, tail) = rest.split_at(run);
            out.bytes(printable);
            match tail.split_first() {
                Some((&b, tail)) => {
                    out.escaped_char(u32::from(b));
                    rest = tail;
                }
                None => rest = tail,
            }
        }
    } else {
        for ch in walker.chars(s).take(max) {
            out.escaped_char(ch);
        }
    }
    if s.length > max {
        out.str("...");
    }
}

/// A `str` object as `_Py_DumpASCII` writes it; returns false (and writes
/// nothing) if the object is not a readable `str`. Async-signal-safe.
pub fn write_ascii<M: Memory, S: Sink>(
    walker: &Walker<'_, M>,
    out: &mut Writer<S>,
    obj: usize,
    max: usize,
) -> bool {
    match walker.str(obj) {
        Ok(Some(s)) => {
            write_str(walker, out, s, max);
            true
        }
        _ => false,
    }
}

/// The stdlib's text of a traversal.
pub struct TextSink<'o, S: Sink> {
    pub out: &'o mut Writer<S>,
    pub format: Format,
    pub max_string: usize,
    /// Thread blocks started so far (a blank line separates them).
    threads: usize,
}

impl<'o, S: Sink> TextSink<'o, S> {
    /// Async-signal-safe.
    pub fn new(out: &'o mut Writer<S>, format: Format, max_string: usize) -> Self {
        TextSink {
            out,
            format,
            max_string,
            threads: 0,
        }
    }

    /// The blank line between blocks. Async-signal-safe.
    fn separate(&mut self) {
        if self.threads > 0 {
            self.out.end_line();
        }
    }
}

impl<M: Memory, S: Sink> ReportSink<M> for TextSink<'_, S> {
    /// `Current thread 0x... (most recent call first):` or `Thread 0x...`,
    /// with ` [name]` from 3.14 on. Async-signal-safe.
    fn thread(&mut self, _walker: &Walker<'_, M>, h: &ThreadHeader<'_>) {
        self.separate();
        self.threads = self.threads.saturating_add(1);
        let out = &mut *self.out;
        out.str(if h.is_current {
            "Current thread 0x"
        } else {
            "Thread 0x"
        });
        out.hex(h.thread_id, 16);
        if let Some(name) = h.name {
            out.str(" [");
            out.bytes(name);
            out.byte(b']');
        }
        out.str(if self.format.gil_marker && h.holds_gil == Some(true) {
            " (most recent call first, holds the GIL):"
        } else {
            " (most recent call first):"
        });
        out.end_line();
        if h.gc_collecting && self.format.gc_line {
            out.str("  Garbage-collecting");
            out.end_line();
        }
    }

    /// Async-signal-safe.
    fn stack(&mut self) {
        self.out.str("Stack (most recent call first):");
        self.out.end_line();
    }

    /// `  File "name", line N in func`. Async-signal-safe.
    fn frame(&mut self, walker: &Walker<'_, M>, f: &Frame) -> bool {
        let out = &mut *self.out;
        let mut complete = true;
        out.str("  File ");
        if let Ok(Some(filename)) = walker.str(f.filename) {
            out.byte(b'"');
            write_str(walker, out, filename, self.max_string);
            out.byte(b'"');
        } else {
            out.str("???");
            complete = false;
        }
        out.str(", line ");
        match u64::try_from(f.line) {
            Ok(line) => out.decimal(line),
            Err(_) => {
                out.str("???");
                complete = false;
            }
        }
        out.str(" in ");
        if !write_ascii(walker, out, f.name, self.max_string) {
            out.str("???");
            complete = false;
        }
        out.end_line();
        if !complete && self.format.stop_after_unknown {
            out.str(INVALID_FRAME);
            out.end_line();
            return false;
        }
        true
    }

    /// Async-signal-safe.
    fn marker(&mut self, marker: Marker) {
        let out = &mut *self.out;
        match marker {
            Marker::NoPythonFrame => {
                if self.format.no_frame_indented {
                    out.str("  ");
                }
                out.str("<no Python frame>");
            }
            Marker::InvalidFrame | Marker::Changed => out.str(INVALID_FRAME),
            Marker::FrameLimit => {
                if !self.format.frame_limit_marker {
                    return;
                }
                out.str("  ...");
            }
        }
        out.end_line();
    }

    /// Async-signal-safe.
    fn threads_end(&mut self, why: ThreadsEnd) {
        self.separate();
        self.out.str(match why {
            ThreadsEnd::Limit => "...",
            ThreadsEnd::InvalidThread => INVALID_THREAD,
        });
        self.out.end_line();
    }
}

/// A text report bound to one walker, format and writer: what every dump
/// path of this process prints.
pub struct TextReport<'w, 'a, M: Memory, S: Sink> {
    pub walker: &'w Walker<'a, M>,
    pub format: &'w Format,
    pub out: &'w mut Writer<S>,
}

/// The traversal this process's reports use: the stdlib's limits (with
/// 3.15's `max_threads`), thread names where the format prints them.
/// Async-signal-safe.
fn own_traversal<'w, 'a, M: Memory>(
    walker: &'w Walker<'a, M>,
    format: &Format,
    max_threads: usize,
) -> Traversal<'w, 'a, M> {
    Traversal {
        walker,
        limits: Limits {
            max_threads,
            ..Limits::STDLIB
        },
        shims_count: format.shims_count,
        names: if format.thread_names {
            ThreadNames::OwnProcess
        } else {
            ThreadNames::None
        },
        gil: GilHolder::Unknown,
        tids: super::TidSource::Layout,
        recheck: None,
    }
}

impl<M: Memory, S: Sink> TextReport<'_, '_, M, S> {
    /// What every dump path prints for its threads: all of them (at most
    /// `max_threads`, then `...`), or the calling thread's stack under a
    /// `Stack` header (nothing if the calling thread has no thread state).
    /// `current` is the calling thread's state (0: none). Returns the
    /// stdlib's error text when there is nothing to walk. Async-signal-safe.
    pub fn threads(
        &mut self,
        all_threads: bool,
        interp: usize,
        current: usize,
        max_threads: usize,
    ) -> Result<(), &'static str> {
        let traversal = own_traversal(self.walker, self.format, max_threads);
        let mut sink = TextSink::new(self.out, *self.format, MAX_STRING_LENGTH);
        if all_threads {
            let interp = match current {
                0 => interp,
                t => self.walker.thread_interp(t).unwrap_or(interp),
            };
            traversal.all_threads(&mut sink, interp, current)
        } else {
            if current != 0 {
                traversal.stack(&mut sink, current);
            }
            Ok(())
        }
    }

    /// `\nExtension modules: a, b (total: N)\n` (3.10+), like
    /// `_Py_DumpExtensionModules`. Async-signal-safe.
    pub fn extension_modules(&mut self, interp: usize, filter: &ModuleFilter) {
        if !self.format.extension_modules || interp == 0 {
            return;
        }
        let walker = self.walker;
        let Ok(modules) = walker.modules_dict(interp) else {
            return;
        };
        if modules == 0 {
            return;
        }
        let Ok(mut items) = walker.dict_items(modules) else {
            return;
        };
        let mut count: u64 = 0;
        // A batch of entries at a time: the module objects of a batch are
        // fetched together (one system call with the checked reader, instead
        // of one per module).
        let mut batch = [(0usize, 0usize); MODULE_BATCH];
        let mut values = [0usize; MODULE_BATCH];
        let mut unreadable = false;
        while !unreadable {
            let mut len = 0;
            for item in items.by_ref() {
                // An entry that cannot be read ends the list.
                let Ok(pair) = item else {
                    unreadable = true;
                    break;
                };
                if let (Some(b), Some(v)) = (batch.get_mut(len), values.get_mut(len)) {
                    *b = pair;
                    *v = pair.1;
                    len = len.saturating_add(1);
                }
                if len >= MODULE_BATCH {
                    break;
                }
            }
            let (Some(batch), Some(values)) = (batch.get(..len), values.get_mut(..len)) else {
                break;
            };
            if batch.is_empty() {
                break;
            }
            walker.mem.prefetch(values);
            // Then the PyModuleDef structs they point to (extension modules'
            // data, one page each), read next to decide what is an extension.
            for value in values.iter_mut() {
                *value = walker.module_def_hint(*value);
            }
            walker.mem.prefetch(values);
            for &(key, value) in batch {
                if self.extension_module(key, value, filter, count) {
                    count = count.saturating_add(1);
                }
            }
        }
        if count > 0 {
            self.out.str(" (total: ");
            self.out.decimal(count);
            self.out.byte(b')');
            self.out.end_line();
        }
    }

    /// One entry of `sys.modules` for the extension list: printed (after
    /// `listed` others) when it is an extension outside the stdlib. Returns
    /// whether it was. Async-signal-safe.
    fn extension_module(
        &mut self,
        key: usize,
        value: usize,
        filter: &ModuleFilter,
        listed: u64,
    ) -> bool {
        let walker = self.walker;
        // The module first: most are not extensions, and their keys then
        // need not be read at all.
        if walker.is_extension_module(value) != Ok(true) {
            return false;
        }
        let Ok(Some(name)) = walker.str(key) else {
            return false;
        };
        // Module names to compare are short ASCII; anything else is not a
        // stdlib name.
        let mut buf = [0u8; 128];
        let mut len = 0;
        if name.length <= buf.len() {
            for ch in walker.chars(name) {
                match (u8::try_from(ch), buf.get_mut(len)) {
                    (Ok(b), Some(slot)) if b < 0x80 => {
                        *slot = b;
                        len = len.saturating_add(1);
                    }
                    _ => break,
                }
            }
        }
        let by_package = self.format.stdlib_by_package;
        if len == name.length
            && buf
                .get(..len)
                .is_some_and(|n| filter.excludes(n, by_package))
        {
            return false;
        }
        self.out.str(if listed == 0 {
            "\nExtension modules: "
        } else {
            ", "
        });
        write_ascii(walker, self.out, key, MAX_STRING_LENGTH);
        true
    }
}
