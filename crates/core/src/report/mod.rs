//! What a dump reports, and in which order: one traversal of an
//! interpreter's threads and frames, with the stdlib's limits, its treatment
//! of shim frames and cycles, and lastwords' markers for what cannot be
//! read. It feeds a [`ReportSink`]: [`text`] writes the stdlib's bytes,
//! version by version; [`json`] one JSON document. Both kinds of target (this
//! process, another process) and every output go through this one walk: no
//! second walker, no copied limit.
//!
//! Every function here is async-signal-safe: no allocation, no locks, no
//! panics, bounded loops.

pub mod json;
pub mod text;

use crate::cpython::walk::{Frame, Walker};
use crate::memory::Memory;
use crate::procfs;

/// Strings are cut after this many code points, then `...` (`MAX_STRING_LENGTH`).
pub const MAX_STRING_LENGTH: usize = 500;
/// Frames listed per thread (`MAX_FRAME_DEPTH`).
pub const MAX_FRAME_DEPTH: usize = 100;
/// Threads listed per dump (`MAX_NTHREADS`; 3.15's `max_threads` default).
pub const MAX_THREADS: usize = 100;

/// How much of the interpreter a report lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_threads: usize,
    pub max_frames: usize,
    /// Code points of a file or function name (text output).
    pub max_string: usize,
}

impl Limits {
    /// The stdlib's limits.
    pub const STDLIB: Limits = Limits {
        max_threads: MAX_THREADS,
        max_frames: MAX_FRAME_DEPTH,
        max_string: MAX_STRING_LENGTH,
    };

    /// "No limit": still bounded, so that a cyclic list or frame chain in a
    /// corrupt (or changing) interpreter ends.
    pub const LIFTED: Limits = Limits {
        max_threads: 100_000,
        max_frames: 1_000_000,
        max_string: 1 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::STDLIB
    }
}

/// Where thread names come from, when a report prints them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadNames {
    /// Not printed (the stdlib before 3.14).
    None,
    /// This process (`prctl` for the calling thread, /proc for the others).
    OwnProcess,
    /// Another process, by pid (`/proc/<pid>/task/<tid>/comm`).
    Process(u64),
}

/// How the traversal learns a thread's kernel thread id (for its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TidSource {
    /// `tstate->native_thread_id` where the layout has it (3.11+), else none.
    Layout,
    /// Also where it has not (2.7, 3.9, 3.10): glibc's `struct pthread`
    /// (whose address is `tstate->thread_id`) holds the tid at this offset.
    Pthread(usize),
}

/// Which thread holds the GIL, where the report says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GilHolder {
    /// Not reported.
    Unknown,
    /// No thread holds it.
    Nobody,
    /// This thread state holds it.
    ThreadState(usize),
}

/// One thread, as the traversal hands it to a sink.
pub struct ThreadHeader<'n> {
    pub tstate: usize,
    /// `tstate->thread_id` (the pthread_t).
    pub thread_id: u64,
    /// The kernel thread id, where known.
    pub native_id: Option<u64>,
    /// The thread the report is written from (its "Current thread").
    pub is_current: bool,
    /// The thread's name, where the report asks for names and it has one.
    pub name: Option<&'n [u8]>,
    /// Whether the thread holds the GIL, where the report knows.
    pub holds_gil: Option<bool>,
    /// The current thread is in a garbage collection (3.10+ prints it).
    pub gc_collecting: bool,
}

/// Something the listing could not show as a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// The thread runs no Python code.
    NoPythonFrame,
    /// A frame could not be read: the thread's listing ends here.
    InvalidFrame,
    /// The frame limit was reached: the thread's listing ends here.
    FrameLimit,
    /// The thread ran while its frames were read (its top frame is not the
    /// one the listing started from): what was listed may mix two stacks.
    /// Dumps of a running process only; printed as `  <invalid frame>`.
    Changed,
}

/// Why the list of threads ended before its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadsEnd {
    /// The thread limit was reached.
    Limit,
    /// The next thread state could not be read.
    InvalidThread,
}

/// Where a report goes: the traversal calls these in order, for each
/// thread `thread`, then `frame`s and at most one `marker`, then `end_thread`.
/// Every method is async-signal-safe in every sink of this crate.
pub trait ReportSink<M: Memory> {
    /// A thread's listing starts (all-threads reports).
    fn thread(&mut self, walker: &Walker<'_, M>, header: &ThreadHeader<'_>);
    /// The calling thread's listing starts (single-thread reports: the
    /// stdlib's `Stack (most recent call first):`).
    fn stack(&mut self);
    /// One Python frame, innermost first. Returns false to end the thread's
    /// listing here (the stdlib's text from 3.14 stops after a frame it
    /// could not fully print).
    fn frame(&mut self, walker: &Walker<'_, M>, frame: &Frame) -> bool;
    /// Something other than a frame ends (or is) the listing.
    fn marker(&mut self, marker: Marker);
    /// The frames listed since the thread's start (or the last boundary)
    /// were run by one call of the C eval loop, the next ones by an older
    /// call: where native frames go in a merged stack. Called only by a
    /// traversal with `eval_boundaries` set.
    fn eval_boundary(&mut self) {}
    /// The current thread's listing is over.
    fn end_thread(&mut self) {}
    /// The list of threads ended early.
    fn threads_end(&mut self, why: ThreadsEnd);
}

/// How a listing of frames ended.
enum Ended {
    /// At the outermost frame.
    Bottom,
    /// At the frame limit.
    Limit,
    /// The sink asked to stop (it wrote its own marker).
    BySink,
}

/// The stdlib's error when there is no thread to walk.
pub const NO_THREAD_HEAD: &str = "unable to get the thread head state";

/// One walk of an interpreter's threads into a sink.
pub struct Traversal<'w, 'a, M: Memory> {
    pub walker: &'w Walker<'a, M>,
    pub limits: Limits,
    /// Skipped shim frames count toward the frame limit (the stdlib from 3.14).
    pub shims_count: bool,
    /// Thread names, when the report prints them.
    pub names: ThreadNames,
    /// Which thread holds the GIL, when the report says so.
    pub gil: GilHolder,
    /// Where kernel thread ids come from.
    pub tids: TidSource,
    /// For a process that keeps running while it is read: reads a thread's
    /// top frame again, bypassing any cache. A thread whose top frame is not
    /// the same after its listing as before ends with [`Marker::Changed`].
    pub recheck: Option<&'w dyn Fn(usize) -> Option<usize>>,
    /// Tell the sink where each call of the C eval loop ends
    /// ([`ReportSink::eval_boundary`]), for merged native stacks.
    pub eval_boundaries: bool,
    /// For threads that keep running while they are read, through a reader
    /// that caches: drops what it cached. Each thread's innermost frames are
    /// then first walked without output ([`Traversal::looks_torn`]), and,
    /// while they read as a stack caught halfway through a call or a return,
    /// walked again after this and a pause ([`let_the_thread_run`]), at most
    /// [`TORN_RETRIES`] times; the listing then starts from the blocks the
    /// last dry walk cached. Such a thread is listed whole, not as
    /// `<invalid frame>` or cut after its top frame.
    pub reread: Option<&'w dyn Fn()>,
}

/// How many of a thread's innermost frames the dry walk reads: a stack
/// changes at its top, and a dry walk of all of it would cost a fatal report
/// of many deep threads about 15% more.
const PROBED_FRAMES: usize = 4;

/// How many times a running thread's stack is read again while it reads as
/// torn (see [`Traversal::reread`]).
pub const TORN_RETRIES: usize = 3;

/// Before a torn thread is read again, for the `attempt`th time from 0: a
/// `sched_yield()`, then 0.1 ms, then 0.4 ms. A thread descheduled halfway
/// through a call (a busy or virtual machine) needs the CPU back before it
/// looks different. Async-signal-safe (`sched_yield`, `nanosleep`).
fn let_the_thread_run(attempt: usize) {
    if attempt == 0 {
        std::thread::yield_now();
        return;
    }
    let shift = attempt.saturating_sub(1).saturating_mul(2).min(6);
    std::thread::sleep(core::time::Duration::from_micros(100 << shift));
}

impl<'w, 'a, M: Memory> Traversal<'w, 'a, M> {
    /// A traversal with the stdlib's limits and no extras.
    /// Async-signal-safe.
    pub fn new(walker: &'w Walker<'a, M>) -> Self {
        Traversal {
            walker,
            limits: Limits::STDLIB,
            shims_count: false,
            names: ThreadNames::None,
            gil: GilHolder::Unknown,
            tids: TidSource::Layout,
            recheck: None,
            eval_boundaries: false,
            reread: None,
        }
    }

    /// Every thread of an interpreter, newest first, like
    /// `_Py_DumpTracebackThreads`. `current` is the thread state of the
    /// calling thread (0 if it has none). Returns the stdlib's error text
    /// when there is nothing to walk. Async-signal-safe.
    pub fn all_threads<S: ReportSink<M>>(
        &self,
        sink: &mut S,
        interp: usize,
        current: usize,
    ) -> Result<(), &'static str> {
        let walker = self.walker;
        let mut tstate = match walker.thread_head(interp) {
            Ok(0) | Err(_) => return Err(NO_THREAD_HEAD),
            Ok(t) => t,
        };
        // Opened on the first name read, closed when this dump ends.
        let mut task_dir = procfs::TaskDir::new();
        // The thread limit also bounds a cycle in a corrupt list.
        for nthreads in 0..=self.limits.max_threads {
            if nthreads == self.limits.max_threads {
                sink.threads_end(ThreadsEnd::Limit);
                break;
            }
            let Ok(thread_id) = walker.thread_id(tstate) else {
                sink.threads_end(ThreadsEnd::InvalidThread);
                break;
            };
            // A thread state of another interpreter, or garbage read while
            // the list changed under us: stop rather than list it. (Silently
            // at the head, as the stdlib does; a dump of a running process
            // says so, rather than print nothing.)
            if walker.thread_interp(tstate) != Ok(interp) {
                if nthreads != 0 || self.recheck.is_some() {
                    sink.threads_end(ThreadsEnd::InvalidThread);
                }
                break;
            }
            let is_current = tstate == current;
            let native_id = self.native_id(tstate, thread_id);
            let mut name_buf = [0u8; 100];
            let name = match (self.names, native_id) {
                (ThreadNames::OwnProcess, Some(tid)) => {
                    procfs::thread_name(tid, &mut name_buf, &mut task_dir)
                }
                (ThreadNames::Process(pid), Some(tid)) => {
                    procfs::task_name(pid, tid, &mut name_buf)
                }
                _ => None,
            };
            let holds_gil = match self.gil {
                GilHolder::Unknown => None,
                GilHolder::Nobody => Some(false),
                GilHolder::ThreadState(holder) => Some(holder == tstate),
            };
            let header = ThreadHeader {
                tstate,
                thread_id,
                native_id,
                is_current,
                name,
                holds_gil,
                gc_collecting: is_current && walker.gc_collecting(interp) == Ok(true),
            };
            // (Not the thread the report is written from: it is not running.)
            if let Some(reread) = self.reread
                && !is_current
            {
                for attempt in 0..TORN_RETRIES {
                    if !self.looks_torn(tstate) {
                        break;
                    }
                    reread();
                    let_the_thread_run(attempt);
                }
            }
            let top_before = self.recheck.and_then(|read| read(tstate));
            sink.thread(walker, &header);
            let ended = self.frames_of(sink, tstate);
            if let Some(read) = self.recheck
                && !ended
                && read(tstate) != top_before
            {
                sink.marker(Marker::Changed);
            }
            sink.end_thread();
            match walker.next_thread(tstate) {
                Ok(0) => break,
                Ok(next) => tstate = next,
                Err(_) => {
                    sink.threads_end(ThreadsEnd::InvalidThread);
                    break;
                }
            }
        }
        Ok(())
    }

    /// The calling thread's stack, under the stdlib's `Stack` header.
    /// Async-signal-safe.
    pub fn stack<S: ReportSink<M>>(&self, sink: &mut S, tstate: usize) {
        sink.stack();
        self.frames_of(sink, tstate);
        sink.end_thread();
    }

    /// A dry walk of a thread's innermost frames (see [`Traversal::reread`]):
    /// whether they read as a stack caught halfway through a change. Torn:
    /// a frame that cannot be read, an entry frame not marked as one yet
    /// (3.12), shims and no frame, or a chain that ends where no stack does:
    /// right after a real frame (3.12+, where every stack starts with a
    /// shim), as one does whose `previous` is not set yet, or (3.15+) at a
    /// shim other than the thread's sentinel frame. Async-signal-safe.
    fn looks_torn(&self, tstate: usize) -> bool {
        let walker = self.walker;
        let Ok(mut frame) = walker.current_frame(tstate) else {
            return true;
        };
        if frame == 0 {
            return false; // no Python frame
        }
        let Ok(base) = walker.base_frame(tstate) else {
            return true;
        };
        let mut listed = 0usize;
        let mut last = 0;
        let mut after_shim = false;
        // At most one shim sits between two frames: twice the frames bounds
        // the walk.
        for _ in 0..PROBED_FRAMES.saturating_mul(2) {
            if frame == 0 {
                return listed == 0
                    || (walker.stack_base_is_shim() && !after_shim)
                    || base.is_some_and(|base| base != last);
            }
            let Ok(shim) = walker.is_shim(frame) else {
                return true;
            };
            if !shim {
                if walker.has_code(frame) != Ok(true)
                    || walker.is_unmarked_entry_frame(frame) != Ok(false)
                {
                    return true;
                }
                listed = listed.saturating_add(1);
                if listed == PROBED_FRAMES {
                    return false;
                }
            }
            after_shim = shim;
            last = frame;
            let Ok(previous) = walker.previous_frame(frame) else {
                return true;
            };
            frame = previous;
        }
        false
    }

    /// The kernel thread id of a thread. Async-signal-safe.
    fn native_id(&self, tstate: usize, thread_id: u64) -> Option<u64> {
        let walker = self.walker;
        match walker.native_thread_id(tstate) {
            // 0: a thread state whose thread has not started (or the field
            // is not set on this build).
            Ok(Some(0)) => None,
            Ok(Some(tid)) => Some(tid),
            Ok(None) => match self.tids {
                TidSource::Layout => None,
                TidSource::Pthread(offset) => {
                    let at = usize::try_from(thread_id).ok()?.checked_add(offset)?;
                    let tid = walker.mem.read::<i32>(at).ok()?;
                    u64::try_from(tid).ok().filter(|&tid| tid != 0)
                }
            },
            Err(_) => None,
        }
    }

    /// The frames of one thread, innermost first, with the stdlib's limits.
    /// Returns whether the listing ended with a marker (or a sink's stop).
    /// Async-signal-safe.
    pub fn frames_of<S: ReportSink<M>>(&self, sink: &mut S, tstate: usize) -> bool {
        let marker = match self.walker.current_frame(tstate) {
            Err(_) => Marker::InvalidFrame,
            Ok(0) => Marker::NoPythonFrame,
            Ok(frame) => match self.frames(sink, frame) {
                Ok(Ended::Bottom) => return false,
                Ok(Ended::Limit) => Marker::FrameLimit,
                Ok(Ended::BySink) => return true,
                Err(_) => Marker::InvalidFrame,
            },
        };
        sink.marker(marker);
        true
    }

    /// The frames from `frame` outwards, with the stdlib's frame limit and
    /// its treatment of shim frames: skipped without counting (3.12, 3.13), or
    /// counted toward the limit (3.14+). Async-signal-safe.
    fn frames<S: ReportSink<M>>(
        &self,
        sink: &mut S,
        mut frame: usize,
    ) -> crate::cpython::walk::WalkResult<Ended> {
        let walker = self.walker;
        // Frames listed since the last eval-call boundary.
        let mut listed = false;
        let boundary = |sink: &mut S, listed: &mut bool| {
            if self.eval_boundaries && *listed {
                sink.eval_boundary();
                *listed = false;
            }
        };
        // One iteration per frame listed (or, 3.14+, per shim counted).
        for depth in 0..=self.limits.max_frames {
            if !self.shims_count {
                // At most one shim sits between two frames; the bound keeps a
                // corrupt chain of shims from looping.
                for _ in 0..4 {
                    if frame == 0 || !walker.is_shim(frame)? {
                        break;
                    }
                    boundary(sink, &mut listed);
                    frame = walker.previous_frame(frame)?;
                }
            }
            if frame == 0 {
                return Ok(Ended::Bottom);
            }
            if depth == self.limits.max_frames {
                return Ok(Ended::Limit);
            }
            if walker.is_shim(frame)? {
                boundary(sink, &mut listed);
            } else {
                if !sink.frame(walker, &walker.frame(frame)?) {
                    return Ok(Ended::BySink);
                }
                listed = true;
                if self.eval_boundaries && walker.ends_eval_call(frame)? {
                    boundary(sink, &mut listed);
                }
            }
            frame = walker.previous_frame(frame)?;
        }
        Ok(Ended::Limit)
    }
}

#[cfg(test)]
mod tests;
