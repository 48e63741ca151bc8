"""Bad input gets the stdlib's exception type and message; never a crash.

These run in-process: each check calls the stdlib and lastwords with the same
arguments and compares (type, message, warnings). The large table of bad
calls, made in child processes, is test_bad_calls.py."""

import faulthandler
import io
import os
import sys
import warnings

import pytest

import lastwords
from helpers import MINOR


def outcome(func, *args, **kwargs):
    """(exception type name, message) or ('ok', return value)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = func(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - comparing whatever is raised
            return (type(e).__name__, str(e), [str(w.message) for w in caught])
    return ("ok", value, [str(w.message) for w in caught])


class NoFileno:
    pass


class BadFileno:
    def __init__(self, value):
        self.value = value

    def fileno(self):
        return self.value


CASES = {
    "negative fd": ((-1,), {}),
    "huge fd": ((2**40,), {}),
    "enormous fd": ((2**80,), {}),
    "bool fd": ((True,), {}),
    "float": ((1.5,), {}),
    "no fileno": ((NoFileno(),), {}),
    "stringio": ((io.StringIO(),), {}),
    "fileno returns str": ((BadFileno("x"),), {}),
    "fileno returns -1": ((BadFileno(-1),), {}),
    "fileno returns huge": ((BadFileno(2**70),), {}),
    "all_threads str": ((), {"all_threads": "yes"}),
    "all_threads float": ((), {"all_threads": 1.5}),
    "unknown keyword": ((), {"colour": 1}),
    "too many args": ((None, True, 3, 4), {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", ["enable", "dump_traceback"])
def test_errors_match_stdlib(name, case):
    args, kwargs = CASES[case]
    expected = outcome(getattr(faulthandler, name), *args, **kwargs)
    faulthandler.disable()
    actual = outcome(getattr(lastwords, name), *args, **kwargs)
    lastwords.disable()
    # Every case is an error, except those the running version accepts:
    # a bool fd (fd 1), and any object as a flag from 3.12 on.
    accepted = {"bool fd"} | ({"all_threads str", "all_threads float"} if MINOR >= 12 else set())
    assert (expected[0] == "ok") == (case in accepted), expected
    assert actual == expected


def test_stderr_none_and_missing():
    saved = sys.stderr
    try:
        sys.stderr = None
        for func in (faulthandler.enable, lastwords.enable, faulthandler.dump_traceback, lastwords.dump_traceback):
            assert outcome(func) == ("RuntimeError", "sys.stderr is None", [])
        del sys.stderr
        missing = "lost sys.stderr" if MINOR >= 14 else "unable to get sys.stderr"
        for func in (faulthandler.enable, lastwords.enable):
            assert outcome(func) == ("RuntimeError", missing, [])
    finally:
        sys.stderr = saved
        faulthandler.disable()
        lastwords.disable()


def test_enable_disable_is_enabled():
    assert lastwords.is_enabled() is False
    assert lastwords.enable() is None
    assert lastwords.is_enabled() is True
    assert lastwords.disable() is True
    assert lastwords.is_enabled() is False
    assert lastwords.disable() is False


def test_file_object_is_kept_alive_and_flushed(tmp_path):
    path = tmp_path / "kept.txt"
    f = open(path, "w")
    f.write("pending ")
    lastwords.enable(f)
    assert path.read_text() == "pending "  # flushed by enable()
    refs = sys.getrefcount(f)
    lastwords.disable()
    assert sys.getrefcount(f) == refs - 1  # the reference is released
    f.close()


def test_flush_errors_are_ignored():
    class Stream:
        def fileno(self):
            return sys.__stderr__.fileno()

        def flush(self):
            raise OSError("flush failed")

    lastwords.enable(Stream())
    lastwords.disable()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        lastwords.dump_traceback(devnull)
    finally:
        os.close(devnull)


def test_version_attributes():
    assert isinstance(lastwords.__version__, str)
    assert isinstance(lastwords.version, tuple)
    assert ".".join(map(str, lastwords.version)) == lastwords.__version__


def test_test_helpers_match_stdlib():
    names = {"_sigsegv", "_sigabrt", "_sigfpe", "_read_null", "_stack_overflow", "_fatal_error_c_thread", "_fatal_error"}
    assert {n for n in names if hasattr(faulthandler, n)} == {n for n in names if hasattr(lastwords, n)}


def test_star_import_takes_what_the_stdlibs_gives():
    """The stdlib's module has no __all__: `from faulthandler import *` takes
    its public names only. lastwords' module (which stands in as
    faulthandler) gives the same names, no test helpers, no extras."""
    assert not hasattr(faulthandler, "__all__")
    assert not hasattr(lastwords._lastwords, "__all__")
    stdlib, ours = {}, {}
    exec("from faulthandler import *", stdlib)
    exec("from lastwords._lastwords import *", ours)
    stdlib.pop("__builtins__")
    ours.pop("__builtins__")
    # lastwords' own public names: its version (the stdlib has none).
    assert set(ours) - {"version"} == set(stdlib), (sorted(ours), sorted(stdlib))


def test_stack_overflow_helper_signature():
    # Called without enable it would crash; only check it exists and is callable.
    assert callable(lastwords._stack_overflow)
    if MINOR == 9:
        assert callable(lastwords._fatal_error)


def test_layout_source():
    """3.9-3.12 use the built-in tables; 3.13+ read _Py_DebugOffsets, which
    must agree with the offsets the compiler computed from that version's
    headers."""
    source, matches_table, _ = lastwords._lastwords._layout_info()
    assert source == ("_Py_DebugOffsets" if MINOR >= 13 else "built-in table")
    assert matches_table


@pytest.mark.skipif(MINOR >= 14, reason="c_stack and dump_c_stack exist from 3.14")
def test_no_dump_c_stack_before_314():
    # Code that feature-tests for 3.14's C stack functions sees what the
    # stdlib has; enable(c_stack=) is a lastwords addition
    # (test_c_stack_setting.py) that the signature does not show.
    assert not hasattr(lastwords, "dump_c_stack")
    assert "c_stack" not in (lastwords.enable.__doc__ or "") + str(lastwords.enable.__text_signature__)
    with pytest.raises(TypeError):
        faulthandler.enable(c_stack=False)
    lastwords.enable(c_stack=False)
    lastwords.disable()
