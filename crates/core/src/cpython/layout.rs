//! Where CPython keeps what a dump needs, version by version.
//!
//! One [`Layout`] value per interpreter version: a table of the few offsets the
//! walker reads. For 3.9–3.12 the table is data, computed by the compiler from
//! each version's own headers (`scripts/layout-probe`). From 3.13 on the
//! interpreter publishes most of these offsets itself in `_Py_DebugOffsets` at
//! the start of `_PyRuntime`; those are read at run time, validated, and win over
//! the table (a patch release may move a field; the table cannot know).
//!
//! The layout is chosen at run time, not with `cfg(Py_3_x)`: the same walker
//! will read another process of another version.

/// How a thread state reaches its innermost frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramePath {
    /// `tstate->field` is the frame (3.9, 3.10: `frame`; 3.13+: `current_frame`).
    Direct(usize),
    /// `tstate->cframe->current_frame` (3.11, 3.12).
    ViaCFrame { cframe: usize, current_frame: usize },
}

/// How to turn a frame's instruction position into a byte offset in its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstrPosition {
    /// `int f_lasti` counted in bytes (3.9).
    LastiBytes,
    /// `int f_lasti` counted in 2-byte code units (3.10).
    LastiUnits,
    /// A pointer into the code object's adaptive bytecode, which starts at
    /// `code + code_adaptive` (3.11+).
    Pointer { code_adaptive: usize },
}

/// The line-number table format of the version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineTable {
    /// 2.7's `co_lnotab`: unsigned line increments.
    Lnotab27,
    /// `co_lnotab` (3.9): signed line increments.
    Lnotab,
    /// PEP 626 `co_linetable` (3.10).
    Pep626,
    /// PEP 657 location table (3.11+).
    Locations,
}

/// How a dict's keys object lays out its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DictKeys {
    /// 3.9/3.10: `dk_size` (Py_ssize_t) at 8, `dk_nentries` at 32, indices at 40,
    /// index width from `dk_size`, every entry `{hash, key, value}`.
    Legacy,
    /// 3.11+: `dk_log2_size`, `dk_log2_index_bytes`, `dk_kind` bytes, entries
    /// `{key, value}` for unicode-only keys (kind != 0), else `{hash, key, value}`.
    Compact {
        log2_index_bytes: usize,
        kind: usize,
        nentries: usize,
        indices: usize,
    },
}

/// 2.7's `PyStringObject` (the type of its code objects' names): `ob_size`
/// bytes at `ob_sval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BytesStr {
    pub size: usize,
    pub data: usize,
    /// `Py_TPFLAGS_STRING_SUBCLASS`.
    pub subclass_flag: u64,
}

/// What kind of lock `_PyRuntime.interpreters.mutex` (HEAD_LOCK) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadLockKind {
    /// A `PyThread_type_lock` pointer (3.9–3.12).
    ThreadLock,
    /// A one-byte `PyMutex` (3.13+).
    PyMutex,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The version this layout describes: 2.7 or 3.`minor`.
    pub major: u8,
    pub minor: u8,
    /// Offset of HEAD_LOCK, the lock that guards the thread-state lists, in
    /// `_PyRuntime`.
    pub runtime_head_lock: usize,
    pub head_lock_kind: HeadLockKind,
    // PyThreadState
    pub tstate_next: usize,
    pub tstate_interp: usize,
    pub tstate_thread_id: usize,
    pub tstate_frame: FramePath,
    /// `tstate->native_thread_id` (the kernel tid), for the thread name
    /// printed from 3.14 on.
    pub tstate_native_thread_id: Option<usize>,
    /// `tstate->base_frame` (3.15+): the thread's sentinel frame, the
    /// outermost of every stack it runs; a dump of a running thread checks
    /// that its listing reaches it.
    pub tstate_base_frame: Option<usize>,
    // PyInterpreterState
    pub interp_threads_head: usize,
    /// Where the interpreter says whether its garbage collector runs (None
    /// on 2.7, where it is a static of the gc module).
    pub interp_gc_collecting: Option<usize>,
    pub interp_modules: usize,
    pub interp_sysdict: usize,
    // Frames: PyFrameObject (≤3.10) or _PyInterpreterFrame (3.11+)
    pub frame_previous: usize,
    pub frame_code: usize,
    pub frame_instr: usize,
    pub instr_position: InstrPosition,
    /// Offset of the `owner` byte, where frames have one.
    pub frame_owner: Option<usize>,
    /// The `owner` value of C-stack shim frames, skipped when dumping (3.12+).
    pub shim_owner: Option<u8>,
    /// Offset of 3.11's `is_entry` byte: set on the first frame a call of
    /// the C eval loop runs (from 3.12 a shim frame marks that call instead;
    /// up to 3.10 each call runs one frame).
    pub frame_is_entry: Option<usize>,
    /// Low bits to clear from the code pointer (tagged `_PyStackRef`, 3.14+).
    pub code_tag_mask: usize,
    // PyCodeObject
    pub code_filename: usize,
    pub code_name: usize,
    pub code_firstlineno: usize,
    pub code_linetable: usize,
    pub line_table: LineTable,
    // Objects, types, bytes
    pub ob_type: usize,
    pub tp_flags: usize,
    pub tp_base: usize,
    pub bytes_size: usize,
    pub bytes_data: usize,
    // str
    pub unicode_length: usize,
    pub unicode_state: usize,
    pub unicode_ascii_size: usize,
    pub unicode_compact_size: usize,
    pub unicode_data_any: usize,
    pub unicode_kind_shift: u32,
    pub unicode_compact_bit: u32,
    pub unicode_ascii_bit: u32,
    /// 2.7: names are byte strings, not `str` (None from 3.0 on).
    pub bytes_str: Option<BytesStr>,
    // dict and module, for the extension-module list
    pub dict_keys: usize,
    pub dict_values: usize,
    pub dict_keys_format: DictKeys,
    pub module_def: usize,
    pub moduledef_methods: usize,
    /// 3.15: `md_exec` (a module with one is an extension) and
    /// `md_token_is_def` (`module_def` then holds `md_token`, a def only when
    /// this byte is set).
    pub module_exec: Option<usize>,
    pub module_token_is_def: Option<usize>,
}

/// Offsets shared by every supported version (stable since long before 3.9).
const OB_TYPE: usize = 8;
const TP_FLAGS: usize = 168;
const TP_BASE: usize = 256;
const BYTES_SIZE: usize = 16;
const BYTES_DATA: usize = 32;
const MODULE_DEF: usize = 24;
const MODULEDEF_METHODS: usize = 64;
const DICT_KEYS: usize = 32;
const DICT_VALUES: usize = 40;
/// The dict keys object from 3.11 on.
pub(crate) const COMPACT_KEYS: DictKeys = DictKeys::Compact {
    log2_index_bytes: 9,
    kind: 10,
    nentries: 24,
    indices: 32,
};

/// CPython 3.9 (values from scripts/layout-probe on 3.9.18).
pub const PY39: Layout = Layout {
    major: 3,
    minor: 9,
    runtime_head_lock: 24,
    head_lock_kind: HeadLockKind::ThreadLock,
    tstate_next: 8,
    tstate_interp: 16,
    tstate_thread_id: 176,
    tstate_frame: FramePath::Direct(24),
    interp_threads_head: 8,
    interp_gc_collecting: Some(816),
    interp_modules: 856,
    interp_sysdict: 872,
    frame_previous: 24,
    frame_code: 32,
    frame_instr: 104,
    instr_position: InstrPosition::LastiBytes,
    frame_owner: None,
    shim_owner: None,
    frame_is_entry: None,
    code_tag_mask: 0,
    code_filename: 104,
    code_name: 112,
    code_firstlineno: 40,
    code_linetable: 120,
    line_table: LineTable::Lnotab,
    ob_type: OB_TYPE,
    tp_flags: TP_FLAGS,
    tp_base: TP_BASE,
    bytes_size: BYTES_SIZE,
    bytes_data: BYTES_DATA,
    unicode_length: 16,
    unicode_state: 32,
    unicode_ascii_size: 48,
    unicode_compact_size: 72,
    unicode_data_any: 72,
    unicode_kind_shift: 2,
    unicode_compact_bit: 5,
    unicode_ascii_bit: 6,
    bytes_str: None,
    dict_keys: DICT_KEYS,
    dict_values: DICT_VALUES,
    dict_keys_format: DictKeys::Legacy,
    module_def: MODULE_DEF,
    moduledef_methods: MODULEDEF_METHODS,
    module_exec: None,
    module_token_is_def: None,
    tstate_native_thread_id: None,
    tstate_base_frame: None,
};

/// CPython 3.10 (scripts/layout-probe on 3.10.13).
pub const PY310: Layout = Layout {
    minor: 10,
    frame_instr: 96,
    instr_position: InstrPosition::LastiUnits,
    line_table: LineTable::Pep626,
    ..PY39
};

/// CPython 3.11 (scripts/layout-probe on 3.11.7).
pub const PY311: Layout = Layout {
    minor: 11,
    tstate_native_thread_id: Some(160),
    runtime_head_lock: 32,
    tstate_thread_id: 152,
    tstate_frame: FramePath::ViaCFrame {
        cframe: 56,
        current_frame: 8,
    },
    interp_threads_head: 16,
    interp_gc_collecting: Some(848),
    interp_modules: 888,
    interp_sysdict: 904,
    frame_previous: 48,
    frame_code: 32,
    frame_instr: 56,
    instr_position: InstrPosition::Pointer { code_adaptive: 184 },
    frame_owner: Some(69),
    shim_owner: None,
    frame_is_entry: Some(68),
    code_filename: 112,
    code_name: 120,
    code_firstlineno: 72,
    code_linetable: 136,
    line_table: LineTable::Locations,
    dict_keys_format: COMPACT_KEYS,
    ..PY310
};

/// CPython 3.12 (scripts/layout-probe on 3.12.1).
pub const PY312: Layout = Layout {
    minor: 12,
    tstate_native_thread_id: Some(144),
    tstate_thread_id: 136,
    tstate_frame: FramePath::ViaCFrame {
        cframe: 56,
        current_frame: 0,
    },
    interp_threads_head: 72,
    interp_gc_collecting: Some(312),
    interp_modules: 944,
    interp_sysdict: 352,
    frame_previous: 8,
    frame_code: 0,
    frame_instr: 56,
    instr_position: InstrPosition::Pointer { code_adaptive: 192 },
    frame_owner: Some(70),
    shim_owner: Some(3),
    frame_is_entry: None,
    code_firstlineno: 68,
    unicode_ascii_size: 40,
    unicode_compact_size: 56,
    unicode_data_any: 56,
    ..PY311
};

/// CPython 3.13 as its headers describe it (scripts/layout-probe on 3.13.0).
/// At run time the interpreter's `_Py_DebugOffsets` override every field they
/// cover (`debug_offsets::decode`); the rest (str bit positions, dict keys,
/// module def) come from here.
pub const PY313: Layout = Layout {
    minor: 13,
    tstate_native_thread_id: Some(160),
    runtime_head_lock: 624,
    head_lock_kind: HeadLockKind::PyMutex,
    tstate_thread_id: 152,
    tstate_frame: FramePath::Direct(72),
    interp_threads_head: 7344,
    interp_gc_collecting: Some(7600),
    interp_modules: 7656,
    interp_sysdict: 7640,
    frame_previous: 8,
    frame_code: 0,
    frame_instr: 56,
    instr_position: InstrPosition::Pointer { code_adaptive: 200 },
    frame_owner: Some(70),
    code_firstlineno: 68,
    ..PY312
};

/// CPython 2.7 (`scripts/layout_probe27.c` on pyenv's 2.7.18), for dumps of
/// 2.7 processes. Code objects hold byte strings (`bytes_str`), the line
/// table is 2.7's `co_lnotab` (a byte string too: `bytes_size` and
/// `bytes_data` are `PyStringObject`'s). There is no `_PyRuntime`, no
/// HEAD_LOCK to take, and the dict and module fields are never used (2.7
/// has no extension-module list); they keep 3.9's values.
pub const PY27: Layout = Layout {
    major: 2,
    minor: 7,
    runtime_head_lock: 0,
    tstate_next: 0,
    tstate_interp: 8,
    tstate_thread_id: 144,
    tstate_frame: FramePath::Direct(16),
    tstate_native_thread_id: None,
    tstate_base_frame: None,
    interp_threads_head: 8,
    interp_gc_collecting: None,
    interp_modules: 16,
    interp_sysdict: 24,
    frame_previous: 24,
    frame_code: 32,
    frame_instr: 120,
    instr_position: InstrPosition::LastiBytes,
    code_filename: 80,
    code_name: 88,
    code_firstlineno: 96,
    code_linetable: 104,
    line_table: LineTable::Lnotab27,
    bytes_size: 16,
    bytes_data: 36,
    bytes_str: Some(BytesStr {
        size: 16,
        data: 36,
        subclass_flag: 1 << 27,
    }),
    ..PY39
};

/// The built-in table for a 3.x minor version, if lastwords knows it.
pub fn table_for(minor: u8) -> Option<&'static Layout> {
    match minor {
        9 => Some(&PY39),
        10 => Some(&PY310),
        11 => Some(&PY311),
        12 => Some(&PY312),
        13 => Some(&PY313),
        14 => Some(&super::debug_offsets::PY314),
        15 => Some(&super::debug_offsets::PY315),
        _ => None,
    }
}

/// Why a `_Py_DebugOffsets` block was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub enum DebugOffsetsError {
    BadCookie,
    WrongVersion {
        found: u64,
        expected: u64,
    },
    FreeThreaded,
    /// A field lies outside its struct, or a struct size is absurd.
    OutOfBounds(&'static str),
}

impl core::fmt::Display for DebugOffsetsError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DebugOffsetsError::BadCookie => write!(f, "_Py_DebugOffsets cookie is not 'xdebugpy'"),
            DebugOffsetsError::WrongVersion { found, expected } => write!(
                f,
                "_Py_DebugOffsets version 0x{found:x} does not match the interpreter (0x{expected:x})"
            ),
            DebugOffsetsError::FreeThreaded => {
                write!(f, "free-threaded builds are not supported yet")
            }
            DebugOffsetsError::OutOfBounds(what) => {
                write!(f, "_Py_DebugOffsets field {what} is out of bounds")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_keeps_fields_apart() {
        for minor in 9..=15 {
            let l = table_for(minor).unwrap();
            assert_eq!(l.minor, minor);
            assert_ne!(l.code_filename, l.code_name);
            assert_ne!(l.tstate_next, l.tstate_interp);
        }
        assert!(table_for(8).is_none());
        assert!(table_for(16).is_none());
    }
}
