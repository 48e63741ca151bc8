/* Prints the CPython 2.7 offsets lastwords-remote needs (crates/remote/src/facts.rs,
 * crates/remote/OFFSETS.md), computed by the compiler from 2.7's own headers.
 * Run by scripts/remote-probe. Not part of the build.
 *
 * 2.7 has no internal headers: PyInterpreterState, PyThreadState, PyFrameObject and
 * PyCodeObject are all public. The GIL is `interpreter_lock` (static in ceval.c) and
 * its holder is `_PyThreadState_Current` (exported): see OFFSETS.md. */
#include <Python.h>
#include <frameobject.h>
#include <stddef.h>
#include <stdio.h>

#define O(name, type, field) printf("%-28s %zu\n", name, offsetof(type, field))
#define S(name, type) printf("%-28s %zu\n", name, sizeof(type))

int main(void) {
    printf("version %d.%d%s\n", PY_MAJOR_VERSION, PY_MINOR_VERSION,
#ifdef Py_DEBUG
           " debug"
#else
           ""
#endif
    );
    O("interp.next", PyInterpreterState, next);
    O("interp.tstate_head", PyInterpreterState, tstate_head);
    O("interp.modules", PyInterpreterState, modules);
    O("interp.sysdict", PyInterpreterState, sysdict);
    O("tstate.next", PyThreadState, next);
    O("tstate.interp", PyThreadState, interp);
    O("tstate.frame", PyThreadState, frame);
    O("tstate.thread_id", PyThreadState, thread_id);
    S("tstate.thread_id_size", long);
    O("frame.f_back", PyFrameObject, f_back);
    O("frame.f_code", PyFrameObject, f_code);
    O("frame.f_trace", PyFrameObject, f_trace);
    O("frame.f_lasti", PyFrameObject, f_lasti);
    O("frame.f_lineno", PyFrameObject, f_lineno);
    O("code.co_filename", PyCodeObject, co_filename);
    O("code.co_name", PyCodeObject, co_name);
    O("code.co_firstlineno", PyCodeObject, co_firstlineno);
    O("code.co_lnotab", PyCodeObject, co_lnotab);
    O("string.ob_size", PyStringObject, ob_size);
    O("string.ob_sval", PyStringObject, ob_sval);
    O("unicode.length", PyUnicodeObject, length);
    O("unicode.str", PyUnicodeObject, str);
    S("unicode.Py_UNICODE", Py_UNICODE);
    O("object.ob_type", PyObject, ob_type);
    O("type.tp_flags", PyTypeObject, tp_flags);
    S("type.tp_flags_size", long);
    printf("%-28s 0x%lx\n", "tpflags.string_subclass", (unsigned long)Py_TPFLAGS_STRING_SUBCLASS);
    printf("%-28s 0x%lx\n", "tpflags.unicode_subclass", (unsigned long)Py_TPFLAGS_UNICODE_SUBCLASS);
    return 0;
}
