"""register(signum, chain=True): after the dump, the signal's previous action
happens, exactly as with the stdlib — whatever that action is (the default
action, SIG_IGN, a Python handler, a C handler) and whatever the default
action of the signal does (terminate, ignore, stop, dump core).

Each case runs under the stdlib and under lastwords; the outcomes (what the
program printed, the report, whether it stopped, how it ended) must be equal.
"""

import os
import resource
import signal
import sys
import textwrap
import time

import pytest

from helpers import mask

PROGRAM = textwrap.dedent(
    """\
    import ctypes, os, signal, sys
    import {module} as faulthandler
    SIG = signal.{signal}
    kind = {kind!r}
    if kind == "SIG_IGN":
        signal.signal(SIG, signal.SIG_IGN)
    elif kind == "python":
        signal.signal(SIG, lambda signum, frame: print("python handler", flush=True))
    elif kind == "C":
        # A C handler: _exit(signum), so the process ends with status signum.
        libc = ctypes.CDLL(None)
        libc.signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.signal.restype = ctypes.c_void_p
        libc.signal(SIG, ctypes.cast(libc._exit, ctypes.c_void_p).value)
    faulthandler.register(SIG, chain=True, all_threads=False)
    print("before", flush=True)
    os.kill(os.getpid(), SIG)
    print("after", flush=True)
    """
)

# A report loop (the bug this guards against) must not fill the disk: the
# child may write at most this much before SIGXFSZ ends it.
OUTPUT_LIMIT = 1 << 20


def run_case(tmp_path, module, signame, kind):
    """Run the program; returns (stdout, stderr, events) where events lists
    what the parent saw: "stopped" (then the child was continued) and the
    final "exit N" or "signal NAME"."""
    # Both runs use the same directory (file names in the report are
    # absolute), renamed afterwards.
    work = tmp_path / "work"
    work.mkdir()
    (work / "prog.py").write_text(PROGRAM.format(module=module, signal=signame, kind=kind))
    out, err = work / "stdout", work / "stderr"
    pid = os.fork()
    if pid == 0:  # the child: a new process group, so that a stop signal stops it alone
        try:
            os.setpgid(0, 0)
            os.chdir(work)
            resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            for fd, path in ((1, out), (2, err)):
                f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(f, fd)
            env = {k: v for k, v in os.environ.items() if not k.startswith(("LASTWORDS", "PYTHONFAULTHANDLER"))}
            os.execve(sys.executable, [sys.executable, "prog.py"], env)
        finally:
            os._exit(127)
    events = []
    deadline = time.monotonic() + 30
    while True:
        waited, status = os.waitpid(pid, os.WUNTRACED | os.WNOHANG)
        if waited == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                events.append("timeout")
                break
            time.sleep(0.005)  # polling the child's state, not synchronising
            continue
        if os.WIFSTOPPED(status):
            events.append("stopped by " + signal.Signals(os.WSTOPSIG(status)).name)
            os.kill(pid, signal.SIGCONT)
            continue
        if os.WIFSIGNALED(status):
            events.append("killed by " + signal.Signals(os.WTERMSIG(status)).name)
        else:
            events.append(f"exit {os.WEXITSTATUS(status)}")
        break
    result = out.read_text(), err.read_text(errors="backslashreplace"), events
    work.rename(tmp_path / module)
    return result


SIGNALS = [
    "SIGTERM",  # default: terminate
    "SIGUSR1",  # default: terminate
    "SIGHUP",  # default: terminate
    "SIGCHLD",  # default: ignore
    "SIGTSTP",  # default: stop
    "SIGQUIT",  # default: core dump
]
KINDS = ["SIG_DFL", "SIG_IGN", "python", "C"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("signame", SIGNALS)
def test_chain_ends_like_the_stdlib(signame, kind, tmp_path):
    stdlib = run_case(tmp_path, "faulthandler", signame, kind)
    lastwords = run_case(tmp_path, "lastwords", signame, kind)
    assert lastwords[2] == stdlib[2], f"outcome: stdlib {stdlib[2]}, lastwords {lastwords[2]}"
    assert lastwords[0] == stdlib[0]
    assert mask(lastwords[1]) == mask(stdlib[1])
    # One dump, then the previous action.
    assert lastwords[1].count("Stack (most recent call first):") == 1


def test_default_terminating_action_ends_the_process(tmp_path):
    """The case the issue reported: one dump, then death by SIGTERM."""
    out, err, events = run_case(tmp_path, "lastwords", "SIGTERM", "SIG_DFL")
    assert events == ["killed by SIGTERM"]
    assert out == "before\n"
    assert err.count("Stack (most recent call first):") == 1
