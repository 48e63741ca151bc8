//! What lastwords knows about the running interpreter, resolved once with the
//! GIL held and read afterwards, lock-free, by every dump path.
//!
//! Resolution uses the Python API (sys, types, `_PyRuntime`); the result is a
//! plain struct in a `OnceLock`, so a signal handler only does an atomic load
//! to reach it.

#![allow(unsafe_code)]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicPtr, Ordering};

use pyo3::prelude::*;
use pyo3::types::{PyModule, PyString};

use crate::cpython::debug_offsets;
use crate::cpython::layout::{self, Layout};
use crate::cpython::walk::{KnownTypes, Walker};
use crate::headlock::HeadLock;
use crate::memory::{LocalUnchecked, Memory, PipeSlot, SafeLocal};
use crate::report::text::{Format, ModuleFilter};

/// The interpreter lastwords runs in, as the dump paths need it.
pub struct Target {
    pub layout: Layout,
    /// HEAD_LOCK, for the watchdog thread (None if `_PyRuntime` is not
    /// exported).
    pub head_lock: Option<HeadLock>,
    pub types: KnownTypes,
    pub format: Format,
    /// Where the layout came from, for `_layout_info()` and error messages.
    pub layout_source: &'static str,
}

static TARGET: OnceLock<Result<Target, String>> = OnceLock::new();

/// The resolved target, if resolution succeeded. Async-signal-safe (one
/// atomic load).
pub fn get() -> Option<&'static Target> {
    TARGET.get().and_then(|t| t.as_ref().ok())
}

/// Resolve the target (once), or say why lastwords cannot dump on this
/// interpreter.
pub fn resolve(py: Python<'_>) -> Result<&'static Target, String> {
    TARGET
        .get_or_init(|| build(py).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(Clone::clone)
}

fn build(py: Python<'_>) -> Result<Target, String> {
    let sys = py.import("sys").map_err(|e| e.to_string())?;
    let get = |name: &str| sys.getattr(name).map_err(|e: PyErr| e.to_string());
    let hexversion: u64 = get("hexversion")?
        .extract()
        .map_err(|e: PyErr| e.to_string())?;
    let version: String = get("version")?
        .extract()
        .map_err(|e: PyErr| e.to_string())?;
    let version = version.split_whitespace().next().unwrap_or("?").to_string();
    let minor = ((hexversion >> 16) & 0xff) as u8;
    let implementation: String = get("implementation")?
        .getattr("name")
        .and_then(|n| n.extract())
        .map_err(|e: PyErr| e.to_string())?;
    let abiflags: String = get("abiflags")
        .ok()
        .and_then(|f| f.extract().ok())
        .unwrap_or_default();
    let unknown = |why: &str| -> String {
        format!(
            "lastwords cannot dump tracebacks on {implementation} {version}{}: {why}",
            if abiflags.is_empty() {
                String::new()
            } else {
                format!(" (abiflags {abiflags:?})")
            }
        )
    };
    let unknown = |why: &str| -> Result<Target, String> { Err(unknown(why)) };
    if implementation != "cpython" || hexversion >> 24 != 3 {
        return unknown("only CPython 3 is supported");
    }
    if std::env::var_os("_LASTWORDS_TEST_UNKNOWN_LAYOUT").is_some() {
        return unknown("its memory layout is not known to this version of lastwords");
    }
    if abiflags.contains('t') {
        return unknown("free-threaded builds are not supported yet");
    }
    let corrupt = std::env::var("_LASTWORDS_TEST_CORRUPT_LAYOUT").ok();
    // 3.9-3.12: the built-in tables. 3.13+: the interpreter's own
    // _Py_DebugOffsets (the tables of those versions fill what they lack).
    let (layout, layout_source) = match minor {
        9..=13 if abiflags.contains('d') => {
            return unknown("debug builds have a different memory layout");
        }
        9..=12 => (
            *layout::table_for(minor).ok_or("no table")?,
            "built-in table",
        ),
        // 3.13+: the interpreter's own offsets. Debug builds of 3.14 and
        // 3.15 publish the same offsets (only struct sizes differ).
        m if debug_offsets::decodes(m) => (read_debug_offsets(hexversion)?, "_Py_DebugOffsets"),
        _ => return unknown("its memory layout is not known to this version of lastwords"),
    };
    // The code type, from a code object at hand: the code of the caller's
    // frame (the import system's, at import). Compiling a lambda instead cost
    // 0.08 ms of every start-up under LASTWORDS=1; it stays the fallback for
    // a call without a Python frame.
    let code_type = sys
        .getattr("_getframe")
        .and_then(|getframe| getframe.call0())
        .and_then(|frame| frame.getattr("f_code"))
        .or_else(|_| py.eval(c"(lambda: 0).__code__", None, None))
        .map_err(|e| e.to_string())?
        .get_type();
    let types = KnownTypes {
        unicode: py.get_type::<PyString>().as_ptr() as usize,
        module: py.get_type::<PyModule>().as_ptr() as usize,
        code: code_type.as_ptr() as usize,
        bytes_str: 0,
    };
    refresh_stdlib_names(py);
    let mut layout = layout;
    if let Some(field) = corrupt.as_deref() {
        corrupt_for_test(&mut layout, field);
    }
    let target = Target {
        layout,
        head_lock: HeadLock::new(&layout, runtime_address()),
        types,
        format: Format::for_minor(minor),
        layout_source,
    };
    if let Err(why) = validate(&target) {
        return unknown(&format!("layout check failed: {why}"));
    }
    Ok(target)
}

/// The current `sys.stdlib_module_names`, sorted: a leaked slice behind an
/// atomic pointer, replaced (and the old one leaked) only when it changes.
static STDLIB_NAMES: AtomicPtr<&'static [&'static str]> = AtomicPtr::new(core::ptr::null_mut());

/// Which modules the extension-module list leaves out: the stdlib's names as
/// of the last `enable()`, and lastwords itself. Async-signal-safe.
pub fn module_filter() -> ModuleFilter {
    let names = STDLIB_NAMES.load(Ordering::Acquire);
    let sorted_stdlib_names: &'static [&'static str] = if names.is_null() {
        &[]
    } else {
        // SAFETY: a non-null pointer always comes from Box::leak in
        // refresh_stdlib_names and is never freed.
        unsafe { *names }
    };
    ModuleFilter {
        sorted_stdlib_names,
        own_module: "lastwords._lastwords",
    }
}

/// Read `sys.stdlib_module_names` again. CPython reads it at crash time; a
/// program (or a test) may change it after import, so every `enable()` calls
/// this. Empty before 3.10 (no extension list is printed there).
pub fn refresh_stdlib_names(py: Python<'_>) {
    // `sys.stdlib_module_names` is a frozenset: while sys holds the object
    // read last time (kept alive here, so its address cannot be reused), its
    // names are the ones already published, and enable() stays cheap.
    static LAST_SEEN: std::sync::Mutex<Option<Py<PyAny>>> = std::sync::Mutex::new(None);
    // sys's dict, with an interned key: no import, no temporary string.
    let seen_now = crate::args::lookups()
        .sys_dict
        .bind(py)
        .get_item(pyo3::intern!(py, "stdlib_module_names"))
        .ok()
        .flatten();
    let mut last = LAST_SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if let (Some(now), Some(seen)) = (&seen_now, last.as_ref())
        && now.is(seen.bind(py))
    {
        return;
    }
    let current = py
        .import("sys")
        .and_then(|sys| sys.getattr("stdlib_module_names"));
    *last = current.as_ref().ok().map(|c| c.clone().unbind());
    drop(last);
    // The names are the strings' own UTF-8 (no copy). Each string is kept
    // alive for good (a reference never released): a program may replace
    // the set, or set a list there and empty it, while a signal handler may
    // be reading the names published before.
    // A plain loop: collect() would ask the iterator for a size hint, which
    // PyO3's abi3 build gets from `operator.length_hint`, importing
    // `operator` (0.3 ms of every start-up under LASTWORDS=1).
    let mut names: Vec<&'static str> = Vec::new();
    if let Ok(iter) = current.and_then(|s| s.try_iter()) {
        for name in iter.flatten() {
            if let Some(text) = utf8_of(&name) {
                // SAFETY: the str is never released (the reference made by
                // the clone below is forgotten), and a str's UTF-8 buffer
                // lives and stays unchanged as long as the str does.
                names.push(unsafe { &*core::ptr::from_ref::<str>(text) });
                std::mem::forget(name.clone());
            }
        }
    }
    names.sort_unstable();
    if module_filter().sorted_stdlib_names == names.as_slice() {
        return;
    }
    let slice: &'static [&'static str] = Box::leak(names.into_boxed_slice());
    STDLIB_NAMES.store(Box::leak(Box::new(slice)), Ordering::Release);
}

// Exported by every CPython 3.x, but in the limited API only from 3.10, so
// PyO3's abi3-py39 bindings leave it out.
unsafe extern "C" {
    fn PyUnicode_AsUTF8AndSize(
        unicode: *mut pyo3::ffi::PyObject,
        size: *mut pyo3::ffi::Py_ssize_t,
    ) -> *const core::ffi::c_char;
}

/// The UTF-8 text of a str, read in place (PyO3's abi3 `extract::<String>`
/// makes a bytes object for each). None for anything else or an
/// unencodable str.
fn utf8_of<'a>(obj: &'a Bound<'_, PyAny>) -> Option<&'a str> {
    if !obj.is_instance_of::<PyString>() {
        return None;
    }
    let mut size: pyo3::ffi::Py_ssize_t = 0;
    // SAFETY: `obj` is a live str; the returned buffer is the str's own
    // UTF-8 cache, alive as long as `obj`, which the result borrows.
    let data = unsafe { PyUnicode_AsUTF8AndSize(obj.as_ptr(), &mut size) };
    if data.is_null() {
        // SAFETY: the failed call set an exception; clear it (the name is
        // left out, as a name that failed to extract was before).
        unsafe { pyo3::ffi::PyErr_Clear() };
        return None;
    }
    let len = usize::try_from(size).ok()?;
    // SAFETY: CPython returns `size` bytes of UTF-8 at `data`.
    let bytes = unsafe { core::slice::from_raw_parts(data.cast::<u8>(), len) };
    core::str::from_utf8(bytes).ok()
}

/// The address of `_PyRuntime` (0 if the interpreter does not export it).
fn runtime_address() -> usize {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no
    // preconditions; it returns NULL when the symbol is absent.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"_PyRuntime".as_ptr()) as usize }
}

/// Find `_PyRuntime` and decode its `_Py_DebugOffsets` (3.13+).
fn read_debug_offsets(hexversion: u64) -> Result<Layout, String> {
    let runtime = runtime_address();
    if runtime == 0 {
        return Err("the interpreter does not export _PyRuntime".into());
    }
    let words: [u64; debug_offsets::MAX_WORDS] = LocalUnchecked
        .read(runtime)
        .map_err(|_| "_PyRuntime is unreadable".to_string())?;
    debug_offsets::decode(&words, hexversion).map_err(|e| e.to_string())
}

/// A pipe for the checked reads of [`validate`].
static VALIDATE_PIPE: PipeSlot = PipeSlot::new();

/// Walk the calling thread with the new layout and check that what it finds
/// is what the Python API says: a wrong table must fail here, with the GIL
/// held, not later in a signal handler. A wrong layout leads to wrong
/// addresses, so every read goes through a checked reader: an unreadable
/// address is an error, never a fault (with `LASTWORDS=1` this runs in every
/// Python process at start-up).
fn validate(target: &Target) -> Result<(), String> {
    // SAFETY: called with the GIL held (from `resolve`), so the calling thread
    // has a current thread state and the interpreter is initialised.
    let (tstate, interp) = unsafe {
        (
            pyo3::ffi::PyThreadState_Get() as usize,
            pyo3::ffi::PyInterpreterState_Get() as usize,
        )
    };
    let mem = SafeLocal::checked(&VALIDATE_PIPE)
        .ok_or("no checked way to read memory (process_vm_readv and pipes are refused)")?;
    let walker = Walker::new(&mem, &target.layout, target.types);
    let err = |what: &str| Err(format!("{what} does not match"));
    if walker.thread_interp(tstate) != Ok(interp) {
        return err("PyThreadState.interp");
    }
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as u64;
    if walker.thread_id(tstate) != Ok(me) {
        return err("PyThreadState.thread_id");
    }
    // The calling thread is in the list that starts at the interpreter's
    // head, and the whole list (followed to its end: the calling thread is
    // often the head, which would not test `next`) belongs to the
    // interpreter.
    let mut t = walker.thread_head(interp).map_err(|e| format!("{e:?}"))?;
    let mut found = false;
    for _ in 0..100_000 {
        if t == 0 {
            break;
        }
        found |= t == tstate;
        if walker.thread_interp(t) != Ok(interp) {
            return err("PyThreadState.next");
        }
        t = walker.next_thread(t).map_err(|e| format!("{e:?}"))?;
    }
    if !found || t != 0 {
        return err("PyInterpreterState.threads");
    }
    // Import runs Python code, so there is a frame whose file name is a str.
    let frame = walker.current_frame(tstate).map_err(|e| format!("{e:?}"))?;
    if frame != 0 {
        let f = walker.frame(frame).map_err(|e| format!("{e:?}"))?;
        if !matches!(walker.str(f.filename), Ok(Some(_))) {
            return err("frame code filename");
        }
    }
    Ok(())
}

/// `_LASTWORDS_TEST_CORRUPT_LAYOUT=FIELD`: move one offset of the layout far
/// away, as a wrong table for a patched or unusual build would, so that tests
/// can check that import and `install()` survive it.
fn corrupt_for_test(layout: &mut Layout, field: &str) {
    // Far enough to leave every mapping, near enough to stay a plausible
    // user-space address once added to a heap pointer.
    const FAR: usize = 1 << 40;
    match field {
        "tstate_next" => layout.tstate_next = FAR,
        "tstate_interp" => layout.tstate_interp = FAR,
        "interp_threads_head" => layout.interp_threads_head = FAR,
        "frame_code" => layout.frame_code = FAR,
        "code_filename" => layout.code_filename = FAR,
        _ => {}
    }
}
