"""A wrong layout (a patched distribution build, an unusual configure flag)
must never crash the process that imports lastwords: the layout is checked
through a checked reader, and a failed check leaves the stdlib in charge.
`_LASTWORDS_TEST_CORRUPT_LAYOUT=FIELD` moves one offset far away."""

import os
import subprocess
import sys

import pytest

FIELDS = ["tstate_next", "tstate_interp", "interp_threads_head", "frame_code", "code_filename"]


def python(*args, env):
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("LASTWORDS", "PYTHONFAULTHANDLER"))}
    child_env.update(env)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=child_env, timeout=60)


@pytest.mark.parametrize("field", FIELDS)
def test_enable_raises_instead_of_crashing(field):
    proc = python(
        "-c",
        "import lastwords\n"
        "try:\n"
        "    lastwords.enable()\n"
        "except RuntimeError as e:\n"
        "    print('RuntimeError', e)\n",
        env={"_LASTWORDS_TEST_CORRUPT_LAYOUT": field},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("RuntimeError lastwords cannot dump tracebacks on cpython "), proc.stdout
    assert "layout check failed" in proc.stdout


@pytest.mark.parametrize("field", FIELDS)
def test_standing_in_leaves_the_stdlib_in_charge(field):
    proc = python(
        "-X", "faulthandler", "-c",
        "import faulthandler; print(faulthandler.__name__, faulthandler.is_enabled())",
        env={"_LASTWORDS_TEST_CORRUPT_LAYOUT": field, "LASTWORDS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "faulthandler True\n"
    assert "lastwords cannot stand in for faulthandler" in proc.stderr
