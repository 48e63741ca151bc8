//! lastwords: CPython's `faulthandler`, rebuilt in Rust.
//!
//! This file is the binding layer: argument checking, the stdlib's exceptions,
//! and the lifetime of the file objects a handler may write to. It contains no
//! signal code and reads no interpreter structure itself.
//!
//! Modules, from the bottom up:
//! * [`args`]: the functions' names, docstrings and parameters, version by
//!   version, and the parsing of a call's arguments.
//! * [`writer`]: the fd writer (fixed buffer, no allocation).
//! * [`cpython`]: layouts, memory readers, line tables and the walker.
//! * [`dump`]: the renderer: the stdlib's text, version by version.
//! * [`fatal`]: the fatal-signal handlers.
//! * [`procfs`]: thread names from /proc, signal-safely.
//! * [`native`]: C stacks (3.14+): DWARF unwinding, symbols loaded at enable.
//! * [`pyfatal`]: recognising CPython's own Py_FatalError() (no double report).
//! * [`user_signal`]: `register()`: dumps on user signals.
//! * [`watchdog`]: `dump_traceback_later()`: one long-lived watchdog thread.
//! * [`signals`]: what the signal handlers share (saved actions, alt stack).
//! * [`target`]: what is known about the running interpreter.
//! * [`crash`]: the stdlib's `_sigsegv`-style test helpers.

#![deny(unsafe_code)]

/// Add a `#[pyfunction]` to a module as a plain attribute. Not PyO3's
/// `add_function`, which also lists the name in `__all__`: the stdlib's
/// module has no `__all__` (so `from faulthandler import *` takes only the
/// public names), and every list append was paid at each start-up.
macro_rules! add_function {
    ($module:expr, $function:ident) => {
        $module.setattr(stringify!($function), wrap_pyfunction!($function, $module)?)
    };
}

pub mod args;
pub mod crash;
pub mod fatal;
pub mod headlock;
pub mod loaded;
pub mod native;
pub mod pyfatal;
pub mod signals;
pub mod target;
pub mod user_signal;
pub mod watchdog;

// The interpreter reader and the renderer live in lastwords-core (no PyO3, no
// signals); the in-process code names them as if they were its own modules.
pub use lastwords_core::{cpython, memory, procfs, report, writer};

use std::sync::Mutex;

use pyo3::exceptions::{PyRuntimeError, PyRuntimeWarning, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyTuple};

use args::{Args, Param, Ret};
use cpython::walk::Walker;
use memory::LocalUnchecked;
use report::text::TextReport;
use writer::{FdSink, FlushPolicy, Writer};

/// The file object the fatal handler writes to, kept alive until `disable()`
/// or the next `enable()`. The mutex also serialises enable/disable.
static FATAL_FILE: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

/// The target, or the stdlib-style RuntimeError saying why there is none.
fn target(py: Python<'_>) -> PyResult<&'static target::Target> {
    target::resolve(py).map_err(PyRuntimeError::new_err)
}

/// The interpreter's minor version, cached: `Python::version_info` formats
/// and parses the version string on every call, which showed up as the
/// largest cost of a watchdog re-arm.
fn minor(py: Python<'_>) -> u8 {
    static MINOR: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *MINOR.get_or_init(|| py.version_info().minor)
}

/// `sys.stderr`, or None when the attribute is missing.
fn sys_stderr<'py>(py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let lookups = args::lookups();
    lookups.sys_dict.bind(py).get_item(lookups.stderr.bind(py))
}

/// A file argument turned into a file descriptor, the way the stdlib's
/// `faulthandler_get_fileno` does it; returns the object to keep alive (None
/// for an int fd).
fn file_to_fd(
    py: Python<'_>,
    file: Option<Borrowed<'_, '_, PyAny>>,
) -> PyResult<(i32, Option<Py<PyAny>>)> {
    let file = match file {
        Some(f) if !f.is_none() => f.to_owned(),
        _ => match sys_stderr(py)? {
            None => {
                return Err(PyRuntimeError::new_err(if minor(py) >= 14 {
                    "lost sys.stderr"
                } else {
                    "unable to get sys.stderr"
                }));
            }
            Some(stderr) if stderr.is_none() => {
                return Err(PyRuntimeError::new_err("sys.stderr is None"));
            }
            Some(stderr) => stderr,
        },
    };
    if file.is_instance_of::<PyInt>() {
        if minor(py) >= 13 && file.is_instance_of::<PyBool>() {
            PyErr::warn(
                py,
                &py.get_type::<PyRuntimeWarning>(),
                c"bool is used as a file descriptor",
                1,
            )?;
        }
        let fd = args::as_c_int(&file.as_borrowed())?;
        if fd < 0 {
            return Err(PyValueError::new_err(if minor(py) >= 12 {
                "file is not a valid file descriptor"
            } else {
                "file is not a valid file descripter"
            }));
        }
        return Ok((fd, None));
    }
    let result = file.call_method0(args::lookups().fileno.bind(py))?;
    // Anything but an int in [0, INT_MAX) is not a valid fd, as for the
    // stdlib: it checks the type first (no __index__ is called) and drops
    // the OverflowError of a huge int.
    let fd = if result.is_instance_of::<PyInt>() {
        match result.extract::<libc::c_long>() {
            Ok(v) if (0..libc::c_long::from(i32::MAX)).contains(&v) => v as i32,
            _ => -1,
        }
    } else {
        -1
    };
    drop(result);
    if fd < 0 {
        return Err(PyRuntimeError::new_err(
            "file.fileno() is not a valid file descriptor",
        ));
    }
    // The stdlib flushes once and ignores errors.
    let _ = file.call_method0(args::lookups().flush.bind(py));
    Ok((fd, Some(file.unbind())))
}

/// 3.15's keyword-only `max_threads`: 0 (or left out) means the default, a
/// negative number lists no thread at all.
fn max_threads(value: Option<isize>) -> usize {
    match value {
        None | Some(0) => report::MAX_THREADS,
        Some(n) => usize::try_from(n).unwrap_or(0),
    }
}

/// enable(file=sys.stderr, all_threads=True, c_stack=True, *, max_threads=100)
/// (`c_stack` from 3.14, `max_threads` from 3.15, as in the stdlib; on
/// 3.9-3.13 a `c_stack=` keyword is a lastwords addition, off by default).
fn enable(py: Python<'_>, a: &Args<'_>) -> PyResult<Ret> {
    let all_threads = a.flag(Param::AllThreads, true);
    let c_stack = a.flag(Param::CStack, c_stack_default(minor(py))?);
    let max_threads = max_threads(a.ssize(Param::MaxThreads));
    let (fd, keep) = file_to_fd(py, a.object(Param::File))?;
    target(py)?;
    target::refresh_stdlib_names(py);
    // SAFETY: the GIL is held, so the interpreter is initialised.
    #[allow(unsafe_code)]
    let interp = unsafe { pyo3::ffi::PyInterpreterState_Get() } as usize;
    let mut slot = FATAL_FILE.lock().unwrap_or_else(|e| e.into_inner());
    fatal::enable(&fatal::Options {
        fd,
        all_threads,
        c_stack,
        max_threads,
        interp,
    })
    .map_err(os_error)?;
    // Replace the kept file only once the handler writes to the new fd.
    let old = std::mem::replace(&mut *slot, keep);
    drop(slot);
    drop(old);
    // Threads the interpreter starts from now on get an alternate stack.
    signals::hook_thread_starts();
    Ok(Ret::None)
}

/// Whether a report prints the C stack when `enable()` is not told:
/// `LASTWORDS_C_STACK=1` or `0` in the environment (read at each call, so
/// `os.environ` works too), else the stdlib's default: from 3.14 only.
fn c_stack_default(minor: u8) -> PyResult<bool> {
    match std::env::var_os("LASTWORDS_C_STACK") {
        None => Ok(minor >= 14),
        Some(v) if v.is_empty() => Ok(minor >= 14),
        Some(v) if v == "1" => Ok(true),
        Some(v) if v == "0" => Ok(false),
        Some(v) => Err(PyValueError::new_err(format!(
            "LASTWORDS_C_STACK must be 0 or 1, not {:?}",
            v.to_string_lossy()
        ))),
    }
}

/// disable() -> bool: restore the previous handlers; was lastwords enabled?
fn disable(_py: Python<'_>) -> PyResult<Ret> {
    let mut slot = FATAL_FILE.lock().unwrap_or_else(|e| e.into_inner());
    let was = fatal::disable();
    signals::unhook_thread_starts();
    let old = slot.take();
    drop(slot);
    drop(old);
    Ok(Ret::Bool(was))
}

/// is_enabled() -> bool
fn is_enabled(_py: Python<'_>) -> PyResult<Ret> {
    Ok(Ret::Bool(fatal::is_enabled()))
}

/// dump_traceback(file=sys.stderr, all_threads=True, *, max_threads=100)
fn dump_traceback(py: Python<'_>, a: &Args<'_>) -> PyResult<Ret> {
    let all_threads = a.flag(Param::AllThreads, true);
    let max_threads = max_threads(a.ssize(Param::MaxThreads));
    let (fd, _keep) = file_to_fd(py, a.object(Param::File))?;
    let target = target(py)?;
    // SAFETY: the GIL is held: the calling thread has a current thread state.
    #[allow(unsafe_code)]
    let (tstate, interp) = unsafe {
        (
            pyo3::ffi::PyThreadState_Get() as usize,
            pyo3::ffi::PyInterpreterState_Get() as usize,
        )
    };
    // With the GIL held no other thread runs Python code: the structures are
    // consistent and plain loads are safe (and fastest).
    let walker = Walker::new(&LocalUnchecked, &target.layout, target.types);
    let mut out = Writer::new(FdSink(fd), FlushPolicy::WhenFull);
    let result = TextReport {
        walker: &walker,
        format: &target.format,
        out: &mut out,
        reread: None,
    }
    .threads(all_threads, interp, tstate, max_threads);
    drop(out);
    result.map_err(PyRuntimeError::new_err)?;
    check_signals(py)?;
    Ok(Ret::None)
}

/// Run pending Python signal handlers, as the stdlib does after a dump.
fn check_signals(py: Python<'_>) -> PyResult<()> {
    // SAFETY: the GIL is held.
    #[allow(unsafe_code)]
    if unsafe { pyo3::ffi::PyErr_CheckSignals() } != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(())
}

/// The file object the watchdog writes to, kept alive while armed.
static WATCHDOG_FILE: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

/// dump_traceback_later(timeout, repeat=False, file=sys.stderr, exit=False,
/// *, max_threads=100)
fn dump_traceback_later(py: Python<'_>, a: &Args<'_>) -> PyResult<Ret> {
    let repeat = a.flag(Param::Repeat, false);
    let exit = a.flag(Param::Exit, false);
    let max_threads = max_threads(a.ssize(Param::MaxThreads));
    let Some(timeout) = a.object(Param::Timeout) else {
        return Err(PyTypeError::new_err("missing timeout"));
    };
    let timeout_us = args::timeout_us(&timeout, minor(py))?;
    let (fd, keep) = file_to_fd(py, a.object(Param::File))?;
    target(py)?;
    // SAFETY: the GIL is held, so the interpreter is initialised.
    #[allow(unsafe_code)]
    let interp = unsafe { pyo3::ffi::PyInterpreterState_Get() } as usize;
    let mut slot = WATCHDOG_FILE.lock().unwrap_or_else(|e| e.into_inner());
    memory::ensure_read_method();
    watchdog::arm(fd, timeout_us as u64, repeat, exit, max_threads, interp).map_err(os_error)?;
    let old = std::mem::replace(&mut *slot, keep);
    drop(slot);
    drop(old);
    stop_watchdog_at_exit(py);
    Ok(Ret::None)
}

/// Like the stdlib at finalization: no timeout dump while the interpreter is
/// torn down, and no watchdog thread left. Registered with atexit at the
/// first arm (a program that never arms one sees no callback of lastwords).
fn stop_watchdog_at_exit(py: Python<'_>) {
    static REGISTERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    // (The GIL serialises callers; the re-arm path only loads.)
    if REGISTERED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    REGISTERED.store(true, std::sync::atomic::Ordering::Relaxed);
    let registered = wrap_pyfunction!(at_exit, py)
        .and_then(|f| py.import("atexit")?.call_method1("register", (f,)));
    if registered.is_err() {
        REGISTERED.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The atexit callback of `stop_watchdog_at_exit`.
#[pyfunction]
fn at_exit() {
    let mut slot = WATCHDOG_FILE.lock().unwrap_or_else(|e| e.into_inner());
    watchdog::shutdown();
    let old = slot.take();
    drop(slot);
    drop(old);
}

/// _last_timeout_timing() -> (due, began, written) | None: CLOCK_MONOTONIC
/// nanoseconds (time.monotonic_ns()) of the last timeout dump: when it was
/// due, when the watchdog began it, when its write(2) returned. For the
/// benchmark; not part of the faulthandler API.
#[pyfunction]
fn _last_timeout_timing() -> Option<(u64, u64, u64)> {
    watchdog::last_fire_timing()
}

/// cancel_dump_traceback_later(): disarm; never waits for a dump.
fn cancel_dump_traceback_later(_py: Python<'_>) -> PyResult<Ret> {
    let mut slot = WATCHDOG_FILE.lock().unwrap_or_else(|e| e.into_inner());
    watchdog::cancel();
    let old = slot.take();
    drop(slot);
    drop(old);
    Ok(Ret::None)
}

/// The file objects registered signals write to, by signal number.
static USER_FILES: Mutex<Vec<(i32, Py<PyAny>)>> = Mutex::new(Vec::new());

/// The stdlib's `check_signum`.
fn check_signum(signum: i32) -> PyResult<()> {
    if fatal::is_fatal(signum) {
        return Err(PyRuntimeError::new_err(format!(
            "signal {signum} cannot be registered, use enable() instead"
        )));
    }
    if !(1..user_signal::NSIG).contains(&signum) {
        return Err(PyValueError::new_err("signal number out of range"));
    }
    Ok(())
}

/// Take the file kept for a signal out of the table (dropped by the caller
/// after the lock is released).
fn take_user_file(files: &mut Vec<(i32, Py<PyAny>)>, signum: i32) -> Option<Py<PyAny>> {
    let index = files.iter().position(|(s, _)| *s == signum)?;
    Some(files.swap_remove(index).1)
}

/// register(signum, file=sys.stderr, all_threads=True, chain=False, *,
/// max_threads=100)
fn register(py: Python<'_>, a: &Args<'_>) -> PyResult<Ret> {
    let Some(signum) = a.int(Param::Signum) else {
        return Err(PyTypeError::new_err("missing signum"));
    };
    let all_threads = a.flag(Param::AllThreads, true);
    let chain = a.flag(Param::Chain, false);
    let max_threads = max_threads(a.ssize(Param::MaxThreads));
    check_signum(signum)?;
    let (fd, keep) = file_to_fd(py, a.object(Param::File))?;
    target(py)?;
    // SAFETY: the GIL is held, so the interpreter is initialised.
    #[allow(unsafe_code)]
    let interp = unsafe { pyo3::ffi::PyInterpreterState_Get() } as usize;
    let mut files = USER_FILES.lock().unwrap_or_else(|e| e.into_inner());
    memory::choose_read_method();
    user_signal::register(signum, fd, all_threads, chain, max_threads, interp).map_err(os_error)?;
    let old = take_user_file(&mut files, signum);
    if let Some(keep) = keep {
        files.push((signum, keep));
    }
    drop(files);
    drop(old);
    Ok(Ret::None)
}

/// unregister(signum, /) -> bool
fn unregister(_py: Python<'_>, signum: i32) -> PyResult<Ret> {
    check_signum(signum)?;
    let mut files = USER_FILES.lock().unwrap_or_else(|e| e.into_inner());
    let was = user_signal::unregister(signum);
    let old = take_user_file(&mut files, signum);
    drop(files);
    drop(old);
    Ok(Ret::Bool(was))
}

/// An OSError worded as CPython words it: `[Errno N] text`.
fn os_error(e: std::io::Error) -> PyErr {
    let code = e.raw_os_error().unwrap_or(0);
    // SAFETY: strerror returns a NUL-terminated static or thread-local string.
    #[allow(unsafe_code)]
    let text = unsafe { std::ffi::CStr::from_ptr(libc::strerror(code)) }
        .to_string_lossy()
        .into_owned();
    pyo3::exceptions::PyOSError::new_err((code, text))
}

/// dump_c_stack(file=sys.stderr) (3.14+): the calling thread's C stack.
fn dump_c_stack(py: Python<'_>, a: &Args<'_>) -> PyResult<Ret> {
    let (fd, _keep) = file_to_fd(py, a.object(Param::File))?;
    native::prepare().map_err(os_error)?;
    let mut frames = [0usize; native::MAX_FRAMES];
    // Captured here, so that this binding is the first frame listed (the
    // stdlib's first frame is its own _Py_DumpStack).
    let n = native::capture(core::ptr::null_mut(), &mut frames);
    let mut out = Writer::new(FdSink(fd), FlushPolicy::WhenFull);
    native::write_c_stack(&mut out, frames.get(..n).unwrap_or(&[]), false);
    drop(out);
    check_signals(py)?;
    Ok(Ret::None)
}

/// _rehearse_fatal_report(fd): what the fatal handler would write, now, from
/// this thread (checked reads, one write per line). For benchmarks; the
/// fatal handler must have been enabled once (it chooses the reader).
#[pyfunction]
fn _rehearse_fatal_report(py: Python<'_>, fd: i32) -> PyResult<()> {
    target(py)?;
    fatal::rehearse(fd);
    Ok(())
}

/// Where the layout came from, whether it equals the built-in table of
/// that version (on 3.13 it must: `_Py_DebugOffsets` and the headers agree)
/// and (unless `detail` is false: `install()` only asks whether there is a
/// layout, at every start-up under LASTWORDS=1) the layout itself. For
/// tests and bug reports. RuntimeError where lastwords cannot dump.
#[pyfunction]
#[pyo3(signature = (detail=true))]
fn _layout_info(py: Python<'_>, detail: bool) -> PyResult<(String, bool, String)> {
    let t = target(py)?;
    if !detail {
        return Ok((t.layout_source.to_string(), false, String::new()));
    }
    let matches_table = cpython::layout::table_for(t.layout.minor) == Some(&t.layout);
    Ok((
        t.layout_source.to_string(),
        matches_table,
        format!("{:?}", t.layout),
    ))
}

/// An empty method table (just the sentinel) for lastwords' `PyModuleDef`.
struct EmptyMethods([pyo3::ffi::PyMethodDef; 1]);
// SAFETY: the table is immutable and contains only null pointers.
#[allow(unsafe_code)]
unsafe impl Sync for EmptyMethods {}
static NO_METHODS: EmptyMethods = EmptyMethods([pyo3::ffi::PyMethodDef::zeroed()]);

/// CPython calls a module an extension module (for the `Extension modules:`
/// line of a fatal report) when its `PyModuleDef` has a method table. PyO3
/// adds functions after creation and leaves `m_methods` NULL; give it an
/// empty table so that lastwords, standing in as `faulthandler`, is listed
/// where the stdlib's C module would be.
fn mark_as_extension_module(m: &Bound<'_, PyModule>) {
    // SAFETY: `m` is a live module object; PyModule_GetDef returns its def
    // (or NULL, with no error set, for modules without one).
    #[allow(unsafe_code)]
    unsafe {
        let def = pyo3::ffi::PyModule_GetDef(m.as_ptr());
        if !def.is_null() && (*def).m_methods.is_null() {
            (*def).m_methods = NO_METHODS.0.as_ptr().cast_mut();
        }
    }
}

#[pymodule]
fn _lastwords(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // First: the functions added after this carry the stdlib's module name.
    args::add_functions(m, minor(py))?;
    let version = env!("CARGO_PKG_VERSION");
    m.setattr("__version__", version)?;
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    m.setattr("version", PyTuple::new(py, parts)?)?;
    add_function!(m, _last_timeout_timing)?;
    add_function!(m, _layout_info)?;
    add_function!(m, _rehearse_fatal_report)?;
    crash::register(m)?;
    mark_as_extension_module(m);
    // Resolve the layout now, while the importing thread holds the GIL; a
    // failure is reported by enable()/dump_traceback(), not by import.
    let _ = target::resolve(py);
    Ok(())
}
