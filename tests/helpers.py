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
STDLIB = "faulthandler"
LASTWORDS = "lastwords"


@dataclass
class Result:
    output: str  # stderr, or the report file's text when the snippet wrote one
    stdout: str
    returncode: int

    @property
    def masked(self):
        """The output with thread ids masked (they differ between runs)."""
        return THREAD_ID.sub("0xTHREAD", self.output)


def run(code, module=LASTWORDS, *, env=None, args=(), timeout=60, cwd=None):
    """Run `code` in a fresh interpreter where `faulthandler` names `module`.

    The snippet is written to a file named ``snippet.py`` in `cwd` (so that its
    frames have a real file name) and its first line imports `module` as
    ``faulthandler``.
    """
    code = f"import {module} as faulthandler\n" + textwrap.dedent(code)
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
