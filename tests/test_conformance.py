"""CPython's own test_faulthandler.py, with lastwords standing in for
faulthandler, on the interpreter running pytest (tests/conformance/runner.py).
"""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

RUNNER = Path(__file__).parent / "conformance" / "runner.py"
TEST_FILE = os.path.join(sysconfig.get_path("stdlib"), "test", "test_faulthandler.py")


@pytest.mark.skipif(
    not os.path.exists(TEST_FILE),
    reason=f"{TEST_FILE} not found (Debian and Ubuntu ship it in "
    f"libpython{sys.version_info[0]}.{sys.version_info[1]}-testsuite)",
)
def test_cpython_test_faulthandler(summary_lines):
    # A child process: the runner swaps sys.modules["faulthandler"] and
    # installs signal handlers, which must not leak into this pytest process.
    proc = subprocess.run(
        [sys.executable, str(RUNNER)],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=600,
    )
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    summary = proc.stdout.rstrip().rpartition("\n")[2]
    summary_lines.append(summary)
    assert proc.returncode == 0, summary or proc.stderr
