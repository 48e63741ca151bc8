/* Prints the offsets lastwords' per-version Layout table needs, computed by the
 * compiler from the interpreter's own (internal) headers. Run by
 * scripts/layout-probe; its output is pasted into src/cpython/layout.rs and
 * checked there by the test suite. Not part of the build. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <stddef.h>
#include <stdio.h>
#include <frameobject.h>
#include "internal/pycore_pystate.h"
#include "internal/pycore_interp.h"
#include "internal/pycore_code.h"
#include "internal/pycore_runtime.h"
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#include "internal/pycore_dict.h"
#endif
#if PY_VERSION_HEX >= 0x030A0000
#include "internal/pycore_moduleobject.h"
#endif
#if PY_VERSION_HEX >= 0x030E0000
#include "internal/pycore_stackref.h"
#endif

#define O(name, type, field) printf("%-28s %zu\n", name, offsetof(type, field))
#define S(name, type) printf("%-28s %zu\n", name, sizeof(type))

static int bit_of(unsigned char *bytes, size_t n) {
    for (size_t i = 0; i < n * 8; i++)
        if (bytes[i / 8] & (1u << (i % 8))) return (int)i;
    return -1;
}

int main(void) {
    printf("version %d.%d\n", PY_MAJOR_VERSION, PY_MINOR_VERSION);
    O("tstate.next", PyThreadState, next);
    O("tstate.interp", PyThreadState, interp);
    O("tstate.thread_id", PyThreadState, thread_id);
#if PY_VERSION_HEX >= 0x030D0000
    O("tstate.current_frame", PyThreadState, current_frame);
#elif PY_VERSION_HEX >= 0x030B0000
    O("tstate.cframe", PyThreadState, cframe);
    O("cframe.current_frame", _PyCFrame, current_frame);
#else
    O("tstate.frame", PyThreadState, frame);
#endif
#if PY_VERSION_HEX >= 0x030B0000
    O("interp.threads_head", PyInterpreterState, threads.head);
#else
    O("interp.threads_head", PyInterpreterState, tstate_head);
#endif
    O("interp.gc_collecting", PyInterpreterState, gc.collecting);
#if PY_VERSION_HEX >= 0x030C0000
    O("interp.modules", PyInterpreterState, imports.modules);
#else
    O("interp.modules", PyInterpreterState, modules);
#endif
    O("interp.sysdict", PyInterpreterState, sysdict);
#if PY_VERSION_HEX >= 0x030B0000
    O("frame.previous", _PyInterpreterFrame, previous);
#if PY_VERSION_HEX >= 0x030D0000
    O("frame.code", _PyInterpreterFrame, f_executable);
    O("frame.instr", _PyInterpreterFrame, instr_ptr);
#else
    O("frame.code", _PyInterpreterFrame, f_code);
    O("frame.instr", _PyInterpreterFrame, prev_instr);
#endif
    O("frame.owner", _PyInterpreterFrame, owner);
#if PY_VERSION_HEX >= 0x030E0000
    /* 3.14+: f_executable is a _PyStackRef (tag in the low bits); frames
       owned by the interpreter (entry/trampoline frames, 3.15's base frame
       sentinel) are skipped by the stdlib's dump_frame(). */
    printf("%-28s %d\n", "frame.code_tag_bits", (int)Py_TAG_BITS);
    printf("%-28s %d\n", "frame.owned_by_interpreter", (int)FRAME_OWNED_BY_INTERPRETER);
#if PY_VERSION_HEX < 0x030F0000
    printf("%-28s %d\n", "frame.owned_by_cstack", (int)FRAME_OWNED_BY_CSTACK);
#endif
    O("frame.globals", _PyInterpreterFrame, f_globals);
    O("frame.builtins", _PyInterpreterFrame, f_builtins);
#endif
    O("code.code_adaptive", PyCodeObject, co_code_adaptive);
#else
    O("frame.previous", PyFrameObject, f_back);
    O("frame.code", PyFrameObject, f_code);
    O("frame.instr", PyFrameObject, f_lasti);
    O("frame.lineno", PyFrameObject, f_lineno);
    O("frame.trace", PyFrameObject, f_trace);
#endif
    O("code.filename", PyCodeObject, co_filename);
    O("code.name", PyCodeObject, co_name);
    O("code.firstlineno", PyCodeObject, co_firstlineno);
#if PY_VERSION_HEX >= 0x030A0000
    O("code.linetable", PyCodeObject, co_linetable);
#else
    O("code.linetable", PyCodeObject, co_lnotab);
#endif
    O("object.type", PyObject, ob_type);
    O("type.flags", PyTypeObject, tp_flags);
    O("type.base", PyTypeObject, tp_base);
    O("bytes.size", PyVarObject, ob_size);
    O("bytes.data", PyBytesObject, ob_sval);
    O("unicode.length", PyASCIIObject, length);
    O("unicode.state", PyASCIIObject, state);
    S("unicode.ascii_size", PyASCIIObject);
    S("unicode.compact_size", PyCompactUnicodeObject);
    O("unicode.data_any", PyUnicodeObject, data.any);
    {
        PyASCIIObject a;
        memset(&a, 0, sizeof a); a.state.kind = 7;
        printf("%-28s %d\n", "unicode.kind_bit", bit_of((unsigned char*)&a.state, sizeof a.state));
        memset(&a, 0, sizeof a); a.state.compact = 1;
        printf("%-28s %d\n", "unicode.compact_bit", bit_of((unsigned char*)&a.state, sizeof a.state));
        memset(&a, 0, sizeof a); a.state.ascii = 1;
        printf("%-28s %d\n", "unicode.ascii_bit", bit_of((unsigned char*)&a.state, sizeof a.state));
#if PY_VERSION_HEX < 0x030C0000
        memset(&a, 0, sizeof a); a.state.ready = 1;
        printf("%-28s %d\n", "unicode.ready_bit", bit_of((unsigned char*)&a.state, sizeof a.state));
#endif
    }
    O("dict.keys", PyDictObject, ma_keys);
    O("dict.values", PyDictObject, ma_values);
#if PY_VERSION_HEX >= 0x030B0000
    O("dictkeys.log2_size", PyDictKeysObject, dk_log2_size);
    O("dictkeys.log2_index_bytes", PyDictKeysObject, dk_log2_index_bytes);
    O("dictkeys.kind", PyDictKeysObject, dk_kind);
    O("dictkeys.nentries", PyDictKeysObject, dk_nentries);
    O("dictkeys.indices", PyDictKeysObject, dk_indices);
#endif
#if PY_VERSION_HEX >= 0x030F0000
    /* 3.15: no md_def; _PyModule_IsExtension() is "md_exec != NULL, or
       md_token_is_def and ((PyModuleDef *)md_token)->m_methods != NULL". */
    O("module.token_is_def", PyModuleObject, md_token_is_def);
    O("module.token", PyModuleObject, md_token);
    O("module.exec", PyModuleObject, md_exec);
#elif PY_VERSION_HEX >= 0x030A0000
    O("module.def", PyModuleObject, md_def);
#endif
    O("moduledef.methods", PyModuleDef, m_methods);
    O("runtime.head_lock", _PyRuntimeState, interpreters.mutex);
    return 0;
}
