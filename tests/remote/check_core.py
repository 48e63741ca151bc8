"""`lastwords dump --core` against cores of every interpreter here.

The cores are made by the tests themselves, from tests/remote/target_core.py:

* gdb's gcore of a parked target (2.7, 3.9-3.13); the target wrote its own
  reference first (faulthandler.dump_traceback, or the same text on 2.7).
  Not the sid root's 3.14/3.15: its glibc (2.42) guards thread stacks with
  MADV_GUARD_INSTALL, which this gdb (13) cannot read past, and the core it
  then writes has zeros where the stacks' tops were (gcore says "Memory read
  failed for corefile section"); the kernel's cores below cover those.
* the kernel's core of a parked target sent SIGQUIT on its main thread,
  and of targets that crash themselves (os.abort() in a thread, a NULL read
  on the main thread) with core dumps enabled: every version, in the sid
  root too (its cores name the root's own paths: --root). The reference is
  then faulthandler's own fatal report (the same text built by the target
  on 2.7). The cores go where the machine's core_pattern sends them (a file
  name, relative to the crashing process's directory like the default
  "core", or absolute); the test does not change it, since it applies to
  every process on the machine, and is skipped, saying why, when cores go
  to a program.

--stdlib-format must print what the target's faulthandler printed, byte for
byte, except thread names that a core does not hold: only the main thread's
is in it (NT_PRPSINFO), so on 3.14+ the other threads' names are left out
of the expectation. Then: systemd-coredump's compressed cores (zstd, lz4,
xz, compressed here), and hostile ones (cut in a note or a segment, garbage
notes, files that are missing or another build, a core of another root):
each gives a report or one line of error.

Not named test_*.py: the per-interpreter runs of scripts/test must not
collect it; the remote stage runs it once, from the host's interpreter.
"""

import ctypes
import json
import os
import random
import re
import select
import shutil
import signal
import struct
import subprocess
import tempfile

import pytest

from check_dump import LASTWORDS, SCHEMA, THREAD_HEADER, blocks, frames_of
from check_remote import ALL, GUEST_TREE, PYENV_VERSIONS, SID_ROOT, TREE, command

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "target_core.py")
HEADER = re.compile(r"^(Current thread|Thread) 0x([0-9a-f]{16})( \[.*?\])?( \(most recent call first\):)$", re.M)
THREE = [n for n in ALL if n != "2.7"]


def lastwords(*args):
    return subprocess.run([LASTWORDS] + [str(a) for a in args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)


def sid_root():
    out = subprocess.run([SID_ROOT, "ensure"], stdout=subprocess.PIPE, universal_newlines=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def core_pattern():
    """kernel.core_pattern (and kernel.core_uses_pid), which must name a
    file: cores piped to a program (systemd-coredump, apport) are out of
    the test's reach."""
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    if pattern.startswith("|"):
        pytest.skip("kernel.core_pattern is %r: cores go to a program, not to a file this test can find "
                    "(set it to 'core' to run this test)" % pattern)
    with open("/proc/sys/kernel/core_uses_pid") as f:
        if f.read().strip() == "1" and "%p" not in pattern:
            pattern += ".%p"
    return pattern


def core_path(pid, root, cwd):
    """Where the kernel writes the core of process `pid`, as a glob: the
    pattern's %p is the pid, its other specifiers (%e, %t, %h...) match
    anything; a relative pattern is in the process's directory `cwd`, an
    absolute one under its root `root` (the sid root for its processes)."""
    pattern = core_pattern()
    path = re.sub(r"%(.)", lambda m: {"%": "%", "p": str(pid), "P": str(pid)}.get(m.group(1), "*"), pattern)
    return root.rstrip("/") + path if path.startswith("/") else os.path.join(cwd, path)


class CoreTarget:
    """A target_core.py in its own directory: parked (then cored by the
    test) or crashed (its core written by the kernel)."""

    def __init__(self, name, mode):
        self.name = name
        self.sid = name not in PYENV_VERSIONS
        if mode != "park":
            core_pattern()
        # Inside the sid root the tree is bound at GUEST_TREE: the target's
        # directory must be in the tree.
        self.dir = tempfile.mkdtemp(prefix="lastwords-core-", dir=HERE if self.sid else None)
        self.mode = mode
        self.guest_dir = GUEST_TREE + self.dir[len(TREE):] if self.sid else self.dir
        self.proc = subprocess.Popen(command(name, TARGET) + [self.guest_dir, mode], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise AssertionError("target did not start: %s" % self.proc.stderr.read())
        self.info = json.loads(line)
        self.pid = self.info["pid"]
        self.main = self.info["main"]
        if mode == "park":
            self.wait_for_tasks(3)
            with open(os.path.join(self.dir, "reference.txt")) as f:
                self.reference = f.read()
        else:
            status = self.proc.wait(timeout=60)
            assert status in (-signal.SIGABRT, -signal.SIGSEGV), (status, self.proc.stderr.read())
            self.core = self.find_core()

    def wait_for_tasks(self, n):
        """The thread that wrote the reference has printed its line and is
        ending: wait until only the parked threads are left."""
        import time

        deadline = time.monotonic() + 30
        while len(os.listdir("/proc/%d/task" % self.pid)) != n:
            assert time.monotonic() < deadline, "the reference writer did not end"
            time.sleep(0.001)  # polling the target's state

    def find_core(self):
        import glob

        where = core_path(self.pid, sid_root() if self.sid else "", self.dir)
        cores = glob.glob(where)
        assert len(cores) == 1, (where, cores, core_pattern())
        return cores[0]

    def gcore(self):
        out = subprocess.run(["gcore", "-o", os.path.join(self.dir, "gcore"), str(self.pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
        assert out.returncode == 0, out.stderr
        # Every mapping was read (but [vsyscall], which no process can read).
        failed = [line for line in out.stderr.splitlines()
                  if "Memory read failed" in line and "0xffffffffff600000" not in line]
        assert failed == [], out.stderr
        self.core = os.path.join(self.dir, "gcore.%d" % self.pid)
        return self.core

    def quit(self):
        """SIGQUIT to the main thread (tgkill): the kernel writes a core."""
        core_pattern()
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.syscall(234, self.pid, self.pid, signal.SIGQUIT) == 0  # SYS_tgkill (x86-64)
        assert self.proc.wait(timeout=60) == -signal.SIGQUIT, self.proc.stderr.read()
        self.core = self.find_core()
        return self.core

    def root_args(self):
        return ["--root", sid_root()] if self.sid and not self.core_from_gdb() else []

    def core_from_gdb(self):
        return os.path.basename(self.core).startswith("gcore")

    def fatal_threads(self):
        """The thread blocks of faulthandler's fatal report (3.x), or the
        target's own text (2.7)."""
        if self.info["hexversion"] >> 24 == 2:
            with open(os.path.join(self.dir, "reference.txt")) as f:
                return f.read()
        with open(os.path.join(self.dir, "fatal.txt")) as f:
            text = f.read()
        assert text.startswith("Fatal Python error: "), text
        kept = [b.rstrip("\n") for b in text.split("\n\n") if HEADER.match(b.split("\n")[0])]
        return "\n\n".join(kept) + "\n"

    def close(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
        # A core_pattern may have put the core elsewhere.
        core = getattr(self, "core", None)
        if core and not core.startswith(self.dir + "/") and os.path.exists(core):
            os.unlink(core)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def start():
    started = []

    def start(name, mode):
        t = CoreTarget(name, mode)
        started.append(t)
        return t

    yield start
    for t in started:
        t.close()


def without_names(text, main):
    """A core holds only the main thread's name: drop the others'."""

    def strip(m):
        ident = int(m.group(2), 16)
        return m.group(1) + " 0x" + m.group(2) + (m.group(3) or "" if ident == main else "") + m.group(4)

    return HEADER.sub(strip, text)


def as_current(text, ident):
    """The block of thread `ident` as faulthandler's handler on that thread
    prints it."""
    return re.sub(r"^Thread 0x%016x" % ident, "Current thread 0x%016x" % ident, text, flags=re.M)


def check_json(core, t, signal_number, current):
    """The JSON report: valid, and the same threads as the text."""
    import jsonschema

    js = lastwords("dump", "--json", "--core", core, *t.root_args())
    assert js.returncode == 0, js.stderr
    doc = json.loads(js.stdout)
    with open(SCHEMA) as f:
        jsonschema.validate(doc, json.load(f))
    (process,) = doc["processes"]
    assert process["pid"] == t.pid
    assert process["core"]["path"] == core
    assert process["core"]["signal"] == signal_number
    assert process["python"]["hexversion"] == t.info["hexversion"]
    assert process["threads_end"] == "complete"
    assert any("target_core.py" in arg for arg in process["command_line"]), process["command_line"]
    for th in process["threads"]:
        assert th["current"] == (th["thread_id"] == current), th
        # The GIL, as the core has it: a parked process's threads all wait;
        # a thread that crashes in Python code (os.abort(), a ctypes read)
        # holds it.
        assert th["holds_gil"] == (th["thread_id"] == current and signal_number != signal.SIGQUIT), th
        assert th["end"] == "complete", th
        # Only the main thread has a name in a core.
        assert (th["name"] is not None) == (th["thread_id"] == t.main), th
    return process


def check_text_header(core, t, killed_by=None, on_thread=None):
    """The default text: a header that names the core, the process (its
    whole command line, from the core's stack), the signal and the
    interpreter."""
    out = lastwords("dump", "--core", core, *t.root_args())
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    head, _, threads = out.stdout.partition("\n\n")
    lines = head.split("\n")
    assert lines[0].startswith("Core file %s: process %d: " % (core, t.pid)), lines[0]
    assert lines[0].endswith("target_core.py %s %s" % (t.guest_dir, t.mode)), lines[0]
    if killed_by:
        assert lines[1] == "Killed by %s on thread %d" % (killed_by, on_thread), lines
        lines = lines[1:]
    version = "%d.%d." % (t.info["hexversion"] >> 24, (t.info["hexversion"] >> 16) & 0xFF)
    assert lines[1].startswith("Python " + version), lines
    return threads


@pytest.mark.parametrize("name", list(PYENV_VERSIONS))
def test_gcore_of_a_parked_target(name, start):
    """gdb's core of a running, parked process: what its own
    faulthandler.dump_traceback printed, byte for byte."""
    t = start(name, "park")
    core = t.gcore()
    # What follows reads the core alone.
    t.proc.kill()
    t.proc.wait()
    out = lastwords("dump", "--stdlib-format", "--core", core)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert out.stdout == t.reference
    assert len(blocks(out.stdout)) == 3
    threads = check_text_header(core, t)
    assert [(i, frames_of(f)) for i, f in blocks(threads)] == [(i, frames_of(f)) for i, f in blocks(t.reference)]
    process = check_json(core, t, None, current=None)
    assert process["core"]["signal_thread"] is None


@pytest.mark.parametrize("name", ALL)
def test_kernel_core_of_a_parked_target(name, start):
    """SIGQUIT on the main thread of a parked process: the kernel's core
    reads as faulthandler would have printed from that thread's handler."""
    t = start(name, "park")
    core = t.quit()
    expected = as_current(without_names(t.reference, t.main), t.main)
    out = lastwords("dump", "--stdlib-format", "--core", core, *t.root_args())
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert out.stdout == expected
    check_text_header(core, t, "SIGQUIT (signal 3)", t.pid)
    check_json(core, t, signal.SIGQUIT, current=t.main)


@pytest.mark.parametrize("name", ALL)
def test_abort_in_a_thread(name, start):
    """os.abort() three calls deep in a thread, with core dumps enabled:
    the threads of faulthandler's own fatal report (2.7: the target's text),
    the aborting thread current."""
    t = start(name, "abort-thread")
    expected = without_names(t.fatal_threads(), t.main)
    out = lastwords("dump", "--stdlib-format", "--core", t.core, *t.root_args())
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected
    got = blocks(out.stdout.replace("Current thread", "Thread"))
    assert len(got) == 4
    current = int(re.search(r"^Current thread 0x([0-9a-f]{16})", out.stdout, re.M).group(1), 16)
    assert [line.rsplit(" in ", 1)[1] for line in frames_of(dict(got)[current])[:4]] == ["abort"] * 4
    process = check_json(t.core, t, signal.SIGABRT, current=current)
    tid = [th["native_id"] for th in process["threads"] if th["current"]][0]
    assert process["core"]["signal_thread"] == tid
    check_text_header(t.core, t, "SIGABRT (signal 6)", tid)


@pytest.mark.parametrize("name", ["3.9", "3.12", "3.13", "3.14d", "3.15"])
def test_segfault_on_the_main_thread(name, start):
    t = start(name, "segv-main")
    expected = without_names(t.fatal_threads(), t.main)
    out = lastwords("dump", "--stdlib-format", "--core", t.core, *t.root_args())
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected
    assert re.search(r"^Current thread 0x%016x" % t.main, out.stdout, re.M)
    check_json(t.core, t, signal.SIGSEGV, current=t.main)


def test_kernel_core_of_a_process_whose_main_thread_exited(tmp_path):
    """The main thread called pthread_exit, then the thread left crashed:
    the kernel's core holds registers for that thread only (gdb's gcore
    cannot attach to such a process at all). Both threads are listed: the
    crashed one current, with its native frames; the main thread at the
    line that exited, saying it has no registers."""
    import glob

    from check_dump import line_of

    core_pattern()
    script = os.path.join(HERE, "target_leaderless.py")
    proc = subprocess.Popen([command("3.11", script)[0], script, "crash", str(tmp_path)],
                            stdout=subprocess.PIPE, universal_newlines=True)
    pid = int(proc.stdout.readline())
    assert proc.wait(timeout=60) == -signal.SIGSEGV
    cores = glob.glob(core_path(pid, "", str(tmp_path)))
    assert len(cores) == 1, cores
    out = lastwords("dump", "--native", "--core", cores[0])
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    got = dict(blocks(out.stdout.split("\n\n", 1)[1].replace("Current thread", "Thread")))
    crashed = '  File "%s", line %d in worker' % (script, line_of(script, "CRASHED"))
    exited = '  File "%s", line %d in <module>' % (script, line_of(script, "EXITED"))
    (worker,) = [frames for frames in got.values() if crashed in frames]
    assert worker[0].startswith("  Binary file "), worker
    (main,) = [frames for frames in got.values() if exited in frames]
    assert main == ["  <no native frames: no registers for the thread>", exited], main
    current = int(re.search(r"^Current thread 0x([0-9a-f]{16})", out.stdout, re.M).group(1), 16)
    assert crashed in got[current]


@pytest.fixture(scope="module")
def crashed_311(tmp_path_factory):
    """One kernel core (3.11, aborted in a thread) for the tests that
    change or compress it, and the report it gives."""
    t = CoreTarget("3.11", "abort-thread")
    keep = str(tmp_path_factory.mktemp("core") / "core")
    shutil.copy(t.core, keep)
    info = t.info
    t.close()
    out = lastwords("dump", "--core", keep)
    assert out.returncode == 0, out.stderr
    yield keep, out.stdout, info


@pytest.mark.parametrize("tool", ["zstd", "lz4", "xz"])
def test_compressed_cores(tool, crashed_311, tmp_path):
    """systemd-coredump's compressed cores (compressed here with the same
    tools): the same report, with the compression named."""
    core, report, _ = crashed_311
    packed = str(tmp_path / ("core." + tool))
    with open(core, "rb") as src, open(packed, "wb") as dst:
        subprocess.run([tool, "-q", "-c", "-1"], stdin=src, stdout=dst, check=True)
    out = lastwords("dump", "--core", packed)
    assert out.returncode == 0, out.stderr
    head, _, threads = out.stdout.partition("\n")
    assert head == report.split("\n")[0].replace("Core file %s:" % core, "Core file %s (%s):" % (packed, tool))
    assert threads == report.split("\n", 1)[1]
    js = json.loads(lastwords("dump", "--json", "--core", packed).stdout)
    assert js["processes"][0]["core"]["compression"] == tool


def note_segment(data):
    """(offset, size) of the PT_NOTE segment of an ELF core."""
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    for i in range(phnum):
        kind, _, offset, _, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff + 56 * i)
        if kind == 4:
            return offset, filesz
    raise AssertionError("no PT_NOTE")


def one_line_error(out, *words):
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("lastwords: "), out.stderr
    for word in words:
        assert word in out.stderr, (word, out.stderr)


def report_lines_are_sound(text):
    for block in text.strip("\n").split("\n\n")[1:]:
        lines = block.split("\n")
        assert THREAD_HEADER.match(lines[0].replace("Current thread", "Thread")) or lines[0] == "<invalid thread state>", lines[0]
        for line in lines[1:]:
            assert (line.startswith('  File "') or line in ("  <invalid frame>", "  <no Python frame>", "  ...",
                                                          "<invalid thread state>")), line


def test_truncated_cores(crashed_311, tmp_path):
    """Cut inside a note, at the end of the notes, inside memory: a report
    (with markers, and a note on stderr saying what is missing) or one
    line of error that says the core is truncated."""
    core, report, _ = crashed_311
    with open(core, "rb") as f:
        data = f.read()
    notes, size = note_segment(data)
    cut = str(tmp_path / "cut")
    for n in [40, notes + size // 2, notes + size, notes + size + 4096, len(data) // 2, len(data) * 3 // 4,
              len(data) - 4096]:
        with open(cut, "wb") as f:
            f.write(data[:n])
        out = lastwords("dump", "--core", cut)
        if out.returncode == 0:
            report_lines_are_sound(out.stdout)
            assert "lastwords: note: the core file is truncated" in out.stderr, (n, out.stderr)
        elif n <= notes + size // 2:
            one_line_error(out)
        else:
            one_line_error(out, "truncated")


def test_garbage_notes(crashed_311, tmp_path):
    core, _, _ = crashed_311
    with open(core, "rb") as f:
        data = bytearray(f.read())
    notes, size = note_segment(data)
    rng = random.Random(7)
    for trial in range(20):
        bad = bytearray(data)
        start = notes + rng.randrange(size)
        for i in range(start, min(notes + size, start + rng.choice([4, 64, 4096, size]))):
            bad[i] = rng.randrange(256)
        path = str(tmp_path / ("bad%d" % trial))
        with open(path, "wb") as f:
            f.write(bad)
        out = lastwords("dump", "--core", path)
        if out.returncode == 0:
            report_lines_are_sound(out.stdout)
        else:
            one_line_error(out)
    # All of them garbage: nothing names a process.
    bad = bytearray(data)
    bad[notes:notes + size] = bytes(rng.randrange(256) for _ in range(size))
    with open(path, "wb") as f:
        f.write(bad)
    one_line_error(lastwords("dump", "--core", path), "is not a core lastwords can read")


def test_files_missing_or_another_build(crashed_311, tmp_path):
    """The files a core names, moved or rebuilt: one line that names the
    file and what is wrong with it; --root finds moved files again."""
    core, report, info = crashed_311
    with open(core, "rb") as f:
        data = f.read()
    notes, size = note_segment(data)
    home = os.path.expanduser("~/.pyenv")
    moved_to = "/" + "m" * (len(home) - 1)
    assert not os.path.exists(moved_to)
    # Every path under ~/.pyenv in NT_FILE now says moved_to.
    note = data[notes:notes + size].replace(home.encode() + b"/", moved_to.encode() + b"/")
    moved = str(tmp_path / "moved")
    with open(moved, "wb") as f:
        f.write(data[:notes] + note + data[notes + size:])
    lib = moved_to + "/versions/3.11.7/lib/libpython3.11.so.1.0"
    out = lastwords("dump", "--core", moved)
    one_line_error(out, lib + ", which process %d had mapped, is not here" % info["pid"], "--root")
    # --root: a directory that stands for /, where the files are.
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(home, str(root / moved_to.lstrip("/")))
    for top in ("usr", "lib", "lib64"):
        os.symlink("/" + top, str(root / top))
    out = lastwords("dump", "--core", moved, "--root", root)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    # The same threads; the header names the files as the process saw them.
    assert out.stdout.partition("\n\n")[2] == report.partition("\n\n")[2]
    assert out.stdout.partition("\n\n")[0].endswith(", " + lib)

    # Another build of libpython: its build-id, as the core recorded it,
    # differs from the file's.
    with open(os.path.join(home, "versions/3.11.7/lib/libpython3.11.so.1.0"), "rb") as f:
        lib_bytes = f.read(8192)
    build_id = re.search(rb"GNU\0(.{20})", lib_bytes, re.S).group(1)
    assert data.count(build_id) >= 1
    other = bytes([build_id[0] ^ 0xFF]) + build_id[1:]
    rebuilt = str(tmp_path / "rebuilt")
    with open(rebuilt, "wb") as f:
        f.write(data.replace(build_id, other))
    out = lastwords("dump", "--core", rebuilt)
    one_line_error(out, "libpython3.11.so.1.0, which process %d had mapped, is not the file the process had" % info["pid"],
                   "has build-id %s, the core recorded %s" % (build_id.hex(), other.hex()))


def test_a_core_from_another_root(start):
    """A core of the sid root's 3.14 (another glibc, another python): its
    files are not at the paths it names here. Without --root: one line
    naming the missing interpreter; --executable alone is enough for a
    statically linked python; the wrong one is refused by its build-id."""
    t = start("3.14", "abort-thread")
    root = sid_root()
    out = lastwords("dump", "--core", t.core)
    one_line_error(out, "/usr/bin/python3.14, which process %d had mapped, is not here" % t.pid)
    expected = lastwords("dump", "--stdlib-format", "--core", t.core, "--root", root)
    assert expected.returncode == 0, expected.stderr
    out = lastwords("dump", "--stdlib-format", "--core", t.core, "--executable", root + "/usr/bin/python3.14")
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected.stdout
    out = lastwords("dump", "--core", t.core, "--executable", root + "/usr/bin/python3.15")
    one_line_error(out, "/usr/bin/python3.14, which process %d had mapped, is not the file the process had" % t.pid,
                   root + "/usr/bin/python3.15 has build-id")


def test_what_is_not_a_core(tmp_path):
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.zst"
    garbage.write_bytes(b"\x28\xb5\x2f\xfd" + bytes(range(256)) * 4)
    cases = [
        ("/no/such/core", "cannot open it"),
        (str(empty), "cannot open it"),
        ("/bin/sh", "an executable or a library, not a core"),
        (str(garbage), "cannot decompress it (zstd)"),
        (HERE, "not a regular file"),
    ]
    for path, says in cases:
        one_line_error(lastwords("dump", "--core", path), path, says)
    for args in (["--core", "x", "1"], ["--executable", "x", "1"], ["--root", "/", "1"], ["--core"],
                 ["--core", "x", "--pause"], ["--core", "x", "--subprocesses"]):
        out = lastwords("dump", *args)
        assert out.returncode == 2, args
        assert out.stderr.startswith("lastwords: "), out.stderr
