"""`python -m lastwords run ...`: the main job, a program crashing under
lastwords with its report on screen."""

import signal
import subprocess
import sys

from helpers import plain


def lastwords_run(*args, cwd):
    proc = subprocess.run(
        [sys.executable, "-m", "lastwords", "run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc


def test_run_script_crash_report(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(
        "import sys, lastwords\n"
        "def crash():\n"
        "    print('args', sys.argv, flush=True)\n"
        "    lastwords._sigsegv()\n"
        "crash()\n"
    )
    proc = lastwords_run("prog.py", "a", "--flag", cwd=tmp_path)
    assert proc.returncode == -signal.SIGSEGV
    assert proc.stdout == "args ['prog.py', 'a', '--flag']\n"
    lines = plain(proc.stderr).splitlines()
    assert lines[0] == "Fatal Python error: Segmentation fault"
    assert lines[1] == ""
    assert lines[2] == "Current thread 0xTHREAD (most recent call first):"
    assert lines[3] == '  File "prog.py", line 4 in crash'
    assert lines[4] == '  File "prog.py", line 5 in <module>'
    # Then the runner's own frames (runpy), outermost last.
    assert all(line.startswith("  File ") for line in lines[5:])


def test_run_module_and_report_file(tmp_path):
    (tmp_path / "crashmod.py").write_text(
        "import lastwords\n"
        "if __name__ == '__main__':\n"
        "    lastwords._sigabrt()\n"
    )
    proc = lastwords_run("--file", "report.txt", "-m", "crashmod", cwd=tmp_path)
    assert proc.returncode == -signal.SIGABRT
    report = (tmp_path / "report.txt").read_text()
    assert plain(report).startswith("Fatal Python error: Aborted\n\nCurrent thread 0xTHREAD (most recent")
    assert 'crashmod.py", line 3 in <module>\n' in report


def test_run_without_program_is_a_usage_error(tmp_path):
    proc = lastwords_run(cwd=tmp_path)
    assert proc.returncode == 2
    assert "a script path or -m module is required" in proc.stderr


def test_example_program(tmp_path):
    """The README's first command runs examples/crash.py: keep it crashing."""
    import pathlib

    example = pathlib.Path(__file__).parent.parent / "examples" / "crash.py"
    proc = lastwords_run(str(example), cwd=tmp_path)
    assert proc.returncode == -signal.SIGSEGV
    assert proc.stderr.startswith("Fatal Python error: Segmentation fault\n\n")
    assert plain(proc.stderr).count("(most recent call first)") == 2
    assert 'crash.py", line 22 in checksum\n' in proc.stderr
