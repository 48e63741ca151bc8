"""`lastwords dump PID` against real processes of every interpreter here.

Each target (tests/remote/target_dump.py) parks threads at known lines and
writes its own reference dump at that point: the stdlib's
`faulthandler.dump_traceback(all_threads=True)` on 3.x, the same text built
from sys._current_frames() on 2.7. The installed native `lastwords` command
must print exactly that (with --stdlib-format), and the same threads and
frames in its default text and in JSON (validated against
schema/report.schema.json). Targets of 3.14, 3.14d, 3.15 and 3.15d run in the
sid root (another mount namespace: a chroot), read from outside.

Not named test_*.py: the per-interpreter runs of scripts/test must not collect
it; the remote stage runs it once, from the host's interpreter.
"""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time

import pytest

from check_remote import ALL, GUEST_TREE, PYENV_VERSIONS, TREE, command, pyenv_python

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "target_dump.py")
SCHEMA = os.path.join(TREE, "schema", "report.schema.json")
LASTWORDS = os.environ.get("LASTWORDS_COMMAND") or os.path.join(sysconfig.get_path("scripts"), "lastwords")


class DumpTarget:
    """A running target_dump.py whose reference dump is written."""

    def __init__(self, name, *flags, env=None):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix="lastwords-dump-", dir=HERE if name not in PYENV_VERSIONS else None)
        reference = os.path.join(self.dir, "reference.txt")
        argv = command(name, TARGET)
        # Inside the sid root the tree is bound at GUEST_TREE.
        guest_reference = reference if name in PYENV_VERSIONS else GUEST_TREE + reference[len(TREE):]
        self.proc = subprocess.Popen(
            argv + [guest_reference] + list(flags),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,
            env=env,
        )
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        if not ready:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("target did not get ready: %s" % self.proc.stderr.read())
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise AssertionError("target did not start: %s" % self.proc.stderr.read())
        self.info = json.loads(line)
        self.pid = self.info["pid"]
        with open(reference) as f:
            self.reference = f.read()
        if "churn" not in flags:
            # The thread that wrote the reference has printed the line above
            # and is ending: wait until only the three parked threads are
            # left (its thread state goes before its kernel thread does).
            deadline = time.monotonic() + 30
            while len(os.listdir("/proc/%d/task" % self.pid)) != 3:
                assert time.monotonic() < deadline, "the reference writer did not end"
                time.sleep(0.001)  # polling the target's state

    def alive(self):
        """Running, and no thread of it stopped (or a zombie)."""
        if self.proc.poll() is not None:
            return False
        for tid in os.listdir("/proc/%d/task" % self.pid):
            try:
                with open("/proc/%d/task/%s/stat" % (self.pid, tid)) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] in ("t", "T", "Z"):
                        return False
            except OSError:
                pass  # a thread that ended meanwhile
        return True

    def close(self):
        # The target parks for ever: end it (the sid root's runner passes
        # the signal on to the interpreter it execs).
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
        subprocess.run(["rm", "-rf", self.dir])


@pytest.fixture
def start():
    started = []

    def start(name, *flags, **kwargs):
        t = DumpTarget(name, *flags, **kwargs)
        started.append(t)
        return t

    yield start
    for t in started:
        t.close()


def lastwords(*args, user=None):
    argv = [LASTWORDS] + [str(a) for a in args]
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + argv
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


THREAD_HEADER = re.compile(r"^Thread 0x([0-9a-f]{16})( \[.*?\])?( \(most recent call first(, holds the GIL)?\):)$")


def blocks(text):
    """Thread blocks: {thread id: [frame lines]}, in order."""
    out = []
    for block in text.strip("\n").split("\n\n"):
        lines = block.split("\n")
        m = THREAD_HEADER.match(lines[0])
        assert m, lines[0]
        out.append((int(m.group(1), 16), lines[1:]))
    return out


def test_the_installed_command_is_native():
    with open(LASTWORDS, "rb") as f:
        assert f.read(4) == b"\x7fELF", LASTWORDS


@pytest.mark.parametrize("name", ALL)
def test_dump_equals_the_targets_own(name, start, summary_lines):
    """--stdlib-format: byte for byte what the target's own faulthandler
    printed at the same point (2.7: the same text from sys._current_frames)."""
    t = start(name)
    out = lastwords("dump", "--stdlib-format", t.pid)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert out.stdout == t.reference
    # Three threads: two parked at depths 3 and 6, and the main thread.
    assert len(blocks(out.stdout)) == 3
    assert t.alive()


def frames_of(lines):
    return [line for line in lines if line.startswith("  File ")]


@pytest.mark.parametrize("name", ALL)
def test_default_text_and_json_agree(name, start):
    """The default text adds a header, names and the GIL holder; JSON says
    the same in one document that the schema accepts."""
    import jsonschema

    t = start(name)
    text = lastwords("dump", t.pid)
    assert text.returncode == 0, text.stderr
    head, _, threads = text.stdout.partition("\n\n")
    version = "%d.%d" % (t.info["hexversion"] >> 24, (t.info["hexversion"] >> 16) & 0xFF)
    lines = head.split("\n")
    assert lines[0].startswith("Process %d: " % t.pid), lines[0]
    assert "target_dump.py" in lines[0]
    assert lines[1].startswith("Python %s." % version), lines[1]
    assert ("(debug build)" in lines[1]) == name.endswith("d")
    # Same threads and frames as the stdlib's text.
    reference = blocks(t.reference)
    got = blocks(threads)
    assert [(ident, frames_of(f)) for ident, f in got] == [(ident, frames_of(f)) for ident, f in reference]
    # Every thread is named (from /proc), on every version.
    for header in re.findall(r"^Thread .*$", threads, re.M):
        assert re.search(r"\] \(most recent call first", header), header

    js = lastwords("dump", "--json", t.pid)
    assert js.returncode == 0, js.stderr
    doc = json.loads(js.stdout)
    with open(SCHEMA) as f:
        jsonschema.validate(doc, json.load(f))
    (process,) = doc["processes"]
    assert process["pid"] == t.pid
    assert process["python"]["hexversion"] == t.info["hexversion"]
    assert process["python"]["debug_build"] == name.endswith("d")
    assert process["threads_end"] == "complete"
    json_frames = [
        (th["thread_id"], ['  File "%s", line %d in %s' % (f["file"], f["line"], f["function"]) for f in th["frames"]])
        for th in process["threads"]
    ]
    assert json_frames == [(ident, frames_of(f)) for ident, f in reference]
    for th in process["threads"]:
        assert th["native_id"] and th["name"], th
        assert th["end"] == "complete"
    # Every thread is blocked: none holds the GIL.
    assert [th["holds_gil"] for th in process["threads"]] == [False] * 3


@pytest.mark.parametrize("name", ["2.7", "3.9", "3.11", "3.13", "3.14", "3.15d"])
def test_pause_stops_and_resumes(name, start):
    t = start(name)
    out = lastwords("dump", "--pause", "--stdlib-format", t.pid)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip("\n") == t.reference.rstrip("\n")
    text = lastwords("dump", "--pause", t.pid)
    assert re.search(r"^Threads stopped for \d+\.\d{3} ms while read \(--pause\)$", text.stdout, re.M), text.stdout
    # No thread is left stopped.
    assert t.alive()


# A frame line (whose file, line or function may be unknown: `???`), or a
# marker.
FRAME_LINE = re.compile(
    r'^  File (".*"|\?\?\?), line (\d+|\?\?\?) in .*$|^  <invalid frame>$|^  <no Python frame>$|^<no Python frame>$|^  \.\.\.$'
)


@pytest.mark.parametrize("name", ["2.7", "3.10", "3.12", "3.14d", "3.15"])
def test_dumps_while_threads_come_and_go(name, start):
    """A thread starts and joins threads and another recurses, without
    pause: every dump succeeds, every line is a header, a frame or a marker,
    and the target lives on."""
    t = start(name, "churn")
    for _ in range(25):
        out = lastwords("dump", "--stdlib-format", t.pid)
        assert out.returncode == 0, out.stderr
        for block in out.stdout.strip("\n").split("\n\n"):
            lines = block.split("\n")
            assert THREAD_HEADER.match(lines[0]) or lines[0] == "<invalid thread state>", repr(out.stdout)
            for line in lines[1:]:
                assert FRAME_LINE.match(line) or line == "<invalid thread state>", out.stdout
    assert t.alive()


def test_corrupt_frame_gives_a_marker(start):
    """Garbage where a frame should be (a `previous` pointer into unmapped
    memory): that thread's listing ends with the marker, the rest is whole."""
    import lastwords._lastwords as native

    env = dict(os.environ, LASTWORDS_HOSTILE_LAYOUT=native._layout_info()[2], PYTHONPATH=os.path.dirname(HERE))
    name = "%d.%d" % sys.version_info[:2]
    t = start(name, "hostile", env=env)
    out = lastwords("dump", "--stdlib-format", t.pid)
    assert out.returncode == 0, out.stderr
    got = blocks(out.stdout)
    assert len(got) == 3
    # The corrupted thread (the first parked, so the second listed): its two
    # innermost frames, up to the one whose `previous` was overwritten,
    # then the marker. The others are whole: they end in their bootstrap
    # frames or <module>.
    corrupted = got[1][1]
    assert [line.rsplit(" in ", 1)[1] for line in corrupted[:-1]] == ["park", "park"], out.stdout
    assert corrupted[-1] == "  <invalid frame>"
    assert got[0][1][-1].endswith(" in _bootstrap"), out.stdout
    assert got[2][1][-1].endswith(" in <module>"), out.stdout
    assert t.alive()


def test_subprocesses(tmp_path):
    """A parent with two Python children (one 2.7) and one shell: each
    Python process under its pid and command line; the shell is left out."""
    script = tmp_path / "child.py"
    script.write_text("import sys; sys.stdout.write('up\\n'); sys.stdout.flush(); sys.stdin.readline()\n")
    parent_code = (
        "import subprocess, sys\n"
        "kids = [subprocess.Popen([exe, %r], stdin=subprocess.PIPE, stdout=subprocess.PIPE) for exe in sys.argv[1:]]\n"
        "kids.append(subprocess.Popen(['sh', '-c', 'read x'], stdin=subprocess.PIPE))\n"
        "for k in kids[:-1]: k.stdout.readline()\n"
        "print(' '.join(str(k.pid) for k in kids), flush=True)\n"
        "sys.stdin.readline()\n"
        "for k in kids: k.stdin.close(); k.wait()\n" % str(script)
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code, pyenv_python("2.7"), sys.executable],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True,
    )
    try:
        kids = [int(p) for p in parent.stdout.readline().split()]
        out = lastwords("dump", "--subprocesses", parent.pid)
        assert out.returncode == 0, out.stderr
        heads = re.findall(r"^Process (\d+): (.*)$", out.stdout, re.M)
        assert [int(pid) for pid, _ in heads] == [parent.pid] + kids[:2]
        assert "child.py" in heads[1][1] and "child.py" in heads[2][1]
        assert "Python 2.7." in out.stdout
        js = json.loads(lastwords("dump", "--subprocesses", "--json", parent.pid).stdout)
        assert [p["pid"] for p in js["processes"]] == [parent.pid] + kids[:2]
    finally:
        parent.stdin.close()
        parent.wait(timeout=30)


def wait_for_zombie(pid, why):
    """Until task `pid` (a process, or its main thread) is a zombie."""
    deadline = time.monotonic() + 30
    while True:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return
        assert time.monotonic() < deadline, why
        time.sleep(0.001)  # polling the target's state


def test_subprocesses_with_a_zombie_child():
    """A child that exited and was not reaped is listed under its name, as
    ps shows it, with why nothing else is: the dump of the others stands."""
    parent_code = (
        "import subprocess, sys\n"
        "kid = subprocess.Popen(['true'])\n"
        "print(kid.pid, flush=True)\n"
        "sys.stdin.readline()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True
    )
    try:
        kid = int(parent.stdout.readline())
        wait_for_zombie(kid, "the child did not exit")
        out = lastwords("dump", "--subprocesses", parent.pid)
        assert (out.returncode, out.stderr) == (0, ""), out.stderr
        blocks = out.stdout.split("\n\n")
        assert blocks[-1] == (
            "Process %d: [true]\n"
            "lastwords: process %d has exited (a zombie: its parent has not reaped it), "
            "nothing of it is left to read\n" % (kid, kid)
        ), out.stdout
        assert blocks[0].startswith("Process %d: %s -c " % (parent.pid, sys.executable)), out.stdout
    finally:
        parent.stdin.close()
        parent.wait(timeout=30)


def test_errors_are_one_line():
    # No such process.
    out = lastwords("dump", 2 ** 22 + 12345)
    assert out.returncode == 1
    assert out.stdout == ""
    assert out.stderr == "lastwords: no process with pid %d\n" % (2 ** 22 + 12345)
    # Not a Python process.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        out = lastwords("dump", sleeper.pid)
        assert out.returncode == 1
        assert out.stderr.count("\n") == 1 and "not a Python process" in out.stderr, out.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    # A version lastwords cannot read.
    old = os.path.expanduser("~/.pyenv/versions/3.8.18/bin/python")
    if os.path.exists(old):
        p = subprocess.Popen([old, "-c", "import sys; print(1, flush=True); sys.stdin.readline()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            p.stdout.readline()
            out = lastwords("dump", p.pid)
            assert out.returncode == 1
            assert out.stderr.count("\n") == 1 and "Python 3.8" in out.stderr, out.stderr
        finally:
            p.stdin.close()
            p.wait()
    # Usage errors.
    for args in ([], ["x"], ["--bogus", "1"], ["0"]):
        out = lastwords("dump", *args)
        assert out.returncode == 2, args
        assert out.stderr.startswith("lastwords: "), out.stderr


def test_a_reader_that_goes_away(start):
    """A report into a pipe whose reader has closed it: one line and status
    1, not a death by SIGPIPE (the command ignores it, as Rust's runtime
    start, which it does without, did); the target lives on and can be
    dumped again, paused too (no tracer is left on it)."""
    t = start("3.11")
    for flags in ([], ["--native"]):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            out = subprocess.run([LASTWORDS, "dump", *flags, str(t.pid)], stdout=write_end,
                                 stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        finally:
            os.close(write_end)
        assert out.returncode == 1, (flags, out.returncode, out.stderr)
        assert out.stderr == "lastwords: cannot write the report: Broken pipe (os error 32)\n", flags
        assert t.alive()
    assert lastwords("dump", "--pause", t.pid).returncode == 0


def test_another_users_process(start):
    t = start("3.11")
    out = lastwords("dump", t.pid, user=65534)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "belongs to uid 0 and you are uid 65534" in out.stderr, out.stderr


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed: no other tracer to hold the target")
def test_a_process_another_tracer_holds(start):
    """A process has one tracer at a time: --pause says which one holds it;
    the default dump, which never stops the target, still reads it."""
    t = start("3.11")
    tracer = subprocess.Popen(["strace", "-f", "-o", "/dev/null", "-p", str(t.pid)],
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while tracer_of(t.pid) != tracer.pid and time.monotonic() < deadline:
            time.sleep(0.01)  # polling for strace's attach
        assert tracer_of(t.pid) == tracer.pid
        out = lastwords("dump", "--pause", t.pid)
        assert out.returncode == 1
        assert out.stdout == ""
        assert out.stderr == (
            "lastwords: permission denied to attach to process %d: it is already traced by "
            "process %d (strace), and a process has one tracer at a time; detach that one "
            "first, or dump without --pause and --native, which reads the process without "
            "stopping it\n" % (t.pid, tracer.pid)
        ), out.stderr
        out = lastwords("dump", t.pid)
        assert out.returncode == 0, out.stderr
        assert "most recent call first" in out.stdout
    finally:
        tracer.terminate()
        tracer.wait(timeout=30)


def tracer_of(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("TracerPid:"))


def test_a_process_that_exited():
    """A zombie: the process is gone but not yet reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    try:
        out = lastwords("dump", child.pid)
        assert (out.returncode, out.stdout, out.stderr) == (
            1,
            "",
            "lastwords: process %d has exited (a zombie: its parent has not reaped it), "
            "nothing of it is left to read\n" % child.pid,
        )
    finally:
        child.wait()


def line_of(path, marker):
    with open(path) as f:
        return next(n for n, text in enumerate(f, 1) if text.rstrip().endswith("# " + marker))


@pytest.mark.parametrize("name", ["2.7", "3.11", "3.15"])
def test_a_process_whose_main_thread_exited(name):
    """The main thread called pthread_exit and is a zombie; the process runs
    on in its other thread. /proc/PID/maps is empty and process_vm_readv of
    the pid fails: lastwords reads through the thread that runs, and lists
    both threads (the main thread's state is still in the interpreter's
    list, at the line that exited). 3.15 runs in the sid root: its files
    are found through the live thread's /proc/TID/root."""
    import jsonschema

    script = os.path.join(HERE, "target_leaderless.py")
    proc = subprocess.Popen(command(name, script), stdout=subprocess.PIPE, universal_newlines=True)
    pid = int(proc.stdout.readline())
    try:
        wait_for_zombie(pid, "the main thread did not exit")
        with open("/proc/%d/maps" % pid) as f:
            assert f.read() == ""
        guest = script if name in PYENV_VERSIONS else GUEST_TREE + script[len(TREE):]
        parked = '  File "%s", line %d in worker' % (guest, line_of(script, "PARKED"))
        exited = '  File "%s", line %d in <module>' % (guest, line_of(script, "EXITED"))
        out = lastwords("dump", "--stdlib-format", pid)
        assert (out.returncode, out.stderr) == (0, "")
        threads = [frames for _, frames in blocks(out.stdout)]
        assert sorted(frames[0] for frames in threads) == sorted([parked, exited]), out.stdout
        out = lastwords("dump", "--native", pid)
        assert (out.returncode, out.stderr) == (0, ""), out.stderr
        # The worker's native frames are read from its registers; its Python
        # frame sits among them. The main thread has none, and says why.
        threads = [frames for _, frames in blocks(out.stdout.split("\n\n", 1)[1])]
        (worker,) = [frames for frames in threads if parked in frames]
        assert worker[0].startswith("  Binary file "), worker
        (main,) = [frames for frames in threads if exited in frames]
        # 2.7-3.10 find a thread's tid in its pthread_t, which the kernel
        # clears when the thread exits: that thread is not known as exited.
        why = "no registers for the thread" if name == "2.7" else "the thread has exited"
        assert main == ["  <no native frames: %s>" % why, exited], main
        out = lastwords("dump", "--native", "--json", pid)
        assert (out.returncode, out.stderr) == (0, ""), out.stderr
        doc = json.loads(out.stdout)
        with open(SCHEMA) as f:
            jsonschema.validate(doc, json.load(f))
        ends = sorted(th["native_end"] for th in doc["processes"][0]["threads"])
        assert ends == ["no_registers" if name == "2.7" else "exited", "outermost"], ends
    finally:
        # In the sid root the runner and the interpreter may be two processes.
        os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait()
