"""The table of bad calls, and the child that makes them.

Run as a script, in a fresh interpreter: ``python bad_calls.py MODE OUT``
makes every call of CALLS (and the checks of FACES) with ``fh`` naming

* ``stdlib``: the stdlib's ``faulthandler``;
* ``lastwords``: ``import lastwords as fh``;
* ``standin``: ``lastwords.install()``, then ``import faulthandler as fh``;

and writes one JSON record per call to OUT: the exception's class and
message (or the repr of what the call returned), its ``__context__`` and
``__cause__`` classes, and every warning it gave (category, message, file,
line). test_bad_calls.py compares the stdlib's records with lastwords' on the
running interpreter: the expectation is always the stdlib's, at run time.

Each call is an expression evaluated with ``fh`` and the helpers below in
scope. Calls of a function the running version does not have (dump_c_stack
before 3.14) are left out. After each call every handler is disabled,
cancelled and unregistered, so that the calls do not depend on each other.
The child's stdout is /dev/null: a call that succeeds may write a traceback
to fd 1.
"""

import json
import os
import sys
import warnings

# --- Values -----------------------------------------------------------------

# Values for a `file` argument.
FILES = [
    "-1", "-2**31", "-2**31-1", "2**31-1", "2**31", "2**40", "2**63", "2**64", "-2**64",
    "True", "False", "1.5", "float('nan')", "'x'", "b'1'", "[]", "object()", "Index(devnull_fd)",
    "Decimal(1)", "NoFileno()", "io.StringIO()", "io.BytesIO()", "closed", "closed_fd",
    "Fileno('x')", "Fileno(None)", "Fileno(-1)", "Fileno(2**31-1)", "Fileno(2**31)",
    "Fileno(2**70)", "Fileno(1.5)", "Fileno(True)", "Fileno(Index(1))", "FilenoRaises()",
    "FlushRaises()", "IntSub(devnull_fd)", "IntSub(-1)",
]

# Values for a flag (all_threads, chain, c_stack, repeat, exit).
FLAGS = [
    "'x'", "''", "1.5", "0.0", "None", "[]", "[0]", "2", "-1", "2**31", "2**40", "2**64",
    "2**100", "Index(1)", "Int(1)", "Bool(False)", "BoolRaises()", "Len(0)", "LenRaises()",
    "NotImplemented", "Decimal(1)", "Fraction(1, 2)", "1j", "IntSub(0)",
]

# Values for dump_traceback_later's timeout.
TIMEOUTS = [
    "0", "-1", "0.0", "-0.0", "-0.5", "1e-10", "1e-7", "float('nan')", "float('inf')",
    "-float('inf')", "1e300", "-1e300", "9.3e9", "9.2e9", "2**33", "2**63", "2**64", "10**20",
    "-2**63", "2**100", "'5'", "b'5'", "None", "[]", "1j", "Decimal('5')", "Decimal('nan')",
    "Decimal('-1')", "Decimal('1e400')", "Fraction(1, 2)", "Fraction(-1, 2)", "Float(5.0)",
    "Float(-1.0)", "FloatRaises()", "Index(5)", "IndexRaises()", "Int(5)", "True", "False",
    "IntSub(5)", "FloatSub(0.5)", "Index(2**70)", "9223372036.854774", "9223372036.85477",
    "9223372036", "9223372037",
]

# Values for a signal number.
SIGNUMS = [
    "0", "-1", "NSIG", "2**31-1", "2**31", "2**40", "2**63", "2**64", "-2**31-1", "1.5", "'x'",
    "None", "Index(SIGUSR1)", "IndexRaises()", "Int(10)", "Decimal(10)", "True", "SIGSEGV",
    "SIGFPE", "SIGABRT", "SIGBUS", "SIGILL", "SIGKILL", "SIGSTOP", "SIGUSR2", "IntSub(10)",
]

# Values for 3.15's keyword-only max_threads (an unexpected keyword before).
MAX_THREADS = [
    "1.5", "'x'", "None", "True", "2**63", "2**64", "-1", "0", "-2**63-1", "Index(3)",
    "IndexRaises()", "Decimal(3)",
]

# --- The calls --------------------------------------------------------------

CALLS = []
for v in FILES:
    CALLS += [
        f"fh.enable({v})",
        f"fh.dump_traceback(file={v})",
        f"fh.dump_traceback_later(3600, file={v})",
        f"fh.register(SIGUSR1, {v})",
        f"fh.dump_c_stack({v})",
    ]
for v in FLAGS:
    CALLS += [
        f"fh.enable(devnull_fd, all_threads={v})",
        f"fh.dump_traceback(devnull_fd, {v})",
        f"fh.register(SIGUSR1, devnull_fd, all_threads={v})",
        f"fh.register(SIGUSR1, devnull_fd, True, {v})",
        f"fh.dump_traceback_later(3600, repeat={v}, file=devnull_fd)",
        f"fh.dump_traceback_later(3600, False, devnull_fd, {v})",
        f"fh.enable(devnull_fd, True, {v})",
    ]
CALLS += [f"fh.dump_traceback_later({v}, file=devnull_fd)" for v in TIMEOUTS]
for v in SIGNUMS:
    CALLS += [f"fh.register({v}, devnull_fd)", f"fh.unregister({v})"]
for v in MAX_THREADS:
    CALLS += [
        f"fh.enable(devnull_fd, max_threads={v})",
        f"fh.dump_traceback(devnull_fd, max_threads={v})",
        f"fh.dump_traceback_later(3600, file=devnull_fd, max_threads={v})",
        f"fh.register(SIGUSR1, devnull_fd, max_threads={v})",
    ]
# Shapes: too many or too few arguments, unknown, misspelt and duplicate
# keywords, keyword and positional forms, argument unpacking.
CALLS += [
    "fh.enable(devnull_fd, True)",
    "fh.enable(devnull_fd, True, True)",
    "fh.enable(devnull_fd, True, True, True)",
    "fh.enable(devnull_fd, True, True, True, True)",
    "fh.enable(devnull_fd, file=devnull_fd)",
    "fh.enable(devnull_fd, True, all_threads=True)",
    "fh.enable(colour=1)",
    "fh.enable(File=devnull_fd)",
    "fh.enable(all_thread=True)",
    "fh.enable(devnull_fd, c_stack=False)",
    "fh.enable(file=devnull_fd, c_stak=False)",
    "fh.enable(devnull_fd, max_thread=5)",
    "fh.enable(devnull_fd, maxthreads=5)",
    "fh.enable(devnull_fd, MAX_THREADS=5)",
    "fh.enable(**{'file': devnull_fd, 'x': 1, 'y': 2})",
    "fh.enable(a=1, b=2, c=3, d=4, e=5)",
    "fh.enable(1, 2, 3, x=1)",
    "fh.enable(1, 2, x=1)",
    "fh.enable(**{1: 2})",
    "fh.enable(**{'fil\\u00e9': 2})",
    "fh.enable(**{'\\udc80': 2})",
    "fh.enable(*[devnull_fd], **{'all_threads': False})",
    "fh.enable(**{Str('file'): devnull_fd})",
    "fh.enable(**{''.join(['fi', 'le']): devnull_fd, ''.join(['all_', 'threads']): 0})",
    "fh.dump_traceback_later(3600, **{''.join(['fi', 'le']): devnull_fd})",
    "fh.register(SIGUSR1, **{Str('file'): devnull_fd, 'chain': True})",
    "fh.dump_traceback(devnull_fd, True, True)",
    "fh.dump_traceback(devnull_fd, True, all_threads=True)",
    "fh.dump_traceback(fil=devnull_fd)",
    "fh.dump_traceback(file=devnull_fd, all_threads=True, c_stack=True)",
    "fh.dump_traceback(devnull_fd, True, True, max_threads=3)",
    "fh.dump_traceback_later()",
    "fh.dump_traceback_later(repeat=True)",
    "fh.dump_traceback_later(file=devnull_fd)",
    "fh.dump_traceback_later(3600, False, devnull_fd, False)",
    "fh.dump_traceback_later(3600, False, devnull_fd, False, 5)",
    "fh.dump_traceback_later(3600, False, devnull_fd, False, 5, 6)",
    "fh.dump_traceback_later(3600, timeout=3600)",
    "fh.dump_traceback_later(timeout=3600, file=devnull_fd)",
    "fh.dump_traceback_later(timout=3600)",
    "fh.dump_traceback_later(3600, file=devnull_fd, exits=True)",
    "fh.dump_traceback_later(3600, file=devnull_fd, delay=1)",
    "fh.dump_traceback_later(delay=3600)",
    "fh.dump_traceback_later(3600, 0, devnull_fd, 0, max_threads=1, x=2)",
    "fh.register()",
    "fh.register(signum=SIGUSR1, file=devnull_fd)",
    "fh.register(SIGUSR1, signum=SIGUSR1)",
    "fh.register(SIGUSR1, devnull_fd, True, False)",
    "fh.register(SIGUSR1, devnull_fd, True, False, 5)",
    "fh.register(SIGUSR1, devnull_fd, True, False, 5, 6)",
    "fh.register(file=devnull_fd)",
    "fh.register(sig=SIGUSR1)",
    "fh.register(SIGUSR1, devnull_fd, chian=True)",
    "fh.register(SIGUSR1, devnull_fd, all_threads=False, chain=True)",
    "fh.unregister()",
    "fh.unregister(SIGUSR1, SIGUSR2)",
    "fh.unregister(signum=SIGUSR1)",
    "fh.unregister(SIGUSR1, x=1)",
    "fh.unregister(*[SIGUSR1], **{})",
    "fh.unregister(**{'signum': SIGUSR1, 'x': 1})",
    "fh.is_enabled(1)",
    "fh.is_enabled(1, 2)",
    "fh.is_enabled(x=1)",
    "fh.is_enabled(**{})",
    "fh.disable(None)",
    "fh.disable(x=1)",
    "fh.cancel_dump_traceback_later(1)",
    "fh.cancel_dump_traceback_later(x=1)",
    "fh.dump_c_stack(devnull_fd, 2)",
    "fh.dump_c_stack(devnull_fd, file=devnull_fd)",
    "fh.dump_c_stack(fil=devnull_fd)",
    "fh.dump_c_stack(file=devnull_fd, all_threads=True)",
    "fh.dump_c_stack(file=devnull_fd)",
]
# Two faults in one call: which is reported first.
CALLS += [
    "fh.enable(closed, all_threads='x')",
    "fh.enable(closed, all_threads=BoolRaises())",
    "fh.enable(NoFileno(), colour=1)",
    "fh.enable(2**40, all_threads=2**40)",
    "fh.enable(closed, max_threads='x')",
    "fh.enable(all_threads='x', colour=1)",
    "fh.enable(1, 2, 3, 4, colour=1)",
    "fh.dump_traceback(closed, BoolRaises())",
    "fh.dump_traceback_later(-1, file=closed)",
    "fh.dump_traceback_later(-1, repeat='x')",
    "fh.dump_traceback_later('x', repeat='x')",
    "fh.dump_traceback_later(3600, repeat='x', file=closed)",
    "fh.dump_traceback_later(3600, repeat=BoolRaises(), exit=IndexRaises())",
    "fh.dump_traceback_later(FloatRaises(), repeat=BoolRaises())",
    "fh.dump_traceback_later(IndexRaises(), exit=2**100)",
    "fh.dump_traceback_later(0, max_threads='x')",
    "fh.dump_traceback_later(3600, file=closed, max_threads='x')",
    "fh.dump_traceback_later('x', colour=1)",
    "fh.register(SIGSEGV, file=closed)",
    "fh.register(-1, file=closed)",
    "fh.register(SIGUSR1, closed, all_threads='x')",
    "fh.register('x', file=closed)",
    "fh.register(SIGKILL, file=closed)",
    "fh.register(SIGKILL, devnull_fd, chain=True)",
    "fh.register(SIGSEGV, all_threads=BoolRaises())",
    "fh.register('x', colour=1)",
]
# The default file (sys.stderr) and warnings made errors.
CALLS += [
    "with_stderr(None, fh.enable)",
    "with_stderr(None, fh.dump_traceback)",
    "with_stderr(None, lambda: fh.dump_traceback_later(3600))",
    "with_stderr(None, lambda: fh.register(SIGUSR1))",
    "with_stderr(MISSING, fh.enable)",
    "with_stderr(MISSING, lambda: fh.dump_traceback(all_threads=False))",
    "with_stderr(MISSING, lambda: fh.dump_traceback_later(3600, repeat=True))",
    "with_stderr(MISSING, lambda: fh.register(SIGUSR1, chain=True))",
    "with_stderr(Fileno(-1), fh.enable)",
    "with_stderr(NoFileno(), fh.dump_traceback)",
    "with_stderr(closed, lambda: fh.dump_traceback_later(3600))",
    "with_stderr(None, lambda: fh.enable(all_threads=BoolRaises()))",
    "with_stderr(None, lambda: fh.dump_traceback_later(-1))",
    "with_stderr(None, lambda: fh.register(SIGSEGV))",
    "warnings_as_errors(lambda: fh.enable(True))",
    "warnings_as_errors(lambda: fh.dump_traceback(False))",
    "warnings_as_errors(lambda: fh.dump_traceback_later(3600, file=True))",
    "warnings_as_errors(lambda: fh.register(SIGUSR1, True))",
    "warnings_as_errors(lambda: fh.dump_traceback_later(Int(5), file=devnull_fd))",
    "warnings_as_errors(lambda: fh.register(Int(10), devnull_fd))",
    "warnings_as_errors(lambda: fh.enable(devnull_fd, NotImplemented))",
]

# Attributes of each public function compared with the stdlib's.
FUNCTIONS = [
    "enable", "disable", "is_enabled", "dump_traceback", "dump_c_stack", "dump_traceback_later",
    "cancel_dump_traceback_later", "register", "unregister",
]


def calls_for(module):
    """The calls of CALLS that `module` has the function for."""
    return [e for e in CALLS if not e.startswith("fh.") or hasattr(module, e[3:].split("(")[0])]


# --- The child --------------------------------------------------------------


def namespace(fh):
    """The names a call may use."""
    import decimal
    import fractions
    import io
    import signal

    class Boom(Exception):
        pass

    class NoFileno:
        pass

    class Fileno:
        def __init__(self, value):
            self.value = value

        def fileno(self):
            return self.value

    class FilenoRaises:
        def fileno(self):
            raise Boom("fileno")

    class FlushRaises:
        def fileno(self):
            return devnull_fd

        def flush(self):
            raise Boom("flush")

    class Index:
        def __init__(self, value):
            self.value = value

        def __index__(self):
            return self.value

    class IndexRaises:
        def __index__(self):
            raise Boom("__index__")

    class Int:
        def __init__(self, value):
            self.value = value

        def __int__(self):
            return self.value

    class Bool:
        def __init__(self, value):
            self.value = value

        def __bool__(self):
            return self.value

    class BoolRaises:
        def __bool__(self):
            raise Boom("__bool__")

    class Len:
        def __init__(self, value):
            self.value = value

        def __len__(self):
            return self.value

    class LenRaises:
        def __len__(self):
            raise Boom("__len__")

    class IntSub(int):
        def __index__(self):
            raise Boom("IntSub.__index__")

    class FloatSub(float):
        def __float__(self):
            raise Boom("FloatSub.__float__")

    class Str(str):
        pass

    class Float:
        def __init__(self, value):
            self.value = value

        def __float__(self):
            return self.value

    class FloatRaises:
        def __float__(self):
            raise Boom("__float__")

    MISSING = object()

    def with_stderr(value, call):
        saved = sys.stderr
        try:
            if value is MISSING:
                del sys.stderr
            else:
                sys.stderr = value
            return call()
        finally:
            sys.stderr = saved

    def warnings_as_errors(call):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return call()

    devnull_fd = os.open(os.devnull, os.O_WRONLY)
    closed = open(os.devnull, "w")
    closed.close()
    closed_fd = os.open(os.devnull, os.O_WRONLY)
    os.close(closed_fd)
    names = dict(locals())
    del names["fh"]
    names.update(
        fh=fh,
        io=io,
        sys=sys,
        signal=signal,
        Decimal=decimal.Decimal,
        Fraction=fractions.Fraction,
        NSIG=signal.NSIG,
    )
    for name in ("SIGUSR1", "SIGUSR2", "SIGSEGV", "SIGFPE", "SIGABRT", "SIGBUS", "SIGILL", "SIGKILL", "SIGSTOP"):
        names[name] = getattr(signal, name)
    return names


def class_name(cls):
    return None if cls is None else f"{cls.__module__}.{cls.__qualname__}"


def outcome(expr, names):
    """What evaluating `expr` did: a JSON-able record."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = eval(expr, names)
        except BaseException as e:  # noqa: BLE001 - whatever the stdlib raises
            result = {
                "raised": class_name(type(e)),
                "message": str(e),
                "context": class_name(type(e.__context__)) if e.__context__ is not None else None,
                "cause": class_name(type(e.__cause__)) if e.__cause__ is not None else None,
            }
        else:
            result = {"returned": repr(value)}
    result["warnings"] = [
        [class_name(w.category), str(w.message), os.path.basename(w.filename), w.lineno] for w in caught
    ]
    return result


def reset(fh, names):
    """Undo whatever a call armed: no call depends on the one before."""
    fh.disable()
    fh.cancel_dump_traceback_later()
    fatal = {names[n] for n in ("SIGSEGV", "SIGFPE", "SIGABRT", "SIGBUS", "SIGILL")}
    for signum in range(1, names["NSIG"]):
        if signum not in fatal:
            fh.unregister(signum)


def faces(fh):
    """What each public function (and, standing in, the module) looks like."""
    import inspect

    records = {}
    for name in FUNCTIONS:
        func = getattr(fh, name, None)
        if func is None:
            records[name] = None
            continue
        try:
            signature = str(inspect.signature(func))
        except Exception as e:  # noqa: BLE001 - the stdlib's own failure is the expectation
            signature = f"{class_name(type(e))}: {e}"
        records[name] = {
            "type": class_name(type(func)),
            "repr": repr(func),
            "__name__": func.__name__,
            "__qualname__": func.__qualname__,
            "__module__": func.__module__,
            "__text_signature__": func.__text_signature__,
            "__doc__": func.__doc__,
            "signature": signature,
            "__self__.__name__": getattr(func.__self__, "__name__", None),
        }
    return records


def main(mode, out):
    if mode == "stdlib":
        import faulthandler as fh
    elif mode == "lastwords":
        import lastwords as fh
    elif mode == "standin":
        import lastwords

        lastwords.install()
        import faulthandler as fh

        assert fh is lastwords._lastwords, "install() did not stand in"
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    # A call that succeeds may write a traceback to fd 1.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    names = namespace(fh)
    calls = {}
    for expr in calls_for(fh):
        calls[expr] = outcome(expr, names)
        reset(fh, names)
    record = {"calls": calls, "faces": faces(fh)}
    if mode == "standin":
        record["module"] = {"__name__": fh.__name__, "__doc__": fh.__doc__}
    if mode == "stdlib":
        record["module"] = {"__name__": fh.__name__, "__doc__": fh.__doc__}
    with open(out, "w", encoding="utf-8") as f:
        json.dump(record, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
