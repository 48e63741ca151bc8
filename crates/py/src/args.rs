//! faulthandler's functions as the running version's stdlib has them: their
//! names, flags, docstrings (hence `__text_signature__`) and parameters, and
//! the parsing of a call's arguments into values.
//!
//! # What is decided here, per version
//!
//! * The module and every function are named as the stdlib names them:
//!   `faulthandler`, so that `faulthandler.is_enabled() takes no arguments`
//!   reads the same under `import lastwords as faulthandler` and standing in.
//! * The calling convention of each function: `METH_NOARGS` for the three
//!   without parameters and, for `unregister`, `METH_VARARGS` (with
//!   keywords accepted and ignored up to 3.12) up to 3.14 and `METH_O` from
//!   3.15, as in the stdlib; CPython's own call machinery then words every
//!   error about them. The others are `METH_FASTCALL | METH_KEYWORDS` (the
//!   stdlib's are `METH_VARARGS | METH_KEYWORDS` up to 3.14, which only
//!   changes how fast they are called): the arguments arrive without a tuple
//!   or a dict being made.
//! * The parameters and their conversions (`Signature`): 3.9-3.14 parse
//!   with `PyArg_ParseTupleAndKeywords` and the format the stdlib passes it
//!   (`i` flags up to 3.11, `p` from 3.12); 3.15 is Argument Clinic: objects
//!   unpacked first, then converted one by one (truth values, `PyLong_AsInt`,
//!   `Py_ssize_t`).
//!
//! # How a call is parsed
//!
//! A fast path matches positional arguments and keyword names to parameters
//! (interned names, compared by identity first) and takes the value of `i`
//! arguments that are ints in range; it allocates nothing and calls no
//! Python code. Anything else (an unknown, duplicate or non-`str` keyword, too
//! many or too few arguments, an `i` argument that is not a small int) goes
//! to CPython's own `PyArg_ParseTupleAndKeywords` with the version's format,
//! which raises the running version's exception, message and warnings, or
//! converts the arguments exactly as the stdlib's parser does. The fast path
//! decides before anything with side effects runs, so no `__index__` or
//! `__bool__` is called twice. On the fast path, `p` arguments then take
//! their truth value in parameter order, as the parser would; 3.15's
//! conversions follow either path, in parameter order, as Argument Clinic's.
//! The function then converts its objects (`file`, `timeout`) itself, in the
//! stdlib's order; the timeout's conversion is here too ([`timeout_us`]: three
//! dialects of `_PyTime_FromSecondsObject`).

#![allow(unsafe_code)]

use core::ffi::{CStr, c_char, c_int, c_long};
use core::ptr;
use std::sync::OnceLock;

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyModule, PyString};

/// The name the module and its functions carry: the stdlib's.
pub const MODULE_NAME: &str = "faulthandler";
/// The stdlib module's docstring (the same on 3.9-3.15).
pub const MODULE_DOC: &str = "faulthandler module.";

/// A parameter of one of faulthandler's functions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Param {
    File,
    AllThreads,
    CStack,
    MaxThreads,
    Timeout,
    Repeat,
    Exit,
    Signum,
    Chain,
}

const PARAM_COUNT: usize = 9;

impl Param {
    const ALL: [Param; PARAM_COUNT] = [
        Param::File,
        Param::AllThreads,
        Param::CStack,
        Param::MaxThreads,
        Param::Timeout,
        Param::Repeat,
        Param::Exit,
        Param::Signum,
        Param::Chain,
    ];

    fn name(self) -> &'static CStr {
        match self {
            Param::File => c"file",
            Param::AllThreads => c"all_threads",
            Param::CStack => c"c_stack",
            Param::MaxThreads => c"max_threads",
            Param::Timeout => c"timeout",
            Param::Repeat => c"repeat",
            Param::Exit => c"exit",
            Param::Signum => c"signum",
            Param::Chain => c"chain",
        }
    }
}

/// How an argument becomes a value, and who converts it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Conv {
    /// `O`: the object as given (a file, a timeout: the function converts it).
    Object,
    /// `i`: a C int, made by CPython's parser (3.9-3.14).
    Int,
    /// `p`: a truth value, taken by CPython's parser (3.12-3.14).
    Predicate,
    /// Argument Clinic's `bool` (3.15): the truth value, after unpacking.
    Truth,
    /// Argument Clinic's `int` (3.15): `PyLong_AsInt`, after unpacking.
    CInt,
    /// Argument Clinic's `Py_ssize_t` (3.15): `__index__`, then a C ssize_t.
    Ssize,
}

impl Conv {
    /// The character of the parser's format for this conversion.
    fn format_char(self) -> u8 {
        match self {
            Conv::Int => b'i',
            Conv::Predicate => b'p',
            Conv::Object | Conv::Truth | Conv::CInt | Conv::Ssize => b'O',
        }
    }
}

/// The most parameters a function has (register on 3.15).
const MAX_PARAMS: usize = 5;

/// A function's parameters on one version.
struct Signature {
    name: &'static CStr,
    params: &'static [(Param, Conv)],
    /// How many leading parameters are required.
    required: usize,
    /// How many leading parameters may be given by position (the rest are
    /// keyword-only).
    positional: usize,
}

use Conv::{CInt, Int, Object, Predicate, Ssize, Truth};
use Param::{AllThreads, CStack, Chain, Exit, File, MaxThreads, Repeat, Signum, Timeout};

/// The signatures of one version.
struct Signatures {
    enable: Signature,
    dump_traceback: Signature,
    dump_traceback_later: Signature,
    register: Signature,
    /// 3.14+.
    dump_c_stack: Option<Signature>,
}

/// What differs between versions, apart from the messages CPython words
/// itself: the one place to extend for a new version.
fn signatures(minor: u8) -> Signatures {
    // 3.9-3.11: `i` flags; 3.12-3.14: `p` flags (`repeat` and `exit` stay
    // `i`); 3.15: Argument Clinic, truth values everywhere, keyword-only
    // max_threads.
    let flag = match minor {
        ..=11 => Int,
        12..=14 => Predicate,
        _ => Truth,
    };
    let clinic = minor >= 15;
    let sig = |name, params: &'static [(Param, Conv)], required, positional| Signature {
        name,
        params,
        required,
        positional,
    };
    match (flag, clinic) {
        (Int, _) => Signatures {
            enable: sig(c"enable", &[(File, Object), (AllThreads, Int)], 0, 2),
            dump_traceback: sig(
                c"dump_traceback",
                &[(File, Object), (AllThreads, Int)],
                0,
                2,
            ),
            dump_traceback_later: sig(
                c"dump_traceback_later",
                &[
                    (Timeout, Object),
                    (Repeat, Int),
                    (File, Object),
                    (Exit, Int),
                ],
                1,
                4,
            ),
            register: sig(
                c"register",
                &[
                    (Signum, Int),
                    (File, Object),
                    (AllThreads, Int),
                    (Chain, Int),
                ],
                1,
                4,
            ),
            dump_c_stack: None,
        },
        (_, false) => Signatures {
            enable: if minor >= 14 {
                sig(
                    c"enable",
                    &[(File, Object), (AllThreads, Predicate), (CStack, Predicate)],
                    0,
                    3,
                )
            } else {
                sig(c"enable", &[(File, Object), (AllThreads, Predicate)], 0, 2)
            },
            dump_traceback: sig(
                c"dump_traceback",
                &[(File, Object), (AllThreads, Predicate)],
                0,
                2,
            ),
            dump_traceback_later: sig(
                c"dump_traceback_later",
                &[
                    (Timeout, Object),
                    (Repeat, Int),
                    (File, Object),
                    (Exit, Int),
                ],
                1,
                4,
            ),
            register: sig(
                c"register",
                &[
                    (Signum, Int),
                    (File, Object),
                    (AllThreads, Predicate),
                    (Chain, Predicate),
                ],
                1,
                4,
            ),
            dump_c_stack: (minor >= 14).then(|| sig(c"dump_c_stack", &[(File, Object)], 0, 1)),
        },
        (_, true) => Signatures {
            enable: sig(
                c"enable",
                &[
                    (File, Object),
                    (AllThreads, Truth),
                    (CStack, Truth),
                    (MaxThreads, Ssize),
                ],
                0,
                3,
            ),
            dump_traceback: sig(
                c"dump_traceback",
                &[(File, Object), (AllThreads, Truth), (MaxThreads, Ssize)],
                0,
                2,
            ),
            // The timeout stays an object: 3.15 converts it after the flags.
            dump_traceback_later: sig(
                c"dump_traceback_later",
                &[
                    (Timeout, Object),
                    (Repeat, Truth),
                    (File, Object),
                    (Exit, Truth),
                    (MaxThreads, Ssize),
                ],
                1,
                4,
            ),
            register: sig(
                c"register",
                &[
                    (Signum, CInt),
                    (File, Object),
                    (AllThreads, Truth),
                    (Chain, Truth),
                    (MaxThreads, Ssize),
                ],
                1,
                4,
            ),
            dump_c_stack: Some(sig(c"dump_c_stack", &[(File, Object)], 0, 1)),
        },
    }
}

/// The value of a flag the caller left out. `c_stack`'s default is not the
/// parser's to fill in: it depends on `LASTWORDS_C_STACK` (see `enable`), so
/// the slot keeps [`NOT_GIVEN`], which the parser's `p` (0 or 1) never writes.
fn default_flag(param: Param) -> c_int {
    match param {
        Param::AllThreads => 1,
        Param::CStack => NOT_GIVEN,
        _ => 0,
    }
}

/// A flag's slot that no argument filled (see [`default_flag`]).
const NOT_GIVEN: c_int = -1;

/// A parsed int or flag, or [`Value::Absent`] where it was left out and has
/// no default of the parser's.
fn int_value(v: c_int) -> Value {
    if v == NOT_GIVEN {
        Value::Absent
    } else {
        Value::Int(v)
    }
}

/// A signature made ready for `PyArg_ParseTupleAndKeywords`.
struct Parser {
    sig: Signature,
    /// `"|Oi:enable"`: the stdlib's format on 3.9-3.14, objects on 3.15.
    format: [u8; 40],
    /// The keyword names, NULL-terminated (the parser's `kwlist`).
    kwlist: [*const c_char; MAX_PARAMS + 1],
    /// The flags' defaults, for the parser's `i`/`p` outputs.
    defaults: [c_int; MAX_PARAMS],
}

impl Parser {
    fn new(sig: Signature) -> Parser {
        let mut format = [0u8; 40];
        let mut len = 0;
        let mut push = |b: u8| {
            if let Some(slot) = format.get_mut(len) {
                *slot = b;
                len += 1;
            }
        };
        let mut kwlist = [ptr::null(); MAX_PARAMS + 1];
        let mut defaults = [0; MAX_PARAMS];
        for (i, &(param, conv)) in sig.params.iter().enumerate() {
            if i == sig.required {
                push(b'|');
            }
            if i == sig.positional {
                push(b'$');
            }
            push(conv.format_char());
            if let Some(slot) = kwlist.get_mut(i) {
                *slot = param.name().as_ptr();
            }
            if let Some(slot) = defaults.get_mut(i) {
                *slot = default_flag(param);
            }
        }
        push(b':');
        for &b in sig.name.to_bytes() {
            push(b);
        }
        // The array is zeroed: the format stays NUL-terminated.
        Parser {
            sig,
            format,
            kwlist,
            defaults,
        }
    }
}

/// Everything the functions need at each call, made once at import.
struct Api {
    enable: Parser,
    dump_traceback: Parser,
    dump_traceback_later: Parser,
    register: Parser,
    dump_c_stack: Option<Parser>,
    /// Interned keyword names by [`Param`]: strong references, never released.
    names: [*mut ffi::PyObject; PARAM_COUNT],
    /// The functions' `PyMethodDef`s: CPython keeps pointers to them.
    methods: Vec<ffi::PyMethodDef>,
    lookups: Lookups,
}

/// What the functions look up at each call, made at import. Not lazily (as
/// by `intern!`): PyO3's once-cells let go of the GIL while they are first
/// filled, which no call of the stdlib's functions does.
pub struct Lookups {
    /// `sys.__dict__`: the interpreter's sysdict, where the stdlib reads
    /// `sys.stderr` (`PySys_GetObject` would make a str of the name per call).
    pub sys_dict: Py<PyDict>,
    pub stderr: Py<PyString>,
    pub fileno: Py<PyString>,
    pub flush: Py<PyString>,
    pub module: Py<PyString>,
    pub qualname: Py<PyString>,
}

/// See [`Lookups`].
pub fn lookups() -> &'static Lookups {
    &api().lookups
}

/// The name of an object's type as CPython's `%T` writes it (3.13+): the
/// qualified name, after the module's unless that is `builtins` or
/// `__main__`.
pub fn type_name(obj: &Borrowed<'_, '_, PyAny>) -> PyResult<String> {
    let py = obj.py();
    let t = obj.get_type();
    let qualname = t.getattr(lookups().qualname.bind(py))?;
    let module = t.getattr(lookups().module.bind(py))?;
    Ok(match module.extract::<String>() {
        Ok(m) if m != "builtins" && m != "__main__" => format!("{m}.{qualname}"),
        _ => qualname.to_string(),
    })
}

// SAFETY: Api is written once, with the GIL held, and only read afterwards
// (with the GIL held: by the functions CPython calls). Its raw pointers are
// to static strings and to interned str objects it keeps alive forever.
unsafe impl Sync for Api {}
// SAFETY: as above: nothing in Api is tied to the thread that made it.
unsafe impl Send for Api {}

static API: OnceLock<Api> = OnceLock::new();

/// The running version's [`Api`]. The module's functions exist only once it
/// is made (at import), so a function body always finds it.
fn api() -> &'static Api {
    // Unreachable: add_functions() makes the Api before any function exists.
    API.get().unwrap_or_else(|| std::process::abort())
}

/// One call's arguments, converted as far as the parser converts them.
pub struct Args<'py> {
    py: Python<'py>,
    values: [Value; PARAM_COUNT],
}

#[derive(Clone, Copy)]
enum Value {
    Absent,
    /// Borrowed from the call: alive until the function returns.
    Object(*mut ffi::PyObject),
    Int(c_int),
    Ssize(isize),
}

impl<'py> Args<'py> {
    fn value(&self, param: Param) -> Value {
        self.values
            .get(param as usize)
            .copied()
            .unwrap_or(Value::Absent)
    }

    /// An object argument (`file`, `timeout`), if given.
    pub fn object(&self, param: Param) -> Option<Borrowed<'_, 'py, PyAny>> {
        match self.value(param) {
            // SAFETY: the pointer is one of the call's arguments, which the
            // caller keeps alive until the function returns; `Args` does not
            // outlive the call.
            Value::Object(p) if !p.is_null() => Some(unsafe { Borrowed::from_ptr(self.py, p) }),
            _ => None,
        }
    }

    /// Set a flag that the call gave outside the stdlib's signature.
    fn set_flag(&mut self, param: Param, on: bool) {
        if let Some(v) = self.values.get_mut(param as usize) {
            *v = Value::Int(c_int::from(on));
        }
    }

    /// A flag (its parsed truth value), or `default` when left out.
    pub fn flag(&self, param: Param, default: bool) -> bool {
        match self.value(param) {
            Value::Int(v) => v != 0,
            _ => default,
        }
    }

    /// A C int argument (`signum`).
    pub fn int(&self, param: Param) -> Option<c_int> {
        match self.value(param) {
            Value::Int(v) => Some(v),
            _ => None,
        }
    }

    /// A `Py_ssize_t` argument (3.15's `max_threads`), if given.
    pub fn ssize(&self, param: Param) -> Option<isize> {
        match self.value(param) {
            Value::Ssize(v) => Some(v),
            _ => None,
        }
    }
}

/// The parser's output for one parameter: a borrowed object or a C int.
#[repr(C)]
#[derive(Clone, Copy)]
union Slot {
    object: *mut ffi::PyObject,
    int: c_int,
}

/// Whether `key` names `param`: the same interned object, or an exact `str`
/// equal to it. Anything else (a `str` subclass) is left to CPython's parser.
///
/// # Safety
/// The GIL is held; `key` and `name` are live objects, `name` an exact str.
unsafe fn same_name(key: *mut ffi::PyObject, name: *mut ffi::PyObject) -> bool {
    // SAFETY: both are live objects (caller); comparing two exact strs
    // cannot fail or run Python code.
    key == name
        || unsafe { ffi::PyUnicode_CheckExact(key) != 0 && ffi::PyUnicode_Compare(key, name) == 0 }
}

/// The fast path: the call's arguments by parameter position, or None when
/// CPython's parser must look at the call (an error, or an argument it alone
/// converts). Allocates nothing and runs no Python code.
///
/// # Safety
/// The GIL is held; `args[..nargs + len(kwnames)]` are the call's arguments
/// and `kwnames` is NULL or the tuple of its keyword names.
unsafe fn unpack(
    api: &Api,
    parser: &Parser,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> Option<[*mut ffi::PyObject; MAX_PARAMS]> {
    let sig = &parser.sig;
    let mut slots = [ptr::null_mut(); MAX_PARAMS];
    if nargs > sig.positional {
        return None;
    }
    for (i, slot) in slots.iter_mut().enumerate().take(nargs) {
        // SAFETY: i < nargs (caller: args has nargs positional arguments).
        *slot = unsafe { *args.add(i) };
    }
    let nkw = if kwnames.is_null() {
        0
    } else {
        // SAFETY: kwnames is a tuple (caller).
        usize::try_from(unsafe { ffi::PyTuple_Size(kwnames) }).ok()?
    };
    for k in 0..nkw {
        // SAFETY: k < len(kwnames); the item is borrowed from the tuple.
        let key = unsafe { ffi::PyTuple_GetItem(kwnames, k as ffi::Py_ssize_t) };
        // SAFETY: the keyword values follow the positional ones (caller).
        let value = unsafe { *args.add(nargs + k) };
        let index = sig.params.iter().position(|&(param, _)| {
            let name = api
                .names
                .get(param as usize)
                .copied()
                .unwrap_or(ptr::null_mut());
            // SAFETY: key is a live str or other object; name is an interned
            // exact str kept alive by the Api.
            !name.is_null() && unsafe { same_name(key, name) }
        })?;
        let slot = slots.get_mut(index)?;
        if !slot.is_null() {
            return None;
        }
        *slot = value;
    }
    if slots.iter().take(sig.required).any(|s| s.is_null()) {
        return None;
    }
    // `i` arguments: only ints in range are taken here (their conversion has
    // no side effect); CPython's parser words the error for anything else.
    for (&(_, conv), &obj) in sig.params.iter().zip(slots.iter()) {
        if conv == Conv::Int && !obj.is_null() {
            // SAFETY: obj is a live object; for an int, PyLong_AsLongAndOverflow
            // reads its value and calls nothing.
            let fits = unsafe {
                if ffi::PyLong_Check(obj) == 0 {
                    false
                } else {
                    let mut overflow = 0;
                    let v = ffi::PyLong_AsLongAndOverflow(obj, &mut overflow);
                    overflow == 0 && c_int::try_from(v).is_ok()
                }
            };
            if !fits {
                return None;
            }
        }
    }
    Some(slots)
}

/// CPython's parser over the call, for everything the fast path leaves to it.
///
/// # Safety
/// As for [`unpack`].
unsafe fn parse_slow(
    py: Python<'_>,
    parser: &Parser,
    args: *const *mut ffi::PyObject,
    nargs: usize,
    kwnames: *mut ffi::PyObject,
) -> PyResult<[Slot; MAX_PARAMS]> {
    let mut out = [Slot { int: 0 }; MAX_PARAMS];
    for ((slot, &(_, conv)), &default) in out
        .iter_mut()
        .zip(parser.sig.params.iter())
        .zip(parser.defaults.iter())
    {
        *slot = match conv {
            Conv::Int | Conv::Predicate => Slot { int: default },
            _ => Slot {
                object: ptr::null_mut(),
            },
        };
    }
    // SAFETY: args/nargs/kwnames describe the call (caller); the tuple and
    // the dict hold new references to the same objects, so what the parser
    // lends out stays alive after they are released (the caller holds them).
    unsafe {
        let positional =
            Bound::from_owned_ptr_or_err(py, ffi::PyTuple_New(nargs as ffi::Py_ssize_t))?;
        for i in 0..nargs {
            let item = *args.add(i);
            ffi::Py_IncRef(item);
            ffi::PyTuple_SetItem(positional.as_ptr(), i as ffi::Py_ssize_t, item);
        }
        let keywords = if kwnames.is_null() {
            None
        } else {
            let dict = PyDict::new(py);
            let nkw = usize::try_from(ffi::PyTuple_Size(kwnames)).unwrap_or(0);
            for k in 0..nkw {
                let key = ffi::PyTuple_GetItem(kwnames, k as ffi::Py_ssize_t);
                if ffi::PyDict_SetItem(dict.as_ptr(), key, *args.add(nargs + k)) < 0 {
                    return Err(PyErr::fetch(py));
                }
            }
            Some(dict)
        };
        let [s0, s1, s2, s3, s4] = &mut out;
        let ok = ffi::PyArg_ParseTupleAndKeywords(
            positional.as_ptr(),
            keywords.as_ref().map_or(ptr::null_mut(), |d| d.as_ptr()),
            parser.format.as_ptr().cast(),
            parser.kwlist.as_ptr().cast_mut().cast(),
            ptr::from_mut(s0),
            ptr::from_mut(s1),
            ptr::from_mut(s2),
            ptr::from_mut(s3),
            ptr::from_mut(s4),
        );
        if ok == 0 {
            return Err(PyErr::fetch(py));
        }
    }
    Ok(out)
}

/// Parse one call of a `METH_FASTCALL | METH_KEYWORDS` function.
///
/// # Safety
/// As for [`unpack`]; the returned `Args` must not outlive the call.
unsafe fn parse<'py>(
    py: Python<'py>,
    parser: &Parser,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<Args<'py>> {
    let api = api();
    let nargs = usize::try_from(nargs).unwrap_or(0);
    let mut values = [Value::Absent; PARAM_COUNT];
    let params = parser.sig.params;
    // SAFETY: forwarded from the caller.
    if let Some(objects) = unsafe { unpack(api, parser, args, nargs, kwnames) } {
        for ((&(param, conv), &obj), &default) in params
            .iter()
            .zip(objects.iter())
            .zip(parser.defaults.iter())
        {
            let value = match conv {
                Conv::Int if !obj.is_null() => {
                    // SAFETY: obj is an int in C int range (checked by unpack).
                    Value::Int(unsafe { ffi::PyLong_AsLong(obj) } as c_int)
                }
                Conv::Int | Conv::Predicate if obj.is_null() => int_value(default),
                // SAFETY: obj is a live argument; an exception from __bool__
                // propagates, as from the parser's `p`.
                Conv::Predicate => match unsafe { ffi::PyObject_IsTrue(obj) } {
                    -1 => return Err(PyErr::fetch(py)),
                    v => Value::Int(v),
                },
                _ => Value::Object(obj),
            };
            if let Some(v) = values.get_mut(param as usize) {
                *v = value;
            }
        }
    } else {
        // SAFETY: forwarded from the caller.
        let slots = unsafe { parse_slow(py, parser, args, nargs, kwnames) }?;
        for (&(param, conv), slot) in params.iter().zip(slots.iter()) {
            // SAFETY: the parser wrote the field the format names for this
            // parameter (or left the default written before it ran).
            let value = unsafe {
                match conv {
                    Conv::Predicate => int_value(slot.int),
                    Conv::Int => Value::Int(slot.int),
                    _ => Value::Object(slot.object),
                }
            };
            if let Some(v) = values.get_mut(param as usize) {
                *v = value;
            }
        }
    }
    // Argument Clinic's conversions (3.15), in parameter order.
    for &(param, conv) in params {
        let Some(v) = values.get_mut(param as usize) else {
            continue;
        };
        let Value::Object(obj) = *v else { continue };
        if obj.is_null() {
            *v = Value::Absent;
            continue;
        }
        // SAFETY: obj is a live argument of the call.
        let obj = unsafe { Borrowed::from_ptr(py, obj) };
        *v = match conv {
            Conv::Truth => Value::Int(c_int::from(obj.is_truthy()?)),
            Conv::CInt => Value::Int(as_c_int(&obj)?),
            Conv::Ssize => Value::Ssize(as_ssize(&obj)?),
            _ => continue,
        };
    }
    Ok(Args { py, values })
}

/// `PyLong_AsInt` (public from 3.13): `__index__`, then a C int.
pub fn as_c_int(obj: &Borrowed<'_, '_, PyAny>) -> PyResult<c_int> {
    let mut overflow = 0;
    // SAFETY: obj is a live object; errors are reported through PyErr.
    let v: c_long = unsafe { ffi::PyLong_AsLongAndOverflow(obj.as_ptr(), &mut overflow) };
    if v == -1 && overflow == 0 && PyErr::occurred(obj.py()) {
        return Err(PyErr::fetch(obj.py()));
    }
    match c_int::try_from(v) {
        Ok(v) if overflow == 0 => Ok(v),
        _ => Err(PyOverflowError::new_err(
            "Python int too large to convert to C int",
        )),
    }
}

/// Argument Clinic's `Py_ssize_t`: `__index__`, then `PyLong_AsSsize_t`.
fn as_ssize(obj: &Borrowed<'_, '_, PyAny>) -> PyResult<isize> {
    let py = obj.py();
    // SAFETY: obj is a live object; the index is a new reference, released
    // by Bound.
    let index = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyNumber_Index(obj.as_ptr())) }?;
    // SAFETY: index is an int.
    let v = unsafe { ffi::PyLong_AsSsize_t(index.as_ptr()) };
    if v == -1 && PyErr::occurred(py) {
        return Err(PyErr::fetch(py));
    }
    Ok(v)
}

/// How the running version words a timeout out of range: given as an int,
/// and given as a float.
fn timeout_overflow(minor: u8) -> (&'static str, &'static str) {
    match minor {
        ..=10 => (
            "timestamp too large to convert to C _PyTime_t",
            "timestamp too large to convert to C _PyTime_t",
        ),
        11 | 12 => (
            "timestamp too large to convert to C _PyTime_t",
            "timestamp out of range for platform time_t",
        ),
        13 => (
            "timestamp too large to convert to C PyTime_t",
            "timestamp out of range for platform time_t",
        ),
        _ => (
            "timestamp out of range for C PyTime_t",
            "timestamp out of range for C PyTime_t",
        ),
    }
}

/// Seconds as a float to nanoseconds, rounded away from zero
/// (`_PyTime_ROUND_TIMEOUT`), within the range of an i64.
fn float_seconds_to_ns(seconds: f64, overflow: &'static str) -> PyResult<i64> {
    if seconds.is_nan() {
        return Err(PyValueError::new_err("Invalid value NaN (not a number)"));
    }
    let ns = seconds * 1e9;
    let ns = if ns >= 0.0 { ns.ceil() } else { ns.floor() };
    // i64 nanoseconds: [-2^63, 2^63).
    let limit = 2f64.powi(63);
    if !(-limit..limit).contains(&ns) {
        return Err(PyOverflowError::new_err(overflow));
    }
    Ok(ns as i64)
}

/// The timeout in microseconds, converted and checked as the running
/// version's stdlib does (`_PyTime_FromSecondsObject`, microseconds rounded
/// up, then the range of 3.9 and 3.10). Its conversions are the C API calls
/// the stdlib makes, so that `__index__`, `__int__` (3.9), `__float__` (3.15)
/// and their errors and warnings are the stdlib's.
pub fn timeout_us(timeout: &Borrowed<'_, '_, PyAny>, minor: u8) -> PyResult<i64> {
    let py = timeout.py();
    let (int_overflow, float_overflow) = timeout_overflow(minor);
    let obj = timeout.as_ptr();
    // SAFETY: obj is a live object; PyIndex_Check only reads its type.
    let integral = timeout.is_instance_of::<PyInt>() || unsafe { ffi::PyIndex_Check(obj) } != 0;
    let ns = if let Ok(f) = timeout.cast::<PyFloat>() {
        float_seconds_to_ns(f.value(), float_overflow)?
    } else if minor <= 13 || integral {
        // Up to 3.13 any object goes to PyLong_AsLongLong (__index__, and
        // __int__ with a DeprecationWarning on 3.9); from 3.14 only ints.
        // SAFETY: obj is a live object; an error is left in the indicator.
        let seconds = unsafe { ffi::PyLong_AsLongLong(obj) };
        if seconds == -1 && PyErr::occurred(py) {
            let e = PyErr::fetch(py);
            return Err(if e.is_instance_of::<PyOverflowError>(py) {
                PyOverflowError::new_err(int_overflow)
            } else {
                e
            });
        }
        seconds
            .checked_mul(1_000_000_000)
            .ok_or_else(|| PyOverflowError::new_err(int_overflow))?
    } else if minor == 14 {
        return Err(PyTypeError::new_err(format!(
            "'{}' object cannot be interpreted as an integer or float",
            type_name(timeout)?
        )));
    } else {
        // 3.15: anything with __float__.
        // SAFETY: obj is a live object; an error is left in the indicator.
        let seconds = unsafe { ffi::PyFloat_AsDouble(obj) };
        if seconds == -1.0 && PyErr::occurred(py) {
            return Err(PyErr::fetch(py));
        }
        float_seconds_to_ns(seconds, float_overflow)?
    };
    // Round up (away from zero) to whole microseconds.
    let us = ns / 1000 + i64::from(ns > 0 && ns % 1000 != 0);
    if us <= 0 {
        return Err(PyValueError::new_err("timeout must be greater than 0"));
    }
    // 3.9 and 3.10 refuse what their PY_TIMEOUT_MAX (LLONG_MAX / 1000 µs)
    // cannot hold.
    if minor <= 10 && us >= i64::MAX / 1000 {
        return Err(PyOverflowError::new_err("timeout value is too large"));
    }
    Ok(us)
}

/// A function's body: called attached to the interpreter with its arguments.
type Body = for<'py> fn(Python<'py>, &Args<'py>) -> PyResult<Ret>;

/// What a function returns.
pub enum Ret {
    None,
    Bool(bool),
}

/// Run a function for CPython: attached to the interpreter, its error (if
/// any) raised, NULL returned then.
fn call<F>(body: F) -> *mut ffi::PyObject
where
    F: for<'py> FnOnce(Python<'py>) -> PyResult<Ret>,
{
    // SAFETY: CPython calls its builtin functions on a thread attached to an
    // initialised interpreter, so attaching (again) cannot fail.
    unsafe {
        Python::attach_unchecked(|py| match body(py) {
            Ok(Ret::None) => py.None().into_ptr(),
            Ok(Ret::Bool(b)) => PyBool::new(py, b).to_owned().into_ptr(),
            Err(e) => {
                e.restore(py);
                ptr::null_mut()
            }
        })
    }
}

/// The `METH_FASTCALL | METH_KEYWORDS` entry of a function taking arguments.
macro_rules! fastcall {
    ($entry:ident, $parser:ident, $body:path) => {
        /// # Safety
        /// Called by CPython as a `METH_FASTCALL | METH_KEYWORDS` function.
        unsafe extern "C" fn $entry(
            _module: *mut ffi::PyObject,
            args: *const *mut ffi::PyObject,
            nargs: ffi::Py_ssize_t,
            kwnames: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            call(|py| {
                let Some(parser) = api().$parser.as_parser() else {
                    return Err(pyo3::exceptions::PySystemError::new_err(
                        "no signature for this version",
                    ));
                };
                // SAFETY: CPython passes the vectorcall arguments of this call.
                let args = unsafe { parse(py, parser, args, nargs, kwnames) }?;
                let body: Body = $body;
                body(py, &args)
            })
        }
    };
}

/// A `METH_NOARGS` entry.
macro_rules! noargs {
    ($entry:ident, $body:path) => {
        /// # Safety
        /// Called by CPython as a `METH_NOARGS` function.
        unsafe extern "C" fn $entry(
            _module: *mut ffi::PyObject,
            _unused: *mut ffi::PyObject,
        ) -> *mut ffi::PyObject {
            call(|py| $body(py))
        }
    };
}

/// `Parser` or `Option<Parser>`, for the fastcall entries.
trait AsParser {
    fn as_parser(&self) -> Option<&Parser>;
}

impl AsParser for Parser {
    fn as_parser(&self) -> Option<&Parser> {
        Some(self)
    }
}

impl AsParser for Option<Parser> {
    fn as_parser(&self) -> Option<&Parser> {
        self.as_ref()
    }
}

/// enable(): the stdlib's signature, and on 3.9-3.13 (whose stdlib has no
/// C stack) a lastwords addition: a `c_stack=` keyword, taken out of the call
/// before the stdlib's parser sees the rest, so that every call without it
/// parses, and fails, exactly as the stdlib's does.
///
/// # Safety
/// Called by CPython as a `METH_FASTCALL | METH_KEYWORDS` function.
unsafe extern "C" fn enable_entry(
    _module: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    call(|py| {
        let api = api();
        let positional = usize::try_from(nargs).unwrap_or(0);
        // SAFETY: CPython passes the vectorcall arguments of this call.
        let extra = unsafe { c_stack_keyword(api, kwnames) };
        let Some(k) = extra else {
            // SAFETY: as above.
            let parsed = unsafe { parse(py, &api.enable, args, nargs, kwnames) }?;
            return crate::enable(py, &parsed);
        };
        // The call without its `c_stack` keyword: the positional arguments,
        // then the other keywords' values, in order.
        // SAFETY: kwnames is a tuple (c_stack_keyword found an item in it).
        let nkw = usize::try_from(unsafe { ffi::PyTuple_Size(kwnames) }).unwrap_or(0);
        let mut rest: Vec<*mut ffi::PyObject> = Vec::with_capacity(positional + nkw);
        let mut rest_names: Vec<Bound<'_, PyAny>> = Vec::with_capacity(nkw);
        // SAFETY: the call has nargs + len(kwnames) arguments (CPython).
        let c_stack = unsafe { *args.add(positional + k) };
        for i in 0..positional + nkw {
            if i == positional + k {
                continue;
            }
            // SAFETY: i < nargs + len(kwnames).
            rest.push(unsafe { *args.add(i) });
            if i >= positional {
                // SAFETY: i - positional < len(kwnames); a borrowed item of
                // the tuple, which the call keeps alive.
                let name =
                    unsafe { ffi::PyTuple_GetItem(kwnames, (i - positional) as ffi::Py_ssize_t) };
                // SAFETY: a live object (above).
                rest_names.push(unsafe { Bound::from_borrowed_ptr(py, name) });
            }
        }
        let names = if rest_names.is_empty() {
            None
        } else {
            Some(pyo3::types::PyTuple::new(py, rest_names)?)
        };
        // SAFETY: `rest` and `names` describe a call whose objects are the
        // original call's, alive until it returns.
        let mut parsed = unsafe {
            parse(
                py,
                &api.enable,
                rest.as_ptr(),
                nargs,
                names.as_ref().map_or(ptr::null_mut(), |t| t.as_ptr()),
            )
        }?;
        // Converted last, as 3.14's `p` is converted after the others.
        // SAFETY: a live object of the call; PyObject_IsTrue may run
        // `__bool__`, which is allowed here (the GIL is held).
        let truth = unsafe { ffi::PyObject_IsTrue(c_stack) };
        if truth < 0 {
            return Err(PyErr::fetch(py));
        }
        parsed.set_flag(Param::CStack, truth != 0);
        crate::enable(py, &parsed)
    })
}

/// The position in `kwnames` of a `c_stack` keyword that the running
/// version's `enable()` does not have (3.9-3.13), if the call has one.
///
/// # Safety
/// The GIL is held; `kwnames` is NULL or the call's tuple of keyword names.
unsafe fn c_stack_keyword(api: &Api, kwnames: *mut ffi::PyObject) -> Option<usize> {
    if kwnames.is_null()
        || api
            .enable
            .sig
            .params
            .iter()
            .any(|&(p, _)| p == Param::CStack)
    {
        return None;
    }
    let name = api.names.get(Param::CStack as usize).copied()?;
    // SAFETY: kwnames is a tuple (caller).
    let nkw = usize::try_from(unsafe { ffi::PyTuple_Size(kwnames) }).ok()?;
    (0..nkw).find(|&k| {
        // SAFETY: k < len(kwnames): a borrowed item.
        let key = unsafe { ffi::PyTuple_GetItem(kwnames, k as ffi::Py_ssize_t) };
        // SAFETY: key is a live object, name an interned exact str.
        !key.is_null() && !name.is_null() && unsafe { same_name(key, name) }
    })
}
fastcall!(dump_traceback_entry, dump_traceback, crate::dump_traceback);
fastcall!(
    dump_traceback_later_entry,
    dump_traceback_later,
    crate::dump_traceback_later
);
fastcall!(register_entry, register, crate::register);
fastcall!(dump_c_stack_entry, dump_c_stack, crate::dump_c_stack);
noargs!(disable_entry, crate::disable);
noargs!(is_enabled_entry, crate::is_enabled);
noargs!(cancel_entry, crate::cancel_dump_traceback_later);

/// unregister(signum, /) up to 3.14: `METH_VARARGS`, `"i:unregister"`.
///
/// # Safety
/// Called by CPython as a `METH_VARARGS` function.
unsafe extern "C" fn unregister_varargs_entry(
    _module: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    call(|py| {
        let mut signum: c_int = 0;
        // SAFETY: args is the call's tuple; the format fills one C int.
        if unsafe { ffi::PyArg_ParseTuple(args, c"i:unregister".as_ptr(), &mut signum) } == 0 {
            return Err(PyErr::fetch(py));
        }
        crate::unregister(py, signum)
    })
}

/// unregister(signum, /) up to 3.12: `METH_VARARGS | METH_KEYWORDS`, and the
/// keywords ignored (the stdlib parses the tuple alone).
///
/// # Safety
/// Called by CPython as a `METH_VARARGS | METH_KEYWORDS` function.
unsafe extern "C" fn unregister_ignoring_keywords_entry(
    module: *mut ffi::PyObject,
    args: *mut ffi::PyObject,
    _kwargs: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: forwarded from CPython.
    unsafe { unregister_varargs_entry(module, args) }
}

/// unregister(signum, /) from 3.15: `METH_O`, Argument Clinic's `int`.
///
/// # Safety
/// Called by CPython as a `METH_O` function.
unsafe extern "C" fn unregister_o_entry(
    _module: *mut ffi::PyObject,
    arg: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    call(|py| {
        // SAFETY: arg is the call's live argument.
        let arg = unsafe { Borrowed::from_ptr(py, arg) };
        crate::unregister(py, as_c_int(&arg)?)
    })
}

/// The stdlib's docstrings (and so `__text_signature__`), by version.
struct Docs {
    enable: &'static CStr,
    disable: &'static CStr,
    is_enabled: &'static CStr,
    dump_traceback: &'static CStr,
    dump_c_stack: &'static CStr,
    dump_traceback_later: &'static CStr,
    cancel_dump_traceback_later: &'static CStr,
    register: &'static CStr,
    unregister: &'static CStr,
}

fn docs(minor: u8) -> Docs {
    match minor {
        ..=12 => Docs {
            enable: c"enable(file=sys.stderr, all_threads=True): enable the fault handler",
            disable: c"disable(): disable the fault handler",
            is_enabled: c"is_enabled()->bool: check if the handler is enabled",
            dump_traceback: c"dump_traceback(file=sys.stderr, all_threads=True): dump the traceback of the current thread, or of all threads if all_threads is True, into file",
            dump_c_stack: c"",
            // (sic: "sys.stderrn" up to 3.11.)
            dump_traceback_later: if minor <= 11 {
                c"dump_traceback_later(timeout, repeat=False, file=sys.stderrn, exit=False):\ndump the traceback of all threads in timeout seconds,\nor each timeout seconds if repeat is True. If exit is True, call _exit(1) which is not safe."
            } else {
                c"dump_traceback_later(timeout, repeat=False, file=sys.stderr, exit=False):\ndump the traceback of all threads in timeout seconds,\nor each timeout seconds if repeat is True. If exit is True, call _exit(1) which is not safe."
            },
            cancel_dump_traceback_later: c"cancel_dump_traceback_later():\ncancel the previous call to dump_traceback_later().",
            register: c"register(signum, file=sys.stderr, all_threads=True, chain=False): register a handler for the signal 'signum': dump the traceback of the current thread, or of all threads if all_threads is True, into file",
            unregister: c"unregister(signum): unregister the handler of the signal 'signum' registered by register()",
        },
        13 | 14 => Docs {
            // (3.14's signature does not list c_stack.)
            enable: c"enable($module, /, file=sys.stderr, all_threads=True)\n--\n\nEnable the fault handler.",
            disable: c"disable($module, /)\n--\n\nDisable the fault handler.",
            is_enabled: c"is_enabled($module, /)\n--\n\nCheck if the handler is enabled.",
            dump_traceback: c"dump_traceback($module, /, file=sys.stderr, all_threads=True)\n--\n\nDump the traceback of the current thread, or of all threads if all_threads is True, into file.",
            dump_c_stack: c"dump_c_stack($module, /, file=sys.stderr)\n--\n\nDump the C stack of the current thread.",
            dump_traceback_later: c"dump_traceback_later($module, /, timeout, repeat=False, file=sys.stderr, exit=False)\n--\n\nDump the traceback of all threads in timeout seconds,\nor each timeout seconds if repeat is True. If exit is True, call _exit(1) which is not safe.",
            cancel_dump_traceback_later: c"cancel_dump_traceback_later($module, /)\n--\n\nCancel the previous call to dump_traceback_later().",
            register: c"register($module, /, signum, file=sys.stderr, all_threads=True, chain=False)\n--\n\nRegister a handler for the signal 'signum': dump the traceback of the current thread, or of all threads if all_threads is True, into file.",
            unregister: c"unregister($module, signum, /)\n--\n\nUnregister the handler of the signal 'signum' registered by register().",
        },
        _ => Docs {
            enable: c"enable($module, /, file=sys.stderr, all_threads=True, c_stack=True, *,\n       max_threads=100)\n--\n\nEnable the fault handler.",
            disable: c"disable($module, /)\n--\n\nDisable the fault handler.",
            is_enabled: c"is_enabled($module, /)\n--\n\nCheck if the handler is enabled.",
            dump_traceback: c"dump_traceback($module, /, file=sys.stderr, all_threads=True, *,\n               max_threads=100)\n--\n\nDump the traceback of the current thread into file.\n\nDump the traceback of all threads if all_threads is true. max_threads\ncaps the number of threads dumped.",
            dump_c_stack: c"dump_c_stack($module, /, file=sys.stderr)\n--\n\nDump the C stack of the current thread.",
            dump_traceback_later: c"dump_traceback_later($module, /, timeout, repeat=False,\n                     file=sys.stderr, exit=False, *, max_threads=100)\n--\n\nDump the traceback of all threads in timeout seconds.\n\nIf repeat is true, the tracebacks of all threads are dumped every\ntimeout seconds.  If exit is true, call _exit(1) which is not safe.\nmax_threads caps the number of threads dumped.",
            cancel_dump_traceback_later: c"cancel_dump_traceback_later($module, /)\n--\n\nCancel the previous call to dump_traceback_later().",
            register: c"register($module, /, signum, file=sys.stderr, all_threads=True,\n         chain=False, *, max_threads=100)\n--\n\nRegister a handler for the signal 'signum'.\n\nDump the traceback of the current thread, or of all threads if\nall_threads is True, into file. max_threads caps the number of threads\ndumped.",
            unregister: c"unregister($module, signum, /)\n--\n\nUnregister the handler of the signal 'signum' registered by register().",
        },
    }
}

fn method(
    name: &'static CStr,
    meth: ffi::PyMethodDefPointer,
    flags: c_int,
    doc: &'static CStr,
) -> ffi::PyMethodDef {
    ffi::PyMethodDef {
        ml_name: name.as_ptr(),
        ml_meth: meth,
        ml_flags: flags,
        ml_doc: doc.as_ptr(),
    }
}

/// `METH_FASTCALL` (in the limited API from 3.10; CPython has it since 3.7,
/// and lastwords reads 3.9's internals anyway).
const METH_FASTCALL: c_int = 0x0080;

type FastcallKw = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *const *mut ffi::PyObject,
    ffi::Py_ssize_t,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

fn fastcall_pointer(f: FastcallKw) -> ffi::PyMethodDefPointer {
    // SAFETY: CPython calls a METH_FASTCALL | METH_KEYWORDS function through
    // the PyCFunction slot with exactly this signature; the pointer is only
    // stored, never called as a PyCFunction.
    let f = unsafe { core::mem::transmute::<FastcallKw, ffi::PyCFunction>(f) };
    ffi::PyMethodDefPointer { PyCFunction: f }
}

fn make_api(py: Python<'_>, minor: u8) -> PyResult<Api> {
    let mut names = [ptr::null_mut(); PARAM_COUNT];
    for (slot, param) in names.iter_mut().zip(Param::ALL) {
        // A strong reference, kept for the life of the process.
        *slot = PyString::intern(py, param.name().to_str().unwrap_or("")).into_ptr();
    }
    let s = signatures(minor);
    let d = docs(minor);
    let kw = METH_FASTCALL | ffi::METH_KEYWORDS;
    let mut methods = vec![
        method(c"enable", fastcall_pointer(enable_entry), kw, d.enable),
        method(
            c"disable",
            ffi::PyMethodDefPointer {
                PyCFunction: disable_entry,
            },
            ffi::METH_NOARGS,
            d.disable,
        ),
        method(
            c"is_enabled",
            ffi::PyMethodDefPointer {
                PyCFunction: is_enabled_entry,
            },
            ffi::METH_NOARGS,
            d.is_enabled,
        ),
        method(
            c"dump_traceback",
            fastcall_pointer(dump_traceback_entry),
            kw,
            d.dump_traceback,
        ),
        method(
            c"dump_traceback_later",
            fastcall_pointer(dump_traceback_later_entry),
            kw,
            d.dump_traceback_later,
        ),
        method(
            c"cancel_dump_traceback_later",
            ffi::PyMethodDefPointer {
                PyCFunction: cancel_entry,
            },
            ffi::METH_NOARGS,
            d.cancel_dump_traceback_later,
        ),
        method(
            c"register",
            fastcall_pointer(register_entry),
            kw,
            d.register,
        ),
        if minor >= 15 {
            method(
                c"unregister",
                ffi::PyMethodDefPointer {
                    PyCFunction: unregister_o_entry,
                },
                ffi::METH_O,
                d.unregister,
            )
        } else if minor >= 13 {
            method(
                c"unregister",
                ffi::PyMethodDefPointer {
                    PyCFunction: unregister_varargs_entry,
                },
                ffi::METH_VARARGS,
                d.unregister,
            )
        } else {
            method(
                c"unregister",
                ffi::PyMethodDefPointer {
                    PyCFunctionWithKeywords: unregister_ignoring_keywords_entry,
                },
                ffi::METH_VARARGS | ffi::METH_KEYWORDS,
                d.unregister,
            )
        },
    ];
    if s.dump_c_stack.is_some() {
        methods.push(method(
            c"dump_c_stack",
            fastcall_pointer(dump_c_stack_entry),
            kw,
            d.dump_c_stack,
        ));
    }
    let lookups = Lookups {
        sys_dict: py.import("sys")?.dict().unbind(),
        stderr: PyString::intern(py, "stderr").unbind(),
        fileno: PyString::intern(py, "fileno").unbind(),
        flush: PyString::intern(py, "flush").unbind(),
        module: PyString::intern(py, "__module__").unbind(),
        qualname: PyString::intern(py, "__qualname__").unbind(),
    };
    Ok(Api {
        lookups,
        enable: Parser::new(s.enable),
        dump_traceback: Parser::new(s.dump_traceback),
        dump_traceback_later: Parser::new(s.dump_traceback_later),
        register: Parser::new(s.register),
        dump_c_stack: s.dump_c_stack.map(Parser::new),
        names,
        methods,
    })
}

/// Name the module as the stdlib's and add faulthandler's functions to it.
/// The module's other functions (PyO3's) are added after this, so that their
/// `__module__` is `faulthandler` too.
pub fn add_functions(m: &Bound<'_, PyModule>, minor: u8) -> PyResult<()> {
    let py = m.py();
    m.setattr("__name__", MODULE_NAME)?;
    m.setattr("__doc__", MODULE_DOC)?;
    if API.get().is_none() {
        let api = make_api(py, minor)?;
        // A concurrent import cannot happen (the import lock and the GIL
        // are held); if it did, the first Api is kept and is the same.
        let _ = API.set(api);
    }
    let api = api();
    let module_name = PyString::new(py, MODULE_NAME);
    for def in &api.methods {
        // SAFETY: def lives in the static Api for the life of the process;
        // CPython only reads it. The module and its name are live objects.
        let func = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                ffi::PyCMethod_New(
                    ptr::from_ref(def).cast_mut(),
                    m.as_ptr(),
                    module_name.as_ptr(),
                    ptr::null_mut(),
                ),
            )
        }?;
        // SAFETY: ml_name is a static NUL-terminated ASCII name.
        let name = unsafe { CStr::from_ptr(def.ml_name) };
        // Not `m.add`: that also lists the name in `__all__` (see
        // `add_function!`).
        m.setattr(name.to_str().unwrap_or(""), func)?;
    }
    Ok(())
}
