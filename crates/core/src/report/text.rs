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
use crate::cpython::walk::{Frame, Str, Walker, pair_index};
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
/// function names) are read in one piece (in place where the reader allows)
/// and copied in printable runs, checked a word at a time. Async-signal-safe.
pub fn write_str<M: Memory, S: Sink>(
    walker: &Walker<'_, M>,
    out: &mut Writer<S>,
    s: Str,
    max: usize,
) {
    write_str_plain(walker, out, s, max);
}

/// [`write_str`], returning whether the string was written as it is in
/// memory: one-byte, nothing escaped, nothing cut (a later copy of those
/// bytes writes the same text). Async-signal-safe.
fn write_str_plain<M: Memory, S: Sink>(
    walker: &Walker<'_, M>,
    out: &mut Writer<S>,
    s: Str,
    max: usize,
) -> bool {
    let shown = s.length.min(max);
    let latin1 = if s.kind == 1 {
        write_latin1(walker.mem, out, s.data, shown)
    } else {
        None
    };
    if latin1.is_none() {
        for ch in walker.chars(s).take(max) {
            out.escaped_char(ch);
        }
    }
    if s.length > max {
        out.str("...");
        return false;
    }
    latin1 == Some(true)
}

/// `len` one-byte code points at `data`, escaped: None (nothing written) if
/// they cannot be read in one piece, else whether they were written as they
/// are (nothing escaped). Async-signal-safe.
fn write_latin1<M: Memory, S: Sink>(
    mem: &M,
    out: &mut Writer<S>,
    data: usize,
    len: usize,
) -> Option<bool> {
    if let Some(src) = mem.direct(data, len) {
        // Scanned where it is and copied in the same pass, a word at a time.
        let mut rest = src;
        let mut plain = true;
        loop {
            let copied = out
                .spare(rest.len())
                .map_or(0, |dst| copy_printable(rest, dst));
            out.commit(copied);
            let Some((&b, tail)) = rest.get(copied..).and_then(|r| r.split_first()) else {
                return Some(plain);
            };
            out.escaped_char(u32::from(b));
            plain = false;
            rest = tail;
        }
    }
    let dst = out.spare(len).and_then(|spare| spare.get_mut(..len))?;
    mem.read_immutable(data, dst).ok()?;
    let printable = printable_prefix(dst);
    if printable == len {
        out.commit(len);
        return Some(true);
    }
    // Something to escape (rare): keep the printable prefix where it is,
    // take the rest out of the buffer, and write it escaped.
    let mut rest = [0u8; MAX_STRING_LENGTH];
    let tail = dst.get(printable..).unwrap_or(&[]);
    let rest = rest.get_mut(..tail.len())?;
    rest.copy_from_slice(tail);
    out.commit(printable);
    let mut rest: &[u8] = rest;
    while let Some((&b, tail)) = rest.split_first() {
        out.escaped_char(u32::from(b));
        let run = printable_prefix(tail);
        let (run_bytes, tail) = tail.split_at(run);
        out.bytes(run_bytes);
        rest = tail;
    }
    Some(false)
}

/// Whether all eight bytes of `x` are printable ASCII (0x20-0x7e).
/// Async-signal-safe.
#[inline]
fn all_printable(x: u64) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // For a byte below 0x80 (no carry leaves it): + 0x60 sets its high bit
    // iff it is >= 0x20, + 0x01 iff it is >= 0x7f. A byte with its own high
    // bit set clears its bit through `!x`.
    x.wrapping_add(0x6060_6060_6060_6060) & !x.wrapping_add(0x0101_0101_0101_0101) & !x & HIGH
        == HIGH
}

/// Copy the printable prefix of `src` (bytes 0x20-0x7e, those
/// `_Py_DumpASCII` writes as they are) to the start of `dst`, at most
/// `dst.len()` bytes; returns how many were copied. Async-signal-safe.
fn copy_printable(src: &[u8], dst: &mut [u8]) -> usize {
    let mut done: usize = 0;
    for (from, to) in src.chunks_exact(8).zip(dst.chunks_exact_mut(8)) {
        let Ok(word) = <[u8; 8]>::try_from(from) else {
            break;
        };
        if !all_printable(u64::from_le_bytes(word)) {
            break;
        }
        to.copy_from_slice(from);
        done = done.saturating_add(8);
    }
    // The last few bytes as the word that ends the string (overlapping the
    // bytes done), if the string reached its last word printable.
    let len = src.len();
    if len.saturating_sub(done) < 8
        && done < len
        && let Some(start) = len.checked_sub(8)
        && let (Some(from), Some(to)) = (src.get(start..len), dst.get_mut(start..len))
        && let Ok(word) = <[u8; 8]>::try_from(from)
        && all_printable(u64::from_le_bytes(word))
    {
        to.copy_from_slice(from);
        return len;
    }
    let (Some(from), Some(to)) = (src.get(done..), dst.get_mut(done..)) else {
        return done;
    };
    for (&b, slot) in from.iter().zip(to) {
        if !(0x20..=0x7e).contains(&b) {
            break;
        }
        *slot = b;
        done = done.saturating_add(1);
    }
    done
}

/// How many bytes at the start of `bytes` are printable ASCII (0x20-0x7e).
/// Async-signal-safe.
fn printable_prefix(bytes: &[u8]) -> usize {
    let mut words = bytes.chunks_exact(8);
    let mut done: usize = 0;
    for word in words.by_ref() {
        if !all_printable(word.try_into().map(u64::from_le_bytes).unwrap_or(0)) {
            break;
        }
        done = done.saturating_add(8);
    }
    let rest = bytes.get(done..).unwrap_or(&[]);
    done.saturating_add(
        rest.iter()
            .take_while(|b| (0x20..=0x7e).contains(*b))
            .count(),
    )
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

/// Entries of a report's memo of plain strings (even: slots come in pairs).
const PLAIN_STRINGS: usize = 64;

/// A `str` object written as it is in memory (see [`write_str_plain`]): its
/// text is `len` bytes at `data`.
#[derive(Clone, Copy)]
struct PlainStr {
    obj: usize,
    data: usize,
    len: usize,
}

/// The stdlib's text of a traversal.
pub struct TextSink<'o, S: Sink> {
    pub out: &'o mut Writer<S>,
    pub format: Format,
    pub max_string: usize,
    /// Thread blocks started so far (a blank line separates them).
    threads: usize,
    /// The file and function names of this report that were written as they
    /// are in memory, by object address: a stack repeats the same few (one
    /// file for many frames, a recursive function), and copying their bytes
    /// again skips their type check and their scan. Like the walker's line
    /// cache, it takes an object to stay what it was for the length of one
    /// report: true with the GIL held (explicit dumps); on the signal and
    /// watchdog paths, which read while other threads may run, a string
    /// freed and replaced at the same address during the dump would be
    /// shown by its old length (read through the same checked reader: a
    /// wrong text at worst, never a fault).
    plain: [PlainStr; PLAIN_STRINGS],
}

impl<'o, S: Sink> TextSink<'o, S> {
    /// Async-signal-safe.
    pub fn new(out: &'o mut Writer<S>, format: Format, max_string: usize) -> Self {
        TextSink {
            out,
            format,
            max_string,
            threads: 0,
            plain: [PlainStr {
                obj: 0,
                data: 0,
                len: 0,
            }; PLAIN_STRINGS],
        }
    }

    /// The `str` object `obj` as `_Py_DumpASCII` writes it, between double
    /// quotes if `quoted`; false (nothing written) if it is not a readable
    /// `str`. Async-signal-safe.
    #[inline]
    fn write_obj<M: Memory>(&mut self, walker: &Walker<'_, M>, obj: usize, quoted: bool) -> bool {
        // Two slots per object (an even one and the odd one after it), the
        // newer entry first: a frame's file and function names never evict
        // each other.
        let first = pair_index(obj as u64, PLAIN_STRINGS);
        for index in [first, first | 1] {
            if let Some(&seen) = self.plain.get(index)
                && seen.obj == obj
                && obj != 0
                && self.write_seen(walker.mem, seen, quoted)
            {
                return true;
            }
        }
        self.write_obj_read(walker, obj, quoted, first)
    }

    /// A string of the memo written again: its bytes read afresh (in place
    /// where the reader allows), not checked again. False (nothing written)
    /// if they cannot be read. Async-signal-safe.
    #[inline]
    fn write_seen<M: Memory>(&mut self, mem: &M, seen: PlainStr, quoted: bool) -> bool {
        if let Some(text) = mem.direct(seen.data, seen.len) {
            self.quote(quoted);
            self.out.bytes(text);
            self.quote(quoted);
            return true;
        }
        let quotes = if quoted { 2 } else { 0 };
        let total = seen.len.saturating_add(quotes);
        let Some(dst) = self.out.spare(total).and_then(|s| s.get_mut(..total)) else {
            return false;
        };
        let text = if quoted {
            match dst.split_first_mut().and_then(|(open, rest)| {
                let (close, text) = rest.split_last_mut()?;
                *open = b'"';
                *close = b'"';
                Some(text)
            }) {
                Some(text) => text,
                None => return false,
            }
        } else {
            dst
        };
        if mem.read_immutable(seen.data, text).is_err() {
            return false;
        }
        self.out.commit(total);
        true
    }

    /// [`write_obj`](Self::write_obj) for an object not in the memo: read,
    /// written, and remembered in the pair of slots at `first` if plain.
    /// Async-signal-safe.
    #[inline(never)]
    fn write_obj_read<M: Memory>(
        &mut self,
        walker: &Walker<'_, M>,
        obj: usize,
        quoted: bool,
        first: usize,
    ) -> bool {
        let Ok(Some(s)) = walker.str(obj) else {
            return false;
        };
        self.quote(quoted);
        if write_str_plain(walker, self.out, s, self.max_string)
            && let Some(older) = self.plain.get(first).copied()
            && let Some(slot) = self.plain.get_mut(first | 1)
        {
            *slot = older;
            if let Some(slot) = self.plain.get_mut(first) {
                *slot = PlainStr {
                    obj,
                    data: s.data,
                    len: s.length,
                };
            }
        }
        self.quote(quoted);
        true
    }

    /// A double quote if `quoted`. Async-signal-safe.
    fn quote(&mut self, quoted: bool) {
        if quoted {
            self.out.byte(b'"');
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
        let mut complete = true;
        self.out.str("  File ");
        if !self.write_obj(walker, f.filename, true) {
            self.out.str("???");
            complete = false;
        }
        let out = &mut *self.out;
        out.str(", line ");
        match u64::try_from(f.line) {
            Ok(line) => out.decimal(line),
            Err(_) => {
                out.str("???");
                complete = false;
            }
        }
        out.str(" in ");
        if !self.write_obj(walker, f.name, false) {
            self.out.str("???");
            complete = false;
        }
        let out = &mut *self.out;
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
    /// For threads that run while they are read: see [`Traversal::reread`].
    pub reread: Option<&'w dyn Fn()>,
}

/// The traversal this process's reports use: the stdlib's limits (with
/// 3.15's `max_threads`), thread names where the format prints them.
/// Async-signal-safe.
fn own_traversal<'w, 'a, M: Memory>(
    walker: &'w Walker<'a, M>,
    format: &Format,
    max_threads: usize,
    reread: Option<&'w dyn Fn()>,
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
        eval_boundaries: false,
        reread,
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
        let traversal = own_traversal(self.walker, self.format, max_threads, self.reread);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn printable(b: u8) -> bool {
        (0x20..=0x7e).contains(&b)
    }

    #[test]
    fn a_word_is_printable_when_each_byte_is() {
        // Every byte value at every position of a word of printable bytes,
        // and pairs of bytes around the edges (carries between bytes).
        for pos in 0..8 {
            for b in 0..=255u8 {
                let mut word = *b"abcdefgh";
                word[pos] = b;
                assert_eq!(
                    all_printable(u64::from_le_bytes(word)),
                    printable(b),
                    "{b:#x} at {pos}"
                );
            }
        }
        let edges = [
            0x00, 0x1f, 0x20, 0x21, 0x7e, 0x7f, 0x80, 0x9f, 0xa0, 0xdf, 0xe0, 0xff,
        ];
        for &x in &edges {
            for &y in &edges {
                for pos in 0..7 {
                    let mut word = *b"~~~~~~~~";
                    word[pos] = x;
                    word[pos + 1] = y;
                    assert_eq!(
                        all_printable(u64::from_le_bytes(word)),
                        printable(x) && printable(y),
                        "{x:#x} {y:#x} at {pos}"
                    );
                }
            }
        }
    }

    #[test]
    fn printable_prefixes_are_found_and_copied() {
        for len in 0..40 {
            for stop in 0..=len {
                for bad in [0x00u8, 0x0a, 0x1f, 0x7f, 0x80, 0xe9, 0xff] {
                    let mut text: Vec<u8> = (0..len).map(|i| b' ' + (i * 7 % 95) as u8).collect();
                    if stop < len {
                        text[stop] = bad;
                    }
                    assert_eq!(printable_prefix(&text), stop, "{text:?}");
                    let mut dst = vec![0u8; len + 3];
                    assert_eq!(copy_printable(&text, &mut dst), stop, "{text:?}");
                    assert_eq!(dst[..stop], text[..stop]);
                    assert!(dst[stop..].iter().all(|&b| b == 0), "copied too much");
                    // A short destination bounds the copy.
                    let mut short = vec![0u8; stop / 2];
                    assert_eq!(copy_printable(&text, &mut short), stop / 2);
                }
            }
        }
    }
}
