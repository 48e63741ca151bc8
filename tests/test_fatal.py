"""Fatal signals: each crash in a child, the report compared byte for byte with
the stdlib's report of the same program, and the exit status checked."""

import signal

import pytest

import faulthandler

from helpers import MINOR, PARKING, SIGNAL_NAMES, assert_same, mask, run, run_both, signal_status

CRASHES = {
    "sigsegv": ("faulthandler._sigsegv()", signal.SIGSEGV),
    "sigsegv_release_gil": ("faulthandler._sigsegv(True)", signal.SIGSEGV),
    "sigabrt": ("faulthandler._sigabrt()", signal.SIGABRT),
    "sigfpe": ("faulthandler._sigfpe()", signal.SIGFPE),
    "sigbus": ("import signal; signal.raise_signal(signal.SIGBUS)", signal.SIGBUS),
    "sigill": ("import signal; signal.raise_signal(signal.SIGILL)", signal.SIGILL),
}
if hasattr(faulthandler, "_read_null"):  # removed in 3.15
    CRASHES["read_null"] = ("faulthandler._read_null()", signal.SIGSEGV)


@pytest.mark.parametrize("name", sorted(CRASHES))
def test_fatal_signal_matches_stdlib(name, tmp_path):
    crash, signum = CRASHES[name]
    code = f"""
        def outer():
            inner()
        def inner():
            {crash}
        faulthandler.enable()
        outer()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert lastwords.returncode == signal_status(signum)
    assert lastwords.output.startswith(f"Fatal Python error: {SIGNAL_NAMES[signum]}\n\n")


def test_exact_report_text(tmp_path):
    """Not only equal to the stdlib: the text itself, spelled out."""
    result = run(
        """
        def crash():
            faulthandler._sigsegv()
        faulthandler.enable()
        crash()
        """,
        cwd=str(tmp_path),
    )
    path = tmp_path / "snippet.py"
    assert result.returncode == -signal.SIGSEGV
    # Line 1 of the snippet is the import of lastwords.
    assert result.plain == (
        "Fatal Python error: Segmentation fault\n\n"
        "Current thread 0xTHREAD (most recent call first):\n"
        f'  File "{path}", line 4 in crash\n'
        f'  File "{path}", line 6 in <module>\n'
    )


@pytest.mark.parametrize("all_threads", [True, False])
def test_fatal_with_threads(all_threads, tmp_path):
    code = f"""
        park_threads([2, 5])
        faulthandler.enable(all_threads={all_threads})
        faulthandler._sigsegv()
    """
    stdlib, lastwords = run_both(code, tmp_path, prelude=PARKING)
    assert_same(stdlib, lastwords)
    assert lastwords.plain.count("(most recent call first)") == (3 if all_threads else 1)


def test_fatal_in_a_python_thread(tmp_path):
    code = """
        import threading
        def crash():
            faulthandler._sigsegv()
        faulthandler.enable()
        t = threading.Thread(target=crash)
        t.start()
        t.join()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert lastwords.returncode == -signal.SIGSEGV


def test_fatal_in_a_thread_without_python_state(tmp_path):
    """Py_FatalError in a C thread: CPython prints its own report, then calls
    abort(). The stdlib disables itself first; lastwords recognises the fatal
    error on the stack and stays silent, so there is exactly one report."""
    code = """
        faulthandler.enable()
        faulthandler._fatal_error_c_thread()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    # The report is CPython's own. Where CPython lists extension modules in it
    # (3.10, 3.11), it lists lastwords too: it is one, and it is loaded.
    if "\nExtension modules:" in lastwords.output and MINOR in (10, 11):
        assert lastwords.masked == stdlib.masked + "\nExtension modules: lastwords._lastwords (total: 1)\n"
    elif MINOR >= 14:
        # The 3.14+ stdlib no longer disables itself: it adds a second,
        # "Aborted" report after CPython's own.
        assert stdlib.masked.startswith(lastwords.masked)
        assert stdlib.output.count("Fatal Python error") == 2
    else:
        assert lastwords.masked == stdlib.masked
    assert lastwords.output.count("Fatal Python error") == 1
    assert "Fatal Python error: faulthandler_fatal_error_thread: in new thread\n" in lastwords.output
    assert lastwords.returncode == -signal.SIGABRT
    # The stdlib itself dies of SIGSEGV here on 3.12+ after its report (a
    # stdlib bug: it lists extension modules from a thread with no state).
    assert stdlib.returncode in (-signal.SIGABRT, -signal.SIGSEGV)


def test_segfault_in_a_c_thread(tmp_path):
    """A C thread with no Python thread state faults: every Python thread is
    listed, none as the current one."""
    code = """
        import ctypes, signal, time
        libc = ctypes.CDLL(None)
        thread = ctypes.c_ulong()
        # The thread's start routine is raise() itself, its argument the signal.
        start = ctypes.cast(libc["raise"], ctypes.c_void_p)
        faulthandler.enable()
        # One line, so that the main thread's line is the same whether the
        # signal arrives during pthread_create() or during the sleep.
        libc.pthread_create(ctypes.byref(thread), None, start, ctypes.c_void_p(signal.SIGSEGV)); time.sleep(30)
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert lastwords.returncode == -signal.SIGSEGV
    assert "Current thread" not in lastwords.plain
    assert "\nThread 0x" in lastwords.plain


def test_stack_overflow_is_reported(tmp_path):
    code = """
        faulthandler.enable()
        faulthandler._stack_overflow()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert lastwords.returncode == -signal.SIGSEGV


def test_deep_recursion_limits(tmp_path):
    code = """
        import sys
        sys.setrecursionlimit(10000)
        def recurse(n):
            if n == 0:
                faulthandler._sigsegv()
            recurse(n - 1)
        faulthandler.enable()
        recurse(250)
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert lastwords.output.count("  File ") == 100


@pytest.mark.parametrize("how", ["fileobj", "fd"])
def test_report_to_a_file_object_and_an_fd(how, tmp_path):
    target = "f" if how == "fileobj" else "f.fileno()"
    code = f"""
        f = open("report.txt", "w")
        faulthandler.enable({target})
        faulthandler._sigsegv()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert stdlib.output == lastwords.output == ""
    stdlib_text, lastwords_text = (
        mask((tmp_path / m / "report.txt").read_text()) for m in ("faulthandler", "lastwords")
    )
    assert lastwords_text.startswith("Fatal Python error: Segmentation fault\n\n")
    assert lastwords_text == stdlib_text
    assert lastwords.returncode == stdlib.returncode == -signal.SIGSEGV


def test_enable_twice_moves_to_the_new_file(tmp_path):
    result = run(
        """
        first = open("first.txt", "w")
        second = open("second.txt", "w")
        faulthandler.enable(first)
        faulthandler.enable(second)
        faulthandler._sigsegv()
        """,
        cwd=str(tmp_path),
    )
    assert result.returncode == -signal.SIGSEGV
    assert (tmp_path / "first.txt").read_text() == ""
    assert (tmp_path / "second.txt").read_text().startswith("Fatal Python error: Segmentation fault")


def test_disable_restores_the_default_action(tmp_path):
    result = run(
        """
        faulthandler.enable()
        assert faulthandler.disable() is True
        assert faulthandler.disable() is False
        assert faulthandler.is_enabled() is False
        faulthandler._sigsegv()
        """,
        cwd=str(tmp_path),
    )
    assert result.output == ""
    assert result.returncode == -signal.SIGSEGV


def test_disable_restores_a_python_handler(tmp_path):
    """The previous handler is put back exactly: here a Python one."""
    result = run(
        """
        import signal, sys
        def on_abort(signum, frame):
            print("python handler ran", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGABRT, on_abort)
        faulthandler.enable()
        faulthandler.disable()
        signal.raise_signal(signal.SIGABRT)
        """,
        cwd=str(tmp_path),
    )
    assert result.stdout == "python handler ran\n"
    assert result.returncode == 7


def test_garbage_collecting_line(tmp_path):
    code = """
        import gc
        class Crash:
            def __del__(self):
                faulthandler._sigsegv()
        a = Crash()
        a.cycle = a
        del a
        faulthandler.enable()
        gc.collect()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    if MINOR >= 10:
        assert "  Garbage-collecting\n" in lastwords.output


def test_extension_modules_listed(tmp_path):
    # A non-stdlib name for an extension module: both implementations list it
    # (3.10+; 3.9 has no such list).
    code = """
        import sys, _socket
        sys.modules["not_in_the_stdlib"] = _socket
        faulthandler.enable()
        faulthandler._sigsegv()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    listed = "\nExtension modules: not_in_the_stdlib (total: 1)\n" in lastwords.output
    assert listed == (MINOR >= 10)


def test_many_extension_modules_listed_in_order(tmp_path):
    # lastwords fetches sys.modules' entries 32 at a time: 70 extension
    # entries between stdlib ones come out whole and in the dict's order.
    code = """
        import os, sys, _socket, _struct
        for i in range(70):
            sys.modules[f"ext{i:02}"] = _socket if i % 2 else _struct
            sys.modules[f"plain{i:02}"] = os  # a Python module: left out
        faulthandler.enable()
        faulthandler._sigsegv()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    names = ", ".join(f"ext{i:02}" for i in range(70))
    listed = f"\nExtension modules: {names} (total: 70)\n" in lastwords.output
    assert listed == (MINOR >= 10)


def test_unknown_layout_refuses_at_enable(tmp_path):
    result = run(
        """
        import sys
        try:
            faulthandler.enable()
        except RuntimeError as e:
            print("RuntimeError:", e)
        try:
            faulthandler.dump_traceback()
        except RuntimeError as e:
            print("RuntimeError:", e)
        print("enabled:", faulthandler.is_enabled())
        """,
        cwd=str(tmp_path),
        env={"_LASTWORDS_TEST_UNKNOWN_LAYOUT": "1"},
    )
    import sys

    version = sys.version.split()[0]
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.output
    assert len(lines) == 3
    for line in lines[:2]:
        assert line.startswith(f"RuntimeError: lastwords cannot dump tracebacks on cpython {version}")
        assert "memory layout is not known" in line
    assert lines[2] == "enabled: False"


@pytest.mark.parametrize("reader", ["pipe", "plain", "vm_readv"])
def test_every_read_method_gives_the_same_report(reader, tmp_path):
    """process_vm_readv, the pipe probe (where seccomp refuses it) and plain
    loads all produce the stdlib's report."""
    code = """
        park_threads([1, 3])
        def crash():
            faulthandler._sigsegv()
        faulthandler.enable()
        crash()
    """
    stdlib, lastwords = run_both(code, tmp_path, prelude=PARKING, env={"LASTWORDS_READER": reader})
    assert_same(stdlib, lastwords)
    assert lastwords.returncode == -signal.SIGSEGV


def test_two_threads_fault_at_once(tmp_path):
    """Two threads get different fatal signals at the same moment: every run
    ends with one whole report (header, both threads, the main thread's
    frames) and the process dies of the signal its report names. The stdlib
    often prints two headers or a cut report here."""
    code = """
        import ctypes, signal, sys, threading
        libc = ctypes.CDLL(None)  # CDLL: the call releases the GIL
        barrier = threading.Barrier(2)
        def fault(signum):
            barrier.wait()
            getattr(libc, "raise")(signum)
        faulthandler.enable()
        t = threading.Thread(target=fault, args=(signal.SIGFPE,))
        t.start()
        def main_thread():
            fault(signal.SIGSEGV)
        main_thread()
        t.join()
    """
    names = {SIGNAL_NAMES[signal.SIGSEGV]: signal.SIGSEGV, SIGNAL_NAMES[signal.SIGFPE]: signal.SIGFPE}
    for attempt in range(12):
        result = run(code, cwd=str(tmp_path))
        out = result.plain
        assert out.count("Fatal Python error: ") == 1, out
        header = out.splitlines()[0].removeprefix("Fatal Python error: ")
        assert result.returncode == -names[header], (header, result.returncode, out)
        # Both threads are listed and the main thread's listing is complete.
        assert out.count("(most recent call first):") == 2, out
        assert 'snippet.py", line 14 in <module>\n' in out, out
