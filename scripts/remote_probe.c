/* Prints, for CPython 3.9-3.15, the offsets lastwords-remote needs beyond the walker's
 * Layout: where the interpreter list starts in _PyRuntime, where the GIL and its holder
 * are, and where a thread state keeps its kernel tid. Computed by the compiler from the
 * version's own (internal) headers; run by scripts/remote-probe. Not part of the build.
 * The results are in crates/remote/src/facts.rs and crates/remote/OFFSETS.md. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include "internal/pycore_pystate.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"
#if PY_VERSION_HEX >= 0x030C0000
#include "internal/pycore_gil.h"
#else
#include "internal/pycore_gil.h"
#endif
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_debug_offsets.h"
#endif

#define O(name, type, field) printf("%-36s %zu\n", name, offsetof(type, field))
#define S(name, type) printf("%-36s %zu\n", name, sizeof(type))
/* Index, in u64 words, of a _Py_DebugOffsets field. */
#define W(name, field) printf("%-36s %zu\n", name, offsetof(_Py_DebugOffsets, field) / 8)

int main(void) {
    printf("version %d.%d%s\n", PY_MAJOR_VERSION, PY_MINOR_VERSION,
#ifdef Py_DEBUG
           " debug"
#else
           ""
#endif
    );
    O("runtime.interpreters_head", _PyRuntimeState, interpreters.head);
    O("runtime.interpreters_main", _PyRuntimeState, interpreters.main);
    O("interp.next", PyInterpreterState, next);
    O("tstate.thread_id", PyThreadState, thread_id);
#if PY_VERSION_HEX >= 0x030B0000
    O("tstate.native_thread_id", PyThreadState, native_thread_id);
#endif
    O("gil.last_holder", struct _gil_runtime_state, last_holder);
    O("gil.locked", struct _gil_runtime_state, locked);
    S("gil.locked_size", ((struct _gil_runtime_state *)0)->locked);
    S("gil.last_holder_size", ((struct _gil_runtime_state *)0)->last_holder);
#if PY_VERSION_HEX >= 0x030C0000
    /* 3.12+: each interpreter points at the GIL it uses (its own _gil, or the main
       interpreter's when it shares it). */
    O("interp.ceval_gil", PyInterpreterState, ceval.gil);
    O("interp._gil", PyInterpreterState, _gil);
#else
    O("runtime.ceval_gil", _PyRuntimeState, ceval.gil);
    O("runtime.gilstate_tstate_current", _PyRuntimeState, gilstate.tstate_current);
#endif
#if PY_VERSION_HEX >= 0x030F0000
    O("tstate.holds_gil", PyThreadState, holds_gil);
#endif
#if PY_VERSION_HEX >= 0x030D0000
    O("runtime.debug_offsets", _PyRuntimeState, debug_offsets);
    W("debug.runtime_size", runtime_state.size);
    W("debug.interpreters_head", runtime_state.interpreters_head);
    W("debug.interp_size", interpreter_state.size);
    W("debug.interp_next", interpreter_state.next);
    W("debug.interp_threads_head", interpreter_state.threads_head);
    W("debug.interp_ceval_gil", interpreter_state.ceval_gil);
    W("debug.interp_gil_runtime_state", interpreter_state.gil_runtime_state);
    W("debug.interp_gil_locked", interpreter_state.gil_runtime_state_locked);
    W("debug.interp_gil_holder", interpreter_state.gil_runtime_state_holder);
    W("debug.tstate_size", thread_state.size);
    W("debug.tstate_next", thread_state.next);
    W("debug.tstate_interp", thread_state.interp);
    W("debug.tstate_thread_id", thread_state.thread_id);
    W("debug.tstate_native_thread_id", thread_state.native_thread_id);
#if PY_VERSION_HEX >= 0x030F0000
    W("debug.tstate_holds_gil", thread_state.holds_gil);
#endif
    S("debug.sizeof", _Py_DebugOffsets);
#endif
    return 0;
}
