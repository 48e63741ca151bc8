//! `lastwords dump PID`: the Python stack of every thread of another process.
//!
//! The target never imported lastwords and need not be stopped: discovery
//! (lastwords-remote) finds its interpreter, version and layout from
//! `/proc/PID/maps` and the ELF files behind it; the walker of lastwords-core
//! reads it through `process_vm_readv` and a page cache; the report is the
//! same traversal and the same text (or JSON) sink as a crash report.
//!
//! Without `--pause` the target keeps running while it is read, so what was
//! read is checked: each thread's top frame is read again after its listing
//! (a thread that moved ends with `  <invalid frame>`), and the thread list
//! after the whole walk; a dump that saw either change is taken again, up to
//! [`ATTEMPTS`] times. `--pause` stops every thread with ptrace instead, and
//! resumes them on every path (the kernel also resumes them if lastwords
//! dies).

use std::fmt::Write as _;
use std::time::Duration;

use lastwords_core::cpython::walk::Walker;
use lastwords_core::memory::{BlockCache, Cached, Memory, ProcessMemory};
use lastwords_core::report::json::{JsonSink, JsonWriter};
use lastwords_core::report::text::{Format, TextSink};
use lastwords_core::report::{
    GilHolder, Limits, Marker, ReportSink, ThreadHeader, ThreadNames, ThreadsEnd, TidSource,
    Traversal,
};
use lastwords_core::writer::{FlushPolicy, VecSink, Writer};
use lastwords_remote::discover::TidAt;
use lastwords_remote::{Interpreter, RemoteError, attach, discover};

/// How many times a dump of a running process is taken before its result is
/// kept, markers and all.
pub const ATTEMPTS: usize = 3;

/// How long `--pause` waits for every thread to stop.
const PAUSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What `lastwords dump` was asked for.
#[derive(Clone, Debug)]
pub struct DumpOptions {
    pub pid: i32,
    pub json: bool,
    pub pause: bool,
    pub subprocesses: bool,
    pub limits: Limits,
    /// The stdlib's text only: no process header, no names where the
    /// target's version does not print them, no GIL marker.
    pub stdlib_format: bool,
    /// `--repeat N` (benchmarks): read the process N times, print the last
    /// report and, on stderr, the time one walk took.
    pub repeat: usize,
    /// The walk alone, for `--repeat`: no thread names, no GIL holder.
    pub walk_only: bool,
}

/// One process, dumped (or why not).
pub struct ProcessDump {
    pub pid: i32,
    pub command_line: Vec<Vec<u8>>,
    pub outcome: Result<Dumped, RemoteError>,
}

/// A process whose threads were read.
pub struct Dumped {
    pub interp: Interpreter,
    /// The rendered threads (text blocks, or the JSON `threads` members).
    pub threads: Vec<u8>,
    /// How long `--pause` kept the threads stopped.
    pub stopped_for: Option<Duration>,
    /// Dumps taken until one saw no change (see [`ATTEMPTS`]).
    pub attempts: usize,
}

/// Dump every process asked for; returns whether the first (PID) could be
/// dumped.
pub fn run(options: &DumpOptions) -> Result<(), String> {
    let pids = if options.subprocesses {
        crate::processes::tree(options.pid)
    } else {
        vec![options.pid]
    };
    let mut dumps = Vec::with_capacity(pids.len());
    for (index, &pid) in pids.iter().enumerate() {
        let dump = dump_process(pid, options);
        let root = index == 0;
        match &dump.outcome {
            // Below the root, processes that are not Python (a shell, a
            // compiler) are left out of a --subprocesses dump.
            Err(RemoteError::NotPython { .. } | RemoteError::NoSuchProcess(_)) if !root => {
                continue;
            }
            Err(e) if root && !options.subprocesses => return Err(e.to_string()),
            _ => {}
        }
        dumps.push(dump);
    }
    let out = if options.json {
        json_document(&dumps)
    } else {
        text_document(&dumps, options)
    };
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write the report: {e}"))?;
    match dumps.first().map(|d| &d.outcome) {
        Some(Err(e)) => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// Discover, (pause,) read, (resume).
fn dump_process(pid: i32, options: &DumpOptions) -> ProcessDump {
    let command_line = crate::processes::command_line(pid);
    let outcome = discover(pid).and_then(|interp| {
        let mem = ProcessMemory::new(pid);
        // Heap: 256 KiB would not fit the main thread's stack comfortably.
        // Blocks of what changes (thread states, frames: read afresh by each
        // walk) and of what does not (code objects, strings, line tables:
        // kept for the walks of this one command). On the heap: 256 KiB each.
        let caches = Caches {
            volatile: Box::new(BlockCache::new()),
            stable: Box::new(BlockCache::new()),
        };
        let cache = &caches;
        if options.pause {
            let paused = attach::pause(pid, PAUSE_TIMEOUT)?;
            let (threads, _, _) = render(&interp, &mem, cache, options, false);
            let resumed = paused.resume();
            Ok(Dumped {
                interp,
                threads,
                stopped_for: Some(resumed.stopped_for),
                attempts: 1,
            })
        } else {
            if options.repeat > 1 {
                time_walks(&interp, &mem, cache, options);
            }
            let mut attempts = 0;
            loop {
                attempts += 1;
                let (threads, steady, _) = render(&interp, &mem, cache, options, true);
                if steady || attempts >= ATTEMPTS {
                    break Ok(Dumped {
                        interp,
                        threads,
                        stopped_for: None,
                        attempts,
                    });
                }
            }
        }
    });
    ProcessDump {
        pid,
        command_line,
        outcome,
    }
}

/// `--repeat N`: walk and render the process N times, as the walks of one
/// dump do (what changes read afresh each time, immutable objects kept), and
/// say on stderr what one took, per walk and per frame: the walk alone,
/// threads, frames, file and function names and lines, as CPython's own
/// `RemoteUnwinder.get_stack_trace()` gives them (no thread names read from
/// /proc, no GIL holder).
fn time_walks(interp: &Interpreter, mem: &ProcessMemory, cache: &Caches, options: &DumpOptions) {
    let walk_only = DumpOptions {
        stdlib_format: true,
        json: false,
        walk_only: true,
        ..options.clone()
    };
    let started = std::time::Instant::now();
    let mut frames = 0;
    for _ in 0..options.repeat {
        frames = render(interp, mem, cache, &walk_only, false).2;
    }
    let per_dump = started.elapsed().as_nanos() / options.repeat as u128;
    eprintln!(
        "lastwords: {} walks of process {}: {} frames each, {:.1} us per walk, {:.1} ns per frame",
        options.repeat,
        interp.pid,
        frames,
        per_dump as f64 / 1e3,
        per_dump as f64 / frames.max(1) as f64
    );
}

/// The page caches of one dump command (see `dump_process`).
struct Caches {
    volatile: Box<BlockCache>,
    stable: Box<BlockCache>,
}

/// Records what a traversal did, for the checks of a dump of a running
/// process: the thread states listed, whether a thread moved, frames listed.
struct Watch<S> {
    inner: S,
    tstates: Vec<usize>,
    changed: bool,
    frames: usize,
}

impl<M: Memory, S: ReportSink<M>> ReportSink<M> for Watch<S> {
    fn thread(&mut self, walker: &Walker<'_, M>, header: &ThreadHeader<'_>) {
        self.tstates.push(header.tstate);
        self.inner.thread(walker, header);
    }
    fn stack(&mut self) {
        self.inner.stack();
    }
    fn frame(
        &mut self,
        walker: &Walker<'_, M>,
        frame: &lastwords_core::cpython::walk::Frame,
    ) -> bool {
        self.frames += 1;
        self.inner.frame(walker, frame)
    }
    fn marker(&mut self, marker: Marker) {
        self.changed |= marker == Marker::Changed;
        self.inner.marker(marker);
    }
    fn end_thread(&mut self) {
        self.inner.end_thread();
    }
    fn threads_end(&mut self, why: ThreadsEnd) {
        self.inner.threads_end(why);
    }
}

/// The text dialect for a target: its version's stdlib, plus (unless
/// `--stdlib-format`) thread names on every version and the GIL marker.
fn format_for(interp: &Interpreter, options: &DumpOptions) -> Format {
    let stdlib = Format::for_version(interp.version.major, interp.version.minor);
    if options.stdlib_format {
        stdlib
    } else {
        Format {
            thread_names: true,
            gil_marker: true,
            ..stdlib
        }
    }
}

/// One walk of the target's threads into text or JSON; returns the bytes,
/// whether nothing moved under the walk (always true when `checked` is
/// false, for a paused target), and how many frames were listed.
fn render(
    interp: &Interpreter,
    mem: &ProcessMemory,
    caches: &Caches,
    options: &DumpOptions,
    checked: bool,
) -> (Vec<u8>, bool, usize) {
    caches.volatile.clear();
    let cached = Cached::new(*mem, &caches.volatile).with_stable(&caches.stable);
    let types = interp.known_types();
    let walker = Walker::new(&cached, &interp.layout, types);
    // Re-reads go around the cache: they must see the target as it is now.
    let fresh = Walker::new(mem, &interp.layout, types);
    let recheck = |tstate: usize| fresh.current_frame(tstate).ok();
    let format = format_for(interp, options);
    let gil = if (format.gil_marker || options.json) && !options.walk_only {
        match interp.gil_holder(mem) {
            Ok(Some(t)) => GilHolder::ThreadState(t),
            Ok(None) => GilHolder::Nobody,
            Err(_) => GilHolder::Unknown,
        }
    } else {
        GilHolder::Unknown
    };
    let traversal = Traversal {
        walker: &walker,
        limits: options.limits,
        shims_count: format.shims_count,
        names: if (format.thread_names || options.json) && !options.walk_only {
            ThreadNames::Process(u64::try_from(interp.pid).unwrap_or(0))
        } else {
            ThreadNames::None
        },
        gil,
        tids: match interp.tid {
            TidAt::Pthread { offset, .. } => TidSource::Pthread(offset),
            TidAt::ThreadState { .. } => TidSource::Layout,
        },
        recheck: if checked { Some(&recheck) } else { None },
    };
    let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
    let watch = if options.json {
        let mut sink = Watch {
            inner: JsonSink::new(&mut out, options.limits.max_string),
            tstates: Vec::new(),
            changed: false,
            frames: 0,
        };
        sink.inner.begin();
        let walked = traversal.all_threads(&mut sink, interp.interp_head, 0);
        if walked.is_ok() {
            sink.inner.finish();
        }
        (sink.tstates, sink.changed, sink.frames, walked)
    } else {
        let mut sink = Watch {
            inner: TextSink::new(&mut out, format, options.limits.max_string),
            tstates: Vec::new(),
            changed: false,
            frames: 0,
        };
        let walked = traversal.all_threads(&mut sink, interp.interp_head, 0);
        (sink.tstates, sink.changed, sink.frames, walked)
    };
    let (tstates, changed, frames, walked) = watch;
    if let Err(why) = walked {
        // No thread to walk (the interpreter is finalizing, or its list was
        // torn): the stdlib's words, as a line of the report.
        out.str(if options.json {
            "\"threads\":[],\"threads_end\":\"no_thread_head\""
        } else {
            why
        });
        if !options.json {
            out.end_line();
        }
    }
    let bytes = out.into_sink().bytes;
    let steady = !checked
        || (!changed && same_thread_list(&fresh, interp, &tstates, options.limits.max_threads));
    (bytes, steady, frames)
}

/// Whether the interpreter's thread list, read again, is the one walked
/// (or begins with it, when the walk stopped at its thread limit).
fn same_thread_list<M: Memory>(
    fresh: &Walker<'_, M>,
    interp: &Interpreter,
    walked: &[usize],
    max_threads: usize,
) -> bool {
    let mut t = fresh.thread_head(interp.interp_head).unwrap_or(0);
    for &expected in walked {
        if t != expected {
            return false;
        }
        t = fresh.next_thread(t).unwrap_or(0);
    }
    t == 0 || walked.len() >= max_threads
}

/// The command line as the target sees it, for a header: arguments joined by
/// spaces, each quoted when it would otherwise be ambiguous.
fn command_line_text(args: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let text = String::from_utf8_lossy(arg);
        let plain = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
        if plain {
            out.push_str(&text);
        } else {
            out.push('\'');
            out.push_str(&text.replace('\'', "'\\''"));
            out.push('\'');
        }
    }
    out
}

/// The text report: for each process a header (unless `--stdlib-format`),
/// then its threads as the stdlib prints them.
fn text_document(dumps: &[ProcessDump], options: &DumpOptions) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, dump) in dumps.iter().enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        let mut header = String::new();
        if !options.stdlib_format {
            let _ = writeln!(
                header,
                "Process {}: {}",
                dump.pid,
                command_line_text(&dump.command_line)
            );
        }
        match &dump.outcome {
            Ok(d) => {
                if !options.stdlib_format {
                    let _ = writeln!(
                        header,
                        "Python {}{}, {}",
                        d.interp.version,
                        if d.interp.debug_build {
                            " (debug build)"
                        } else {
                            ""
                        },
                        d.interp.binary.path.display()
                    );
                    if let Some(stopped) = d.stopped_for {
                        let _ = writeln!(
                            header,
                            "Threads stopped for {:.3} ms while read (--pause)",
                            stopped.as_secs_f64() * 1e3
                        );
                    }
                    header.push('\n');
                }
                out.extend_from_slice(header.as_bytes());
                out.extend_from_slice(&d.threads);
            }
            Err(e) => {
                let _ = writeln!(header, "lastwords: {e}");
                out.extend_from_slice(header.as_bytes());
            }
        }
    }
    out
}

/// The JSON report (`schema/report.schema.json`, version 1).
fn json_document(dumps: &[ProcessDump]) -> Vec<u8> {
    let mut w = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
    {
        let mut j = JsonWriter { out: &mut w };
        j.out.byte(b'{');
        j.key("schema_version");
        j.number(1);
        j.out.byte(b',');
        j.key("generator");
        j.string(concat!("lastwords ", env!("CARGO_PKG_VERSION")));
        j.out.byte(b',');
        j.key("processes");
        j.out.byte(b'[');
    }
    for (i, dump) in dumps.iter().enumerate() {
        let mut j = JsonWriter { out: &mut w };
        if i > 0 {
            j.out.byte(b',');
        }
        j.out.byte(b'{');
        j.key("pid");
        j.number(u64::try_from(dump.pid).unwrap_or(0));
        j.out.byte(b',');
        j.key("command_line");
        j.out.byte(b'[');
        for (k, arg) in dump.command_line.iter().enumerate() {
            if k > 0 {
                j.out.byte(b',');
            }
            j.bytes_string(arg);
        }
        j.out.byte(b']');
        match &dump.outcome {
            Err(e) => {
                j.out.byte(b',');
                j.key("error");
                j.string(&e.to_string());
                j.out.byte(b'}');
            }
            Ok(d) => {
                let v = &d.interp.version;
                j.out.byte(b',');
                j.key("python");
                j.out.byte(b'{');
                j.key("implementation");
                j.string("cpython");
                j.out.byte(b',');
                j.key("version");
                j.string(&v.to_string());
                j.out.byte(b',');
                j.key("hexversion");
                j.number(u64::from(v.hex()));
                j.out.byte(b',');
                j.key("debug_build");
                j.boolean(d.interp.debug_build);
                j.out.byte(b',');
                j.key("binary");
                j.bytes_string(d.interp.binary.path.as_os_str().as_encoded_bytes());
                j.out.byte(b'}');
                j.out.byte(b',');
                j.key("paused_us");
                match d.stopped_for {
                    Some(t) => j.number(u64::try_from(t.as_micros()).unwrap_or(u64::MAX)),
                    None => j.out.str("null"),
                }
                j.out.byte(b',');
                j.key("attempts");
                j.number(d.attempts as u64);
                j.out.byte(b',');
                j.out.bytes(&d.threads);
                j.out.byte(b'}');
            }
        }
    }
    w.str("]}");
    w.byte(b'\n');
    w.into_sink().bytes
}
