//! `lastwords dump --native`: each thread's native stack merged with its
//! Python frames, as py-spy's `--native` does.
//!
//! The Python frames come from the one traversal (lastwords-core's
//! `Traversal`, with `eval_boundaries` set): it says where each call of the
//! C eval loop ends. [`Merge`] wraps the text or JSON sink: before a
//! thread's first Python frame it writes the native frames above the
//! innermost eval frame; that eval frame is replaced by the Python frames it
//! runs (one on 2.7-3.10, up to its entry frame from 3.11); at each boundary
//! the native frames down to the next eval frame follow; the rest (below the
//! outermost Python frame: `PyRun_*`, `Py_RunMain`, `main`, `_start`, or
//! `start_thread` and `clone3`) end the thread. A walk that could not go on
//! ends with a marker where it stopped (the Python frames below it follow,
//! without their native frames). If the two stacks disagree (an eval frame the
//! unwinder did not reach), the Python frames still come, in their order.
//!
//! Text lines are those of the stdlib's C stack section (the in-process
//! report of 3.14+ prints the same): `  Binary file "PATH", at NAME+0xOFF
//! [0xPC]`, `at +0xOFF` (from the object's load address) where no symbol
//! covers the pc, `Binary file '<unknown>' [0xPC]` outside every object.

use lastwords_core::cpython::walk::{Frame, Walker};
use lastwords_core::memory::Memory;
use lastwords_core::report::json::JsonSink;
use lastwords_core::report::text::TextSink;
use lastwords_core::report::{Marker, ReportSink, ThreadHeader, ThreadsEnd};
use lastwords_core::unwind::step::End;
use lastwords_core::writer::{Sink, Writer};
use lastwords_remote::native::{NativeFrame, NativeStack};

use crate::dump::Natives;

/// Why a thread of the interpreter has no native stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoStack {
    /// Its kernel thread has exited (a main thread that called
    /// `pthread_exit` while the others run on; a thread that ended while
    /// the process was being paused).
    Exited,
    /// Its registers could not be had: the pause did not stop it, or the
    /// core holds none for it.
    NoRegisters,
}

/// Where native frames are written.
pub trait NativeOut {
    fn native_frame(&mut self, frame: &NativeFrame);
    /// A walk that did not reach the outermost frame.
    fn native_end(&mut self, end: End);
    /// A thread with no native stack, and why (said before its Python
    /// frames).
    fn no_native_stack(&mut self, why: NoStack);
}

/// One native frame in the stdlib's `_Py_backtrace_symbols_fd` format.
pub fn write_native_line<S: Sink>(out: &mut Writer<S>, f: &NativeFrame) {
    let Some((object, bias)) = &f.object else {
        out.str("  Binary file '<unknown>' [0x");
        out.hex(f.pc as u64, 1);
        out.str("]");
        out.end_line();
        return;
    };
    out.str("  Binary file \"");
    out.str(object);
    out.str("\", at ");
    let base = match &f.symbol {
        Some((start, name)) => {
            out.str(name);
            *start
        }
        None => *bias,
    };
    if f.pc >= base {
        out.str("+0x");
        out.hex(f.pc.wrapping_sub(base) as u64, 1);
    } else {
        out.str("-0x");
        out.hex(base.wrapping_sub(f.pc) as u64, 1);
    }
    out.str(" [0x");
    out.hex(f.pc as u64, 1);
    out.str("]");
    out.end_line();
}

impl<S: Sink> NativeOut for TextSink<'_, S> {
    fn native_frame(&mut self, frame: &NativeFrame) {
        write_native_line(self.out, frame);
    }

    fn native_end(&mut self, end: End) {
        match end {
            End::Outermost => {}
            End::Limit => {
                self.out.str("  <truncated rest of native calls>");
                self.out.end_line();
            }
            End::Lost => {
                self.out.str("  <native stack ends: cannot unwind further>");
                self.out.end_line();
            }
        }
    }

    fn no_native_stack(&mut self, why: NoStack) {
        self.out.str(match why {
            NoStack::Exited => "  <no native frames: the thread has exited>",
            NoStack::NoRegisters => "  <no native frames: no registers for the thread>",
        });
        self.out.end_line();
    }
}

impl<S: Sink> NativeOut for JsonSink<'_, S> {
    fn native_frame(&mut self, f: &NativeFrame) {
        let offset = match (&f.symbol, &f.object) {
            (Some((start, _)), _) => Some(f.pc.wrapping_sub(*start)),
            (None, Some((_, bias))) => Some(f.pc.wrapping_sub(*bias)),
            (None, None) => None,
        };
        self.native_frame(
            f.pc as u64,
            f.symbol.as_ref().map(|(_, n)| n.as_str()),
            f.object.as_ref().map(|(o, _)| o.as_bytes()),
            offset.map(|o| o as u64),
        );
    }

    fn native_end(&mut self, end: End) {
        self.native_end(match end {
            End::Outermost => "outermost",
            End::Limit => "frame_limit",
            End::Lost => "lost",
        });
    }

    fn no_native_stack(&mut self, why: NoStack) {
        self.native_end(match why {
            NoStack::Exited => "exited",
            NoStack::NoRegisters => "no_registers",
        });
    }
}

/// A sink that merges native frames into another sink's Python frames.
pub struct Merge<'n, S> {
    pub inner: S,
    /// The dump's native stacks (None: no merging at all).
    natives: Option<&'n Natives>,
    /// The current thread's stack, and the next of its frames to write.
    stack: Option<&'n NativeStack>,
    next: usize,
    /// Python frames of the current eval call are being listed.
    in_call: bool,
    /// The rest of the native stack was written.
    flushed: bool,
    /// How the native walk ended was written.
    ended: bool,
}

impl<'n, S> Merge<'n, S> {
    pub fn new(inner: S, natives: Option<&'n Natives>) -> Self {
        Merge {
            inner,
            natives,
            stack: None,
            next: 0,
            in_call: false,
            flushed: true,
            ended: true,
        }
    }
}

impl<S: NativeOut> Merge<'_, S> {
    /// Write native frames up to (not including) the next eval frame; at
    /// the end of a walk that was cut, its marker, where it was cut.
    fn until_eval(&mut self) {
        let Some(stack) = self.stack else {
            return;
        };
        while let Some(f) = stack.frames.get(self.next) {
            if f.eval {
                return;
            }
            self.inner.native_frame(f);
            self.next += 1;
        }
        self.end();
    }

    /// How the walk ended, once.
    fn end(&mut self) {
        if let Some(stack) = self.stack
            && !std::mem::replace(&mut self.ended, true)
        {
            self.inner.native_end(stack.end);
        }
    }

    /// Write the native frames not written yet, and how the walk ended.
    fn rest(&mut self) {
        if std::mem::replace(&mut self.flushed, true) {
            return;
        }
        let Some(stack) = self.stack else {
            return;
        };
        for f in stack.frames.iter().skip(self.next) {
            self.inner.native_frame(f);
        }
        self.next = stack.frames.len();
        self.end();
    }
}

impl<M: Memory, S: ReportSink<M> + NativeOut> ReportSink<M> for Merge<'_, S> {
    fn thread(&mut self, walker: &Walker<'_, M>, header: &ThreadHeader<'_>) {
        self.inner.thread(walker, header);
        let tid = header.native_id.and_then(|t| u32::try_from(t).ok());
        self.stack = self.natives.and_then(|n| n.stacks.get(&tid?));
        // A thread with no stack (its kernel thread unknown too: a 2.7-3.10
        // thread whose pthread_t no longer holds a tid, cleared by the
        // kernel at its exit) says why.
        if let (Some(natives), None) = (self.natives, self.stack) {
            let exited = match (natives.live_pid, tid) {
                (Some(pid), Some(tid)) => !lastwords_remote::error::thread_runs(
                    pid,
                    i32::try_from(tid).unwrap_or(i32::MAX),
                ),
                _ => false,
            };
            self.inner.no_native_stack(if exited {
                NoStack::Exited
            } else {
                NoStack::NoRegisters
            });
        }
        self.next = 0;
        self.in_call = false;
        self.flushed = self.stack.is_none();
        self.ended = self.stack.is_none();
        self.until_eval();
    }

    fn stack(&mut self) {
        self.inner.stack();
    }

    fn frame(&mut self, walker: &Walker<'_, M>, frame: &Frame) -> bool {
        if !self.in_call {
            // The eval frame that runs this call's Python frames: replaced.
            if let Some(stack) = self.stack
                && stack.frames.get(self.next).is_some_and(|f| f.eval)
            {
                self.next += 1;
            }
            self.in_call = true;
        }
        self.inner.frame(walker, frame)
    }

    fn marker(&mut self, marker: Marker) {
        self.rest();
        self.inner.marker(marker);
    }

    fn eval_boundary(&mut self) {
        self.in_call = false;
        self.until_eval();
    }

    fn end_thread(&mut self) {
        self.rest();
        self.inner.end_thread();
    }

    fn threads_end(&mut self, why: ThreadsEnd) {
        self.inner.threads_end(why);
    }
}
