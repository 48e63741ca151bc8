"""`lastwords dump --native` against real processes and cores.

The test builds a C extension with gcc for each interpreter
(tests/remote/blocker.c: blocker.outer -> blocker_middle -> blocker_inner ->
read(2) on a pipe, the GIL released) and starts tests/remote/target_native.py:
its main thread blocks in that read three Python calls deep, a second thread
parks in a lock acquire (a futex wait). Once /proc says both are blocked:

* the merged stack of every thread is compared with gdb's `thread apply all
  bt` of the same stopped target: the native function names, in order, for
  the frames both name, with each run of Python frames where gdb has the
  eval loop's frames (`_PyEval_EvalFrameDefault`, 2.7's `PyEval_EvalFrameEx`);
* the Python frames are the target's own (file, line, function), right below
  the extension's frames;
* libc's `read` and the futex wait are named;
* a core of the same parked target gives the same merged stacks with
  `dump --native --core` (gcore on 2.7 and 3.9-3.13; the kernel's core after
  SIGQUIT in the sid root, whose thread stacks gdb 13 cannot read: see
  check_core.py);
* a core whose thread has a stack pointer into nowhere gives that thread a
  marker where its native stack stops, and nothing else changes;
* a stripped build of the extension is named from the file its
  .gnu_debuglink names.

Not named test_*.py: the remote stage runs it once, from the host.
"""

import glob
import json
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time

import jsonschema
import pytest

from check_core import core_path, core_pattern, sid_root
from check_dump import LASTWORDS, THREAD_HEADER
from check_remote import ALL, GUEST_TREE, PYENV, PYENV_VERSIONS, SID_VERSIONS, TREE, command

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "target_native.py")
SOURCE = os.path.join(HERE, "blocker.c")

with open(os.path.join(TREE, "schema", "report.schema.json")) as _f:
    SCHEMA = json.load(_f)

NATIVE = re.compile(r'^  Binary file (?:"(.*)", at (\S*?)([+-])0x([0-9a-f]+) |\'<unknown>\' )\[0x([0-9a-f]+)\]$')
PYTHON = re.compile(r'^  File "(.*)", line (\d+) in (.*)$')
EVAL = ("_PyEval_EvalFrameDefault", "PyEval_EvalFrameEx")
SYS_READ, SYS_FUTEX = 0, 202


def include_flags(name):
    """gcc flags for the interpreter's headers."""
    if name in PYENV_VERSIONS:
        found = glob.glob(os.path.join(PYENV, PYENV_VERSIONS[name], "include", "python*"))
        if not found:
            pytest.skip("no headers for %s under %s" % (name, PYENV))
        return ["-I", found[0]]
    root = sid_root()
    directory = SID_VERSIONS[name]
    include = os.path.join(root, "usr", "include", directory)
    if not os.path.isdir(include):
        pytest.skip("the sid root has no headers for %s (%s)" % (name, include))
    # pyconfig.h includes <x86_64-linux-gnu/pythonX.Y/pyconfig.h>: the root's
    # include directory comes after the host's, whose C headers are used.
    return ["-I", include, "-idirafter", os.path.join(root, "usr", "include")]


class NativeTarget:
    """target_native.py with its extension, blocked in read() and a futex."""

    def __init__(self, name, strip=False):
        for tool in ("gcc", "gdb", "gcore", "readelf") + (("objcopy", "strip") if strip else ()):
            if shutil.which(tool) is None:
                pytest.skip("no %s on this machine: it builds the extension or reads the target" % tool)
        self.name = name
        self.sid = name not in PYENV_VERSIONS
        argv = command(name, TARGET)
        # In the sid root, the extension goes to its own /tmp: a path that a
        # core names and that --root finds (the tree is bound in only while
        # the target runs).
        self.dir = tempfile.mkdtemp(prefix="lastwords-native-",
                                    dir=os.path.join(sid_root(), "tmp") if self.sid else None)
        flags = include_flags(name)
        so = os.path.join(self.dir, "blocker.so")
        out = subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-g", "-fno-inline", "-fno-optimize-sibling-calls"]
                             + flags + [SOURCE, "-o", so], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True)
        assert out.returncode == 0, out.stderr
        if strip:
            # Its symbols in a detached file that .gnu_debuglink names, in
            # .debug/ beside it (one of the places gdb looks too).
            os.mkdir(os.path.join(self.dir, ".debug"))
            debug = os.path.join(self.dir, ".debug", "blocker.so.debug")
            for step in (["objcopy", "--only-keep-debug", so, debug], ["strip", "--strip-unneeded", so],
                         ["objcopy", "--add-gnu-debuglink=" + debug, so]):
                done = subprocess.run(step, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
                assert done.returncode == 0, (step, done.stderr)
        guest_dir = "/tmp/" + os.path.basename(self.dir) if self.sid else self.dir
        self.proc = subprocess.Popen(argv + [guest_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, universal_newlines=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("target did not start: %s" % self.proc.stderr.read())
        self.pid = json.loads(line)["pid"]
        # Blocked: the main thread in read(2), the other in futex(2).
        deadline = time.monotonic() + 30
        while sorted(self.syscalls().values()) != [SYS_READ, SYS_FUTEX]:
            assert time.monotonic() < deadline, self.syscalls()
            time.sleep(0.001)  # polling the target's state

    def syscalls(self):
        out = {}
        for tid in os.listdir("/proc/%d/task" % self.pid):
            try:
                with open("/proc/%d/task/%s/syscall" % (self.pid, tid)) as f:
                    word = f.read().split()[0]
            except (OSError, IndexError):
                continue
            out[int(tid)] = int(word) if word.isdigit() else -1
        return out

    def close(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def start():
    started = []

    def start(name, **kwargs):
        t = NativeTarget(name, **kwargs)
        started.append(t)
        return t

    yield start
    for t in started:
        t.close()


def lastwords(*args):
    return subprocess.run([LASTWORDS] + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)


def merged(text):
    """{pthread id: [('native', name, library, pc) | ('python', file, line, function) | ('marker', text)]}."""
    threads = {}
    for block in text.strip("\n").split("\n\n"):
        lines = block.split("\n")
        m = THREAD_HEADER.match(lines[0].replace("Current thread", "Thread", 1))
        if not m:
            continue
        frames = []
        for line in lines[1:]:
            n = NATIVE.match(line)
            p = PYTHON.match(line)
            if n:
                frames.append(("native", n.group(2) or "", n.group(1), int(n.group(5), 16)))
            elif p:
                frames.append(("python", p.group(1), int(p.group(2)), p.group(3)))
            else:
                frames.append(("marker", line))
        threads[int(m.group(1), 16)] = frames
    return threads


# With libthread_db: "Thread 2 (Thread 0x7f... (LWP 123) ...", else "Thread 2 (LWP 123 ...".
GDB_THREAD = re.compile(r'^Thread \d+ \((?:Thread 0x[0-9a-f]+ \()?LWP (\d+)[ )]')
GDB_FRAME = re.compile(r'^#(\d+)\s+(?:0x([0-9a-f]+) in )?(\S+) \(')


def gdb_stacks(pid, executable):
    """{kernel thread id: [(pc or None, function)]} from gdb's `thread apply all
    bt`, one entry per machine frame: gdb lists the functions inlined into a
    frame first, without an address; the frame's own function comes last."""
    out = subprocess.run(["gdb", "-batch", "-nx", "-iex", "set debuginfod enabled off", "-iex", "set auto-load off",
                          "-iex", "set sysroot /proc/%d/root" % pid, executable, "-p", str(pid),
                          "-ex", "thread apply all bt"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    threads = {}
    current = None
    for line in out.stdout.splitlines():
        m = GDB_THREAD.match(line)
        if m:
            current = threads.setdefault(int(m.group(1)), [])
            continue
        f = GDB_FRAME.match(line)
        if f and current is not None:
            pc = int(f.group(2), 16) if f.group(2) else None
            if pc is not None or not current:
                current.append([pc, f.group(3)])
            else:
                current[-1][1] = f.group(3)
    assert threads, out.stdout + out.stderr
    return threads


def plain(name):
    """A function name without the aliases' decorations, to compare gdb's
    (from DWARF) with the symbol tables': `__GI___libc_read` and `read`,
    `foo.constprop.0` and `foo`."""
    name = name.split(".")[0].split("@")[0]
    name = re.sub(r"^__GI_", "", name).lstrip("_")
    return re.sub(r"^libc_", "", name)


def is_eval(name):
    return plain(name) in {plain(e) for e in EVAL}


def tokens(frames, common):
    """The names both tools give, in order, each run of Python frames (or of
    eval-loop frames) as one 'PY'. A name repeated in a row counts once:
    gdb lists the functions inlined into a frame before it, under their own
    names (`__libc_read` in `__GI___libc_read`)."""
    out = []
    for kind, name in frames:
        token = "PY" if kind == "python" else plain(name)
        if token != "PY" and token not in common:
            continue
        if out and out[-1] == token:
            continue
        out.append(token)
    return out


def compare_with_gdb(ours, gdb):
    """Per thread: the names both tools give, in the same order, Python
    frames where gdb has eval-loop frames; and each of our return addresses
    is one of gdb's, in the same order."""
    assert set(ours) == set(gdb), (sorted(ours), sorted(gdb))
    for thread, frames in ours.items():
        mine = [(f[0], f[1]) for f in frames if f[0] in ("native", "python")]
        theirs = [("python" if is_eval(n) else "native", n) for _, n in gdb[thread] if n != "??"]
        named = {plain(n) for k, n in mine if k == "native" and n}
        common = named & {plain(n) for k, n in theirs if k == "native"}
        # Most of what we name, gdb names too (the comparison is not empty).
        assert len(common) >= 0.7 * len(named), (named - common, frames, gdb[thread])
        assert not any(k == "native" and is_eval(n) for k, n in mine), frames
        a, b = tokens(mine, common), tokens(theirs, common)
        assert a == b, "\n".join(["ours: %s" % a, "gdb:  %s" % b])
        pcs = [f[3] for f in frames[1:] if f[0] == "native"]
        theirs_pcs = [pc for pc, _ in gdb[thread] if pc is not None]
        at = 0
        for pc in pcs:
            if at == len(theirs_pcs):
                break  # gdb's walk ended first (where it stops past main)
            assert pc in theirs_pcs[at:], (hex(pc), frames, gdb[thread])
            at = theirs_pcs.index(pc, at) + 1
        assert at == len(theirs_pcs) or len(pcs) >= 3, (frames, gdb[thread])


def marked_lines():
    """Line numbers of the target's markers: LEVEL_TWO, LEVEL_ONE, MAIN..."""
    out = {}
    with open(TARGET) as f:
        for number, line in enumerate(f, 1):
            m = re.search(r"# ([A-Z_]+)$", line.rstrip())
            if m:
                out[m.group(1)] = number
    return out


def check_main_thread(frames, target):
    """The extension's frames on top of libc's read, then the Python frames
    of the calls into it, where the eval loop ran them."""
    kinds = [f[0] for f in frames]
    natives = [f[1] for f in frames if f[0] == "native"]
    inner = natives.index("blocker_inner")
    # libc's read, or the syscall helpers of glibc 2.41+ under it.
    assert "read" in [plain(n) for n in natives[:inner]], frames
    assert all("libc" in f[2] for f in frames[:inner]), frames
    assert natives[inner:inner + 3] == ["blocker_inner", "blocker_middle", "blocker_outer"], frames
    first_python = kinds.index("python")
    lines = marked_lines()
    assert [f for f in frames if f[0] == "python"] == [
        ("python", target, lines["LEVEL_TWO"], "level_two"),
        ("python", target, lines["LEVEL_ONE"], "level_one"),
        ("python", target, lines["MAIN"], "<module>"),
    ], frames
    # Native frames above (the C call into blocker) and below (the
    # interpreter's start).
    assert all(k == "native" for k in kinds[:first_python]), frames
    assert frames[-1][0] == "native", frames


def guest_path(t):
    if t.sid:
        return GUEST_TREE + TARGET[len(TREE):]
    return TARGET


def target_file_as_printed(frames):
    """2.7 prints the path the script was started with."""
    return [f for f in frames if f[0] == "python"][0][1]


def by_kernel_tid(ours, pid):
    """The merged stacks by kernel thread id, which the JSON report gives."""
    out = lastwords("dump", "--native", "--json", pid)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    jsonschema.validate(doc, SCHEMA)
    threads = doc["processes"][0]["threads"]
    tids = {t["thread_id"]: t["native_id"] for t in threads}
    # The same frames as the text, native ones as {"native": {...}}.
    for t in threads:
        frames = [("native", f["native"]["function"] or "", f["native"]["library"], f["native"]["address"])
                  if "native" in f else ("python", f["file"], f["line"], f["function"]) for f in t["frames"]]
        assert frames == [f for f in ours[t["thread_id"]] if f[0] != "marker"], (frames, ours[t["thread_id"]])
        assert t["native_end"] == "outermost", t
    return {tids[thread]: frames for thread, frames in ours.items()}


@pytest.mark.parametrize("name", ALL)
def test_native_stacks_match_gdb(name, start):
    t = start(name)
    out = lastwords("dump", "--native", t.pid)
    assert out.returncode == 0, out.stderr
    assert "Threads stopped for " in out.stdout and "(--native)" in out.stdout, out.stdout
    ours = by_kernel_tid(merged(out.stdout), t.pid)
    assert len(ours) == 2, out.stdout
    # The target runs on after the dump.
    assert t.proc.poll() is None
    gdb = gdb_stacks(t.pid, "/proc/%d/exe" % t.pid)
    compare_with_gdb(ours, gdb)
    main = [f for f in ours.values() if any(x[0] == "native" and x[1] == "blocker_inner" for x in f)]
    assert len(main) == 1, out.stdout
    printed = target_file_as_printed(main[0])
    assert printed in (guest_path(t), os.path.basename(TARGET)), printed
    check_main_thread(main[0], printed)
    # The parked thread: its Python frames too.
    (other,) = [f for f in ours.values() if f is not main[0]]
    lines = marked_lines()
    python = [f for f in other if f[0] == "python"]
    assert python[:2] == [("python", printed, lines["PARK_LOCK"], "park_in_lock"),
                          ("python", printed, lines["PARKER"], "parker")], other


def libc_has_symbols(t):
    """Whether the target's libc has a .symtab or its debug file (by
    build-id) is installed in the target's root."""
    root = "/proc/%d/root" % t.pid
    with open("/proc/%d/maps" % t.pid) as f:
        # The path as we see it (the kernel prints a chrooted process's paths
        # from our root).
        libc = [line.split()[-1] for line in f if re.search(r"/libc\.so\.6$", line.strip())][0]
    out = subprocess.run(["readelf", "-n", "-S", libc], stdout=subprocess.PIPE, universal_newlines=True)
    if " .symtab " in out.stdout:
        return True
    build_id = re.search(r"Build ID: ([0-9a-f]+)", out.stdout).group(1)
    return os.path.exists("%s/usr/lib/debug/.build-id/%s/%s.debug" % (root, build_id[:2], build_id[2:]))


@pytest.mark.parametrize("name", ALL)
def test_libc_read_and_futex_wait_are_named(name, start):
    t = start(name)
    out = lastwords("dump", "--native", t.pid)
    assert out.returncode == 0, out.stderr
    ours = merged(out.stdout)
    names = {thread: [f[1] for f in frames if f[0] == "native"] for thread, frames in ours.items()}
    reads = [n for n in names.values()
             if "blocker_inner" in n and "read" in [plain(x) for x in n[:n.index("blocker_inner")]]]
    assert len(reads) == 1, out.stdout
    waits = [n for n in names.values() if n is not reads[0]]
    assert len(waits) == 1, out.stdout
    if not libc_has_symbols(t):
        # The futex wait is a local function of libc: only .symtab names it.
        # The frames are there, unnamed (gdb has no names for them either).
        wait = [f for f in ours.values() if [x[1] for x in f if x[0] == "native"] == waits[0]][0]
        assert "libc.so" in wait[0][2], wait
        pytest.skip("%s: the target's libc has no .symtab and no debug file in its root: its futex wait, a "
                    "local function, is printed as libc.so.6+offset (gdb names it ?? too)" % name)
    assert "futex" in waits[0][0], waits[0]


def kernel_core(t):
    """SIGQUIT to the target's main thread: the kernel's core."""
    core_pattern()
    os.kill(t.pid, signal.SIGQUIT)
    assert t.proc.wait(timeout=60) in (-signal.SIGQUIT, 128 + signal.SIGQUIT), t.proc.stderr.read()
    cores = glob.glob(core_path(t.pid, sid_root(), t.dir))
    assert len(cores) == 1, cores
    return cores[0]


@pytest.mark.parametrize("name", ALL)
def test_core_gives_the_same_merged_stacks(name, start):
    t = start(name)
    live = lastwords("dump", "--native", t.pid)
    assert live.returncode == 0, live.stderr
    if t.sid:
        core = kernel_core(t)
        args = ["--root", sid_root()]
    else:
        core = os.path.join(t.dir, "gcore")
        out = subprocess.run(["gcore", "-o", core, str(t.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=120)
        assert out.returncode == 0, out.stderr
        core = "%s.%d" % (core, t.pid)
        args = []
        t.proc.kill()
        t.proc.wait()
    out = lastwords("dump", "--native", "--core", core, *args)
    assert out.returncode == 0, out.stderr
    # Paths of a process in the sid root read from outside are ours, from a
    # core its own: the same files.
    def same_files(stacks):
        return {thread: [f[:2] + (os.path.basename(f[2]),) + f[3:] if f[0] == "native" else f for f in frames]
                for thread, frames in stacks.items()}

    from_core = same_files(merged(out.stdout))
    expected = same_files(merged(live.stdout))
    assert sorted(from_core) == sorted(expected), "\n".join([live.stdout, out.stdout])
    for thread in expected:
        assert from_core[thread] == expected[thread], "\n".join(
            ["live: %s\ncore: %s" % (a, b) for a, b in zip(expected[thread], from_core[thread]) if a != b])


def set_stack_pointer(core, note_index, value):
    """Write `value` as the rsp of the `note_index`th NT_PRSTATUS of an
    x86-64 core (pr_reg at 112, rsp its 20th word)."""
    import struct

    with open(core, "r+b") as f:
        data = bytearray(f.read())
        phoff, = struct.unpack_from("<Q", data, 32)
        phnum, = struct.unpack_from("<H", data, 56)
        seen = 0
        for i in range(phnum):
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + 56 * i)
            if p_type != 4:
                continue
            at, end = p_offset, p_offset + p_filesz
            while at + 12 <= end:
                namesz, descsz, kind = struct.unpack_from("<III", data, at)
                desc = at + 12 + (namesz + 3) // 4 * 4
                if kind == 1:
                    if seen == note_index:
                        struct.pack_into("<Q", data, desc + 112 + 19 * 8, value)
                        f.seek(0)
                        f.write(data)
                        return struct.unpack_from("<I", data, desc + 32)[0]
                    seen += 1
                at = desc + (descsz + 3) // 4 * 4
    raise AssertionError("no NT_PRSTATUS %d in %s" % (note_index, core))


def test_a_stack_pointer_into_nowhere_ends_that_stack_with_a_marker(start):
    """A core whose thread has a stack pointer into nowhere: that thread's
    native stack ends with a marker, its Python frames are still listed,
    the other thread is whole."""
    t = start("3.12")
    core = os.path.join(t.dir, "gcore")
    out = subprocess.run(["gcore", "-o", core, str(t.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=120)
    assert out.returncode == 0, out.stderr
    core = "%s.%d" % (core, t.pid)
    intact = lastwords("dump", "--native", "--core", core)
    assert intact.returncode == 0, intact.stderr
    assert "<native stack ends" not in intact.stdout, intact.stdout
    for bad in (0x10, 0xFFFFFFFFFFFFFFF8, 0x7FFFFFFFF000):
        set_stack_pointer(core, 1, bad)
        out = lastwords("dump", "--native", "--core", core)
        assert out.returncode == 0, out.stderr
        stacks = merged(out.stdout)
        ends = [frames for frames in stacks.values() if ("marker", "  <native stack ends: cannot unwind further>") in frames]
        assert len(ends) == 1, out.stdout
        # The walk stopped at its first frame; the Python frames follow.
        assert [f[0] for f in ends[0]][:2] == ["native", "marker"], ends[0]
        assert any(f[0] == "python" for f in ends[0]), ends[0]
        assert sum(1 for frames in stacks.values() if frames[-1][0] == "native") == 1, out.stdout


def test_static_functions_are_named_from_a_debuglink_file(start):
    """A stripped extension: its static function (blocker_outer) is named
    from the detached file its .gnu_debuglink names, and only from there;
    its exported ones from .dynsym either way."""
    t = start("3.12", strip=True)

    def names():
        out = lastwords("dump", "--native", t.pid)
        assert out.returncode == 0, out.stderr
        (main,) = [f for f in merged(out.stdout).values() if any(x[1] == "blocker_inner" for x in f)]
        return [(f[1], f[3]) for f in main if f[0] == "native" and f[2].endswith("/blocker.so")]

    with_debug = names()
    assert [n for n, _ in with_debug] == ["blocker_inner", "blocker_middle", "blocker_outer"], with_debug
    shutil.rmtree(os.path.join(t.dir, ".debug"))
    without = names()
    # The same frames; the static one has no name of its own now.
    assert [pc for _, pc in without] == [pc for _, pc in with_debug], (with_debug, without)
    assert [n for n, _ in without] == ["blocker_inner", "blocker_middle", ""], without


def test_symbol_index_cold_warm_off_and_damaged_give_one_report(start, tmp_path):
    """dump --native keeps a sorted index of each object's symbols under
    $XDG_CACHE_HOME/lastwords/symbols: the report is the same with the cache
    cold (indexes built and kept), warm (read back), off
    (LASTWORDS_SYMBOL_CACHE=0: the tables scanned), with damaged indexes
    (refused and rebuilt), and where the directory cannot be made."""
    t = start("3.12")
    cache = tmp_path / "cache"

    def report(**env):
        out = subprocess.run([LASTWORDS, "dump", "--native", str(t.pid)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, universal_newlines=True, timeout=60,
                             env={**os.environ, "XDG_CACHE_HOME": str(cache), **env})
        assert out.returncode == 0, out.stderr
        return re.sub(r"Threads stopped for [0-9.]+ ms", "Threads stopped for X ms", out.stdout)

    cold = report()
    kept = sorted((cache / "lastwords" / "symbols").iterdir())
    # libc (with its debug file, where installed), libpython, python, blocker.so, ...
    assert len(kept) >= 3, kept
    sizes = [p.stat().st_size for p in kept]
    warm = report()
    assert sorted((cache / "lastwords" / "symbols").iterdir()) == kept
    off = report(LASTWORDS_SYMBOL_CACHE="0")
    for p in kept:
        p.write_bytes(p.read_bytes()[:-1])
    damaged = report()
    assert [p.stat().st_size for p in kept] == sizes
    # A cache directory that cannot be made: the tables are scanned.
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    unwritable = report(XDG_CACHE_HOME=str(not_a_directory))
    assert cold == warm == off == damaged == unwritable, (cold, warm, off, damaged, unwritable)
    names = [f[1] for frames in merged(cold).values() for f in frames if f[0] == "native"]
    assert {"blocker_outer", "blocker_middle", "blocker_inner"} <= set(names), names
