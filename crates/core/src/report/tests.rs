//! The walker and the report against a fake interpreter: CPython 3.11's
//! structures laid out by hand in a fake [`Memory`], so that every shape a
//! real (or corrupt) interpreter can have is tested without Python, in a
//! debug build (overflow checks on).

use std::collections::BTreeMap;

use super::json::JsonSink;
use super::text::{Format, TextSink};
use super::{GilHolder, Limits, ThreadNames, Traversal};
use crate::cpython::layout::{FramePath, InstrPosition, Layout, PY311};
use crate::cpython::walk::{KnownTypes, Walker};
use crate::memory::{BadAddress, Memory};
use crate::writer::{FlushPolicy, VecSink, Writer};

/// Sparse memory: regions of bytes at addresses; anything else is unmapped.
/// With `in_place`, it also lends its bytes in place (`direct`), as plain
/// loads of this process do.
#[derive(Default)]
struct FakeMemory {
    regions: BTreeMap<usize, Vec<u8>>,
    in_place: bool,
}

impl FakeMemory {
    fn slice(&self, addr: usize, len: usize) -> Result<&[u8], BadAddress> {
        let (&start, bytes) = self
            .regions
            .range(..=addr)
            .next_back()
            .ok_or(BadAddress(addr))?;
        let offset = addr - start;
        bytes
            .get(offset..offset.checked_add(len).ok_or(BadAddress(addr))?)
            .ok_or(BadAddress(addr))
    }
}

impl Memory for FakeMemory {
    fn read_bytes(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        dst.copy_from_slice(self.slice(addr, dst.len())?);
        Ok(())
    }

    fn direct(&self, addr: usize, len: usize) -> Option<&[u8]> {
        self.in_place.then(|| self.slice(addr, len).ok()).flatten()
    }
}

impl FakeMemory {
    fn put(&mut self, addr: usize, bytes: &[u8]) {
        // Into the region that holds `addr`, growing it, or a new one.
        let start = match self.regions.range(..=addr).next_back() {
            Some((&start, region)) if addr <= start + region.len() => start,
            _ => addr,
        };
        let region = self.regions.entry(start).or_default();
        let offset = addr - start;
        if region.len() < offset + bytes.len() {
            region.resize(offset + bytes.len(), 0);
        }
        region[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    fn put_u64(&mut self, addr: usize, value: u64) {
        self.put(addr, &value.to_ne_bytes());
    }

    fn put_u32(&mut self, addr: usize, value: u32) {
        self.put(addr, &value.to_ne_bytes());
    }

    fn zeros(&mut self, addr: usize, len: usize) {
        self.put(addr, &vec![0; len]);
    }
}

const UNICODE_TYPE: usize = 0x7000_0000;
const CODE_TYPE: usize = 0x7000_1000;
const BYTES_TYPE: usize = 0x7000_2000;
const MODULE_TYPE: usize = 0x7000_3000;
/// An address nothing is mapped at.
const UNMAPPED: usize = 0x6600_0000;

/// Builds 3.11 structures in a [`FakeMemory`], each at its own address.
struct Interp {
    mem: FakeMemory,
    layout: Layout,
    interp: usize,
    next_addr: usize,
    /// The thread states, newest first (the list order).
    threads: Vec<usize>,
}

impl Interp {
    fn new() -> Self {
        let layout = PY311;
        let mut mem = FakeMemory::default();
        for ty in [UNICODE_TYPE, CODE_TYPE, BYTES_TYPE, MODULE_TYPE] {
            mem.zeros(ty, 512);
        }
        let interp = 0x1000_0000;
        mem.zeros(interp, 1024);
        Interp {
            mem,
            layout,
            interp,
            next_addr: 0x2000_0000,
            threads: Vec::new(),
        }
    }

    fn types(&self) -> KnownTypes {
        KnownTypes {
            unicode: UNICODE_TYPE,
            module: MODULE_TYPE,
            code: CODE_TYPE,
            bytes_str: 0,
        }
    }

    fn alloc(&mut self, size: usize) -> usize {
        let addr = self.next_addr;
        let pages = (size + 0xfff) & !0xfff;
        self.next_addr += pages + 0x1000; // an unmapped page between objects
        self.mem.zeros(addr, pages);
        addr
    }

    /// A compact str of `kind` bytes per code point.
    fn str(&mut self, text: &str) -> usize {
        let chars: Vec<u32> = text.chars().map(u32::from).collect();
        let max = chars.iter().copied().max().unwrap_or(0);
        let (kind, ascii) = match max {
            0..=0x7f => (1, true),
            0x80..=0xff => (1, false),
            0x100..=0xffff => (2, false),
            _ => (4, false),
        };
        let l = self.layout;
        let head = if ascii {
            l.unicode_ascii_size
        } else {
            l.unicode_compact_size
        };
        let obj = self.alloc(head + chars.len() * kind + 8);
        self.mem.put_u64(obj + l.ob_type, UNICODE_TYPE as u64);
        self.mem.put_u64(obj + l.unicode_length, chars.len() as u64);
        let state = (kind as u32) << l.unicode_kind_shift
            | 1 << l.unicode_compact_bit
            | u32::from(ascii) << l.unicode_ascii_bit;
        self.mem.put_u32(obj + l.unicode_state, state);
        for (i, &c) in chars.iter().enumerate() {
            let bytes = c.to_le_bytes();
            self.mem.put(obj + head + i * kind, &bytes[..kind]);
        }
        obj
    }

    fn bytes(&mut self, data: &[u8]) -> usize {
        let l = self.layout;
        let obj = self.alloc(l.bytes_data + data.len() + 1);
        self.mem.put_u64(obj + l.ob_type, BYTES_TYPE as u64);
        self.mem.put_u64(obj + l.bytes_size, data.len() as u64);
        self.mem.put(obj + l.bytes_data, data);
        obj
    }

    /// A code object whose one location entry gives `line` to its first 16
    /// bytes of bytecode.
    fn code(&mut self, filename: &str, name: &str, line: i32) -> usize {
        let l = self.layout;
        let firstlineno = 1;
        let delta = line - firstlineno;
        // PEP 657 "no column" entry (code 13) over 8 code units, then the
        // signed varint delta (sign in the low bit, 6 bits a byte).
        let mut zigzag = if delta < 0 {
            ((-delta as u32) << 1) | 1
        } else {
            (delta as u32) << 1
        };
        let mut table = vec![0x80 | (13 << 3) | 7];
        loop {
            let b = (zigzag & 63) as u8;
            zigzag >>= 6;
            if zigzag == 0 {
                table.push(b);
                break;
            }
            table.push(b | 64);
        }
        let linetable = self.bytes(&table);
        let filename = self.str(filename);
        let name = self.str(name);
        let code = self.alloc(512);
        self.mem.put_u64(code + l.ob_type, CODE_TYPE as u64);
        self.mem.put_u64(code + l.code_filename, filename as u64);
        self.mem.put_u64(code + l.code_name, name as u64);
        self.mem
            .put_u32(code + l.code_firstlineno, firstlineno as u32);
        self.mem.put_u64(code + l.code_linetable, linetable as u64);
        code
    }

    /// A frame running `code` at its first instruction, called by `previous`.
    fn frame(&mut self, code: usize, previous: usize) -> usize {
        let l = self.layout;
        let frame = self.alloc(128);
        self.mem.put_u64(frame + l.frame_code, code as u64);
        self.mem.put_u64(frame + l.frame_previous, previous as u64);
        let InstrPosition::Pointer { code_adaptive } = l.instr_position else {
            unreachable!("3.11 frames point into the code");
        };
        self.mem
            .put_u64(frame + l.frame_instr, (code + code_adaptive) as u64);
        frame
    }

    /// A thread whose frames are `(file, function, line)`, innermost first;
    /// it becomes the head of the list (the newest thread).
    fn thread(&mut self, id: u64, frames: &[(&str, &str, i32)]) -> usize {
        let l = self.layout;
        let mut previous = 0;
        for &(file, func, line) in frames.iter().rev() {
            let code = self.code(file, func, line);
            previous = self.frame(code, previous);
        }
        let tstate = self.alloc(512);
        let FramePath::ViaCFrame {
            cframe,
            current_frame,
        } = l.tstate_frame
        else {
            unreachable!("3.11 reaches frames through the cframe");
        };
        let cf = self.alloc(64);
        self.mem.put_u64(cf + current_frame, previous as u64);
        self.mem.put_u64(tstate + cframe, cf as u64);
        self.mem
            .put_u64(tstate + l.tstate_interp, self.interp as u64);
        self.mem.put_u64(tstate + l.tstate_thread_id, id);
        let head = self.threads.first().copied().unwrap_or(0);
        self.mem.put_u64(tstate + l.tstate_next, head as u64);
        self.mem
            .put_u64(self.interp + l.interp_threads_head, tstate as u64);
        self.threads.insert(0, tstate);
        tstate
    }

    fn walker(&self) -> Walker<'_, FakeMemory> {
        Walker::new(&self.mem, &self.layout, self.types())
    }
}

fn text(interp: &Interp, current: usize, format: Format, limits: Limits) -> String {
    let walker = interp.walker();
    let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
    let traversal = Traversal {
        walker: &walker,
        limits,
        shims_count: format.shims_count,
        names: ThreadNames::None,
        gil: GilHolder::Unknown,
        tids: super::TidSource::Layout,
        recheck: None,
        eval_boundaries: false,
        reread: None,
    };
    let mut sink = TextSink::new(&mut out, format, limits.max_string);
    traversal
        .all_threads(&mut sink, interp.interp, current)
        .unwrap();
    String::from_utf8(out.into_sink().bytes).unwrap()
}

fn stdlib_text(interp: &Interp, current: usize) -> String {
    text(interp, current, Format::for_minor(11), Limits::STDLIB)
}

/// The text of a report read in place and read by copies: the same.
fn same_both_ways(interp: &mut Interp, current: usize, format: Format) -> String {
    interp.mem.in_place = false;
    let copied = text(interp, current, format, Limits::STDLIB);
    interp.mem.in_place = true;
    let in_place = text(interp, current, format, Limits::STDLIB);
    interp.mem.in_place = false;
    assert_eq!(in_place, copied);
    copied
}

#[test]
fn reads_in_place_print_what_copies_print() {
    // Names around the word size and the string limit, printable or not,
    // one-byte and wider, each used by many frames (the report's memo of
    // strings and the walker's line cache see them again and again).
    let mut i = Interp::new();
    let mut names: Vec<String> = [
        "",
        "a",
        "abcdefg",
        "abcdefgh",
        "abcdefghi",
        "tab\there",
        "nl\n",
        "é",
        "~\x7f~",
        "中",
        "\u{1F600}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend([
        "y".repeat(499),
        "y".repeat(500),
        "y".repeat(501),
        "\x01".repeat(500),
    ]);
    let mut frames = Vec::new();
    for (k, name) in names.iter().enumerate() {
        frames.push((name.as_str(), name.as_str(), k as i32 + 1));
    }
    let mut expected = String::new();
    for (k, name) in names.iter().enumerate() {
        let escaped: String = name
            .chars()
            .take(500)
            .map(|c| match c as u32 {
                0x20..=0x7e => c.to_string(),
                n @ 0..=0xff => format!("\\x{n:02x}"),
                n @ 0x100..=0xffff => format!("\\u{n:04x}"),
                n => format!("\\U{n:08x}"),
            })
            .collect();
        let cut = if name.chars().count() > 500 {
            "..."
        } else {
            ""
        };
        expected.push_str(&format!(
            "  File \"{escaped}{cut}\", line {} in {escaped}{cut}\n",
            k + 1
        ));
    }
    let main = i.thread(1, &frames);
    // A second thread runs each of those frames' code three times in a row
    // (copies of the frames: the same code and string objects again).
    let w = i.walker();
    let mut list = Vec::new();
    let mut frame = w.current_frame(main).unwrap();
    while frame != 0 {
        list.push(frame);
        frame = w.previous_frame(frame).unwrap();
    }
    let mut previous = 0;
    for &frame in list.iter().rev() {
        for _ in 0..3 {
            let bytes = i.mem.slice(frame, 128).unwrap().to_vec();
            let copy = i.alloc(128);
            i.mem.put(copy, &bytes);
            i.mem
                .put_u64(copy + i.layout.frame_previous, previous as u64);
            previous = copy;
        }
    }
    let other = i.thread(2, &[]);
    let FramePath::ViaCFrame {
        cframe,
        current_frame,
    } = i.layout.tstate_frame
    else {
        unreachable!("3.11 reaches frames through the cframe");
    };
    let cf = i.mem.slice(other + cframe, 8).unwrap();
    let cf = usize::from_ne_bytes(cf.try_into().unwrap());
    i.mem.put_u64(cf + current_frame, previous as u64);
    let tripled: String = expected
        .lines()
        .map(|line| format!("{line}\n{line}\n{line}\n"))
        .collect();
    assert_eq!(
        same_both_ways(&mut i, main, Format::for_minor(11)),
        format!(
            "Thread 0x0000000000000002 (most recent call first):\n{tripled}\n\
             Current thread 0x0000000000000001 (most recent call first):\n{expected}"
        )
    );
}

#[test]
fn two_threads_as_the_stdlib_prints_them() {
    let mut i = Interp::new();
    let main = i.thread(0x7f00_0000_0001, &[("/app/main.py", "<module>", 12)]);
    i.thread(
        0x7f00_0000_0002,
        &[("/app/worker.py", "wait", 40), ("/app/worker.py", "run", 7)],
    );
    assert_eq!(
        stdlib_text(&i, main),
        "Thread 0x00007f0000000002 (most recent call first):\n\
         \x20 File \"/app/worker.py\", line 40 in wait\n\
         \x20 File \"/app/worker.py\", line 7 in run\n\
         \n\
         Current thread 0x00007f0000000001 (most recent call first):\n\
         \x20 File \"/app/main.py\", line 12 in <module>\n"
    );
}

#[test]
fn strings_are_escaped_and_cut() {
    let mut i = Interp::new();
    let long = "x".repeat(600);
    i.thread(1, &[("gé中\u{1F600}.py", &long, 3)]);
    let out = stdlib_text(&i, 0);
    assert!(
        out.contains("File \"g\\xe9\\u4e2d\\U0001f600.py\", line 3 in "),
        "{out}"
    );
    assert!(
        out.contains(&format!("in {}...\n", "x".repeat(500))),
        "{out}"
    );
}

#[test]
fn a_thread_without_frames() {
    let mut i = Interp::new();
    i.thread(1, &[]);
    assert_eq!(
        stdlib_text(&i, 0),
        "Thread 0x0000000000000001 (most recent call first):\n  <no Python frame>\n"
    );
    assert_eq!(
        text(&i, 0, Format::for_minor(9), Limits::STDLIB),
        "Thread 0x0000000000000001 (most recent call first):\n<no Python frame>\n"
    );
}

#[test]
fn limits_end_cycles_in_threads_and_frames() {
    let mut i = Interp::new();
    let t = i.thread(1, &[("a.py", "f", 1)]);
    // The thread list points back at itself: the thread limit ends it.
    i.mem.put_u64(t + i.layout.tstate_next, t as u64);
    let out = stdlib_text(&i, 0);
    assert_eq!(out.matches("(most recent call first)").count(), 100);
    assert!(out.ends_with("\n...\n"), "{}", &out[out.len() - 40..]);
    // A frame that calls itself: the frame limit ends it (`  ...` up to
    // 3.12, nothing on 3.13).
    let mut i = Interp::new();
    let t = i.thread(1, &[("a.py", "f", 1)]);
    let frame = i.walker().current_frame(t).unwrap();
    i.mem.put_u64(frame + i.layout.frame_previous, frame as u64);
    let out = stdlib_text(&i, 0);
    assert_eq!(out.matches("  File \"a.py\", line 1 in f\n").count(), 100);
    assert!(out.ends_with("in f\n  ...\n"));
    let out = text(&i, 0, Format::for_minor(13), Limits::STDLIB);
    assert!(out.ends_with("in f\n"));
    // Lifted limits still end.
    let out = text(&i, 0, Format::for_minor(11), Limits::LIFTED);
    assert_eq!(out.matches("in f\n").count(), Limits::LIFTED.max_frames);
}

#[test]
fn unreadable_and_malformed_pointers_end_a_listing() {
    let mut i = Interp::new();
    let older = i.thread(1, &[("a.py", "f", 1)]);
    let newer = i.thread(2, &[("b.py", "g", 2), ("b.py", "h", 3)]);
    // newer's second frame's code pointer is misaligned: its listing ends
    // with the marker; older's next pointer leads nowhere.
    let frame = i.walker().current_frame(newer).unwrap();
    let second = i.walker().previous_frame(frame).unwrap();
    i.mem.put_u64(second + i.layout.frame_code, 0x3000_0003);
    i.mem.put_u64(older + i.layout.tstate_next, UNMAPPED as u64);
    assert_eq!(
        stdlib_text(&i, 0),
        "Thread 0x0000000000000002 (most recent call first):\n\
         \x20 File \"b.py\", line 2 in g\n\
         \x20 <invalid frame>\n\
         \n\
         Thread 0x0000000000000001 (most recent call first):\n\
         \x20 File \"a.py\", line 1 in f\n\
         \n\
         <invalid thread state>\n"
    );
}

#[test]
fn addresses_near_the_top_never_overflow() {
    // The debug build checks every addition: these must be errors, not
    // panics (a garbage pointer read from a corrupt or changing target).
    let i = Interp::new();
    let w = i.walker();
    for addr in [usize::MAX - 7, usize::MAX & !7, (usize::MAX >> 1) & !7] {
        assert!(w.thread_id(addr).is_err());
        assert!(w.next_thread(addr).is_err());
        assert!(w.current_frame(addr).is_err());
        assert!(w.frame(addr).is_err());
        assert!(w.str(addr).is_err());
        assert!(w.gc_collecting(addr).is_err());
        assert!(w.is_extension_module(addr).is_err());
        assert!(w.dict_items(addr).is_err());
    }
    // A thread list whose head is such an address.
    let mut i = Interp::new();
    i.mem.put_u64(
        i.interp + i.layout.interp_threads_head,
        (usize::MAX - 7) as u64,
    );
    assert_eq!(stdlib_text(&i, 0), "<invalid thread state>\n");
}

#[test]
fn garbage_string_lengths() {
    let mut i = Interp::new();
    let t = i.thread(1, &[("ok.py", "f", 1)]);
    let frame = i.walker().current_frame(t).unwrap();
    let code = i
        .walker()
        .mem
        .read::<usize>(frame + i.layout.frame_code)
        .unwrap();
    let filename = i
        .walker()
        .mem
        .read::<usize>(code + i.layout.code_filename)
        .unwrap();
    // A negative length: not a readable str, `???`; a huge one: the first
    // 500 code points of whatever follows, then `...`.
    i.mem.put_u64(filename + i.layout.unicode_length, u64::MAX);
    assert!(stdlib_text(&i, 0).contains("  File ???, line 1 in f\n"));
    i.mem.put_u64(filename + i.layout.unicode_length, 1 << 40);
    let out = stdlib_text(&i, 0);
    let shown = format!("ok.py{}", "\\x00".repeat(495));
    assert!(
        out.contains(&format!("  File \"{shown}...\", line 1 in f\n")),
        "{out}"
    );
}

#[test]
fn from_3_14_a_frame_with_unknowns_ends_the_listing() {
    let mut i = Interp::new();
    let t = i.thread(1, &[("a.py", "f", 1), ("a.py", "g", 2)]);
    let frame = i.walker().current_frame(t).unwrap();
    let code = i
        .walker()
        .mem
        .read::<usize>(frame + i.layout.frame_code)
        .unwrap();
    i.mem.put_u64(code + i.layout.code_name, 0);
    let out = stdlib_text(&i, 0);
    assert!(
        out.ends_with("line 1 in ???\n  File \"a.py\", line 2 in g\n"),
        "{out}"
    );
    let format = Format {
        stop_after_unknown: true,
        ..Format::for_minor(11)
    };
    let out = text(&i, 0, format, Limits::STDLIB);
    assert!(out.ends_with("line 1 in ???\n  <invalid frame>\n"), "{out}");
}

#[test]
fn json_report_of_the_same_walk() {
    let mut i = Interp::new();
    let main = i.thread(1, &[("/app/\"q\".py", "<module>", 12)]);
    let other = i.thread(2, &[]);
    let walker = i.walker();
    let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
    let traversal = Traversal {
        walker: &walker,
        limits: Limits::STDLIB,
        shims_count: false,
        names: ThreadNames::None,
        gil: GilHolder::ThreadState(other),
        tids: super::TidSource::Layout,
        recheck: None,
        eval_boundaries: false,
        reread: None,
    };
    out.byte(b'{');
    let mut sink = JsonSink::new(&mut out, 500);
    sink.begin();
    traversal.all_threads(&mut sink, i.interp, main).unwrap();
    sink.finish();
    out.byte(b'}');
    let text = String::from_utf8(out.into_sink().bytes).unwrap();
    let doc: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        doc,
        serde_json::json!({
            "threads": [
                {"thread_id": 2, "native_id": null, "name": null, "current": false,
                 "holds_gil": true, "gc_collecting": false, "frames": [],
                 "end": "no_python_frame"},
                {"thread_id": 1, "native_id": null, "name": null, "current": true,
                 "holds_gil": false, "gc_collecting": false,
                 "frames": [{"file": "/app/\"q\".py", "line": 12, "function": "<module>"}],
                 "end": "complete"},
            ],
            "threads_end": "complete",
        })
    );
}

/// Records what a traversal hands its sink: frames by line, `|` at each
/// end of a call of the C eval loop.
#[derive(Default)]
struct Calls(Vec<String>);

impl super::ReportSink<FakeMemory> for Calls {
    fn thread(&mut self, _walker: &Walker<'_, FakeMemory>, _h: &super::ThreadHeader<'_>) {}
    fn stack(&mut self) {}
    fn frame(&mut self, _walker: &Walker<'_, FakeMemory>, f: &crate::cpython::walk::Frame) -> bool {
        self.0.push(f.line.to_string());
        true
    }
    fn marker(&mut self, marker: super::Marker) {
        self.0.push(format!("{marker:?}"));
    }
    fn eval_boundary(&mut self) {
        self.0.push("|".into());
    }
    fn threads_end(&mut self, _why: super::ThreadsEnd) {}
}

fn calls(interp: &Interp, boundaries: bool, shims_count: bool) -> String {
    let walker = interp.walker();
    let mut traversal = Traversal::new(&walker);
    traversal.eval_boundaries = boundaries;
    traversal.shims_count = shims_count;
    let mut sink = Calls::default();
    traversal.all_threads(&mut sink, interp.interp, 0).unwrap();
    sink.0.join(" ")
}

#[test]
fn eval_calls_end_at_entry_frames_on_3_11() {
    let mut interp = Interp::new();
    let tstate = interp.thread(
        1,
        &[
            ("a.py", "f", 11),
            ("a.py", "g", 12),
            ("a.py", "h", 13),
            ("a.py", "i", 14),
        ],
    );
    // is_entry on the second and the last frame: two calls of the loop.
    let walker = interp.walker();
    let first = walker.current_frame(tstate).unwrap();
    let second = walker.previous_frame(first).unwrap();
    let last = walker
        .previous_frame(walker.previous_frame(second).unwrap())
        .unwrap();
    let at = interp.layout.frame_is_entry.unwrap();
    interp.mem.put(second + at, &[1]);
    interp.mem.put(last + at, &[1]);
    assert_eq!(calls(&interp, true, false), "11 12 | 13 14 |");
    // Without the request, no boundary (the reports stay as they were).
    assert_eq!(calls(&interp, false, false), "11 12 13 14");
}

#[test]
fn eval_calls_end_at_shim_frames_from_3_12_and_at_each_frame_before_3_11() {
    let mut interp = Interp::new();
    let tstate = interp.thread(
        1,
        &[("a.py", "f", 11), ("a.py", "g", 12), ("a.py", "h", 13)],
    );
    // The second frame made a shim (an entry frame of a C call of the loop):
    // 3.12's layout of the owner byte.
    let walker = interp.walker();
    let first = walker.current_frame(tstate).unwrap();
    let second = walker.previous_frame(first).unwrap();
    let owner = interp.layout.frame_owner.unwrap();
    interp.mem.put(second + owner, &[3]);
    interp.layout.shim_owner = Some(3);
    interp.layout.frame_is_entry = None;
    // Skipped without counting (3.12, 3.13) or counted (3.14+): the same calls.
    assert_eq!(calls(&interp, true, false), "11 | 13");
    assert_eq!(calls(&interp, true, true), "11 | 13");
    // No shims and no is_entry (2.7-3.10): one call per frame.
    interp.layout.shim_owner = None;
    interp.mem.put(second + owner, &[0]);
    assert_eq!(calls(&interp, true, false), "11 | 12 | 13 |");
}

/// The memory of a thread caught halfway through a call: one field (its
/// current frame, a frame's `previous` or owner byte) reads as `torn` until
/// the reader has been told to read again `torn_for` times.
struct MidCall<'m> {
    inner: &'m FakeMemory,
    slot: usize,
    torn: usize,
    torn_for: usize,
    rereads: std::cell::Cell<usize>,
}

impl Memory for MidCall<'_> {
    fn read_bytes(&self, addr: usize, dst: &mut [u8]) -> Result<(), BadAddress> {
        if addr == self.slot && self.rereads.get() < self.torn_for {
            dst.copy_from_slice(&(self.torn as u64).to_ne_bytes()[..dst.len()]);
            return Ok(());
        }
        self.inner.read_bytes(addr, dst)
    }
}

/// The report of `i` when the pointer at `slot` reads as `torn` until the
/// thread has been read again `torn_for` times; and how many times it was.
fn report_reread(i: &Interp, slot: usize, torn: usize, torn_for: usize) -> (String, usize) {
    let mem = MidCall {
        inner: &i.mem,
        slot,
        torn,
        torn_for,
        rereads: std::cell::Cell::new(0),
    };
    let walker = Walker::new(&mem, &i.layout, i.types());
    let reread = || mem.rereads.set(mem.rereads.get() + 1);
    let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
    let traversal = Traversal {
        reread: Some(&reread),
        ..Traversal::new(&walker)
    };
    let mut sink = TextSink::new(&mut out, Format::for_minor(12), 500);
    traversal.all_threads(&mut sink, i.interp, 0).unwrap();
    let text = String::from_utf8(out.into_sink().bytes).unwrap();
    (text, mem.rereads.get())
}

#[test]
fn a_thread_read_mid_call_is_read_again() {
    let mut i = Interp::new();
    let t = i.thread(1, &[("a.py", "f", 1), ("a.py", "<module>", 2)]);
    let FramePath::ViaCFrame {
        cframe,
        current_frame,
    } = i.layout.tstate_frame
    else {
        unreachable!("3.11 reaches frames through the cframe");
    };
    let slot = i.walker().mem.read::<usize>(t + cframe).unwrap() + current_frame;
    let whole = "Thread 0x0000000000000001 (most recent call first):\n\
                 \x20 File \"a.py\", line 1 in f\n\
                 \x20 File \"a.py\", line 2 in <module>\n";
    // The current frame torn for the first two reads: the third is listed.
    assert_eq!(report_reread(&i, slot, UNMAPPED, 2), (whole.into(), 2));
    // Torn for good (or corrupt): given up after TORN_RETRIES reads.
    let invalid = "Thread 0x0000000000000001 (most recent call first):\n  <invalid frame>\n";
    assert_eq!(
        report_reread(&i, slot, UNMAPPED, usize::MAX),
        (invalid.into(), super::TORN_RETRIES)
    );
    // A thread with no Python frame is not torn: read once.
    let mut i = Interp::new();
    i.thread(1, &[]);
    let (text, rereads) = report_reread(&i, 0, 0, 0);
    assert!(text.ends_with("<no Python frame>\n"), "{text}");
    assert_eq!(rereads, 0);
}

/// A thread of a 3.12+ shape (shims skipped by their owner byte, no
/// `is_entry`) whose frames at the indexes `shims` are shims; returns the
/// frames' addresses, innermost first.
fn thread_with_shims(i: &mut Interp, frames: &[(&str, &str, i32)], shims: &[usize]) -> Vec<usize> {
    let t = i.thread(1, frames);
    let walker = i.walker();
    let mut addresses = vec![walker.current_frame(t).unwrap()];
    while addresses.len() < frames.len() {
        addresses.push(walker.previous_frame(*addresses.last().unwrap()).unwrap());
    }
    let owner = i.layout.frame_owner.unwrap();
    for &shim in shims {
        i.mem.put(addresses[shim] + owner, &[3]);
    }
    i.layout.shim_owner = Some(3);
    i.layout.frame_is_entry = None;
    addresses
}

#[test]
fn from_3_12_a_stack_cut_after_a_real_frame_is_read_again() {
    // f, then a shim (a C call of the eval loop), <module>, and the shim at
    // the base of every 3.12+ stack.
    let mut i = Interp::new();
    let frames = thread_with_shims(
        &mut i,
        &[
            ("a.py", "f", 1),
            ("", "", 0),
            ("a.py", "<module>", 2),
            ("", "", 0),
        ],
        &[1, 3],
    );
    let (f, base) = (frames[0], frames[3]);
    let previous = i.layout.frame_previous;
    let whole = "Thread 0x0000000000000001 (most recent call first):\n\
                 \x20 File \"a.py\", line 1 in f\n\
                 \x20 File \"a.py\", line 2 in <module>\n";
    // Whole: read once.
    assert_eq!(report_reread(&i, 0, 0, 0), (whole.into(), 0));
    // f linked before its `previous` was set: read again.
    assert_eq!(report_reread(&i, f + previous, 0, 1), (whole.into(), 1));
    // The shim at the base is not such a cut (only a real frame is).
    assert_eq!(
        report_reread(&i, base + previous, 0, usize::MAX),
        (whole.into(), 0)
    );
    // Before 3.12 a real frame is the base: nothing to read again.
    i.layout.shim_owner = None;
    let (text, rereads) = report_reread(&i, f + previous, 0, usize::MAX);
    assert!(text.ends_with("line 1 in f\n"), "{text}");
    assert_eq!(rereads, 0);
}

#[test]
fn on_3_12_an_entry_frame_not_marked_yet_is_read_again() {
    // The eval loop's entry frame (the interpreter trampoline), then spin,
    // <module> and the base shim, on 3.12.
    let mut i = Interp::new();
    i.layout.minor = 12;
    let frames = thread_with_shims(
        &mut i,
        &[
            ("<shim>", "<interpreter trampoline>", 1),
            ("a.py", "spin", 2),
            ("a.py", "<module>", 3),
            ("", "", 0),
        ],
        &[0, 3],
    );
    let owner_byte = frames[0] + i.layout.frame_owner.unwrap();
    let whole = "Thread 0x0000000000000001 (most recent call first):\n\
                 \x20 File \"a.py\", line 2 in spin\n\
                 \x20 File \"a.py\", line 3 in <module>\n";
    // Its owner byte reads as 0 for the first read.
    assert_eq!(report_reread(&i, owner_byte, 0, 1), (whole.into(), 1));
    // Never marked: listed as read, after the rereads.
    let (text, rereads) = report_reread(&i, owner_byte, 0, usize::MAX);
    assert!(
        text.contains("line 1 in <interpreter trampoline>\n"),
        "{text}"
    );
    assert_eq!(rereads, super::TORN_RETRIES);
    // On 3.13 the same name means nothing (no such frames there).
    i.layout.minor = 13;
    let (text, rereads) = report_reread(&i, owner_byte, 0, usize::MAX);
    assert!(
        text.contains("line 1 in <interpreter trampoline>\n"),
        "{text}"
    );
    assert_eq!(rereads, 0);
}
