//! Layouts for CPython 3.13, 3.14 and 3.15, decoded from the
//! `_Py_DebugOffsets` block each interpreter publishes at the start of
//! `_PyRuntime`: one decoder, one table of word positions per version.
//!
//! The interpreter's own offsets win over anything compiled in: every field
//! lastwords reads is taken from the block when the block has it, checked to
//! lie inside the struct it belongs to. The rest (str bit positions, dict
//! keys, module and type fields) come from `layout::PY313`, [`PY314`] and
//! [`PY315`], computed by the compiler from the interpreters' own headers
//! (`scripts/layout_probe.c` on 3.13.0, and on Debian sid's 3.14.10 and 3.15.2,
//! release and debug builds: identical output).
//!
//! What changed for the walker since 3.13:
//!
//! - `_PyInterpreterFrame.f_executable` is a `_PyStackRef`: a tagged pointer
//!   whose low bits must be cleared (`Py_TAG_BITS` is 3 in both versions), hence
//!   `code_tag_mask: 3`.
//! - The frame `owner` enum: 3.14 has `FRAME_OWNED_BY_INTERPRETER = 3` and
//!   `FRAME_OWNED_BY_CSTACK = 4`; 3.15 dropped `FRAME_OWNED_BY_CSTACK`. In both,
//!   the frames the C eval loop pushes on entry (and 3.15's per-thread base
//!   frame sentinel, `tstate->base_frame`) are owned by the interpreter, and the
//!   stdlib's `dump_frame()` skips exactly the frames with owner 3, hence
//!   `shim_owner: Some(3)`.
//! - 3.15's module object has no `md_def`: see [`module315`].
//!
//! Debug builds (`python3.14d`, `python3.15d`) publish the same block with only
//! the sizes of `_PyRuntimeState` and `PyInterpreterState` larger, and
//! `free_threaded == 0`; `PyObject` keeps its 16 bytes (`Py_DEBUG` no longer
//! implies `Py_TRACE_REFS`). They decode to the same layout and are supported.
//! Free-threaded builds and `Py_TRACE_REFS` builds (a 32-byte `PyObject`, which
//! would move every object field this module takes from the headers) are
//! refused.

use super::layout::{
    COMPACT_KEYS, DebugOffsetsError, FramePath, HeadLockKind, InstrPosition, Layout, LineTable,
    PY313,
};

/// The longest `_Py_DebugOffsets` lastwords reads, in u64 words (3.15's whole
/// block): a reader may always fetch this many words from `_PyRuntime` (the
/// runtime state is far larger) and hand them to [`decode`].
pub const MAX_WORDS: usize = 111;

/// `PyObject` of a build without `Py_TRACE_REFS`: `ob_refcnt`, `ob_type`.
const PYOBJECT_SIZE: u64 = 16;
const PYOBJECT_OB_TYPE: u64 = 8;

/// CPython 3.14 as its headers describe it (scripts/layout_probe.c on 3.14.10,
/// release and debug builds). At run time the interpreter's `_Py_DebugOffsets`
/// override every field they cover.
pub const PY314: Layout = Layout {
    major: 3,
    minor: 14,
    // offsetof(_PyRuntimeState, interpreters.mutex), a PyMutex.
    runtime_head_lock: 800,
    head_lock_kind: HeadLockKind::PyMutex,
    tstate_next: 8,
    tstate_interp: 16,
    tstate_thread_id: 152,
    tstate_frame: FramePath::Direct(72),
    interp_threads_head: 7344,
    interp_gc_collecting: Some(7600),
    interp_modules: 7688,
    interp_sysdict: 7672,
    frame_previous: 8,
    frame_code: 0,
    frame_instr: 56,
    instr_position: InstrPosition::Pointer { code_adaptive: 208 },
    frame_owner: Some(74),
    // FRAME_OWNED_BY_INTERPRETER: what the stdlib's dump_frame() skips.
    shim_owner: Some(3),
    frame_is_entry: None,
    // Py_TAG_BITS: f_executable is a tagged _PyStackRef.
    code_tag_mask: 3,
    code_filename: 112,
    code_name: 120,
    code_firstlineno: 68,
    code_linetable: 136,
    line_table: LineTable::Locations,
    ob_type: 8,
    tp_flags: 168,
    tp_base: 256,
    bytes_size: 16,
    bytes_data: 32,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_size: 40,
    unicode_compact_size: 56,
    unicode_data_any: 56,
    unicode_kind_shift: 2,
    unicode_compact_bit: 5,
    unicode_ascii_bit: 6,
    bytes_str: None,
    dict_keys: 32,
    dict_values: 40,
    // The dict keys object is unchanged since 3.11.
    dict_keys_format: COMPACT_KEYS,
    module_def: 24,
    moduledef_methods: 64,
    module_exec: None,
    module_token_is_def: None,
    tstate_native_thread_id: Some(160),
    tstate_base_frame: None,
};

/// CPython 3.15 as its headers describe it (scripts/layout_probe.c on 3.15.2,
/// release and debug builds).
pub const PY315: Layout = Layout {
    minor: 15,
    runtime_head_lock: 928,
    tstate_thread_id: 176,
    interp_threads_head: 7336,
    interp_gc_collecting: Some(7512),
    interp_modules: 7592,
    interp_sysdict: 7576,
    // 3.15 has no md_def: this is md_token, which is the PyModuleDef only when
    // md_token_is_def is set. See `module315` for what the walker must check.
    module_def: module315::TOKEN,
    module_exec: Some(module315::EXEC),
    module_token_is_def: Some(module315::TOKEN_IS_DEF),
    tstate_native_thread_id: Some(184),
    tstate_base_frame: Some(80),
    ..PY314
};

/// 3.15's `PyModuleObject`, for the extension-module list.
///
/// `md_def` is gone; `_PyModule_IsExtension()` (disassembled from 3.15.2's
/// `python3.15d`) is:
///
/// ```c
/// if (!PyModule_Check(obj)) return 0;
/// if (module->md_exec != NULL) return 1;
/// if (!module->md_token_is_def) return 0;
/// return ((PyModuleDef *)module->md_token)->m_methods != NULL;
/// ```
///
/// The walker follows this rule through `Layout::module_exec` and
/// `Layout::module_token_is_def`.
pub mod module315 {
    /// `bool md_token_is_def`.
    pub const TOKEN_IS_DEF: usize = 48;
    /// `void *md_token` (the `PyModuleDef *` when `md_token_is_def`).
    pub const TOKEN: usize = 88;
    /// `_Py_modexecfunc md_exec`.
    pub const EXEC: usize = 96;
    // The three fields in their declaration order, after PyObject_HEAD.
    const _: () = assert!(16 < TOKEN_IS_DEF && TOKEN_IS_DEF < TOKEN && TOKEN < EXEC);
}

/// Where each field lastwords reads sits in a version's `_Py_DebugOffsets`, in
/// u64 words from its start (`offsetof(_Py_DebugOffsets, f) / 8`, from the
/// version's `internal/pycore_debug_offsets.h`).
struct Words {
    version: usize,
    free_threaded: usize,
    runtime_size: usize,
    runtime_interpreters_head: usize,
    interp_size: usize,
    interp_threads_head: usize,
    interp_gc: usize,
    interp_modules: usize,
    interp_sysdict: usize,
    tstate_size: usize,
    tstate_next: usize,
    tstate_interp: usize,
    tstate_current_frame: usize,
    tstate_thread_id: usize,
    tstate_native_thread_id: usize,
    /// 3.15+.
    tstate_base_frame: Option<usize>,
    frame_size: usize,
    frame_previous: usize,
    frame_executable: usize,
    frame_instr_ptr: usize,
    frame_owner: usize,
    code_size: usize,
    code_filename: usize,
    code_name: usize,
    code_linetable: usize,
    code_firstlineno: usize,
    code_adaptive: usize,
    object_size: usize,
    ob_type: usize,
    type_size: usize,
    tp_flags: usize,
    dict_size: usize,
    dict_keys: usize,
    dict_values: usize,
    bytes_size: usize,
    bytes_ob_size: usize,
    bytes_ob_sval: usize,
    unicode_size: usize,
    unicode_state: usize,
    unicode_length: usize,
    unicode_ascii_size: usize,
    /// `sizeof(PyCompactUnicodeObject)`: published from 3.15 on.
    unicode_compact_size: Option<usize>,
    gc_size: usize,
    gc_collecting: usize,
}

/// 3.13: the first block (`internal/pycore_runtime.h` of 3.13.0).
const W313: Words = Words {
    version: 1,
    free_threaded: 2,
    runtime_size: 3,
    runtime_interpreters_head: 5,
    interp_size: 6,
    interp_threads_head: 9,
    interp_gc: 10,
    interp_modules: 11,
    interp_sysdict: 12,
    tstate_size: 19,
    tstate_next: 21,
    tstate_interp: 22,
    tstate_current_frame: 23,
    tstate_thread_id: 24,
    tstate_native_thread_id: 25,
    tstate_base_frame: None,
    frame_size: 28,
    frame_previous: 29,
    frame_executable: 30,
    frame_instr_ptr: 31,
    frame_owner: 33,
    code_size: 34,
    code_filename: 35,
    code_name: 36,
    code_linetable: 38,
    code_firstlineno: 39,
    code_adaptive: 43,
    object_size: 44,
    ob_type: 45,
    type_size: 46,
    tp_flags: 49,
    dict_size: 56,
    dict_keys: 57,
    dict_values: 58,
    bytes_size: 64,
    bytes_ob_size: 65,
    bytes_ob_sval: 66,
    unicode_size: 67,
    unicode_state: 68,
    unicode_length: 69,
    unicode_ascii_size: 70,
    unicode_compact_size: None,
    gc_size: 71,
    gc_collecting: 72,
};

/// 3.14: runtime_state (3 words) and interpreter_state (16) as in 3.13, then
/// thread_state gained `native_thread_id`, `datastack_chunk`, `status`, the
/// frame gained `stackpointer`, `tlbc_index`, the code object `co_tlbc`.
const W314: Words = Words {
    version: 1,
    free_threaded: 2,
    runtime_size: 3,
    runtime_interpreters_head: 5,
    interp_size: 6,
    interp_threads_head: 9,
    interp_gc: 11,
    interp_modules: 12,
    interp_sysdict: 13,
    tstate_size: 22,
    tstate_next: 24,
    tstate_interp: 25,
    tstate_current_frame: 26,
    tstate_thread_id: 27,
    tstate_native_thread_id: 28,
    tstate_base_frame: None,
    frame_size: 31,
    frame_previous: 32,
    frame_executable: 33,
    frame_instr_ptr: 34,
    frame_owner: 36,
    code_size: 39,
    code_filename: 40,
    code_name: 41,
    code_linetable: 43,
    code_firstlineno: 44,
    code_adaptive: 48,
    object_size: 50,
    ob_type: 51,
    type_size: 52,
    tp_flags: 55,
    dict_size: 66,
    dict_keys: 67,
    dict_values: 68,
    bytes_size: 74,
    bytes_ob_size: 75,
    bytes_ob_sval: 76,
    unicode_size: 77,
    unicode_state: 78,
    unicode_length: 79,
    unicode_ascii_size: 80,
    unicode_compact_size: None,
    gc_size: 81,
    gc_collecting: 82,
};

/// 3.15: thread_state gained `base_frame`, `last_profiled_frame(_seq)` (before
/// `thread_id`) and four fields after `status`; a new `err_stackitem` block;
/// type_object gained two fields; a new `heap_type_object` block; unicode
/// gained `compactunicodeobject_size`; gc gained three fields.
const W315: Words = Words {
    version: 1,
    free_threaded: 2,
    runtime_size: 3,
    runtime_interpreters_head: 5,
    interp_size: 6,
    interp_threads_head: 9,
    interp_gc: 11,
    interp_modules: 12,
    interp_sysdict: 13,
    tstate_size: 22,
    tstate_next: 24,
    tstate_interp: 25,
    tstate_current_frame: 26,
    tstate_thread_id: 30,
    tstate_native_thread_id: 31,
    tstate_base_frame: Some(27),
    frame_size: 39,
    frame_previous: 40,
    frame_executable: 41,
    frame_instr_ptr: 42,
    frame_owner: 44,
    code_size: 47,
    code_filename: 48,
    code_name: 49,
    code_linetable: 51,
    code_firstlineno: 52,
    code_adaptive: 56,
    object_size: 58,
    ob_type: 59,
    type_size: 60,
    tp_flags: 63,
    dict_size: 78,
    dict_keys: 79,
    dict_values: 80,
    bytes_size: 86,
    bytes_ob_size: 87,
    bytes_ob_sval: 88,
    unicode_size: 89,
    unicode_state: 90,
    unicode_length: 91,
    unicode_ascii_size: 92,
    unicode_compact_size: Some(93),
    gc_size: 94,
    gc_collecting: 95,
};

/// The word positions and the header-derived base layout of a minor
/// version that publishes `_Py_DebugOffsets`.
fn version_tables(minor: u8) -> Option<(&'static Words, &'static Layout)> {
    match minor {
        13 => Some((&W313, &PY313)),
        14 => Some((&W314, &PY314)),
        15 => Some((&W315, &PY315)),
        _ => None,
    }
}

/// Whether lastwords can decode the `_Py_DebugOffsets` of 3.`minor`.
pub fn decodes(minor: u8) -> bool {
    version_tables(minor).is_some()
}

/// Build the layout of an interpreter from its `_Py_DebugOffsets` words (at
/// least the block's length; [`MAX_WORDS`] always suffices): hostile input,
/// every field checked against the size of the struct it belongs to before
/// it is trusted. `hexversion` is the interpreter's version as known
/// otherwise (its `sys.hexversion`, or `Py_Version` read from a target): the
/// block must agree with it. The shape of the block differs by version
/// ([`version_tables`]), what is checked and how the layout is assembled
/// does not; fields the block does not have come from the version's table.
pub fn decode(words: &[u64], hexversion: u64) -> Result<Layout, DebugOffsetsError> {
    if words.first().map(|w| w.to_ne_bytes()) != Some(*b"xdebugpy") {
        return Err(DebugOffsetsError::BadCookie);
    }
    let minor = u8::try_from((hexversion >> 16) & 0xff).unwrap_or(0);
    let Some((at, base)) = version_tables(minor).filter(|_| hexversion >> 24 == 3) else {
        return Err(DebugOffsetsError::WrongVersion {
            found: hexversion,
            expected: 0x030d_0000,
        });
    };
    // A missing word reads as 0, which fails every size check below.
    let word = |i: usize| words.get(i).copied().unwrap_or(0);
    // The block must describe the interpreter (same minor; the patch level
    // may differ from the headers we saw).
    let found = word(at.version);
    if found >> 16 != hexversion >> 16 {
        return Err(DebugOffsetsError::WrongVersion {
            found,
            expected: hexversion,
        });
    }
    if word(at.free_threaded) != 0 {
        return Err(DebugOffsetsError::FreeThreaded);
    }
    // A field of `width` bytes at word `field` must lie inside the struct whose
    // size is at word `size`; sizes must be sane (no struct here is > 1 MiB).
    let field = |name: &'static str, size: usize, field: usize, width: u64| {
        let (s, f) = (word(size), word(field));
        match usize::try_from(f) {
            Ok(f) if s != 0 && s <= (1 << 20) && f_end(f, width).is_some_and(|end| end <= s) => {
                Ok(f)
            }
            _ => Err(DebugOffsetsError::OutOfBounds(name)),
        }
    };
    fn f_end(f: usize, width: u64) -> Option<u64> {
        u64::try_from(f).ok()?.checked_add(width)
    }
    // The object fields taken from the headers (module def, tp_base, the
    // unicode bits) assume a 16-byte PyObject; a Py_TRACE_REFS build has two
    // more pointers in front of every object.
    if word(at.object_size) != PYOBJECT_SIZE || word(at.ob_type) != PYOBJECT_OB_TYPE {
        return Err(DebugOffsetsError::OutOfBounds(
            "pyobject.size (a Py_TRACE_REFS build: not supported)",
        ));
    }
    // tp_base is not in the block; it must at least fit the published size.
    field("type_object.tp_flags", at.type_size, at.tp_flags, 8)?;
    if u64::try_from(base.tp_base)
        .ok()
        .and_then(|b| b.checked_add(8))
        .is_none_or(|end| end > word(at.type_size))
    {
        return Err(DebugOffsetsError::OutOfBounds("type_object.tp_base"));
    }
    let gc = field(
        "interpreter_state.gc",
        at.interp_size,
        at.interp_gc,
        word(at.gc_size),
    )?;
    let collecting = field("gc.collecting", at.gc_size, at.gc_collecting, 4)?;
    let unicode_state = field("unicode_object.state", at.unicode_size, at.unicode_state, 4)?;
    let ascii_size = usize::try_from(word(at.unicode_ascii_size)).unwrap_or(0);
    if !(24..=128).contains(&ascii_size) || unicode_state >= ascii_size {
        return Err(DebugOffsetsError::OutOfBounds(
            "unicode_object.asciiobject_size",
        ));
    }
    // PyCompactUnicodeObject is PyASCIIObject plus utf8_length and utf8; 3.15
    // publishes its size, 3.14 does not.
    // ascii_size <= 128 (checked above): the sums cannot overflow.
    let compact_size = match at.unicode_compact_size {
        Some(i) => usize::try_from(word(i)).unwrap_or(0),
        None => ascii_size.saturating_add(16),
    };
    if compact_size < ascii_size.saturating_add(16)
        || u64::try_from(compact_size).is_ok_and(|size| size >= word(at.unicode_size))
    {
        return Err(DebugOffsetsError::OutOfBounds(
            "unicode_object.compactunicodeobject_size",
        ));
    }
    // HEAD_LOCK is `_PyRuntime.interpreters.mutex`, the PyMutex just before
    // `interpreters.head` (struct pyinterpreters starts {PyMutex mutex;
    // PyInterpreterState *head; ...} in 3.13-3.15; the pointer is 8-aligned).
    let interpreters_head = field(
        "runtime_state.interpreters_head",
        at.runtime_size,
        at.runtime_interpreters_head,
        8,
    )?;
    let Some(runtime_head_lock) = interpreters_head.checked_sub(8) else {
        return Err(DebugOffsetsError::OutOfBounds(
            "runtime_state.interpreters_head",
        ));
    };
    // Both lie inside the 1 MiB-bounded interpreter state.
    let interp_gc_collecting = gc
        .checked_add(collecting)
        .ok_or(DebugOffsetsError::OutOfBounds("gc.collecting"))?;
    let layout = Layout {
        minor: base.minor,
        runtime_head_lock,
        tstate_next: field("thread_state.next", at.tstate_size, at.tstate_next, 8)?,
        tstate_interp: field("thread_state.interp", at.tstate_size, at.tstate_interp, 8)?,
        tstate_thread_id: field(
            "thread_state.thread_id",
            at.tstate_size,
            at.tstate_thread_id,
            8,
        )?,
        tstate_native_thread_id: Some(field(
            "thread_state.native_thread_id",
            at.tstate_size,
            at.tstate_native_thread_id,
            8,
        )?),
        tstate_base_frame: at
            .tstate_base_frame
            .map(|i| field("thread_state.base_frame", at.tstate_size, i, 8))
            .transpose()?,
        tstate_frame: FramePath::Direct(field(
            "thread_state.current_frame",
            at.tstate_size,
            at.tstate_current_frame,
            8,
        )?),
        interp_threads_head: field(
            "interpreter_state.threads_head",
            at.interp_size,
            at.interp_threads_head,
            8,
        )?,
        interp_gc_collecting: Some(interp_gc_collecting),
        interp_modules: field(
            "interpreter_state.imports_modules",
            at.interp_size,
            at.interp_modules,
            8,
        )?,
        interp_sysdict: field(
            "interpreter_state.sysdict",
            at.interp_size,
            at.interp_sysdict,
            8,
        )?,
        frame_previous: field(
            "interpreter_frame.previous",
            at.frame_size,
            at.frame_previous,
            8,
        )?,
        frame_code: field(
            "interpreter_frame.executable",
            at.frame_size,
            at.frame_executable,
            8,
        )?,
        frame_instr: field(
            "interpreter_frame.instr_ptr",
            at.frame_size,
            at.frame_instr_ptr,
            8,
        )?,
        instr_position: InstrPosition::Pointer {
            code_adaptive: field(
                "code_object.co_code_adaptive",
                at.code_size,
                at.code_adaptive,
                0,
            )?,
        },
        frame_owner: Some(field(
            "interpreter_frame.owner",
            at.frame_size,
            at.frame_owner,
            1,
        )?),
        code_filename: field("code_object.filename", at.code_size, at.code_filename, 8)?,
        code_name: field("code_object.name", at.code_size, at.code_name, 8)?,
        code_firstlineno: field(
            "code_object.firstlineno",
            at.code_size,
            at.code_firstlineno,
            4,
        )?,
        code_linetable: field("code_object.linetable", at.code_size, at.code_linetable, 8)?,
        ob_type: field("pyobject.ob_type", at.object_size, at.ob_type, 8)?,
        tp_flags: field("type_object.tp_flags", at.type_size, at.tp_flags, 8)?,
        bytes_size: field("bytes_object.ob_size", at.bytes_size, at.bytes_ob_size, 8)?,
        bytes_data: field("bytes_object.ob_sval", at.bytes_size, at.bytes_ob_sval, 1)?,
        unicode_length: field(
            "unicode_object.length",
            at.unicode_size,
            at.unicode_length,
            8,
        )?,
        unicode_state,
        unicode_ascii_size: ascii_size,
        // A non-compact str keeps its data pointer right after the compact head.
        unicode_compact_size: compact_size,
        unicode_data_any: compact_size,
        dict_keys: field("dict_object.ma_keys", at.dict_size, at.dict_keys, 8)?,
        dict_values: field("dict_object.ma_values", at.dict_size, at.dict_values, 8)?,
        ..*base
    };
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOKIE: u64 = u64::from_ne_bytes(*b"xdebugpy");

    /// The length of each version's block, in words.
    const WORDS_313: usize = 73;
    const WORDS_314: usize = 95;
    const WORDS_315: usize = 111;

    /// `_Py_DebugOffsets` of pyenv's 3.13.0, as read from `_PyRuntime` with
    /// ctypes. Word 0 is the cookie.
    const REAL_313: [u64; WORDS_313] = [
        COOKIE, 51183856, 0, 283320, 608, 632, 194968, 7272, 7264, 7344, 7400, 7656, 7640, 7648,
        16, 7752, 0, 7768, 7760, 304, 0, 8, 16, 72, 152, 160, 232, 32, 80, 8, 0, 56, 72, 70, 208,
        112, 120, 128, 136, 68, 52, 96, 104, 200, 16, 8, 416, 24, 88, 168, 32, 24, 16, 40, 24, 16,
        48, 32, 40, 24, 16, 32, 16, 24, 40, 16, 32, 64, 32, 16, 40, 240, 200,
    ];
    const HEX_313: u64 = 0x030d00f0;

    #[test]
    fn debug_offsets_agree_with_the_313_table() {
        assert_eq!(decode(&REAL_313, HEX_313), Ok(PY313));
        assert_eq!(decode(&REAL_313, 0x030d05f0), Ok(PY313));
        assert_eq!(MAX_WORDS, WORDS_315);
    }

    /// `_Py_DebugOffsets` of Debian sid's python3.14 3.14.10 (release build),
    /// as read from `_PyRuntime` with ctypes. Word 0 is the cookie.
    const REAL_314: [u64; WORDS_314] = [
        COOKIE, 51251952, 0, 316616, 784, 808, 225864, 7280, 7272, 7344, 7360, 7408, 7688, 7672,
        7680, 16, 7784, 0, 7800, 7792, 7992, 0, 832, 0, 8, 16, 72, 152, 160, 232, 32, 88, 8, 0, 56,
        80, 74, 64, 0, 216, 112, 120, 128, 136, 68, 52, 96, 104, 208, 0, 16, 8, 416, 24, 88, 168,
        40, 32, 16, 40, 24, 16, 200, 24, 40, 32, 48, 32, 40, 24, 16, 32, 16, 24, 40, 16, 32, 64,
        32, 16, 40, 264, 192, 160, 24, 72, 67, 0, 8, 24, 304, 8076, 0, 4, 512,
    ];

    /// `_Py_DebugOffsets` of Debian sid's python3.15 3.15.2 (release build).
    const REAL_315: [u64; WORDS_315] = [
        COOKIE, 51315440, 0, 346568, 912, 936, 226240, 7272, 7264, 7336, 7352, 7400, 7592, 7576,
        7584, 16, 7736, 0, 7752, 7744, 7944, 0, 888, 0, 8, 16, 72, 80, 88, 96, 176, 184, 256, 32,
        36, 40, 136, 288, 0, 88, 8, 0, 56, 80, 74, 64, 0, 216, 112, 120, 128, 136, 68, 52, 96, 104,
        208, 0, 16, 8, 424, 24, 88, 168, 32, 288, 944, 888, 40, 32, 16, 40, 24, 16, 200, 24, 40,
        32, 48, 32, 40, 24, 16, 32, 16, 24, 40, 16, 32, 64, 32, 16, 40, 56, 176, 112, 120, 1120,
        104, 160, 24, 72, 67, 0, 8, 24, 344, 8028, 0, 4, 512,
    ];

    const HEX_314: u64 = 0x030e0af0;
    const HEX_315: u64 = 0x030f02f0;

    /// The debug builds (python3.14d 3.14.10, python3.15d 3.15.2) publish the
    /// same words but for two struct sizes (words 3 and 6: `_PyRuntimeState`
    /// and `PyInterpreterState`).
    fn debug_build<const N: usize>(
        release: [u64; N],
        runtime_size: u64,
        interp_size: u64,
    ) -> [u64; N] {
        let mut w = release;
        w[3] = runtime_size;
        w[6] = interp_size;
        w
    }

    #[test]
    fn debug_offsets_agree_with_the_314_table() {
        assert_eq!(decode(&REAL_314, HEX_314), Ok(PY314));
        let debug = debug_build(REAL_314, 332632, 225880);
        assert_eq!(decode(&debug, HEX_314), Ok(PY314));
        // Another patch release of 3.14 is accepted.
        assert_eq!(decode(&REAL_314, 0x030e00f0), Ok(PY314));
    }

    #[test]
    fn debug_offsets_agree_with_the_315_table() {
        assert_eq!(decode(&REAL_315, HEX_315), Ok(PY315));
        let debug = debug_build(REAL_315, 362592, 226256);
        assert_eq!(decode(&debug, HEX_315), Ok(PY315));
    }

    /// What the stdlib's dump_frame() skips, and the stack-ref tag.
    #[test]
    fn frames_owned_by_the_interpreter_are_shims() {
        for l in [PY314, PY315] {
            assert_eq!(l.shim_owner, Some(3));
            assert_eq!(l.frame_owner, Some(74));
            assert_eq!(l.code_tag_mask, 3);
            assert_ne!(l.code_filename, l.code_name);
            assert_ne!(l.tstate_next, l.tstate_interp);
        }
        assert_eq!(PY315.module_def, module315::TOKEN);
    }

    #[test]
    fn cookie_version_and_build_are_checked() {
        let mut w = REAL_314;
        w[0] = 0;
        assert_eq!(decode(&w, HEX_314), Err(DebugOffsetsError::BadCookie));
        // Words of 3.14 on an interpreter that says 3.13.
        assert_eq!(
            decode(&REAL_314, 0x030d00f0),
            Err(DebugOffsetsError::WrongVersion {
                found: REAL_314[W314.version],
                expected: 0x030d00f0,
            })
        );
        // Words of 3.14 on an interpreter that says 3.15; a version without
        // a block.
        assert_eq!(
            decode(&REAL_314, HEX_315),
            Err(DebugOffsetsError::WrongVersion {
                found: REAL_314[W314.version],
                expected: HEX_315,
            })
        );
        assert!(matches!(
            decode(&REAL_314, 0x030c00f0),
            Err(DebugOffsetsError::WrongVersion { .. })
        ));
        // A block cut short.
        assert!(decode(&REAL_314[..40], HEX_314).is_err());
        let mut w = REAL_315;
        w[W315.free_threaded] = 1;
        assert_eq!(decode(&w, HEX_315), Err(DebugOffsetsError::FreeThreaded));
        // Py_TRACE_REFS: PyObject is 32 bytes, ob_type at 24.
        let mut w = REAL_315;
        w[W315.object_size] = 32;
        w[W315.ob_type] = 24;
        assert!(matches!(
            decode(&w, HEX_315),
            Err(DebugOffsetsError::OutOfBounds(_))
        ));
    }

    #[test]
    fn every_field_is_checked_against_its_struct() {
        // thread_id (8 bytes) at the very end of PyThreadState.
        let mut w = REAL_314;
        w[W314.tstate_thread_id] = w[W314.tstate_size] - 7;
        assert_eq!(
            decode(&w, HEX_314),
            Err(DebugOffsetsError::OutOfBounds("thread_state.thread_id"))
        );
        let mut w = REAL_315;
        w[W315.frame_owner] = w[W315.frame_size];
        assert_eq!(
            decode(&w, HEX_315),
            Err(DebugOffsetsError::OutOfBounds("interpreter_frame.owner"))
        );
        // An absurd struct size, a field offset that would overflow.
        let mut w = REAL_315;
        w[W315.code_size] = u64::MAX;
        assert_eq!(
            decode(&w, HEX_315),
            Err(DebugOffsetsError::OutOfBounds(
                "code_object.co_code_adaptive"
            ))
        );
        let mut w = REAL_314;
        w[W314.code_filename] = u64::MAX - 2;
        assert_eq!(
            decode(&w, HEX_314),
            Err(DebugOffsetsError::OutOfBounds("code_object.filename"))
        );
        // The gc state must fit in the interpreter state.
        let mut w = REAL_314;
        w[W314.interp_gc] = w[W314.interp_size] - 8;
        assert_eq!(
            decode(&w, HEX_314),
            Err(DebugOffsetsError::OutOfBounds("interpreter_state.gc"))
        );
        // str sizes.
        let mut w = REAL_315;
        w[W315.unicode_compact_size.unwrap()] = 8;
        assert_eq!(
            decode(&w, HEX_315),
            Err(DebugOffsetsError::OutOfBounds(
                "unicode_object.compactunicodeobject_size"
            ))
        );
        let mut w = REAL_314;
        w[W314.unicode_ascii_size] = 4096;
        assert_eq!(
            decode(&w, HEX_314),
            Err(DebugOffsetsError::OutOfBounds(
                "unicode_object.asciiobject_size"
            ))
        );
        // A type object too small to hold tp_base.
        let mut w = REAL_314;
        w[W314.type_size] = 200;
        assert_eq!(
            decode(&w, HEX_314),
            Err(DebugOffsetsError::OutOfBounds("type_object.tp_base"))
        );
    }

    /// The index tables name each field once and keep to the block.
    #[test]
    fn word_indices_are_inside_the_blocks() {
        for (at, n) in [(&W313, WORDS_313), (&W314, WORDS_314), (&W315, WORDS_315)] {
            let mut all = [
                at.version,
                at.free_threaded,
                at.runtime_size,
                at.runtime_interpreters_head,
                at.interp_size,
                at.interp_threads_head,
                at.interp_gc,
                at.interp_modules,
                at.interp_sysdict,
                at.tstate_size,
                at.tstate_next,
                at.tstate_interp,
                at.tstate_current_frame,
                at.tstate_thread_id,
                at.frame_size,
                at.frame_previous,
                at.frame_executable,
                at.frame_instr_ptr,
                at.frame_owner,
                at.code_size,
                at.code_filename,
                at.code_name,
                at.code_linetable,
                at.code_firstlineno,
                at.code_adaptive,
                at.object_size,
                at.ob_type,
                at.type_size,
                at.tp_flags,
                at.dict_size,
                at.dict_keys,
                at.dict_values,
                at.bytes_size,
                at.bytes_ob_size,
                at.bytes_ob_sval,
                at.unicode_size,
                at.unicode_state,
                at.unicode_length,
                at.unicode_ascii_size,
                at.unicode_compact_size.unwrap_or(0),
                at.gc_size,
                at.gc_collecting,
            ];
            assert!(all.iter().all(|&i| i < n));
            all.sort_unstable();
            let distinct = all.windows(2).filter(|p| p[0] != p[1]).count() + 1;
            // Only the absent 3.14 compact size may repeat the cookie's 0.
            assert!(distinct >= all.len() - 1);
        }
    }
}
