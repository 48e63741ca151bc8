"""Standing in for faulthandler in a whole process: install(), LASTWORDS=1,
-X faulthandler / PYTHONFAULTHANDLER, and pytest's own faulthandler plugin."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from helpers import mask, run


def python(*args, env=None, cwd=None, timeout=60):
    child_env = dict(os.environ)
    for name in ("LASTWORDS", "PYTHONFAULTHANDLER"):
        child_env.pop(name, None)
    child_env.update(env or {})
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=child_env, cwd=cwd, timeout=timeout
    )


REPORT = "import faulthandler, lastwords._lastwords as n; print(faulthandler is n, faulthandler.is_enabled())"


@pytest.mark.parametrize(
    "args,env,expected",
    [
        ((), {}, "False False"),
        ((), {"LASTWORDS": "1"}, "True False"),
        ((), {"LASTWORDS": "0"}, "False False"),
        (("-X", "faulthandler"), {"LASTWORDS": "1"}, "True True"),
        ((), {"LASTWORDS": "1", "PYTHONFAULTHANDLER": "1"}, "True True"),
        (("-E",), {"LASTWORDS": "1", "PYTHONFAULTHANDLER": "1"}, "True False"),
        (("-I",), {"LASTWORDS": "1"}, "True False"),
    ],
)
def test_environment_switch(args, env, expected):
    proc = python(*args, "-c", REPORT, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected


def test_carried_over_handler_reports_once(tmp_path):
    """-X faulthandler enabled the stdlib before lastwords took over: one
    report, from lastwords, and the process still dies of SIGSEGV."""
    proc = python(
        "-X", "faulthandler", "-c", "import faulthandler; faulthandler._sigsegv()",
        env={"LASTWORDS": "1"},
    )
    assert proc.returncode == -signal.SIGSEGV
    assert proc.stderr.count("Fatal Python error: Segmentation fault") == 1
    assert '  File "<string>", line 1 in <module>\n' in proc.stderr


def test_install_in_process(tmp_path):
    result = run(
        """
        import sys, faulthandler as stdlib
        stdlib.enable()
        import lastwords
        lastwords.install()
        import faulthandler
        print(faulthandler is lastwords._lastwords, faulthandler.is_enabled(), stdlib.is_enabled())
        lastwords.install()  # twice: nothing changes
        print(sys.modules["faulthandler"] is lastwords._lastwords)
        """,
        module="lastwords",
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "True True False\nTrue\n"


def test_install_refuses_where_lastwords_cannot_dump(tmp_path):
    result = run(
        """
        import sys, warnings, faulthandler as stdlib
        stdlib.enable()
        import lastwords
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            lastwords.install()
        print(sys.modules["faulthandler"] is stdlib, stdlib.is_enabled(), w[0].category.__name__)
        """,
        module="lastwords",
        cwd=str(tmp_path),
        env={"_LASTWORDS_TEST_UNKNOWN_LAYOUT": "1"},
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "True True RuntimeWarning\n"


PYTEST_SUITE = '''
import sys, time
import lastwords
written = lambda timing: timing is not None and timing[2] >= timing[1] > 0

def test_uses_lastwords():
    # The module pytest's faulthandler plugin imported and enabled.
    import faulthandler
    assert faulthandler is lastwords._lastwords
    assert faulthandler.is_enabled()
    print("MARKER lastwords enabled by pytest")

def test_hangs():
    # Hung until pytest's timeout (faulthandler_timeout=1) has fired
    # lastwords' watchdog: it records when it began and wrote the dump.
    while not written(lastwords._lastwords._last_timeout_timing()): time.sleep(0.01)

def test_crashes():
    lastwords._sigsegv()
'''


def run_pytest(tmp_path, *args):
    (tmp_path / "test_target.py").write_text(PYTEST_SUITE)
    return python(
        "-m", "pytest", "-p", "no:cacheprovider", "-s", "-o", "faulthandler_timeout=1", *args, "test_target.py",
        env={"LASTWORDS": "1"},
        cwd=str(tmp_path),
    )


def test_pytest_plugin_enables_lastwords(tmp_path):
    proc = run_pytest(tmp_path, "-k", "uses_lastwords")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MARKER lastwords enabled by pytest" in proc.stdout


def test_pytest_timeout_dump_comes_from_lastwords(tmp_path):
    proc = run_pytest(tmp_path, "-k", "hangs")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stderr
    assert "Timeout (0:00:01)!\n" in out
    assert 'test_target.py", line 16 in test_hangs\n' in out
    # The watchdog has no thread state, so the main thread is not "Current".
    assert "Current thread" not in out


def test_pytest_crash_report_comes_from_lastwords(tmp_path):
    proc = run_pytest(tmp_path, "-k", "crashes")
    assert proc.returncode == -signal.SIGSEGV
    out = proc.stderr
    assert out.count("Fatal Python error: Segmentation fault\n\n") == 1
    assert 'test_target.py", line 19 in test_crashes\n' in out


# A low-level module that creates isolated subinterpreters (3.12: the private
# _xxsubinterpreters; 3.13+: _interpreters).
# Which module is faulthandler (lastwords' extension is called faulthandler
# too, so the name cannot tell), and whether it is enabled.
WHICH = "('lastwords' if faulthandler is sys.modules.get('lastwords._lastwords') else 'faulthandler')"


SUBINTERPRETERS = """
try:
    import _interpreters as interpreters
except ImportError:
    import _xxsubinterpreters as interpreters
"""
needs_subinterpreters = pytest.mark.skipif(
    sys.version_info < (3, 12), reason="isolated subinterpreters exist from 3.12"
)


@needs_subinterpreters
@pytest.mark.parametrize("enabled", [(), ("-X", "faulthandler")], ids=["installed", "enabled"])
def test_isolated_subinterpreters_stay_quiet(enabled):
    """lastwords cannot be loaded in an isolated subinterpreter; its .pth
    does nothing there, so creating some prints nothing (as without
    lastwords), and the main interpreter still has lastwords."""
    code = SUBINTERPRETERS + textwrap.dedent(
        """
        import faulthandler, sys
        for _ in range(3):
            interp = interpreters.create()
            interpreters.run_string(interp, "import sys; x = len(sys.modules)")
            interpreters.destroy(interp)
        print(WHICH, faulthandler.is_enabled())
        """
    ).replace("WHICH", WHICH)
    plain = python(*enabled, "-c", code)
    stood_in = python(*enabled, "-c", code, env={"LASTWORDS": "1"})
    assert stood_in.returncode == plain.returncode == 0, stood_in.stderr
    assert stood_in.stderr == plain.stderr == ""
    assert plain.stdout.startswith("faulthandler ")
    assert stood_in.stdout == plain.stdout.replace("faulthandler", "lastwords")


@needs_subinterpreters
def test_crash_in_a_subinterpreter_is_reported_as_by_the_stdlib(tmp_path):
    """A fatal signal on a thread running an isolated subinterpreter: the
    main interpreter's handler (lastwords, standing in) reports what the
    stdlib reports for the same program, and the process dies of it."""
    script = tmp_path / "subcrash.py"
    script.write_text(
        SUBINTERPRETERS
        + textwrap.dedent(
            """
            import faulthandler
            faulthandler.enable()
            def crash():
                interp = interpreters.create()
                interpreters.run_string(interp, "import signal; signal.raise_signal(signal.SIGSEGV)")
            crash()
            """
        )
    )
    stdlib = python(str(script), cwd=str(tmp_path))
    lastwords = python(str(script), cwd=str(tmp_path), env={"LASTWORDS": "1"})
    assert stdlib.returncode == lastwords.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault\n" in stdlib.stderr
    assert mask(lastwords.stderr) == mask(stdlib.stderr)


# -- install() and _start() are all or nothing ---------------------------------

STATE = f"import faulthandler, sys; print({WHICH}, faulthandler.is_enabled())"


def python_without_stderr(*args, env=None):
    """python(*args) with file descriptor 2 closed (`2>&-`)."""
    child_env = dict(os.environ)
    for name in ("LASTWORDS", "PYTHONFAULTHANDLER"):
        child_env.pop(name, None)
    child_env.update(env or {})
    return subprocess.run(
        ["/bin/sh", "-c", 'exec "$@" 2>&-', "sh", sys.executable, *args],
        capture_output=True, text=True, env=child_env, timeout=60,
    )  # fmt: skip


def one_warning(stderr, text):
    """stderr is exactly one line: a RuntimeWarning that contains `text`."""
    return len(stderr.splitlines()) == 1 and "RuntimeWarning: " in stderr and text in stderr


@pytest.mark.parametrize(
    "args,env",
    [
        (("-X", "faulthandler"), {}),
        ((), {"PYTHONFAULTHANDLER": "1"}),
        ((), {"LASTWORDS_ENABLE": "1"}),
        (("-X", "faulthandler"), {"LASTWORDS_ENABLE": "1"}),
    ],
    ids=["-X faulthandler", "PYTHONFAULTHANDLER", "LASTWORDS_ENABLE", "both"],
)
def test_no_stderr_leaves_the_process_as_without_lastwords(args, env):
    """With stderr closed there is no file to move the handler to: the stdlib
    stays in charge (still enabled where it was), nothing is printed."""
    plain = python_without_stderr(*args, "-c", STATE, env=env)
    stood_in = python_without_stderr(*args, "-c", STATE, env={"LASTWORDS": "1", **env})
    assert stood_in.returncode == plain.returncode == 0
    assert stood_in.stdout == plain.stdout
    assert plain.stdout.startswith("faulthandler ")


@pytest.mark.parametrize("args", [(), ("-X", "faulthandler")], ids=["disabled", "enabled"])
@pytest.mark.parametrize(
    "failure,warning",
    [
        ({"_LASTWORDS_TEST_UNKNOWN_LAYOUT": "1", "LASTWORDS_ENABLE": "1"}, "lastwords cannot stand in for faulthandler"),
        ({"LASTWORDS_ENABLE": "1", "LASTWORDS_FILE": "/nonexistent/report.txt"}, "lastwords cannot open LASTWORDS_FILE"),
    ],
    ids=["unknown-layout", "unopenable-file"],
)
@pytest.mark.parametrize("warnings", ["default", "error"])
def test_start_failure_leaves_the_process_as_without_lastwords(args, failure, warning, warnings):
    """One warning on stderr (one line, also under -W error), and the
    process goes on as without lastwords; _start() again warns no more (site
    runs lastwords.pth twice in a venv). With stderr closed, not a byte."""
    flags = ("-W", "error") if warnings == "error" else ()
    code = "import lastwords; lastwords._start(); " + STATE
    plain = python(*flags, *args, "-c", STATE)
    stood_in = python(*flags, *args, "-c", code, env={"LASTWORDS": "1", **failure})
    assert stood_in.returncode == plain.returncode == 0, stood_in.stderr
    assert stood_in.stdout == plain.stdout
    assert one_warning(stood_in.stderr, warning), stood_in.stderr
    silent = python_without_stderr(*flags, *args, "-c", code, env={"LASTWORDS": "1", **failure})
    assert silent.returncode == 0
    assert silent.stdout == plain.stdout


def test_install_puts_the_stdlib_back_when_enable_fails(tmp_path):
    """The stdlib's handler is disabled before lastwords is enabled in its
    place; when that enable() fails, the stdlib's is enabled again and its
    module stays faulthandler. (Here sys.stderr's fileno() works once, for
    install()'s own check, then fails.)"""
    result = run(
        """
        import sys, warnings, faulthandler as stdlib
        stdlib.enable()
        class Flaky:
            calls = 0
            def fileno(self):
                Flaky.calls += 1
                if Flaky.calls > 1:
                    raise OSError("gone")
                return 2
            def flush(self):
                pass
        real, sys.stderr = sys.stderr, Flaky()
        import lastwords
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            lastwords.install()
        sys.stderr = real
        print(sys.modules["faulthandler"] is stdlib, stdlib.is_enabled(), lastwords.is_enabled())
        print([str(x.message) for x in w])
        """,
        module="lastwords",
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "True True False\n['lastwords cannot stand in for faulthandler: gone']\n"
