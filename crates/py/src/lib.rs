//! lastwords: CPython's `faulthandler`, rebuilt in Rust.
//!
//! This file is the binding layer: argument checking, the stdlib's exceptions,
//! and the lifetime of the file objects a handler may write to. It contains no
//! signal code and reads no interpreter structure itself.
//!
//! Modules, from the bottom up:
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

pub mod crash;
pub mod fatal;
pub mod headlock;
pub mod native;
pub mod pyfatal;
pub mod signals;
pub mod target;
pub mod user_signal;
pub mod watchdog;

// The interpreter reader and the renderer live in lastwords-core (no PyO3, no
// signals); the in-process code names them as if they were its own modules.
pub use lastwords_core::{cpython, dump, procfs, writer};

use std::sync::Mutex;

use pyo3::exceptions::{
    PyOverflowError, PyRuntimeError, PyRuntimeWarning, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyTuple};

use cpython::memory::LocalUnchecked;
use cpython::walk::Walker;
use dump::Dumper;
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

/// A file argument turned into a file descriptor, the way the stdlib's
/// `faulthandler_get_fileno` does it; returns the object to keep alive (None
/// for an int fd).
fn file_to_fd(
    py: Python<'_>,
    file: Option<&Bound<'_, PyAny>>,
) -> PyResult<(i32, Option<Py<PyAny>>)> {
    let file = match file {
        Some(f) if !f.is_none() => f.clone(),
        _ => {
            let sys = py.import("sys")?;
            let stderr = sys.getattr("stderr").map_err(|_| {
                PyRuntimeError::new_err(if minor(py) >= 14 {
                    "lost sys.stderr"
                } else {
                    "unable to get sys.stderr"
                })
            })?;
            if stderr.is_none() {
                return Err(PyRuntimeError::new_err("sys.stderr is None"));
            }
            stderr
        }
    };
    if file.is_instance_of::<PyInt>() {
        if file.is_instance_of::<PyBool>() && minor(py) >= 13 {
            PyErr::warn(
                py,
                &py.get_type::<PyRuntimeWarning>(),
                c"bool is used as a file descriptor",
                1,
            )?;
        }
        let fd = c_int_of(&file)?;
        if fd < 0 {
            return Err(PyValueError::new_err(if minor(py) >= 12 {
                "file is not a valid file descriptor"
            } else {
                "file is not a valid file descripter"
            }));
        }
        return Ok((fd, None));
    }
    let result = file.call_method0("fileno")?;
    let fd = if result.is_instance_of::<PyInt>() {
        c_int_of(&result).unwrap_or(-1)
    } else {
        -1
    };
    if fd < 0 {
        return Err(PyRuntimeError::new_err(
            "file.fileno() is not a valid file descriptor",
        ));
    }
    // The stdlib flushes once and ignores errors.
    let _ = file.call_method0("flush");
    Ok((fd, Some(file.unbind())))
}

/// `_PyLong_AsInt`: an int that must fit a C int.
fn c_int_of(obj: &Bound<'_, PyAny>) -> PyResult<i32> {
    let too_large = || PyOverflowError::new_err("Python int too large to convert to C int");
    let value: i64 = obj.extract().map_err(|e: PyErr| {
        if e.is_instance_of::<PyOverflowError>(obj.py()) {
            too_large()
        } else {
            e
        }
    })?;
    i32::try_from(value).map_err(|_| too_large())
}

/// An `"i"` argument (a C int), with the running version's error wording.
fn int_arg(py: Python<'_>, v: &Bound<'_, PyAny>) -> PyResult<i32> {
    if minor(py) == 9 {
        // 3.9's argument parser words its "i" errors differently.
        if v.is_instance_of::<PyFloat>() {
            return Err(PyTypeError::new_err("integer argument expected, got float"));
        }
        if !v.hasattr("__index__")? {
            return Err(PyTypeError::new_err(format!(
                "an integer is required (got type {})",
                v.get_type().name()?
            )));
        }
    }
    c_int_of(v)
}

/// A flag that is an `"i"` int on every version (`repeat`, `exit`).
fn int_flag(py: Python<'_>, value: Option<&Bound<'_, PyAny>>, default: bool) -> PyResult<bool> {
    value.map_or(Ok(default), |v| Ok(int_arg(py, v)? != 0))
}

/// A flag argument: ints only up to 3.11 (`"i"`), any object from 3.12 (`"p"`).
fn flag(py: Python<'_>, value: Option<&Bound<'_, PyAny>>, default: bool) -> PyResult<bool> {
    match value {
        Some(v) if minor(py) >= 12 => v.is_truthy(),
        _ => int_flag(py, value, default),
    }
}

/// Whether `key` is the str `name` (ASCII, under 32 bytes), without making a
/// Rust string of it: keyword names are compared on every call.
fn str_equals(key: &Bound<'_, PyAny>, name: &str) -> bool {
    let mut c_name = [0u8; 32];
    if name.len() >= c_name.len() || !key.is_instance_of::<pyo3::types::PyString>() {
        return false;
    }
    c_name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: key is a str (checked above); c_name is NUL-terminated ASCII.
    #[allow(unsafe_code)]
    let order = unsafe {
        pyo3::ffi::PyUnicode_CompareWithASCIIString(key.as_ptr(), c_name.as_ptr().cast())
    };
    order == 0
}

/// One call's arguments by parameter, as CPython's argument parser sees them:
/// None when not given, Some(object) when given — an explicit None included
/// (it is a false flag from 3.12, an error for an int parameter). Errors are
/// worded as the running version's parser words them.
fn parse_call<'py>(
    py: Python<'py>,
    func: &str,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
    positional: &[&str],
    keyword_only: &[&str],
    required: usize,
) -> PyResult<Vec<Option<Bound<'py, PyAny>>>> {
    let mut values: Vec<Option<Bound<'py, PyAny>>> =
        vec![None; positional.len() + keyword_only.len()];
    if args.len() > positional.len() {
        return Err(PyTypeError::new_err(format!(
            "{func}() takes at most {} argument{} ({} given)",
            positional.len(),
            if positional.len() == 1 { "" } else { "s" },
            args.len()
        )));
    }
    for (slot, value) in values.iter_mut().zip(args.iter()) {
        *slot = Some(value);
    }
    for (key, value) in kwargs.into_iter().flatten() {
        let index = positional
            .iter()
            .chain(keyword_only)
            .position(|p| str_equals(&key, p));
        let Some(slot) = index.and_then(|i| values.get_mut(i)) else {
            let name: String = key.extract()?;
            return Err(PyTypeError::new_err(if minor(py) >= 13 {
                format!("{func}() got an unexpected keyword argument '{name}'")
            } else {
                format!("'{name}' is an invalid keyword argument for {func}()")
            }));
        };
        if slot.is_some() {
            let name: String = key.extract()?;
            return Err(PyTypeError::new_err(format!(
                "argument for {func}() given by name ('{name}') and position ({})",
                index.unwrap_or(0) + 1
            )));
        }
        *slot = Some(value);
    }
    for (i, name) in positional.iter().enumerate().take(required) {
        if values.get(i).is_some_and(Option::is_none) {
            return Err(PyTypeError::new_err(format!(
                "{func}() missing required argument '{name}' (pos {})",
                i + 1
            )));
        }
    }
    Ok(values)
}

/// The keyword-only parameters of the running version: `max_threads` from 3.15.
fn keyword_only(py: Python<'_>) -> &'static [&'static str] {
    if minor(py) >= 15 {
        &["max_threads"]
    } else {
        &[]
    }
}

/// 3.15's keyword-only `max_threads` (a Py_ssize_t): 0 means the default,
/// a negative number lists no thread at all.
fn max_threads_arg(py: Python<'_>, value: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
    let Some(value) = value else {
        return Ok(dump::MAX_THREADS);
    };
    let n: isize = value.extract().map_err(|e: PyErr| {
        if e.is_instance_of::<PyOverflowError>(py) {
            PyOverflowError::new_err("Python int too large to convert to C ssize_t")
        } else {
            e
        }
    })?;
    Ok(match n {
        0 => dump::MAX_THREADS,
        n => usize::try_from(n).unwrap_or(0),
    })
}

/// enable(file=sys.stderr, all_threads=True, c_stack=True, *, max_threads=100)
/// (`c_stack` from 3.14, `max_threads` from 3.15, as in the stdlib).
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
fn enable(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let positional: &[&str] = if minor(py) >= 14 {
        &["file", "all_threads", "c_stack"]
    } else {
        &["file", "all_threads"]
    };
    let a = parse_call(py, "enable", args, kwargs, positional, keyword_only(py), 0)?;
    let (file, all_threads, c_stack) = (
        a[0].as_ref(),
        a[1].as_ref(),
        a.get(2).and_then(Option::as_ref),
    );
    let max_threads = max_threads_arg(py, a.get(positional.len()).and_then(Option::as_ref))?;
    let (fd, keep) = file_to_fd(py, file)?;
    let all_threads = flag(py, all_threads, true)?;
    let c_stack = match c_stack {
        Some(v) => v.is_truthy()?,
        None => minor(py) >= 14,
    };
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
    Ok(())
}

/// disable() -> bool: restore the previous handlers; was lastwords enabled?
#[pyfunction]
fn disable() -> bool {
    let mut slot = FATAL_FILE.lock().unwrap_or_else(|e| e.into_inner());
    let was = fatal::disable();
    signals::unhook_thread_starts();
    let old = slot.take();
    drop(slot);
    drop(old);
    was
}

/// is_enabled() -> bool
#[pyfunction]
fn is_enabled() -> bool {
    fatal::is_enabled()
}

/// dump_traceback(file=sys.stderr, all_threads=True, *, max_threads=100)
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
fn dump_traceback(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let positional = &["file", "all_threads"];
    let a = parse_call(
        py,
        "dump_traceback",
        args,
        kwargs,
        positional,
        keyword_only(py),
        0,
    )?;
    let (file, all_threads) = (a[0].as_ref(), a[1].as_ref());
    let max_threads = max_threads_arg(py, a.get(2).and_then(Option::as_ref))?;
    let (fd, _keep) = file_to_fd(py, file)?;
    let all_threads = flag(py, all_threads, true)?;
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
    let result = Dumper {
        walker: &walker,
        format: &target.format,
        out: &mut out,
    }
    .threads(all_threads, interp, tstate, max_threads);
    drop(out);
    result.map_err(PyRuntimeError::new_err)?;
    // SAFETY: GIL held; runs pending Python signal handlers like the stdlib.
    #[allow(unsafe_code)]
    if unsafe { pyo3::ffi::PyErr_CheckSignals() } != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(())
}

/// The file object the watchdog writes to, kept alive while armed.
static WATCHDOG_FILE: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

/// The timeout in microseconds, converted and checked as the stdlib does
/// (`_PyTime_FromSecondsObject` with `_PyTime_ROUND_TIMEOUT`, then to µs).
fn timeout_us(py: Python<'_>, timeout: &Bound<'_, PyAny>) -> PyResult<u64> {
    let too_large = match minor(py) {
        14.. => "timestamp out of range for C PyTime_t",
        13 => "timestamp too large to convert to C PyTime_t",
        _ => "timestamp too large to convert to C _PyTime_t",
    };
    let ns: i128 = if let Ok(f) = timeout.cast::<PyFloat>() {
        let d = f.value();
        if d.is_nan() {
            return Err(PyValueError::new_err("Invalid value NaN (not a number)"));
        }
        let d = (d * 1e9).ceil();
        // _PyTime_t is an i64 of nanoseconds: [-2^63, 2^63).
        let limit = 2f64.powi(63);
        if !(-limit..limit).contains(&d) {
            return Err(PyOverflowError::new_err(match minor(py) {
                14.. => too_large,
                11..=13 => "timestamp out of range for platform time_t",
                _ => too_large,
            }));
        }
        d as i128
    } else {
        if !timeout.is_instance_of::<PyInt>() && !timeout.hasattr("__index__")? {
            let name = timeout.get_type().name()?;
            match minor(py) {
                9 => {
                    return Err(PyTypeError::new_err(format!(
                        "an integer is required (got type {name})"
                    )));
                }
                14 => {
                    return Err(PyTypeError::new_err(format!(
                        "'{name}' object cannot be interpreted as an integer or float"
                    )));
                }
                15.. => {
                    return Err(PyTypeError::new_err(format!(
                        "must be real number, not {name}"
                    )));
                }
                _ => {}
            }
        }
        let secs: i64 = timeout.extract().map_err(|e: PyErr| {
            if e.is_instance_of::<PyOverflowError>(py) {
                PyOverflowError::new_err(too_large)
            } else {
                e
            }
        })?;
        secs.checked_mul(1_000_000_000)
            .ok_or_else(|| PyOverflowError::new_err(too_large))? as i128
    };
    // Round up (away from zero) to whole microseconds.
    let us = if ns > 0 { (ns + 999) / 1000 } else { ns / 1000 };
    if us <= 0 {
        return Err(PyValueError::new_err("timeout must be greater than 0"));
    }
    Ok(us as u64)
}

/// dump_traceback_later(timeout, repeat=False, file=sys.stderr, exit=False,
/// *, max_threads=100)
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
fn dump_traceback_later(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let positional = &["timeout", "repeat", "file", "exit"];
    let a = parse_call(
        py,
        "dump_traceback_later",
        args,
        kwargs,
        positional,
        keyword_only(py),
        1,
    )?;
    let Some(timeout) = a[0].as_ref() else {
        return Err(PyTypeError::new_err("missing timeout"));
    };
    let (repeat, file, exit) = (a[1].as_ref(), a[2].as_ref(), a[3].as_ref());
    let max_threads = max_threads_arg(py, a.get(4).and_then(Option::as_ref))?;
    let repeat = int_flag(py, repeat, false)?;
    let exit = int_flag(py, exit, false)?;
    let timeout_us = timeout_us(py, timeout)?;
    let (fd, keep) = file_to_fd(py, file)?;
    target(py)?;
    // SAFETY: the GIL is held, so the interpreter is initialised.
    #[allow(unsafe_code)]
    let interp = unsafe { pyo3::ffi::PyInterpreterState_Get() } as usize;
    let mut slot = WATCHDOG_FILE.lock().unwrap_or_else(|e| e.into_inner());
    cpython::memory::ensure_read_method();
    watchdog::arm(fd, timeout_us, repeat, exit, max_threads, interp).map_err(os_error)?;
    let old = std::mem::replace(&mut *slot, keep);
    drop(slot);
    drop(old);
    stop_watchdog_at_exit(py);
    Ok(())
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
#[pyfunction]
fn cancel_dump_traceback_later() {
    let mut slot = WATCHDOG_FILE.lock().unwrap_or_else(|e| e.into_inner());
    watchdog::cancel();
    let old = slot.take();
    drop(slot);
    drop(old);
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
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
fn register(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<()> {
    let positional = &["signum", "file", "all_threads", "chain"];
    let a = parse_call(
        py,
        "register",
        args,
        kwargs,
        positional,
        keyword_only(py),
        1,
    )?;
    let Some(signum) = a[0].as_ref() else {
        return Err(PyTypeError::new_err("missing signum"));
    };
    let (file, all_threads, chain) = (a[1].as_ref(), a[2].as_ref(), a[3].as_ref());
    let max_threads = max_threads_arg(py, a.get(4).and_then(Option::as_ref))?;
    let signum = int_arg(py, signum)?;
    let all_threads = flag(py, all_threads, true)?;
    let chain = flag(py, chain, false)?;
    check_signum(signum)?;
    let (fd, keep) = file_to_fd(py, file)?;
    target(py)?;
    // SAFETY: the GIL is held, so the interpreter is initialised.
    #[allow(unsafe_code)]
    let interp = unsafe { pyo3::ffi::PyInterpreterState_Get() } as usize;
    let mut files = USER_FILES.lock().unwrap_or_else(|e| e.into_inner());
    cpython::memory::choose_read_method();
    user_signal::register(signum, fd, all_threads, chain, max_threads, interp).map_err(os_error)?;
    let old = take_user_file(&mut files, signum);
    if let Some(keep) = keep {
        files.push((signum, keep));
    }
    drop(files);
    drop(old);
    Ok(())
}

/// unregister(signum, /) -> bool. Arguments are checked by hand to give the
/// stdlib's messages (its parser takes exactly one positional int).
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
fn unregister(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<bool> {
    let has_kwargs = kwargs.is_some_and(|k| !k.is_empty());
    if has_kwargs && minor(py) >= 13 {
        // 3.15 names the module in this message.
        return Err(PyTypeError::new_err(if minor(py) >= 15 {
            "faulthandler.unregister() takes no keyword arguments"
        } else {
            "unregister() takes no keyword arguments"
        }));
    }
    if has_kwargs || args.len() != 1 {
        return Err(PyTypeError::new_err(format!(
            "unregister() takes exactly 1 argument ({} given)",
            args.len()
        )));
    }
    let signum = int_arg(py, &args.get_item(0)?)?;
    check_signum(signum)?;
    let mut files = USER_FILES.lock().unwrap_or_else(|e| e.into_inner());
    let was = user_signal::unregister(signum);
    let old = take_user_file(&mut files, signum);
    drop(files);
    drop(old);
    Ok(was)
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
#[pyfunction]
#[pyo3(signature = (file=None))]
fn dump_c_stack(py: Python<'_>, file: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let (fd, _keep) = file_to_fd(py, file)?;
    native::prepare().map_err(os_error)?;
    let mut frames = [0usize; native::MAX_FRAMES];
    // Captured here, so that this binding is the first frame listed (the
    // stdlib's first frame is its own _Py_DumpStack).
    let n = native::capture(core::ptr::null_mut(), &mut frames);
    let mut out = Writer::new(FdSink(fd), FlushPolicy::WhenFull);
    native::write_c_stack(&mut out, frames.get(..n).unwrap_or(&[]), false);
    drop(out);
    // SAFETY: GIL held; runs pending Python signal handlers like the stdlib.
    #[allow(unsafe_code)]
    if unsafe { pyo3::ffi::PyErr_CheckSignals() } != 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(())
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

/// Where the layout came from, and whether it equals the built-in table of
/// that version (on 3.13 it must: `_Py_DebugOffsets` and the headers agree).
/// For tests and bug reports.
#[pyfunction]
fn _layout_info(py: Python<'_>) -> PyResult<(String, bool, String)> {
    let t = target(py)?;
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
    let version = env!("CARGO_PKG_VERSION");
    m.add("__version__", version)?;
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    m.add("version", PyTuple::new(py, parts)?)?;
    m.add_function(wrap_pyfunction!(enable, m)?)?;
    m.add_function(wrap_pyfunction!(disable, m)?)?;
    m.add_function(wrap_pyfunction!(is_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(dump_traceback, m)?)?;
    m.add_function(wrap_pyfunction!(dump_traceback_later, m)?)?;
    m.add_function(wrap_pyfunction!(cancel_dump_traceback_later, m)?)?;
    m.add_function(wrap_pyfunction!(_last_timeout_timing, m)?)?;
    m.add_function(wrap_pyfunction!(register, m)?)?;
    m.add_function(wrap_pyfunction!(unregister, m)?)?;
    if minor(py) >= 14 {
        m.add_function(wrap_pyfunction!(dump_c_stack, m)?)?;
    }
    m.add_function(wrap_pyfunction!(_layout_info, m)?)?;
    m.add_function(wrap_pyfunction!(_rehearse_fatal_report, m)?)?;
    crash::register(m)?;
    mark_as_extension_module(m);
    // Resolve the layout now, while the importing thread holds the GIL; a
    // failure is reported by enable()/dump_traceback(), not by import.
    let _ = target::resolve(py);
    Ok(())
}
