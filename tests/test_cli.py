"""`lastwords run ...` and `python -m lastwords run ...`: the main job, a
program crashing under lastwords with its report on screen. Everything after
`run` means what it means to `python`: each case runs under plain `python`
with the stdlib's faulthandler as well, and the two must agree."""

import os
import shutil
import signal
import subprocess
import sys
import sysconfig

import pytest

from helpers import mask

NATIVE = os.path.join(sysconfig.get_path("scripts"), "lastwords")


def launch(argv, cwd, env=None):
    child_env = dict(os.environ)
    for name in ("LASTWORDS", "LASTWORDS_ENABLE", "LASTWORDS_FILE", "PYTHONFAULTHANDLER"):
        child_env.pop(name, None)
    child_env.update(env or {})
    return subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, timeout=60, env=child_env, stdin=subprocess.DEVNULL
    )


# The three ways to start a program: plain Python with the stdlib's handler
# (the reference), lastwords' native command, and `python -m lastwords`.
def plain_python(args, cwd):
    return launch([sys.executable, "-X", "faulthandler", *args], cwd)


def native_run(args, cwd, options=()):
    return launch([NATIVE, *options, "run", *args], cwd)


def module_run(args, cwd, options=()):
    return launch([sys.executable, "-m", "lastwords", *options, "run", *args], cwd)


RUNNERS = [native_run, module_run]


def test_the_native_command_is_installed():
    assert os.access(NATIVE, os.X_OK), NATIVE
    with open(NATIVE, "rb") as f:
        assert f.read(4) == b"\x7fELF", "the lastwords command must be the native executable"


CRASH = (
    "import sys, faulthandler\n"
    "def crash():\n"
    "    print('args', sys.argv, flush=True)\n"
    "    faulthandler._sigsegv()\n"
    "crash()\n"
)


@pytest.mark.parametrize("runner", RUNNERS, ids=["native", "module"])
def test_run_script_report_equals_pythons(runner, tmp_path):
    (tmp_path / "prog.py").write_text(CRASH)
    expected = plain_python(["prog.py", "a", "--flag"], tmp_path)
    got = runner(["prog.py", "a", "--flag"], tmp_path)
    assert expected.returncode == -signal.SIGSEGV
    assert got.returncode == expected.returncode
    assert got.stdout == expected.stdout
    assert mask(got.stderr) == mask(expected.stderr)


@pytest.mark.parametrize("runner", RUNNERS, ids=["native", "module"])
def test_run_module_and_report_file(runner, tmp_path):
    (tmp_path / "crashmod.py").write_text(
        "import faulthandler\n"
        "if __name__ == '__main__':\n"
        "    faulthandler._sigabrt()\n"
    )
    expected = plain_python(["-m", "crashmod"], tmp_path)
    got = runner(["-m", "crashmod"], tmp_path, options=("--file", "report.txt"))
    assert got.returncode == expected.returncode == -signal.SIGABRT
    assert got.stderr == ""
    assert mask((tmp_path / "report.txt").read_text()) == mask(expected.stderr)


@pytest.mark.parametrize("runner", RUNNERS, ids=["native", "module"])
def test_module_options_belong_to_the_module(runner, tmp_path):
    (tmp_path / "echo.py").write_text("import sys; print(sys.argv[1:])\n")
    got = runner(["-m", "echo", "-q", "--file", "x"], tmp_path)
    assert got.returncode == 0, got.stderr
    assert got.stdout == "['-q', '--file', 'x']\n"


@pytest.mark.parametrize("runner", RUNNERS, ids=["native", "module"])
def test_missing_script_is_pythons_error(runner, tmp_path):
    expected = plain_python(["missing.py"], tmp_path)
    got = runner(["missing.py"], tmp_path)
    assert got.returncode == expected.returncode == 2
    assert got.stderr == expected.stderr


def test_closed_standard_descriptors_stay_closed(tmp_path):
    """Started with stdin and stdout closed, the program sees them closed,
    as under plain Python (the native command fills them with /dev/null for
    its own work, and closes them again before it execs Python)."""
    (tmp_path / "fds.py").write_text(
        "import os, sys\n"
        "def is_open(fd):\n"
        "    try:\n"
        "        os.fstat(fd)\n"
        "        return True\n"
        "    except OSError:\n"
        "        return False\n"
        "print(sys.stdin is None, sys.stdout is None, is_open(0), is_open(1), file=sys.stderr)\n"
    )

    def closed_launch(argv):
        env = {k: v for k, v in os.environ.items() if not k.startswith("LASTWORDS")}

        def close_in_and_out():
            os.close(0)
            os.close(1)

        return subprocess.run(argv, cwd=tmp_path, stderr=subprocess.PIPE, text=True, timeout=60, env=env,
                              preexec_fn=close_in_and_out)

    expected = closed_launch([sys.executable, "-X", "faulthandler", "fds.py"])
    assert (expected.returncode, expected.stderr) == (0, "True True False False\n")
    for argv in ([NATIVE, "run", "fds.py"], [sys.executable, "-m", "lastwords", "run", "fds.py"]):
        got = closed_launch(argv)
        assert (got.returncode, got.stderr) == (0, expected.stderr), argv


def test_without_a_command_is_a_usage_error(tmp_path):
    for argv in ([NATIVE], [sys.executable, "-m", "lastwords"]):
        proc = launch(argv, tmp_path)
        assert proc.returncode == 2
        assert "a command is required" in proc.stderr


def test_example_program(tmp_path):
    """The README's first command runs examples/crash.py: keep it crashing."""
    import pathlib

    example = pathlib.Path(__file__).parent.parent / "examples" / "crash.py"
    proc = module_run([str(example)], tmp_path)
    assert proc.returncode == -signal.SIGSEGV
    assert proc.stderr.startswith("Fatal Python error: Segmentation fault\n\n")
    assert mask(proc.stderr).count("(most recent call first)") == 2
    assert 'crash.py", line 22 in checksum\n' in proc.stderr
