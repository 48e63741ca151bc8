//! What a dump prints: the renderer.
//!
//! It knows the stdlib's output format, version by version ([`Format`]), and
//! asks a [`Walker`] for threads, frames and strings; it never reads memory
//! itself and knows nothing of signals. Every function here is
//! async-signal-safe: no allocation, no locks, no panics, bounded loops.

use crate::cpython::memory::Memory;
use crate::cpython::walk::{Str, WalkResult, Walker};
use crate::procfs;
use crate::writer::{Sink, Writer};

/// Strings are cut after this many code points, then `...` (`MAX_STRING_LENGTH`).
pub const MAX_STRING_LENGTH: usize = 500;
/// Frames printed per thread (`MAX_FRAME_DEPTH`).
pub const MAX_FRAME_DEPTH: usize = 100;
/// `sys.modules` entries whose module objects are fetched together.
const MODULE_BATCH: usize = 32;

/// Threads printed per dump (`MAX_NTHREADS`; 3.15's `max_threads` default).
pub const MAX_THREADS: usize = 100;

/// Marker printed instead of a frame that cannot be read. The stdlib would
/// fault here; lastwords ends that thread's listing and goes on.
pub const INVALID_FRAME: &str = "  <invalid frame>";
/// Marker printed when the next thread state cannot be read: the dump ends.
pub const INVALID_THREAD: &str = "<invalid thread state>";

/// The output details that differ between versions of the stdlib.
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
}

impl Format {
    /// The format of the stdlib of CPython 3.`minor`.
    pub fn for_minor(minor: u8) -> Format {
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
        }
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

/// A renderer bound to one walker, format and writer.
pub struct Dumper<'w, 'a, M: Memory, S: Sink> {
    pub walker: &'w Walker<'a, M>,
    pub format: &'w Format,
    pub out: &'w mut Writer<S>,
}

impl<M: Memory, S: Sink> Dumper<'_, '_, M, S> {
    /// A `str` object as `_Py_DumpASCII` writes it; returns false (and writes
    /// nothing) if the object is not a readable `str`. Async-signal-safe.
    pub fn ascii(&mut self, obj: usize) -> bool {
        match self.walker.str(obj) {
            Ok(Some(s)) => {
                self.write_str(s);
                true
            }
            _ => false,
        }
    }

    /// The first 500 code points of a string, escaped, then `...` if it was
    /// longer. One-byte strings (the usual file and function names) are read
    /// in one piece and their printable runs copied whole. Async-signal-safe.
    fn write_str(&mut self, s: Str) {
        let shown = s.length.min(MAX_STRING_LENGTH);
        let mut latin1 = [0u8; MAX_STRING_LENGTH];
        let fast = s.kind == 1
            && latin1
                .get_mut(..shown)
                .is_some_and(|dst| self.walker.mem.read_bytes(s.data, dst).is_ok());
        if fast {
            let mut rest = latin1.get(..shown).unwrap_or(&[]);
            while !rest.is_empty() {
                let run = rest
                    .iter()
                    .take_while(|b| (0x20..=0x7e).contains(*b))
                    .count();
                let (printable, tail) = rest.split_at(run);
                self.out.bytes(printable);
                if let Some((&b, tail)) = tail.split_first() {
                    self.out.escaped_char(u32::from(b));
                    rest = tail;
                } else {
                    rest = tail;
                }
            }
        } else {
            for ch in self.walker.chars(s).take(MAX_STRING_LENGTH) {
                self.out.escaped_char(ch);
            }
        }
        if s.length > MAX_STRING_LENGTH {
            self.out.str("...");
        }
    }

    /// `  File "name", line N in func`. Async-signal-safe.
    fn frame(&mut self, frame: usize) -> WalkResult<()> {
        let f = self.walker.frame(frame)?;
        self.out.str("  File ");
        if let Ok(Some(filename)) = self.walker.str(f.filename) {
            self.out.byte(b'"');
            self.write_str(filename);
            self.out.byte(b'"');
        } else {
            self.out.str("???");
        }
        self.out.str(", line ");
        if f.line >= 0 {
            self.out.decimal(f.line as u64);
        } else {
            self.out.str("???");
        }
        self.out.str(" in ");
        if !self.ascii(f.name) {
            self.out.str("???");
        }
        self.out.end_line();
        Ok(())
    }

    /// The frames of one thread, innermost first, with the stdlib's limits.
    /// Async-signal-safe.
    pub fn traceback(&mut self, tstate: usize, write_header: bool) {
        if write_header {
            self.out.str("Stack (most recent call first):");
            self.out.end_line();
        }
        let frame = match self.walker.current_frame(tstate) {
            Ok(f) => f,
            Err(_) => {
                self.out.str(INVALID_FRAME);
                self.out.end_line();
                return;
            }
        };
        if frame == 0 {
            if self.format.no_frame_indented {
                self.out.str("  ");
            }
            self.out.str("<no Python frame>");
            self.out.end_line();
            return;
        }
        if self.frames(frame).is_err() {
            self.out.str(INVALID_FRAME);
            self.out.end_line();
        }
    }

    /// The frames from `frame` outwards, with the stdlib's frame limit and
    /// its treatment of shim frames: skipped without counting (3.12, 3.13), or
    /// counted toward the limit (3.14+). Async-signal-safe.
    fn frames(&mut self, mut frame: usize) -> WalkResult<()> {
        // One iteration per frame printed (or, 3.14+, per shim counted).
        for depth in 0..=MAX_FRAME_DEPTH {
            if !self.format.shims_count {
                // At most one shim sits between two frames; the bound keeps a
                // corrupt chain of shims from looping.
                for _ in 0..4 {
                    if frame == 0 || !self.walker.is_shim(frame)? {
                        break;
                    }
                    frame = self.walker.previous_frame(frame)?;
                }
            }
            if frame == 0 {
                return Ok(());
            }
            if depth == MAX_FRAME_DEPTH {
                if self.format.frame_limit_marker {
                    self.out.str("  ...");
                    self.out.end_line();
                }
                return Ok(());
            }
            if !self.walker.is_shim(frame)? {
                self.frame(frame)?;
            }
            frame = self.walker.previous_frame(frame)?;
        }
        Ok(())
    }

    /// `Current thread 0x... (most recent call first):` or `Thread 0x...`,
    /// with ` [name]` from 3.14 on. Async-signal-safe.
    fn thread_header(&mut self, tstate: usize, thread_id: u64, is_current: bool) {
        self.out.str(if is_current {
            "Current thread 0x"
        } else {
            "Thread 0x"
        });
        self.out.hex(thread_id, 16);
        if self.format.thread_names {
            let mut name = [0u8; 100];
            let tid = self.walker.native_thread_id(tstate).ok().flatten();
            if let Some(name) = tid.and_then(|tid| procfs::thread_name(tid, &mut name)) {
                self.out.str(" [");
                self.out.bytes(name);
                self.out.byte(b']');
            }
        }
        self.out.str(" (most recent call first):");
        self.out.end_line();
    }

    /// Every thread of an interpreter, newest first, like
    /// `_Py_DumpTracebackThreads`. `current` is the thread state of the
    /// calling thread (0 if it has none); at most `max_threads` are listed,
    /// then `...`. Returns the stdlib's error text when there is nothing to
    /// walk. Async-signal-safe.
    pub fn all_threads(
        &mut self,
        interp: usize,
        current: usize,
        max_threads: usize,
    ) -> Result<(), &'static str> {
        let mut tstate = match self.walker.thread_head(interp) {
            Ok(0) | Err(_) => return Err("unable to get the thread head state"),
            Ok(t) => t,
        };
        // The thread limit also bounds a cycle in a corrupt list.
        for nthreads in 0..=max_threads {
            if nthreads != 0 {
                self.out.end_line();
            }
            if nthreads == max_threads {
                self.out.str("...");
                self.out.end_line();
                break;
            }
            let id = match self.walker.thread_id(tstate) {
                Ok(id) => id,
                Err(_) => {
                    self.out.str(INVALID_THREAD);
                    self.out.end_line();
                    break;
                }
            };
            // A thread state of another interpreter, or garbage read while
            // the list changed under us: stop rather than print it.
            if self.walker.thread_interp(tstate) != Ok(interp) {
                if nthreads != 0 {
                    self.out.str(INVALID_THREAD);
                    self.out.end_line();
                }
                break;
            }
            let is_current = tstate == current;
            self.thread_header(tstate, id, is_current);
            if is_current && self.format.gc_line && self.walker.gc_collecting(interp) == Ok(true) {
                self.out.str("  Garbage-collecting");
                self.out.end_line();
            }
            self.traceback(tstate, false);
            match self.walker.next_thread(tstate) {
                Ok(0) => break,
                Ok(next) => tstate = next,
                Err(_) => {
                    self.out.end_line();
                    self.out.str(INVALID_THREAD);
                    self.out.end_line();
                    break;
                }
            }
        }
        Ok(())
    }

    /// What every dump path prints for its threads: all of them, or the
    /// calling thread's stack under a `Stack` header (nothing if the calling
    /// thread has no thread state). Async-signal-safe.
    pub fn threads(
        &mut self,
        all_threads: bool,
        interp: usize,
        current: usize,
        max_threads: usize,
    ) -> Result<(), &'static str> {
        if all_threads {
            let interp = match current {
                0 => interp,
                t => self.walker.thread_interp(t).unwrap_or(interp),
            };
            self.all_threads(interp, current, max_threads)
        } else {
            if current != 0 {
                self.traceback(current, true);
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
        let Ok(modules) = self.walker.modules_dict(interp) else {
            return;
        };
        if modules == 0 {
            return;
        }
        let Ok(mut items) = self.walker.dict_items(modules) else {
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
                batch[len] = pair;
                values[len] = pair.1;
                len += 1;
                if len == MODULE_BATCH {
                    break;
                }
            }
            if len == 0 {
                break;
            }
            self.walker.mem.prefetch(&values[..len]);
            // Then the PyModuleDef structs they point to (extension modules'
            // data, one page each), read next to decide what is an extension.
            for value in &mut values[..len] {
                *value = self.walker.module_def_hint(*value);
            }
            self.walker.mem.prefetch(&values[..len]);
            for &(key, value) in &batch[..len] {
                count += u64::from(self.extension_module(key, value, filter, count));
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
        // The module first: most are not extensions, and their keys then
        // need not be read at all.
        if self.walker.is_extension_module(value) != Ok(true) {
            return false;
        }
        let Ok(Some(name)) = self.walker.str(key) else {
            return false;
        };
        // Module names to compare are short ASCII; anything else is not a
        // stdlib name.
        let mut buf = [0u8; 128];
        let mut len = 0;
        if name.length <= buf.len() {
            for ch in self.walker.chars(name) {
                match (u8::try_from(ch), buf.get_mut(len)) {
                    (Ok(b), Some(slot)) if b < 0x80 => {
                        *slot = b;
                        len += 1;
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
        self.ascii(key);
        true
    }
}
