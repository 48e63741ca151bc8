//! Per-version facts that the walker's layouts (lastwords-core's
//! `cpython::layout`) do not have, as data: one [`VersionFacts`] per version,
//! (CPython 2.7's whole layout is lastwords-core's `layout::PY27`).
//!
//! Every number was computed by the compiler from the version's own headers
//! (`scripts/remote-probe`: `scripts/layout_probe27.c` for 2.7,
//! `scripts/remote_probe.c` for 3.9-3.15 on pyenv's 3.9.18-3.13.0 and
//! Debian sid's 3.14.10 and 3.15.2, release and debug headers: identical
//! output). From 3.13 on the interpreter publishes the same offsets in
//! `_Py_DebugOffsets`; [`debug_words`] says where, and discovery prefers the
//! published values. See OFFSETS.md for sources and semantics.

use lastwords_core::cpython::layout;

/// Where the thread holding the GIL can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gil {
    /// 2.7: the exported `_PyThreadState_Current` is the thread state of the
    /// thread holding the GIL, NULL when no thread holds it (it is swapped
    /// to NULL before the lock is released and set after it is taken).
    CurrentThreadState,
    /// 3.9-3.11: a `struct _gil_runtime_state` at `_PyRuntime + state`:
    /// `int locked` at `+locked`, `PyThreadState *last_holder` at
    /// `+last_holder`. The holder is `last_holder` while `locked != 0`.
    /// (`_PyRuntime.gilstate.tstate_current`, at `current`, is also the
    /// holder's thread state, NULL when none.)
    Runtime {
        state: usize,
        locked: usize,
        last_holder: usize,
        current: usize,
    },
    /// 3.12+: `PyInterpreterState.ceval.gil` (at `interp + pointer`) points
    /// at the `struct _gil_runtime_state` the interpreter uses (its own
    /// `_gil`, or the main interpreter's when it shares it); `locked` and
    /// `last_holder` as above, relative to that struct. 3.15 also has
    /// `PyThreadState.holds_gil` (an int).
    Interpreter {
        pointer: usize,
        locked: usize,
        last_holder: usize,
    },
}

/// How to get a thread's kernel thread id (tid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tid {
    /// `tstate->native_thread_id` (3.11+): an `unsigned long`, the tid.
    NativeThreadId(usize),
    /// 2.7, 3.9, 3.10: `tstate->thread_id` is the `pthread_t`, which with
    /// glibc is the address of the thread's `struct pthread`; the tid is
    /// the `pid_t` at `pthread_t + tid` (see [`GLIBC_PTHREAD_TID`]).
    ThroughPthread,
}

/// Facts about one CPython version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionFacts {
    pub major: u8,
    pub minor: u8,
    /// `offsetof(_PyRuntimeState, interpreters.head)` (3.x).
    pub runtime_interpreters_head: Option<usize>,
    /// `PyInterpreterState.next`: the next (older) interpreter.
    pub interp_next: usize,
    /// `PyInterpreterState`: the head of its thread-state list.
    pub interp_threads_head: usize,
    /// `PyThreadState.next`, `.interp`, `.thread_id`.
    pub tstate_next: usize,
    pub tstate_interp: usize,
    pub tstate_thread_id: usize,
    pub tid: Tid,
    pub gil: Gil,
    /// `PyThreadState.holds_gil` (3.15+).
    pub tstate_holds_gil: Option<usize>,
}

/// `struct _gil_runtime_state`: the same in every version 3.9-3.15.
const GIL_LAST_HOLDER: usize = 8;
const GIL_LOCKED: usize = 16;

pub const PY27: VersionFacts = VersionFacts {
    major: 2,
    minor: 7,
    runtime_interpreters_head: None,
    interp_next: 0,
    interp_threads_head: layout::PY27.interp_threads_head,
    tstate_next: layout::PY27.tstate_next,
    tstate_interp: layout::PY27.tstate_interp,
    tstate_thread_id: layout::PY27.tstate_thread_id,
    tid: Tid::ThroughPthread,
    gil: Gil::CurrentThreadState,
    tstate_holds_gil: None,
};

pub const PY39: VersionFacts = VersionFacts {
    major: 3,
    minor: 9,
    runtime_interpreters_head: Some(32),
    interp_next: 0,
    interp_threads_head: 8,
    tstate_next: 8,
    tstate_interp: 16,
    tstate_thread_id: 176,
    tid: Tid::ThroughPthread,
    gil: Gil::Runtime {
        state: 352,
        locked: GIL_LOCKED,
        last_holder: GIL_LAST_HOLDER,
        current: 568,
    },
    tstate_holds_gil: None,
};

pub const PY310: VersionFacts = VersionFacts {
    minor: 10,
    gil: Gil::Runtime {
        state: 352,
        locked: GIL_LOCKED,
        last_holder: GIL_LAST_HOLDER,
        current: 576,
    },
    ..PY39
};

pub const PY311: VersionFacts = VersionFacts {
    minor: 11,
    runtime_interpreters_head: Some(40),
    interp_threads_head: 16,
    tstate_thread_id: 152,
    tid: Tid::NativeThreadId(160),
    gil: Gil::Runtime {
        state: 360,
        locked: GIL_LOCKED,
        last_holder: GIL_LAST_HOLDER,
        current: 576,
    },
    ..PY310
};

pub const PY312: VersionFacts = VersionFacts {
    minor: 12,
    interp_threads_head: 72,
    tstate_thread_id: 136,
    tid: Tid::NativeThreadId(144),
    gil: Gil::Interpreter {
        pointer: 384,
        locked: GIL_LOCKED,
        last_holder: GIL_LAST_HOLDER,
    },
    ..PY311
};

pub const PY313: VersionFacts = VersionFacts {
    minor: 13,
    runtime_interpreters_head: Some(632),
    interp_next: 7264,
    interp_threads_head: 7344,
    tstate_thread_id: 152,
    tid: Tid::NativeThreadId(160),
    gil: Gil::Interpreter {
        pointer: 16,
        locked: GIL_LOCKED,
        last_holder: GIL_LAST_HOLDER,
    },
    ..PY312
};

pub const PY314: VersionFacts = VersionFacts {
    minor: 14,
    runtime_interpreters_head: Some(808),
    interp_next: 7272,
    ..PY313
};

pub const PY315: VersionFacts = VersionFacts {
    minor: 15,
    runtime_interpreters_head: Some(936),
    interp_next: 7264,
    interp_threads_head: 7336,
    tstate_thread_id: 176,
    tid: Tid::NativeThreadId(184),
    tstate_holds_gil: Some(36),
    ..PY314
};

/// The table of a version, if lastwords knows it.
pub fn for_version(major: u8, minor: u8) -> Option<&'static VersionFacts> {
    match (major, minor) {
        (2, 7) => Some(&PY27),
        (3, 9) => Some(&PY39),
        (3, 10) => Some(&PY310),
        (3, 11) => Some(&PY311),
        (3, 12) => Some(&PY312),
        (3, 13) => Some(&PY313),
        (3, 14) => Some(&PY314),
        (3, 15) => Some(&PY315),
        _ => None,
    }
}

/// Where, in u64 words from the start of `_Py_DebugOffsets` (at the start
/// of `_PyRuntime`), 3.13+ publish what discovery reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebugWords {
    /// Whole size of the block, in words.
    pub len: usize,
    pub version: usize,
    pub free_threaded: usize,
    pub runtime_size: usize,
    pub runtime_interpreters_head: usize,
    pub interp_size: usize,
    pub interp_next: usize,
    pub interp_threads_head: usize,
    /// `offsetof(PyInterpreterState, ceval.gil)`: the GIL pointer.
    pub interp_ceval_gil: usize,
    /// `offsetof(PyInterpreterState, _gil)`, `_gil.locked`,
    /// `_gil.last_holder`: the interpreter's own GIL, so `locked -
    /// gil_runtime_state` is the offset inside any `_gil_runtime_state`.
    pub interp_gil_runtime_state: usize,
    pub interp_gil_locked: usize,
    pub interp_gil_holder: usize,
    pub tstate_size: usize,
    pub tstate_next: usize,
    pub tstate_interp: usize,
    pub tstate_thread_id: usize,
    pub tstate_native_thread_id: usize,
    pub tstate_holds_gil: Option<usize>,
}

/// 3.13's `_Py_DebugOffsets` (584 bytes).
pub const DEBUG_WORDS_313: DebugWords = DebugWords {
    len: 73,
    version: 1,
    free_threaded: 2,
    runtime_size: 3,
    runtime_interpreters_head: 5,
    interp_size: 6,
    interp_next: 8,
    interp_threads_head: 9,
    interp_ceval_gil: 14,
    interp_gil_runtime_state: 15,
    interp_gil_locked: 17,
    interp_gil_holder: 18,
    tstate_size: 19,
    tstate_next: 21,
    tstate_interp: 22,
    tstate_thread_id: 24,
    tstate_native_thread_id: 25,
    tstate_holds_gil: None,
};

/// 3.14's (760 bytes).
pub const DEBUG_WORDS_314: DebugWords = DebugWords {
    len: 95,
    interp_ceval_gil: 15,
    interp_gil_runtime_state: 16,
    interp_gil_locked: 18,
    interp_gil_holder: 19,
    tstate_size: 22,
    tstate_next: 24,
    tstate_interp: 25,
    tstate_thread_id: 27,
    tstate_native_thread_id: 28,
    ..DEBUG_WORDS_313
};

/// 3.15's (888 bytes).
pub const DEBUG_WORDS_315: DebugWords = DebugWords {
    len: 111,
    tstate_thread_id: 30,
    tstate_native_thread_id: 31,
    tstate_holds_gil: Some(34),
    ..DEBUG_WORDS_314
};

/// The `_Py_DebugOffsets` shape of a 3.x minor version (3.13+).
pub fn debug_words(minor: u8) -> Option<&'static DebugWords> {
    match minor {
        13 => Some(&DEBUG_WORDS_313),
        14 => Some(&DEBUG_WORDS_314),
        15 => Some(&DEBUG_WORDS_315),
        _ => None,
    }
}

/// CPython 2.7's layout (x86-64/aarch64, release build; 2.7.18's headers).
///
/// A 2.7 debug build (`Py_DEBUG` implies `Py_TRACE_REFS` there) puts two
/// more pointers in front of every object: every `PyObject` field below
/// moves by 16 bytes; the interpreter and thread states do not (they are
/// not objects).
/// glibc's `struct pthread`: the `pid_t tid` field is at this offset on
/// x86-64 in glibc 2.36 (the host) and 2.42 (Debian sid), as both libc.so.6
/// describe it in `_thread_db_pthread_tid` (`{32, 1, 720}`: 32 bits, one
/// element, offset 720). Discovery reads that descriptor from the target's
/// own libc and uses this value only when it cannot.
pub const GLIBC_PTHREAD_TID: usize = 720;

#[cfg(test)]
mod tests {
    use super::*;
    use lastwords_core::cpython::layout;

    /// The facts agree with the walker's own tables where both have a value.
    #[test]
    fn facts_agree_with_the_walker_tables() {
        for minor in 9..=15u8 {
            let f = for_version(3, minor).unwrap();
            let l = layout::table_for(minor).unwrap();
            assert_eq!(f.minor, minor);
            assert_eq!(f.interp_threads_head, l.interp_threads_head, "3.{minor}");
            assert_eq!(f.tstate_next, l.tstate_next, "3.{minor}");
            assert_eq!(f.tstate_interp, l.tstate_interp, "3.{minor}");
            assert_eq!(f.tstate_thread_id, l.tstate_thread_id, "3.{minor}");
            // HEAD_LOCK is the field just before interpreters.head.
            assert_eq!(
                f.runtime_interpreters_head,
                Some(l.runtime_head_lock + 8),
                "3.{minor}"
            );
            if let Some(native) = l.tstate_native_thread_id {
                assert_eq!(f.tid, Tid::NativeThreadId(native));
            }
        }
        assert!(for_version(3, 8).is_none());
        assert!(for_version(3, 16).is_none());
        assert!(for_version(2, 6).is_none());
    }

    #[test]
    fn debug_word_indices_fit_their_blocks() {
        for minor in 13..=15 {
            let w = debug_words(minor).unwrap();
            for i in [
                w.version,
                w.runtime_interpreters_head,
                w.interp_threads_head,
                w.interp_ceval_gil,
                w.interp_gil_runtime_state,
                w.interp_gil_locked,
                w.interp_gil_holder,
                w.tstate_size,
                w.tstate_native_thread_id,
                w.tstate_holds_gil.unwrap_or(0),
            ] {
                assert!(i < w.len);
            }
        }
    }
}
