"""Run snippets in child processes, under the stdlib and under lastwords.

Every crash happens in a child: the test reads what the child wrote and its
exit status. Differential tests take their expectation from the stdlib of the
same interpreter at run time, never from a copied string.
"""

import os
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass

MINOR = sys.version_info[1]
THREAD_ID = re.compile(r"0x[0-9a-f]{16}")
# 3.14+: the C stack section of a fatal report. Its addresses differ between
# runs, and lastwords names symbols where the stdlib cannot: differential tests
# compare everything else, and test_c_stack.py checks the section itself.
C_STACK = re.compile(
    r"^Current thread's C stack trace \(most recent call first\):\n(?:  .*\n)*", re.MULTILINE
)
STDLIB = "faulthandler"
LASTWORDS = "lastwords"


@dataclass
class Result:
    output: str  # stderr, or the report file's text when the snippet wrote one
    stdout: str
    returncode: int

    @property
    def masked(self):
        """The output with thread ids masked (they differ between runs) and
        the C stack section reduced to a placeholder."""
        return mask(self.output)

    @property
    def plain(self):
        """The report as CPython 3.9-3.13 would word it: thread ids masked,
        and the 3.14+ additions (thread names, the C stack section with its
        blank line) removed. For tests that spell out the expected text."""
        return plain(self.output)


THREAD_NAME = re.compile(r"^((?:Current thread|Thread) 0x[0-9a-f]+) \[.*\]( \(most recent call first\):)$", re.MULTILINE)


def mask(text):
    """See Result.masked."""
    return C_STACK.sub("<C stack>\n", THREAD_ID.sub("0xTHREAD", text))


# The C stack section with the blank line before it.
C_STACK_WITH_GAP = re.compile(r"^\n" + C_STACK.pattern, re.MULTILINE)


def plain(text):
    """See Result.plain."""
    text = C_STACK_WITH_GAP.sub("", text)
    text = THREAD_NAME.sub(r"\1\2", text)
    return THREAD_ID.sub("0xTHREAD", text)


# Threads parked at a known depth, on a line that does not change while they
# wait: the "parked" signal and the wait are C calls on the same line, so a
# dump sees the same stack whether it catches a thread just before or inside
# the wait. `park_threads([2, 5])` returns once every thread is parked.
PARKING = """\
import threading as _threading, _thread
_hold = _thread.allocate_lock(); _hold.acquire()
def park(ready, depth):
    if depth == 0:
        ready.release(); _hold.acquire(); _hold.release()
    else:
        park(ready, depth - 1)
def park_threads(depths):
    threads = []
    for depth in depths:
        ready = _thread.allocate_lock(); ready.acquire()
        t = _threading.Thread(target=park, args=(ready, depth), daemon=True)
        t.start()
        ready.acquire()
        threads.append(t)
    return threads
"""


def run(code, module=LASTWORDS, *, env=None, args=(), timeout=60, cwd=None, prelude=""):
    """Run `code` in a fresh interpreter where `faulthandler` names `module`.

    The snippet is written to a file named ``snippet.py`` in `cwd` (so that its
    frames have a real file name) and its first line imports `module` as
    ``faulthandler``.
    """
    code = f"import {module} as faulthandler\n" + prelude + textwrap.dedent(code)
    child_env = dict(os.environ)
    child_env.pop("PYTHONFAULTHANDLER", None)
    child_env.update(env or {})
    cwd = cwd or os.getcwd()
    path = os.path.join(cwd, "snippet.py")
    with open(path, "w", encoding="utf-8") as f:
        f.write(code)
    proc = subprocess.run(
        [sys.executable, "snippet.py", *args],
        cwd=cwd,
        env=child_env,
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=timeout,
    )
    return Result(proc.stderr, proc.stdout, proc.returncode)


def run_both(code, tmp_path, **kwargs):
    """The same snippet under the stdlib and under lastwords.

    Both run in the same directory (file names in the report are absolute, so
    they must match); afterwards each run's directory, with any file the
    snippet wrote, is moved to ``tmp_path / <module>``."""
    results = []
    work = tmp_path / "work"
    for module in (STDLIB, LASTWORDS):
        work.mkdir()
        results.append(run(code, module, cwd=str(work), **kwargs))
        work.rename(tmp_path / module)
    return results


def signal_status(signum):
    """The returncode of a child killed by `signum`."""
    return -int(signum)


def assert_same(stdlib, lastwords):
    """Byte-for-byte equal output (thread ids masked) and equal exit status."""
    assert lastwords.masked == stdlib.masked, (
        "lastwords output differs from the stdlib's\n--- stdlib\n"
        + stdlib.masked
        + "\n--- lastwords\n"
        + lastwords.masked
    )
    assert lastwords.returncode == stdlib.returncode


SIGNAL_NAMES = {
    signal.SIGSEGV: "Segmentation fault",
    signal.SIGBUS: "Bus error",
    signal.SIGILL: "Illegal instruction",
    signal.SIGABRT: "Aborted",
    signal.SIGFPE: "Floating-point exception" if MINOR >= 13 else "Floating point exception",
}
