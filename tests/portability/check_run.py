"""The installed wheel at work on an older Linux than the build machine's: the
native command runs, and a crashing program started each way a user would
start it gets lastwords' report, equal to the stdlib's, and dies of SIGSEGV.
Every crash happens in a child process."""

import os
import re
import signal
import subprocess
import sys

import pytest

import installed

# Prints which module `faulthandler` is, then crashes.
# Which module is in charge: lastwords' extension stands in under the name
# `faulthandler` too, but is the module registered as lastwords._lastwords.
CRASH = (
    "import faulthandler, sys; "
    "print(faulthandler is sys.modules.get('lastwords._lastwords'), flush=True); "
    "faulthandler._sigsegv()"
)
THREAD_ID = re.compile(r"0x[0-9a-f]{16}")
FIRST_LINES = [
    "Fatal Python error: Segmentation fault",
    "",
    "Current thread 0xTHREAD (most recent call first):",
    '  File "<string>", line 1 in <module>',
]


def launch(argv, env=None, cwd=None):
    child_env = {k: v for k, v in os.environ.items() if k not in ("LASTWORDS", "PYTHONFAULTHANDLER")}
    child_env.update(env or {})
    return subprocess.run(
        argv, capture_output=True, text=True, env=child_env, cwd=cwd, stdin=subprocess.DEVNULL, timeout=60
    )


def mask(text):
    return THREAD_ID.sub("0xTHREAD", text)


def test_this_glibc_is_older_than_the_build_machines():
    # The host build's wheel is tagged manylinux_2_34: here it would not install.
    assert installed.glibc() < (2, 34), installed.glibc()
    assert installed.glibc() >= installed.BASELINE


def test_native_command_version():
    proc = launch([installed.command(), "--version"])
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == f"lastwords {installed.version()}\n"


@pytest.fixture(scope="module")
def stdlib_report(tmp_path_factory):
    """The reference: the same crash under the stdlib's faulthandler."""
    proc = launch([sys.executable, "-X", "faulthandler", "-c", CRASH], cwd=tmp_path_factory.mktemp("stdlib"))
    assert proc.returncode == -signal.SIGSEGV
    assert proc.stdout == "False\n"
    return proc.stderr


WAYS = {
    "python -m lastwords run": lambda: ([sys.executable, "-m", "lastwords", "run", "-c", CRASH], {}),
    "lastwords run": lambda: ([installed.command(), "run", "-c", CRASH], {}),
    "LASTWORDS=1 python -X faulthandler": lambda: ([sys.executable, "-X", "faulthandler", "-c", CRASH], {"LASTWORDS": "1"}),
}


@pytest.mark.parametrize("way", WAYS)
def test_crash_report(way, stdlib_report, tmp_path):
    argv, env = WAYS[way]()
    proc = launch(argv, env=env, cwd=tmp_path)
    assert proc.returncode == -signal.SIGSEGV, proc.stderr
    assert proc.stdout == "True\n", "the report must be lastwords', not the stdlib's"
    assert mask(proc.stderr).splitlines()[: len(FIRST_LINES)] == FIRST_LINES
    assert mask(proc.stderr) == mask(stdlib_report)
