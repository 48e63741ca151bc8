//! One JSON document per report: the sink that turns a traversal into the
//! `threads` part of the schema in `schema/report.schema.json` (the caller
//! writes the envelope around it with [`JsonWriter`]).
//!
//! Like the text sink it allocates nothing: it writes through the same
//! fixed-buffer [`Writer`], so that a crash report can one day be JSON too.
//! Every function here is async-signal-safe.

use super::{Marker, ReportSink, ThreadHeader, ThreadsEnd};
use crate::cpython::walk::{Frame, Str, Walker};
use crate::memory::Memory;
use crate::writer::{Sink, Writer};

/// JSON output primitives on a [`Writer`].
pub struct JsonWriter<'o, S: Sink> {
    pub out: &'o mut Writer<S>,
}

impl<S: Sink> JsonWriter<'_, S> {
    /// A code point inside a JSON string: `"` and `\` escaped, control
    /// characters (and lone surrogates, which UTF-8 cannot carry) as
    /// `\uXXXX`, the rest as UTF-8. Async-signal-safe.
    pub fn char(&mut self, ch: u32) {
        match ch {
            0x22 => self.out.str("\\\""),
            0x5c => self.out.str("\\\\"),
            0x0a => self.out.str("\\n"),
            0x09 => self.out.str("\\t"),
            0x0d => self.out.str("\\r"),
            0..=0x1f | 0x7f | 0xd800..=0xdfff => {
                self.out.str("\\u");
                self.out.hex(u64::from(ch), 4);
            }
            _ => match char::from_u32(ch) {
                Some(c) => {
                    let mut utf8 = [0u8; 4];
                    self.out.bytes(c.encode_utf8(&mut utf8).as_bytes());
                }
                None => self.out.str("\\ufffd"),
            },
        }
    }

    /// A JSON string from raw bytes (a thread name): UTF-8 when it is valid
    /// UTF-8, else one code point per byte. Async-signal-safe.
    pub fn bytes_string(&mut self, bytes: &[u8]) {
        self.out.byte(b'"');
        match core::str::from_utf8(bytes) {
            Ok(text) => text.chars().for_each(|c| self.char(u32::from(c))),
            Err(_) => bytes.iter().for_each(|&b| self.char(u32::from(b))),
        }
        self.out.byte(b'"');
    }

    /// A JSON string from text known to need no escaping beyond `char`'s.
    /// Async-signal-safe.
    pub fn string(&mut self, text: &str) {
        self.bytes_string(text.as_bytes());
    }

    /// `"key":`. Async-signal-safe.
    pub fn key(&mut self, key: &str) {
        self.string(key);
        self.out.byte(b':');
    }

    /// An unsigned number. Async-signal-safe.
    pub fn number(&mut self, n: u64) {
        self.out.decimal(n);
    }

    /// A signed number. Async-signal-safe.
    pub fn signed(&mut self, n: i64) {
        if n < 0 {
            self.out.byte(b'-');
        }
        self.out.decimal(n.unsigned_abs());
    }

    /// `true` / `false`. Async-signal-safe.
    pub fn boolean(&mut self, b: bool) {
        self.out.str(if b { "true" } else { "false" });
    }

    /// A string object of the interpreter, its first `max` code points (then
    /// `...`), or `null` when it is not a readable string. Async-signal-safe.
    pub fn object_string<M: Memory>(&mut self, walker: &Walker<'_, M>, obj: usize, max: usize) {
        match walker.str(obj) {
            Ok(Some(s)) => self.str_value(walker, s, max),
            _ => self.out.str("null"),
        }
    }

    /// Async-signal-safe.
    fn str_value<M: Memory>(&mut self, walker: &Walker<'_, M>, s: Str, max: usize) {
        self.out.byte(b'"');
        for ch in walker.chars(s).take(max) {
            self.char(ch);
        }
        if s.length > max {
            self.out.str("...");
        }
        self.out.byte(b'"');
    }
}

/// The `threads` array of a report: each thread with its frames, and how its
/// listing ended.
pub struct JsonSink<'o, S: Sink> {
    json: JsonWriter<'o, S>,
    max_string: usize,
    threads: usize,
    /// No frame of the current thread written yet.
    first_frame: bool,
    /// The current thread's listing was closed by a marker.
    marked: bool,
    /// Why the list of threads ended early, if it did.
    end: Option<ThreadsEnd>,
    /// The `threads` array is open.
    open: bool,
    /// How the current thread's native stack ended (`dump --native`).
    native_end: Option<&'static str>,
}

impl<'o, S: Sink> JsonSink<'o, S> {
    /// Async-signal-safe.
    pub fn new(out: &'o mut Writer<S>, max_string: usize) -> Self {
        JsonSink {
            json: JsonWriter { out },
            max_string,
            threads: 0,
            first_frame: true,
            marked: false,
            end: None,
            open: false,
            native_end: None,
        }
    }

    /// `"threads":[`. Async-signal-safe.
    pub fn begin(&mut self) {
        self.json.key("threads");
        self.json.out.byte(b'[');
        self.open = true;
    }

    /// `]` and `,"threads_end":"..."`: `complete`, `limit` or
    /// `invalid_thread`. Async-signal-safe.
    pub fn finish(&mut self) {
        let end = self.end;
        if self.open {
            self.json.out.byte(b']');
            self.open = false;
        }
        self.json.out.byte(b',');
        self.json.key("threads_end");
        self.json.string(match end {
            None => "complete",
            Some(ThreadsEnd::Limit) => "limit",
            Some(ThreadsEnd::InvalidThread) => "invalid_thread",
        });
    }

    /// One native frame of a merged stack (`dump --native`), among the
    /// Python frames: `{"native":{"address":..,"function":..,"library":..,
    /// "offset":..}}`, unknown members null. Async-signal-safe.
    pub fn native_frame(
        &mut self,
        address: u64,
        function: Option<&str>,
        library: Option<&[u8]>,
        offset: Option<u64>,
    ) {
        let j = &mut self.json;
        if !core::mem::take(&mut self.first_frame) {
            j.out.byte(b',');
        }
        j.out.byte(b'{');
        j.key("native");
        j.out.byte(b'{');
        j.key("address");
        j.number(address);
        j.out.byte(b',');
        j.key("function");
        match function {
            Some(f) => j.string(f),
            None => j.out.str("null"),
        }
        j.out.byte(b',');
        j.key("library");
        match library {
            Some(l) => j.bytes_string(l),
            None => j.out.str("null"),
        }
        j.out.byte(b',');
        j.key("offset");
        match offset {
            Some(o) => j.number(o),
            None => j.out.str("null"),
        }
        j.out.str("}}");
    }

    /// How the current thread's native stack ended: `outermost`,
    /// `frame_limit` or `lost`, written with the thread's `end`.
    /// Async-signal-safe.
    pub fn native_end(&mut self, end: &'static str) {
        self.native_end = Some(end);
    }

    /// Close the current thread object with how its listing ended.
    /// Async-signal-safe.
    fn close_thread(&mut self, end: &str) {
        self.json.out.str("],");
        if let Some(native_end) = self.native_end.take() {
            self.json.key("native_end");
            self.json.string(native_end);
            self.json.out.byte(b',');
        }
        self.json.key("end");
        self.json.string(end);
        self.json.out.byte(b'}');
    }
}

impl<M: Memory, S: Sink> ReportSink<M> for JsonSink<'_, S> {
    /// Async-signal-safe.
    fn thread(&mut self, _walker: &Walker<'_, M>, h: &ThreadHeader<'_>) {
        if self.threads > 0 {
            self.json.out.byte(b',');
        }
        self.threads = self.threads.saturating_add(1);
        self.first_frame = true;
        self.marked = false;
        self.native_end = None;
        let j = &mut self.json;
        j.out.byte(b'{');
        j.key("thread_id");
        j.number(h.thread_id);
        j.out.byte(b',');
        j.key("native_id");
        match h.native_id {
            Some(tid) => j.number(tid),
            None => j.out.str("null"),
        }
        j.out.byte(b',');
        j.key("name");
        match h.name {
            Some(name) => j.bytes_string(name),
            None => j.out.str("null"),
        }
        j.out.byte(b',');
        j.key("current");
        j.boolean(h.is_current);
        j.out.byte(b',');
        j.key("holds_gil");
        match h.holds_gil {
            Some(b) => j.boolean(b),
            None => j.out.str("null"),
        }
        j.out.byte(b',');
        j.key("gc_collecting");
        j.boolean(h.gc_collecting);
        j.out.byte(b',');
        j.key("frames");
        j.out.byte(b'[');
    }

    /// Single-thread reports are text only; as JSON they are one thread.
    /// Async-signal-safe.
    fn stack(&mut self) {
        if self.threads > 0 {
            self.json.out.byte(b',');
        }
        self.json.out.byte(b'{');
        self.json.key("frames");
        self.json.out.byte(b'[');
        self.threads = self.threads.saturating_add(1);
        self.first_frame = true;
        self.marked = false;
    }

    /// Async-signal-safe.
    fn frame(&mut self, walker: &Walker<'_, M>, f: &Frame) -> bool {
        let j = &mut self.json;
        if !core::mem::take(&mut self.first_frame) {
            j.out.byte(b',');
        }
        j.out.byte(b'{');
        j.key("file");
        j.object_string(walker, f.filename, self.max_string);
        j.out.byte(b',');
        j.key("line");
        if f.line >= 0 {
            j.signed(i64::from(f.line));
        } else {
            j.out.str("null");
        }
        j.out.byte(b',');
        j.key("function");
        j.object_string(walker, f.name, self.max_string);
        j.out.byte(b'}');
        true
    }

    /// Async-signal-safe.
    fn marker(&mut self, marker: Marker) {
        self.close_thread(match marker {
            Marker::NoPythonFrame => "no_python_frame",
            Marker::InvalidFrame => "invalid_frame",
            Marker::FrameLimit => "frame_limit",
            Marker::Changed => "changed",
        });
        self.marked = true;
    }

    /// Async-signal-safe.
    fn end_thread(&mut self) {
        if !core::mem::take(&mut self.marked) {
            self.close_thread("complete");
        }
    }

    /// Async-signal-safe.
    fn threads_end(&mut self, why: ThreadsEnd) {
        self.end = Some(why);
    }
}
