//! The stdlib's crash helpers (`_sigsegv`, `_read_null`, ...), under the same
//! names, so that CPython's own test_faulthandler.py can drive lastwords.
//! They exist to crash the process on purpose; nothing else uses them.

#![allow(unsafe_code)]

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// The stdlib turns core dumps off before crashing on purpose: a test suite
/// should not fill the disk with cores.
fn suppress_crash_report() {
    let limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointers to rlimit structs.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_CORE, &mut old) == 0 {
            let soft_only = libc::rlimit {
                rlim_cur: 0,
                rlim_max: old.rlim_max,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &soft_only);
        } else {
            libc::setrlimit(libc::RLIMIT_CORE, &limit);
        }
    }
}

fn raise_signal(signum: libc::c_int) {
    suppress_crash_report();
    // SAFETY: raise() has no memory-safety preconditions.
    unsafe { libc::raise(signum) };
}

/// _sigsegv(release_gil=False): raise SIGSEGV.
#[pyfunction]
#[pyo3(signature = (release_gil=false))]
fn _sigsegv(py: Python<'_>, release_gil: bool) {
    if release_gil {
        py.detach(|| raise_signal(libc::SIGSEGV));
    } else {
        raise_signal(libc::SIGSEGV);
    }
}

/// _read_null(): read from the NULL address (a real SIGSEGV, not raise()).
#[pyfunction]
fn _read_null() -> i64 {
    suppress_crash_report();
    let null = std::hint::black_box(0usize) as *const i32;
    // SAFETY: deliberately unsound: this helper exists to fault.
    i64::from(unsafe { core::ptr::read_volatile(null) })
}

/// _sigabrt(): abort().
#[pyfunction]
fn _sigabrt() {
    suppress_crash_report();
    // SAFETY: abort() has no preconditions.
    unsafe { libc::abort() };
}

/// _sigfpe(): raise SIGFPE.
#[pyfunction]
fn _sigfpe() {
    raise_signal(libc::SIGFPE);
}

unsafe extern "C" {
    /// `Py_FatalError` with the caller's function name, as the `Py_FatalError`
    /// macro calls it (exported by CPython since 3.9).
    fn _Py_FatalErrorFunc(func: *const libc::c_char, message: *const libc::c_char) -> !;
}

/// _fatal_error_c_thread(): Py_FatalError() in a thread that has no Python
/// thread state, while the caller keeps the GIL.
#[pyfunction]
fn _fatal_error_c_thread() {
    suppress_crash_report();
    let thread = std::thread::spawn(|| {
        // SAFETY: both strings are NUL-terminated; the call never returns.
        unsafe {
            _Py_FatalErrorFunc(
                c"faulthandler_fatal_error_thread".as_ptr(),
                c"in new thread".as_ptr(),
            )
        }
    });
    let _ = thread.join();
}

/// _fatal_error(message, release_gil=False): Py_FatalError(message) (3.9 only,
/// like the stdlib).
#[pyfunction]
#[pyo3(signature = (message, release_gil=false))]
fn _fatal_error(py: Python<'_>, message: &Bound<'_, PyAny>, release_gil: bool) -> PyResult<()> {
    let bytes: Vec<u8> = message.extract()?;
    let message = std::ffi::CString::new(bytes)
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("embedded null byte"))?;
    let fail = move || {
        // SAFETY: NUL-terminated strings; the call never returns.
        unsafe { _Py_FatalErrorFunc(c"faulthandler_fatal_error_py".as_ptr(), message.as_ptr()) }
    };
    if release_gil { py.detach(fail) } else { fail() }
}

/// Recurse with 4 KiB frames until the stack pointer leaves [min, max].
#[inline(never)]
fn stack_overflow(min_sp: usize, max_sp: usize, depth: &mut usize) -> usize {
    let mut buffer = [0u8; 4096];
    let sp = std::hint::black_box(&mut buffer) as *mut _ as usize;
    *depth += 1;
    if sp < min_sp || max_sp < sp {
        return sp;
    }
    buffer[0] = 1;
    buffer[4095] = 0;
    std::hint::black_box(&mut buffer);
    stack_overflow(min_sp, max_sp, depth)
}

/// _stack_overflow(): overflow the stack; if 100 MB are not enough, raise.
#[pyfunction]
fn _stack_overflow() -> PyResult<()> {
    const MAX_SIZE: usize = 100 * 1024 * 1024;
    suppress_crash_report();
    let mut depth = 0usize;
    let sp = std::hint::black_box(&depth) as *const _ as usize;
    let stop = stack_overflow(
        sp.saturating_sub(MAX_SIZE),
        sp.saturating_add(MAX_SIZE),
        &mut depth,
    );
    let size = sp.abs_diff(stop);
    Err(PyRuntimeError::new_err(format!(
        "unable to raise a stack overflow (allocated {size} bytes on the stack, {depth} recursive calls)"
    )))
}

/// Add the helpers the running version's stdlib has.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let minor = m.py().version_info().minor;
    add_function!(m, _sigsegv)?;
    if minor <= 14 {
        add_function!(m, _read_null)?;
    }
    add_function!(m, _sigabrt)?;
    add_function!(m, _sigfpe)?;
    add_function!(m, _fatal_error_c_thread)?;
    add_function!(m, _stack_overflow)?;
    if minor <= 9 {
        add_function!(m, _fatal_error)?;
    }
    Ok(())
}
