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
//!
//! `--core CORE` reads a core file instead (the kernel's, gcore's, or
//! systemd-coredump's compressed one): discovery and the walk are the same,
//! through lastwords-remote's `CoreSource`, which is the core's memory (its
//! segments, and the files it names for what it left out). Nothing moves
//! under the walk, so it is taken once; the thread that took the signal the
//! process died of is the "current" one, as in the report its own
//! faulthandler wrote.
//!
//! `--native` adds each thread's native frames (lastwords-remote's `native`:
//! registers from the pause, or from the core's notes), merged into the
//! traversal's Python frames by `crate::native::Merge`.

use std::fmt::Write as _;
use std::path::PathBuf;
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
use lastwords_remote::core_file::CoreFile;
use lastwords_remote::core_source::{CoreOptions, CoreSource};
use lastwords_remote::discover::TidAt;
use lastwords_remote::native::{self as native_stacks, NativeStack};
use lastwords_remote::source::{LiveProcess, Source as _};
use lastwords_remote::{Interpreter, RemoteError, attach, discover_in};

use crate::native::Merge;

/// The native stacks of a dump (`--native`).
pub struct Natives {
    /// By kernel thread id.
    pub stacks: std::collections::HashMap<u32, NativeStack>,
    /// The process they were read from while it ran (None: a core), for
    /// why a thread has no stack.
    pub live_pid: Option<i32>,
}

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
    /// `--core CORE`: a core file instead of a process.
    pub core: Option<PathBuf>,
    /// `--executable PATH`, `--root DIR`: where the core's files are.
    pub executable: Option<PathBuf>,
    pub root: Option<PathBuf>,
    /// `--native`: native frames merged into each thread's stack (a live
    /// process is paused for its registers).
    pub native: bool,
}

/// One process, dumped (or why not).
pub struct ProcessDump {
    pub pid: i32,
    pub command_line: Vec<Vec<u8>>,
    pub outcome: Result<Dumped, RemoteError>,
    /// Read from a core file rather than the running process.
    pub core: Option<CoreFacts>,
}

/// What the report says of a core file.
pub struct CoreFacts {
    pub path: PathBuf,
    /// zstd, lz4, xz.
    pub compression: Option<&'static str>,
    /// The signal the process died of, and the thread that took it.
    pub signal: Option<(i32, u32)>,
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
    if let Some(core) = &options.core {
        return run_core(core, options);
    }
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
    print_dumps(&dumps, options)?;
    match dumps.first().map(|d| &d.outcome) {
        Some(Err(e)) => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// The report of `dumps` on stdout.
fn print_dumps(dumps: &[ProcessDump], options: &DumpOptions) -> Result<(), String> {
    let out = if options.json {
        json_document(dumps)
    } else {
        text_document(dumps, options)
    };
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("cannot write the report: {e}"))
}

/// `--core CORE`: open, discover, walk once; notes on stderr for what the
/// core lacked (cut segments, files that are not here).
fn run_core(path: &std::path::Path, options: &DumpOptions) -> Result<(), String> {
    let shown = path.display().to_string();
    let bad = |what: String| {
        RemoteError::BadCore {
            core: shown.clone(),
            what,
        }
        .to_string()
    };
    let core = CoreFile::open(path).map_err(|e| bad(e.0))?;
    let facts = CoreFacts {
        path: path.to_path_buf(),
        compression: core.compression,
        signal: core.fatal_signal(),
    };
    let source = CoreSource::new(
        core,
        CoreOptions {
            executable: options.executable.clone(),
            root: options.root.clone(),
        },
    )
    .map_err(bad)?;
    let truncated = match source.core.missing_bytes {
        0 => String::new(),
        n => format!(
            "the core file is truncated: {n} bytes of the memory it should hold are missing"
        ),
    };
    let interp = discover_in(&source).map_err(|e| {
        let e = RemoteError::InCore {
            core: shown.clone(),
            error: Box::new(e),
        };
        if truncated.is_empty() {
            e.to_string()
        } else {
            format!("{e} ({truncated})")
        }
    })?;
    // The thread that took the fatal signal is the report's current one.
    let current = facts
        .signal
        .and_then(|(_, tid)| interp.threads.iter().find(|t| t.tid == Some(tid)))
        .map_or(0, |t| t.tstate);
    // Thread names are not in a core: the main thread's is `pr_fname`.
    let names: Vec<(u64, Vec<u8>)> = match &source.core.process {
        Some(p) if !p.name.is_empty() && p.pid != 0 => vec![(u64::from(p.pid), p.name.clone())],
        _ => Vec::new(),
    };
    if options.repeat > 1 {
        time_walks(
            &interp,
            &source,
            &source,
            options,
            &How::core(current, &names),
        );
    }
    let natives = options.native.then(|| {
        let threads: Vec<_> = source
            .core
            .threads
            .iter()
            .filter_map(|t| Some((t.tid, native_stacks::regs_from_words(&t.registers)?)))
            .collect();
        let root = options.root.clone().unwrap_or_else(|| PathBuf::from("/"));
        Natives {
            stacks: native_stacks::native_stacks(
                &source,
                &source,
                native_stacks::process_from_auxv(&source.core.auxv),
                &root,
                &threads,
                native_limit(options),
            ),
            live_pid: None,
        }
    });
    let (threads, _, _) = render(
        &interp,
        &source,
        &source,
        options,
        &How::core(current, &names),
        natives.as_ref(),
    );
    let dump = ProcessDump {
        pid: interp.pid,
        command_line: source.command_line(),
        outcome: Ok(Dumped {
            interp,
            threads,
            stopped_for: None,
            attempts: 1,
        }),
        core: Some(facts),
    };
    print_dumps(std::slice::from_ref(&dump), options)?;
    if !truncated.is_empty() {
        eprintln!("lastwords: note: {truncated}; what they held is shown as unreadable");
    }
    if source.core.bad_notes > 0 {
        eprintln!(
            "lastwords: note: {} notes of the core could not be read (cut or malformed)",
            source.core.bad_notes
        );
    }
    for (file, problem) in source.unavailable_files() {
        eprintln!("lastwords: note: {file} {problem}: its memory was not read");
    }
    Ok(())
}

/// How one walk reads and names threads.
struct How<'n> {
    /// Re-read each thread's top frame and the thread list after the walk
    /// (a running process).
    checked: bool,
    /// The thread state to call "current" (0: none).
    current: usize,
    /// Names by kernel thread id, instead of `/proc` (a core).
    names: Option<&'n [(u64, Vec<u8>)]>,
}

impl<'n> How<'n> {
    fn process(checked: bool) -> Self {
        How {
            checked,
            current: 0,
            names: None,
        }
    }

    fn core(current: usize, names: &'n [(u64, Vec<u8>)]) -> Self {
        How {
            checked: false,
            current,
            names: Some(names),
        }
    }
}

/// Discover, (pause,) read, (resume).
fn dump_process(pid: i32, options: &DumpOptions) -> ProcessDump {
    // The process's mappings, read once: for discovery, and for --native.
    let source = LiveProcess::new(pid);
    // A process whose main thread has exited shows its command line only
    // through the threads left.
    let command_line =
        crate::processes::command_line(source.as_ref().map_or(pid, LiveProcess::reader));
    let outcome = source.and_then(|source| {
        let interp = discover_in(&source)?;
        let mem = ProcessMemory::new(source.reader());
        // Blocks of what changes (thread states, frames: read afresh by each
        // walk) and of what does not (code objects, strings, line tables:
        // kept for the walks of this one command). On the heap: 256 KiB each.
        let caches = Caches {
            volatile: Box::new(BlockCache::new()),
            stable: Box::new(BlockCache::new()),
        };
        if options.pause || options.native {
            let paused = attach::pause(pid, PAUSE_TIMEOUT)?;
            let natives = options
                .native
                .then(|| live_natives(&source, &paused, options, &caches.volatile));
            let (threads, _, _) =
                render_live(&interp, &mem, &caches, options, false, natives.as_ref());
            let resumed = paused.resume();
            Ok(Dumped {
                interp,
                threads,
                stopped_for: Some(resumed.stopped_for),
                attempts: 1,
            })
        } else {
            if options.repeat > 1 {
                let cached = Cached::new(mem, &caches.volatile).with_stable(&caches.stable);
                time_walks(&interp, &cached, &mem, options, &How::process(false));
            }
            let mut attempts = 0;
            loop {
                attempts += 1;
                let (threads, steady, _) = render_live(&interp, &mem, &caches, options, true, None);
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
        core: None,
    }
}

/// The most native frames per thread.
fn native_limit(options: &DumpOptions) -> usize {
    if options.limits == lastwords_core::report::Limits::LIFTED {
        native_stacks::MAX_NATIVE_FRAMES_LIFTED
    } else {
        native_stacks::MAX_NATIVE_FRAMES
    }
}

/// The native stack of every thread of a paused process.
fn live_natives(
    source: &LiveProcess,
    paused: &attach::Paused,
    options: &DumpOptions,
    cache: &BlockCache,
) -> Natives {
    let reader = source.reader();
    let threads: Vec<_> = paused
        .tids()
        .into_iter()
        .filter_map(|tid| {
            let regs = paused.registers(tid).ok()?;
            let regs = native_stacks::regs_from_words(&native_stacks::ptrace_words(&regs.raw))?;
            Some((u32::try_from(tid).ok()?, regs))
        })
        .collect();
    // Code, unwind tables and symbols do not change while paused: one
    // cache for the whole unwind. It is the walk's (which clears it before
    // it reads), so that the pages one filled serve the other instead of
    // being faulted in anew: ~45 of the command's ~265 page faults.
    cache.clear();
    let mem = Cached::new(ProcessMemory::new(reader), cache);
    let root = PathBuf::from(format!("/proc/{reader}/root"));
    Natives {
        stacks: native_stacks::native_stacks(
            source,
            &mem,
            native_stacks::process_live(reader),
            &root,
            &threads,
            native_limit(options),
        ),
        live_pid: Some(source.pid()),
    }
}

/// `--repeat N`: walk and render the target N times, as the walks of one
/// dump do (what changes read afresh each time, immutable objects kept), and
/// say on stderr what one took, per walk and per frame: the walk alone,
/// threads, frames, file and function names and lines, as CPython's own
/// `RemoteUnwinder.get_stack_trace()` gives them (no thread names, no GIL
/// holder).
fn time_walks<M: Memory + Clears, F: Memory>(
    interp: &Interpreter,
    mem: &M,
    fresh: &F,
    options: &DumpOptions,
    how: &How<'_>,
) {
    let walk_only = DumpOptions {
        stdlib_format: true,
        json: false,
        walk_only: true,
        ..options.clone()
    };
    let started = std::time::Instant::now();
    let mut frames = 0;
    for _ in 0..options.repeat {
        mem.clear();
        frames = render(interp, mem, fresh, &walk_only, how, None).2;
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

/// A reader whose cache (if any) can be emptied between walks.
trait Clears {
    fn clear(&self);
}

impl<M: Memory> Clears for Cached<'_, M> {
    fn clear(&self) {
        self.cache.clear();
    }
}

impl Clears for CoreSource {
    fn clear(&self) {}
}

/// Records what a traversal did, for the checks of a dump of a running
/// process: the thread states listed, whether a thread moved, frames listed.
/// Where `names` is given (a core), thread names come from it.
struct Watch<'n, S> {
    inner: S,
    tstates: Vec<usize>,
    changed: bool,
    frames: usize,
    names: Option<&'n [(u64, Vec<u8>)]>,
}

impl<M: Memory, S: ReportSink<M>> ReportSink<M> for Watch<'_, S> {
    fn thread(&mut self, walker: &Walker<'_, M>, header: &ThreadHeader<'_>) {
        self.tstates.push(header.tstate);
        match self.names {
            Some(names) => {
                let name = header.native_id.and_then(|tid| {
                    names
                        .iter()
                        .find(|(t, _)| *t == tid)
                        .map(|(_, n)| n.as_slice())
                });
                let named = ThreadHeader {
                    name,
                    tstate: header.tstate,
                    thread_id: header.thread_id,
                    native_id: header.native_id,
                    is_current: header.is_current,
                    holds_gil: header.holds_gil,
                    gc_collecting: header.gc_collecting,
                };
                self.inner.thread(walker, &named);
            }
            None => self.inner.thread(walker, header),
        }
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
    fn eval_boundary(&mut self) {
        self.inner.eval_boundary();
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

/// One walk of a running (or paused) process, through the page cache.
fn render_live(
    interp: &Interpreter,
    mem: &ProcessMemory,
    caches: &Caches,
    options: &DumpOptions,
    checked: bool,
    natives: Option<&Natives>,
) -> (Vec<u8>, bool, usize) {
    caches.volatile.clear();
    let cached = Cached::new(*mem, &caches.volatile).with_stable(&caches.stable);
    render(
        interp,
        &cached,
        mem,
        options,
        &How::process(checked),
        natives,
    )
}

/// The page caches of one dump of a live process (see `dump_process`).
struct Caches {
    volatile: Box<BlockCache>,
    stable: Box<BlockCache>,
}

/// One walk of the target's threads into text or JSON, reading through
/// `mem` (and `fresh` for re-reads that must see the target as it is now);
/// returns the bytes, whether nothing moved under the walk (always true when
/// `how.checked` is false: a paused target, a core), and how many frames
/// were listed.
fn render<M: Memory, F: Memory>(
    interp: &Interpreter,
    mem: &M,
    fresh_mem: &F,
    options: &DumpOptions,
    how: &How<'_>,
    natives: Option<&Natives>,
) -> (Vec<u8>, bool, usize) {
    let checked = how.checked;
    let types = interp.known_types();
    let walker = Walker::new(mem, &interp.layout, types);
    let fresh = Walker::new(fresh_mem, &interp.layout, types);
    let recheck = |tstate: usize| fresh.current_frame(tstate).ok();
    let format = format_for(interp, options);
    let gil = if (format.gil_marker || options.json) && !options.walk_only {
        match interp.gil_holder(fresh_mem) {
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
        names: if (format.thread_names || options.json) && !options.walk_only && how.names.is_none()
        {
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
        eval_boundaries: natives.is_some(),
        reread: None,
    };
    // A core's names (its table), where the report prints names.
    let names = how.names.map(|table| {
        if (format.thread_names || options.json) && !options.walk_only {
            table
        } else {
            &[][..]
        }
    });
    let mut out = Writer::new(VecSink::default(), FlushPolicy::WhenFull);
    let watch = if options.json {
        let mut sink = Watch {
            inner: Merge::new(JsonSink::new(&mut out, options.limits.max_string), natives),
            tstates: Vec::new(),
            changed: false,
            frames: 0,
            names,
        };
        sink.inner.inner.begin();
        let walked = traversal.all_threads(&mut sink, interp.interp_head, how.current);
        if walked.is_ok() {
            sink.inner.inner.finish();
        }
        (sink.tstates, sink.changed, sink.frames, walked)
    } else {
        let mut sink = Watch {
            inner: Merge::new(
                TextSink::new(&mut out, format, options.limits.max_string),
                natives,
            ),
            tstates: Vec::new(),
            changed: false,
            frames: 0,
            names,
        };
        let walked = traversal.all_threads(&mut sink, interp.interp_head, how.current);
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
    let Ok(mut t) = fresh.thread_head(interp.interp_head) else {
        return false;
    };
    if walked.is_empty() && t != 0 {
        return false;
    }
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
            match &dump.core {
                None => {
                    let shown = if dump.command_line.is_empty() {
                        crate::processes::bracketed_name(dump.pid)
                    } else {
                        command_line_text(&dump.command_line)
                    };
                    let _ = writeln!(header, "Process {}: {shown}", dump.pid);
                }
                Some(core) => {
                    let _ = writeln!(
                        header,
                        "Core file {}{}: process {}: {}",
                        core.path.display(),
                        core.compression
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default(),
                        dump.pid,
                        command_line_text(&dump.command_line)
                    );
                    if let Some((signal, tid)) = core.signal {
                        let _ =
                            writeln!(header, "Killed by {} on thread {tid}", signal_name(signal));
                    }
                }
            }
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
                            "Threads stopped for {:.3} ms while read ({})",
                            stopped.as_secs_f64() * 1e3,
                            if options.native {
                                "--native"
                            } else {
                                "--pause"
                            }
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
        if let Some(core) = &dump.core {
            j.out.byte(b',');
            j.key("core");
            j.out.byte(b'{');
            j.key("path");
            j.bytes_string(core.path.as_os_str().as_encoded_bytes());
            j.out.byte(b',');
            j.key("compression");
            match core.compression {
                Some(c) => j.string(c),
                None => j.out.str("null"),
            }
            j.out.byte(b',');
            j.key("signal");
            match core.signal {
                Some((signal, _)) => j.number(u64::try_from(signal).unwrap_or(0)),
                None => j.out.str("null"),
            }
            j.out.byte(b',');
            j.key("signal_thread");
            match core.signal {
                Some((_, tid)) => j.number(u64::from(tid)),
                None => j.out.str("null"),
            }
            j.out.byte(b'}');
        }
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

/// `SIGSEGV (signal 11)`, for a core's header.
fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => return format!("signal {signal}"),
    };
    format!("{name} (signal {signal})")
}
