"""lastwords-remote against real processes of every interpreter on the machine.

Run with tests/remote/run (it builds crates/remote's `discover` example, then
runs this file with the host's pytest). Each test starts targets
(tests/remote/target.py) of CPython 2.7 and 3.9-3.13 from pyenv and 3.14,
3.14d, 3.15, 3.15d inside the sid root (scripts/sid-root), waits for their
readiness line (no sleeps), runs `discover PID` on them and compares what it
found with what the target says about itself.

Not named test_*.py: the per-interpreter runs of scripts/test must not
collect it (it starts every interpreter itself, from the host).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(os.path.dirname(HERE))
TARGET = os.path.join(HERE, "target.py")
DISCOVER = os.environ.get(
    "LASTWORDS_DISCOVER", os.path.join(TREE, "target", "release", "examples", "discover")
)
PYENV = os.path.expanduser("~/.pyenv/versions")
SID_ROOT = os.path.join(TREE, "scripts", "sid-root")
GUEST_TREE = "/work/lastwords"

# name -> (pyenv version directory | sid executable, expected (major, minor), debug)
PYENV_VERSIONS = {
    "2.7": "2.7.18",
    "3.9": "3.9.18",
    "3.10": "3.10.13",
    "3.11": "3.11.7",
    "3.12": "3.12.1",
    "3.13": "3.13.0",
}
SID_VERSIONS = {
    "3.14": "python3.14",
    "3.14d": "python3.14d",
    "3.15": "python3.15",
    "3.15d": "python3.15d",
}
ALL = list(PYENV_VERSIONS) + list(SID_VERSIONS)


def pyenv_python(name):
    path = os.path.join(PYENV, PYENV_VERSIONS[name], "bin", "python")
    if not os.path.exists(path):
        pytest.skip("no %s at %s" % (name, path))
    return path


def command(name, script=TARGET):
    """The argv that runs `script` under interpreter `name`."""
    if name in PYENV_VERSIONS:
        return [pyenv_python(name), script]
    if os.environ.get("LASTWORDS_NO_SID"):
        pytest.skip("LASTWORDS_NO_SID is set: no %s" % name)
    guest = GUEST_TREE + script[len(TREE):]
    return [SID_ROOT, "run", "--bind", "%s:%s" % (TREE, GUEST_TREE), SID_VERSIONS[name], guest]


class Target:
    """A running target.py, ready: its threads are started and recorded."""

    def __init__(self, argv, *args, env=None):
        self.proc = subprocess.Popen(
            argv + [str(a) for a in args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            universal_newlines=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise AssertionError("target did not start: %s" % self.proc.stderr.read())
        self.info = json.loads(line)
        self.pid = self.info["pid"]

    def ping(self):
        """Proof that the target runs: it answers, with its busy thread's progress."""
        self.proc.stdin.write("ping\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer.startswith("pong "), answer
        return int(answer.split()[1])

    def states(self):
        """The state letter of each of its threads."""
        out = {}
        for tid in os.listdir("/proc/%d/task" % self.pid):
            try:
                with open("/proc/%d/task/%s/stat" % (self.pid, tid)) as f:
                    out[int(tid)] = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                pass  # a thread that ended meanwhile
        return out

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("exit\n")
                self.proc.stdin.flush()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def targets():
    started = []

    def start(argv, *args, **kwargs):
        t = Target(argv, *args, **kwargs)
        started.append(t)
        return t

    yield start
    for t in started:
        t.close()


def discover(pid, *flags, user=None):
    """Run the discover example; returns (parsed JSON, exit status)."""
    argv = [DISCOVER, str(pid)] + list(flags)
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + argv
    out = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert out.stdout, out.stderr
    return json.loads(out.stdout), out.returncode


def expected_version(target):
    return target.info["hexversion"]


def check_threads(found, target):
    """The thread list discovery read is the target's own."""
    threads = found["threads"]
    assert len(threads) == target.info["thread_count"]
    assert sorted(t["thread_id"] for t in threads) == sorted(t["ident"] for t in target.info["threads"])
    by_ident = {t["ident"]: t["tid"] for t in target.info["threads"]}
    for t in threads:
        assert t["tid"] == by_ident[t["thread_id"]], t
        assert t["tid_verified"], t
    # The main thread's tid is the pid.
    main = [t for t in target.info["threads"] if t["role"] == "main"][0]
    assert main["tid"] == target.pid


@pytest.mark.parametrize("name", ALL)
def test_discovery(name, targets, summary_lines):
    """Version, build, addresses and threads of a target with a decoy
    mapping of its own interpreter file."""
    t = targets(command(name), 3, "dupmap")
    found, status = discover(t.pid, "--repeat", "20")
    assert status == 0, found
    assert found["hexversion"] == expected_version(t), found
    assert found["debug_build"] == t.info["debug"]
    assert found["debug_build"] == name.endswith("d")
    # Every version source agrees with the target's sys.hexversion.
    major_minor = "%d.%d" % (t.info["hexversion"] >> 24, (t.info["hexversion"] >> 16) & 0xFF)
    for source, version in found["version_sources"]:
        assert version.startswith(major_minor), (source, version)
    expected_source = {
        "2.7": "Py_GetVersion's PY_VERSION",
        "3.9": "Py_GetVersion's PY_VERSION",
        "3.10": "Py_GetVersion's PY_VERSION",
    }.get(name, "Py_Version")
    assert found["version_source"] == expected_source
    sources = [s for s, _ in found["version_sources"]]
    assert "Py_GetVersion's PY_VERSION" in sources
    assert "file name" in sources
    assert ("_Py_DebugOffsets.version" in sources) == (name not in ("2.7", "3.9", "3.10", "3.11", "3.12"))
    assert found["binary"]["shared"] == (name in PYENV_VERSIONS)
    if name == "2.7":
        assert found["runtime"] is None
        assert found["types"]["string"] is not None and found["types"]["bytes"] is None
        assert found["interp_head_source"] == ".symtab interp_head"
        assert found["layout"] == "py27"
        assert "current_thread_state" in found["gil"]
    else:
        assert found["runtime"] is not None
        assert found["types"]["bytes"] is not None and found["types"]["string"] is None
        assert found["layout"] == "py3 minor %d" % ((t.info["hexversion"] >> 16) & 0xFF)
        assert "locked" in found["gil"]
    if name in ("2.7", "3.9", "3.10"):
        assert found["tid"] == {"pthread_offset": 720, "source": "libc _thread_db_pthread_tid"}
    else:
        assert "tstate_offset" in found["tid"]
    assert found["interpreters"] == 1
    check_threads(found, t)
    # Nobody holds the GIL: every thread waits on a lock or on stdin.
    assert not any(th["holds_gil"] for th in found["threads"])
    summary_lines.append(
        "remote discovery %-6s %-8s first %4d us, median %4d us, min %4d us (%d runs)"
        % (
            name,
            found["version"],
            found["discover_us"]["first"],
            found["discover_us"]["median"],
            found["discover_us"]["min"],
            found["discover_us"]["runs"],
        )
    )


@pytest.mark.parametrize("name", ALL)
def test_gil_holder_and_pause(name, targets, summary_lines):
    """With a thread running Python code, that thread holds the GIL; --pause
    stops every thread, reads the same list, and resumes them all."""
    t = targets(command(name), 2, "busy")
    busy = [th["ident"] for th in t.info["threads"] if th["role"] == "busy"]
    holders = []
    for _ in range(10):
        found, status = discover(t.pid, "--pause")
        assert status == 0, found
        check_threads(found, t)
        pause = found["pause"]
        assert pause["tids"] == len(t.states())
        assert pause["resumed"] == pause["tids"]
        assert pause["registers_read"] == pause["tids"]
        holders.append([th["thread_id"] for th in found["threads"] if th["holds_gil"]])
        # Running again: it answers and its busy thread makes progress.
        first = t.ping()
        while t.ping() == first:
            pass
        assert "t" not in t.states().values()
        summary_lines.append(
            "remote pause %-6s %d threads stopped after %5d us, resumed after %5d us"
            % (name, pause["tids"], pause["stop_us"], pause["stopped_us"])
        )
    # Whenever a holder is seen, it is the busy thread, and it is seen. Not
    # always: the GIL passes to the main thread while it answers a ping, and
    # 2.7 drops it every 100 instructions even when no one waits for it.
    assert all(h in ([], busy) for h in holders), holders
    assert busy in holders, holders


@pytest.mark.parametrize("name", ["2.7", "3.9", "3.11", "3.14"])
def test_pause_while_threads_come_and_go(name, targets):
    """Threads created and ended without pause: every pause stops what
    exists (new threads included) and resumes it all."""
    t = targets(command(name), 1, "churn")
    for _ in range(20):
        dumper = subprocess.Popen(
            [DISCOVER, str(t.pid), "--pause", "--hold"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            universal_newlines=True,
        )
        try:
            assert dumper.stdout.readline() == "paused\n"
            # Every thread that exists now is stopped: none slipped through.
            states = t.states()
            assert set(states.values()) == {"t"}, states
            dumper.stdin.write("go\n")
            dumper.stdin.flush()
            found = json.loads(dumper.stdout.readline())
            assert dumper.wait(timeout=30) == 0
        finally:
            if dumper.poll() is None:
                dumper.kill()
                dumper.wait()
        pause = found["pause"]
        assert pause["tids"] == len(states) and pause["resumed"] == pause["tids"], (pause, states)
        # The parked thread, the churning one and main are always listed.
        listed = set(th["thread_id"] for th in found["threads"])
        assert set(th["ident"] for th in t.info["threads"]) <= listed
        first = t.ping()
        while t.ping() == first:
            pass
        assert "t" not in t.states().values()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("name", ["3.11", "3.14"])
def test_killed_dumper_never_leaves_the_target_stopped(name, sig, targets):
    t = targets(command(name), 2, "busy")
    dumper = subprocess.Popen(
        [DISCOVER, str(t.pid), "--pause", "--hold"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        universal_newlines=True,
    )
    try:
        assert dumper.stdout.readline() == "paused\n"
        states = t.states()
        assert set(states.values()) == {"t"}, states
        dumper.send_signal(sig)
        assert dumper.wait(timeout=30) == -sig
    finally:
        if dumper.poll() is None:
            dumper.kill()
            dumper.wait()
    first = t.ping()
    while t.ping() == first:
        pass
    assert "t" not in t.states().values()


def test_stripped_27_finds_interp_head_in_code(targets, tmp_path):
    """Without .symtab, 2.7's interp_head comes from PyInterpreterState_Head's
    machine code."""
    python = pyenv_python("2.7")
    lib = os.path.join(PYENV, PYENV_VERSIONS["2.7"], "lib", "libpython2.7.so.1.0")
    stripped = str(tmp_path / "libpython2.7.so.1.0")
    subprocess.check_call(["strip", "--strip-all", "-o", stripped, lib])
    out = subprocess.check_output(["readelf", "-S", stripped], universal_newlines=True)
    assert ".symtab" not in out
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path))
    t = targets([python, TARGET], 2, env=env)
    found, status = discover(t.pid)
    assert status == 0, found
    assert found["binary"]["path"] == stripped
    assert found["binary"]["has_symtab"] is False
    assert found["interp_head_source"] == "PyInterpreterState_Head decoded"
    check_threads(found, t)


def test_deleted_library_is_read_through_map_files(targets, tmp_path):
    python = pyenv_python("3.11")
    lib = os.path.join(PYENV, PYENV_VERSIONS["3.11"], "lib", "libpython3.11.so.1.0")
    copy = str(tmp_path / "libpython3.11.so.1.0")
    shutil.copy(lib, copy)
    t = targets([python, TARGET], 1, env=dict(os.environ, LD_LIBRARY_PATH=str(tmp_path)))
    os.unlink(copy)
    found, status = discover(t.pid)
    assert status == 0, found
    assert found["binary"]["opened_through"] == "MapFiles"
    check_threads(found, t)


def test_errors(targets, tmp_path):
    # No such process: a pid that is free (the largest pid there can be).
    with open("/proc/sys/kernel/pid_max") as f:
        free = int(f.read()) - 1
    assert not os.path.exists("/proc/%d" % free)
    found, status = discover(free)
    assert (status, found) == (1, {"error": "no process with pid %d" % free})

    # Not a Python process.
    cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE)
    try:
        found, status = discover(cat.pid)
        assert status == 1
        assert found["error"] == (
            "process %d (/usr/bin/cat) is not a Python process: no CPython interpreter is mapped in it"
            % cat.pid
        )
    finally:
        cat.stdin.close()
        cat.wait()

    # A process that has exited (a zombie: not reaped yet).
    gone = subprocess.Popen(["true"])
    while not open("/proc/%d/stat" % gone.pid).read().rsplit(")", 1)[1].split()[0] == "Z":
        os.sched_yield()
    found, status = discover(gone.pid)
    assert (status, found) == (
        1,
        {"error": "process %d has exited (a zombie: its parent has not reaped it), nothing of it is left to read" % gone.pid},
    )
    gone.wait()

    # Another user's process.
    t = targets(command("3.11"), 1)
    found, status = discover(t.pid, user=65534)
    assert status == 1
    assert found["error"] == (
        "permission denied to read the memory map of process %d: it belongs to uid 0 and you are "
        "uid 65534; run lastwords as that user or as root (sudo)" % t.pid
    )


def test_undumpable_process_of_the_same_user(targets):
    """Same uid, but the target made itself undumpable: only CAP_SYS_PTRACE
    would do."""
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    t = targets(nobody + ["/usr/bin/python3", TARGET], 1, "undumpable")
    found, status = discover(t.pid, user=65534)
    assert status == 1
    assert found["error"] == (
        "permission denied to read the memory map of process %d: it is not dumpable (setuid, "
        "file capabilities or PR_SET_DUMPABLE); run lastwords as root or with CAP_SYS_PTRACE" % t.pid
    )
    # Root reads it.
    found, status = discover(t.pid)
    assert status == 0, found


@pytest.mark.parametrize("version", ["3.8.18", "3.7.16"])
def test_unsupported_version_is_named(version, targets):
    python = os.path.join(PYENV, version, "bin", "python")
    if not os.path.exists(python):
        pytest.skip("no %s" % python)
    t = targets([python, TARGET], 1)
    found, status = discover(t.pid)
    assert status == 1
    assert found["error"] == (
        "process %d runs Python %s, which lastwords cannot read: lastwords reads CPython 2.7 "
        "and 3.9 to 3.15" % (t.pid, version)
    )
