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
//! * [`pyfatal`]: recognising CPython's own Py_FatalError() (no double report).
//! * [`target`]: what is known about the running interpreter.
//! * [`crash`]: the stdlib's `_sigsegv`-style test helpers.

#![deny(unsafe_code)]

pub mod cpython;
pub mod crash;
pub mod dump;
pub mod fatal;
pub mod pyfatal;
pub mod target;
pub mod writer;

use std::sync::Mutex;

use pyo3::exceptions::{
    PyOverflowError, PyRuntimeError, PyRuntimeWarning, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyTuple};

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

fn minor(py: Python<'_>) -> u8 {
    py.version_info().minor
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
            let stderr = sys
                .getattr("stderr")
                .map_err(|_| PyRuntimeError::new_err("unable to get sys.stderr"))?;
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

/// A flag argument: ints only up to 3.11 (`"i"`), any object from 3.12 (`"p"`).
fn flag(py: Python<'_>, value: Option<&Bound<'_, PyAny>>, default: bool) -> PyResult<bool> {
    match value {
        None => Ok(default),
        Some(v) if minor(py) >= 12 => v.is_truthy(),
        // 3.9's argument parser words its "i" errors differently.
        Some(v) if minor(py) == 9 && v.is_instance_of::<PyFloat>() => {
            Err(PyTypeError::new_err("integer argument expected, got float"))
        }
        Some(v) if minor(py) == 9 && !v.hasattr("__index__")? => Err(PyTypeError::new_err(
            format!("an integer is required (got type {})", v.get_type().name()?),
        )),
        Some(v) => Ok(c_int_of(v)? != 0),
    }
}

/// enable(file=sys.stderr, all_threads=True)
#[pyfunction]
#[pyo3(signature = (file=None, all_threads=None))]
fn enable(
    py: Python<'_>,
    file: Option<&Bound<'_, PyAny>>,
    all_threads: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let (fd, keep) = file_to_fd(py, file)?;
    let all_threads = flag(py, all_threads, true)?;
    target(py)?;
    target::refresh_stdlib_names(py);
    // SAFETY: the GIL is held, so the interpreter is initialised.
    #[allow(unsafe_code)]
    let interp = unsafe { pyo3::ffi::PyInterpreterState_Get() } as usize;
    let mut slot = FATAL_FILE.lock().unwrap_or_else(|e| e.into_inner());
    fatal::enable(fd, all_threads, interp).map_err(PyErr::from)?;
    // Replace the kept file only once the handler writes to the new fd.
    let old = std::mem::replace(&mut *slot, keep);
    drop(slot);
    drop(old);
    Ok(())
}

/// disable() -> bool: restore the previous handlers; was lastwords enabled?
#[pyfunction]
fn disable() -> bool {
    let mut slot = FATAL_FILE.lock().unwrap_or_else(|e| e.into_inner());
    let was = fatal::disable();
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

/// dump_traceback(file=sys.stderr, all_threads=True)
#[pyfunction]
#[pyo3(signature = (file=None, all_threads=None))]
fn dump_traceback(
    py: Python<'_>,
    file: Option<&Bound<'_, PyAny>>,
    all_threads: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
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
    .threads(all_threads, interp, tstate);
    drop(out);
    result.map_err(PyRuntimeError::new_err)?;
    // SAFETY: GIL held; runs pending Python signal handlers like the stdlib.
    #[allow(unsafe_code)]
    if unsafe { pyo3::ffi::PyErr_CheckSignals() } != 0 {
        return Err(PyErr::fetch(py));
    }
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
    m.add_function(wrap_pyfunction!(_layout_info, m)?)?;
    crash::register(m)?;
    mark_as_extension_module(m);
    // Resolve the layout now, while the importing thread holds the GIL; a
    // failure is reported by enable()/dump_traceback(), not by import.
    let _ = target::resolve(py);
    Ok(())
}
