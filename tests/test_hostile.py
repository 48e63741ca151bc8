"""Hostile tests: corrupt the interpreter's own structures, then crash.

Every case runs in a child process on the interpreter that runs pytest. Right
before a fatal signal the child corrupts a frame, a code object, a str or the
thread list with ctypes (tests/corrupt.py; offsets from lastwords' own layout,
passed in the environment so that the stdlib run never loads lastwords). The
test checks lastwords' exact report up to the corruption, the marker it prints
there, and that the process dies of its original signal.

The same program also runs under the stdlib's faulthandler. Its outcome is
recorded, not asserted (it faults again inside its handler, and how far it
gets varies): run with ``-s`` (or ``python tests/test_hostile.py --table``) to
get the Markdown table "case | stdlib outcome | lastwords outcome".

Where lastwords misbehaves, the test still asserts the right behaviour and is
marked ``xfail(strict=True)`` with the precise reason (``strict=False`` only for
the chained user-signal flood, whose failure is a race with load-dependent odds).

Snippet lines that a check refers to end with ``# @tag``; ``Ctx.line(tag)`` is
their line number in the file the child runs (line 1 is the import).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import LASTWORDS, MINOR, STDLIB, Result, run  # noqa: E402

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
SEGV = -signal.SIGSEGV
ABRT = -signal.SIGABRT
INVALID_FRAME = "  <invalid frame>\n"
INVALID_THREAD = "<invalid thread state>\n"
GC_LINE = "  Garbage-collecting\n" if MINOR >= 10 else ""
HEADERS = {SEGV: "Fatal Python error: Segmentation fault\n\n", ABRT: "Fatal Python error: Aborted\n\n"}


def _layout_debug():
    import lastwords._lastwords as native

    return native._layout_info()[2]


def child_env(extra=None):
    path = os.environ.get("PYTHONPATH")
    env = {
        "PYTHONPATH": TESTS_DIR + (os.pathsep + path if path else ""),
        "LASTWORDS_HOSTILE_LAYOUT": _layout_debug(),
    }
    env.update(extra or {})
    return env


# ---- cases ------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a check sees: the lastwords run, the stdlib run, and the snippet."""

    code: str  # dedented snippet body (line 1 of the file is the import)
    path: str  # the snippet's file name as the report prints it
    lastwords: Result
    stdlib: Result
    workdir: Path  # the lastwords run's directory (oracle.json lives there)
    runs: list  # (stdlib, lastwords) of every repetition

    def line(self, tag):
        """The line number of the snippet line ending with ``# @tag``."""
        for number, text in enumerate(self.code.splitlines(), 2):
            if text.rstrip().endswith("# @" + tag):
                return number
        raise LookupError(tag)

    def frame(self, tag, name):
        return f'  File "{self.path}", line {self.line(tag)} in {name}\n'

    @property
    def oracle(self):
        return json.loads((self.workdir / "oracle.json").read_text())


@dataclass
class Case:
    id: str
    title: str
    code: str
    check: Callable[[Ctx], None]
    env: dict = field(default_factory=dict)  # both runs
    lastwords_env: dict = field(default_factory=dict)  # the lastwords run only
    xfail: Optional[str] = None
    #: False only where the failure is a race whose odds depend on the load.
    xfail_strict: bool = True
    skip: Optional[str] = None
    repeat: int = 1
    timeout: int = 60
    #: For repeated cases: whether one run's report is complete (for the table).
    complete: Optional[Callable[[Result], bool]] = None


CASES: List[Case] = []


def case(**kwargs):
    CASES.append(Case(**kwargs))


def sub(template, **values):
    """Fill ``{name}`` placeholders (str.format would trip over dict braces)."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def assert_text(actual, expected):
    assert actual == expected, f"\n--- expected\n{expected}--- actual\n{actual}---"


def thread_block(frames, current=False):
    """A thread's header (id masked, as in Result.masked) and its lines."""
    head = "Current thread" if current else "Thread"
    return f"{head} 0xTHREAD (most recent call first):\n" + "".join(frames)


def oracle_frames(rows):
    return [f'  File "{f}", line {line} in {name}\n' for f, line, name in rows]


# -- 1, 2: a frame's `previous` and its code pointer, on the current thread --------

CHAIN = """
    import gc, corrupt
    gc.disable()
    def a():
        b()                                             # @a
    def b():
        c()                                             # @b
    def c():
        {corrupt}
        {crash}                                         # @c
    faulthandler.enable()
    a()                                                 # @module
"""

CRASHERS = {
    "sigsegv": ("faulthandler._sigsegv()", SEGV),
    "sigabrt": ("faulthandler._sigabrt()", ABRT),
}
if hasattr(__import__("faulthandler"), "_read_null"):  # removed in 3.15
    CRASHERS["read_null"] = ("faulthandler._read_null()", SEGV)


def chain_check(frames_before_marker, status=SEGV):
    """The current thread's first `frames_before_marker` frames of c, b, a,
    <module>, then the marker, then nothing: the exact report."""
    names = [("c", "c"), ("b", "b"), ("a", "a"), ("module", "<module>")]

    def check(ctx):
        frames = [ctx.frame(tag, name) for tag, name in names[:frames_before_marker]]
        expected = HEADERS[status] + thread_block(frames, current=True) + INVALID_FRAME
        assert_text(ctx.lastwords.plain, expected)
        assert ctx.lastwords.returncode == status

    return check


def chain_case(id, title, corruption, check, crash="sigsegv", **kw):
    case(id=id, title=title, code=sub(CHAIN, corrupt=corruption, crash=CRASHERS[crash][0]), check=check, **kw)


for crash, (_, status) in CRASHERS.items():
    chain_case(
        f"previous-unmapped-{crash}",
        f"`previous` of a middle frame → unmapped address (`{crash}`)",
        "corrupt.set_previous(corrupt.find_frame(b.__code__), corrupt.unmapped())",
        chain_check(2, status),
        crash=crash,
    )

chain_case(
    "previous-unmapped-pipe-reader",
    "`previous` of a middle frame → unmapped address, with the pipe reader (the seccomp fallback)",
    "corrupt.set_previous(corrupt.find_frame(b.__code__), corrupt.unmapped())",
    chain_check(2),
    lastwords_env={"LASTWORDS_READER": "pipe"},
)

chain_case(
    "previous-garbage-bytes",
    "`previous` → readable garbage (0x41 bytes)",
    "corrupt.set_previous(corrupt.find_frame(b.__code__), corrupt.garbage(0x41))",
    chain_check(2),
)


chain_case(
    "previous-garbage-pointers",
    "`previous` → readable garbage (every word points to a zeroed page)",
    "corrupt.set_previous(corrupt.find_frame(b.__code__), corrupt.pointers_to(corrupt.garbage(0)))",
    chain_check(2),
)

chain_case(
    "previous-straddles-boundary",
    "`previous` → fake frame whose code object ends at a PROT_NONE page",
    "corrupt.set_previous(corrupt.find_frame(b.__code__), corrupt.fake_frame(corrupt.guarded(64)))",
    chain_check(2),
)

chain_case(
    "code-unmapped",
    "code pointer of a middle frame → unmapped address",
    "corrupt.set_code(corrupt.find_frame(b.__code__), corrupt.unmapped())",
    chain_check(1),
)

chain_case(
    "code-misaligned",
    "code pointer of a middle frame → misaligned (code + 4)",
    "corrupt.set_code(corrupt.find_frame(b.__code__), id(b.__code__) + 4)",
    chain_check(1),
)

chain_case(
    "code-not-code",
    "code pointer → a bytes object (zeros)",
    "corrupt.set_code(corrupt.find_frame(b.__code__), id(corrupt.fake_code({})))",
    chain_check(1),
)

chain_case(
    "code-forged",
    "code pointer → a bytes object shaped like a code object",
    "corrupt.set_code(corrupt.find_frame(b.__code__), id(corrupt.fake_code("
    "{'code_filename': id(corrupt.keep('forged.py' + str(1))), "
    "'code_name': id(corrupt.keep('forged' + str(1)))})))",
    chain_check(1),
)

# -- 3: the file name object -------------------------------------------------------

FILENAME = """
    import gc, corrupt
    gc.disable()
    def f():
        faulthandler._sigsegv()                         # @crash
    {setup}
    faulthandler.enable()
    f()                                                 # @module
"""


def filename_check(shown):
    """`shown`: what stands after `File ` for f's frame (a function of ctx).
    From 3.14 on, like the stdlib, a frame printed with `???` ends the
    thread's listing with `  <invalid frame>`."""

    def check(ctx):
        frame_line = f"  File {shown(ctx)}, line {ctx.line('crash')} in f\n"
        if MINOR >= 14 and "???" in frame_line:
            rest = "  <invalid frame>\n"
        else:
            rest = ctx.frame("module", "<module>")
        expected = HEADERS[SEGV] + thread_block([frame_line, rest], True)
        assert_text(ctx.lastwords.plain, expected)
        assert ctx.lastwords.returncode == SEGV

    return check


def filename_case(id, title, setup, check, **kw):
    case(id=id, title=title, code=sub(FILENAME, setup=setup), check=check, **kw)


filename_case(
    "filename-int",
    "co_filename → an int",
    "f.__code__ = f.__code__.replace(); corrupt.set_filename(f.__code__, id(corrupt.keep(12345678901234567890)))",
    filename_check(lambda ctx: "???"),
)
filename_case(
    "filename-unmapped",
    "co_filename → unmapped address",
    "f.__code__ = f.__code__.replace(); corrupt.set_filename(f.__code__, corrupt.unmapped())",
    filename_check(lambda ctx: "???"),
)
# The second checked method, used where seccomp refuses process_vm_readv:
# forced here, on the cases where a plain load would fault.
PIPE_READER = {"LASTWORDS_READER": "pipe"}
filename_case(
    "filename-unmapped-pipe-reader",
    "co_filename → unmapped address, with the pipe reader (the seccomp fallback)",
    "f.__code__ = f.__code__.replace(); corrupt.set_filename(f.__code__, corrupt.unmapped())",
    filename_check(lambda ctx: "???"),
    lastwords_env=PIPE_READER,
)
filename_case(
    "filename-freed",
    "co_filename → a freed (munmapped) 64 MiB str",
    "big = 'x' * (64 << 20); addr = id(big); f.__code__ = f.__code__.replace(); "
    "corrupt.set_filename(f.__code__, addr); del big; assert not corrupt.is_mapped(addr)",
    filename_check(lambda ctx: "???"),
)
filename_case(
    "filename-huge-length",
    "co_filename's length → 2**40 (a 500-char str)",
    "name = ''.join(['/'] + ['h'] * 499); f.__code__ = f.__code__.replace(co_filename=name); "
    "assert f.__code__.co_filename is name; corrupt.set_str_length(name, 2**40)",
    filename_check(lambda ctx: '"/' + "h" * 499 + '..."'),
)
filename_case(
    "filename-negative-length",
    "co_filename's length → -1",
    "name = ''.join(['neg', '.py']); f.__code__ = f.__code__.replace(co_filename=name); "
    "assert f.__code__.co_filename is name; corrupt.set_str_length(name, -1)",
    filename_check(lambda ctx: "???"),
)


def check_short_huge(ctx):
    """A short str whose length says 2**40: the first 8 characters are real,
    then whatever follows it in memory, cut at 500 code points."""
    out = ctx.lastwords.plain
    m = re.fullmatch(
        r'Fatal Python error: Segmentation fault\n\n'
        r'Current thread 0xTHREAD \(most recent call first\):\n'
        r'  File "short\.py(?P<rest>.*)\.\.\.", line (?P<line>\d+) in f\n'
        + re.escape(ctx.frame("module", "<module>")),
        out,
    )
    assert m, out
    assert int(m.group("line")) == ctx.line("crash")
    # Every code point is either printable ASCII or an escape.
    points = re.findall(r"\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\U[0-9a-f]{8}|[ -~]", m.group("rest"))
    assert "".join(points) == m.group("rest")
    assert len(points) + len("short.py") <= 500
    assert ctx.lastwords.returncode == SEGV


filename_case(
    "filename-huge-length-short",
    "co_filename's length → 2**40 (an 8-char str)",
    "name = ''.join(['short', '.py']); f.__code__ = f.__code__.replace(co_filename=name); "
    "assert f.__code__.co_filename is name; corrupt.set_str_length(name, 2**40)",
    check_short_huge,
)

# -- 1, 4: other threads: their frames and the thread-state list ---------------------

THREADS = """
    import gc, threading, corrupt
    gc.disable()
    hold = threading.Lock()
    hold.acquire()
    ready = threading.Barrier(3)
    tstates = {}
    def park(n):
        if n == 0:
            tstates[threading.get_ident()] = corrupt.tstate()
            ready.wait()
            hold.acquire()                              # @parked
        else:
            park(n - 1)
    threads = [threading.Thread(target=park, args=(k,)) for k in (2, 3)]
    for t in threads:
        t.start()
    ready.wait()
    corrupt.wait_parked(threads, park.__code__, corrupt.marker_line("@parked"))
    tstates[threading.get_ident()] = corrupt.tstate()
    T1, T2 = (tstates[t.ident] for t in threads)
    MAIN = tstates[threading.get_ident()]
    BUFFERS = {"zeros": corrupt.garbage(0), "bytes": corrupt.garbage(0x41)}
    corrupt.thread_oracle(extra={"order": corrupt.tstate_order(tstates), "t1": threads[0].ident, "t2": threads[1].ident})
    def crash():
        {corrupt}
        faulthandler._sigsegv()                         # @crash
    faulthandler.enable()
    crash()                                             # @call
"""


def threads_check(build):
    """`build(ctx, blocks)` returns the expected text after the header, given
    the intact blocks {"t1", "t2", "main"} (unmasked thread ids)."""

    def check(ctx):
        o = ctx.oracle
        assert o["extra"]["order"] == [o["extra"]["t2"], o["extra"]["t1"], o["main"]]
        blocks = {
            "t1": thread_block(oracle_frames(o["threads"][str(o["extra"]["t1"])])),
            "t2": thread_block(oracle_frames(o["threads"][str(o["extra"]["t2"])])),
            "main": thread_block([ctx.frame("crash", "crash"), ctx.frame("call", "<module>")], current=True),
        }
        assert_text(ctx.lastwords.plain, HEADERS[SEGV] + build(ctx, blocks))
        assert ctx.lastwords.returncode == SEGV

    return check


def threads_case(id, title, corruption, build, **kw):
    case(id=id, title=title, code=sub(THREADS, corrupt=corruption), check=threads_check(build), **kw)


def t1_frames(ctx, keep):
    o = ctx.oracle
    return oracle_frames(o["threads"][str(o["extra"]["t1"])])[:keep]


threads_case(
    "threads-intact",
    "two parked threads, nothing corrupted (reference)",
    "pass",
    lambda ctx, b: b["t2"] + "\n" + b["t1"] + "\n" + b["main"],
)
threads_case(
    "thread-frame-previous",
    "other thread: `previous` of its 2nd frame → unmapped",
    "corrupt.set_previous(corrupt.find_frame(park.__code__, T1, nth=1), corrupt.unmapped())",
    lambda ctx, b: b["t2"] + "\n" + thread_block(t1_frames(ctx, 2)) + INVALID_FRAME + "\n" + b["main"],
)
threads_case(
    "thread-current-frame",
    "other thread: its innermost-frame pointer → unmapped",
    "corrupt.write_ptr(corrupt.frame_slot(T1), corrupt.unmapped())",
    lambda ctx, b: b["t2"] + "\n" + thread_block([]) + INVALID_FRAME + "\n" + b["main"],
)
threads_case(
    "tstate-next-unmapped",
    "`next` of a middle thread state → unmapped",
    "corrupt.set_next(T1, corrupt.unmapped())",
    lambda ctx, b: b["t2"] + "\n" + b["t1"] + "\n" + INVALID_THREAD,
)
threads_case(
    "tstate-next-zeros",
    "`next` of a middle thread state → zeroed memory",
    "corrupt.set_next(T1, BUFFERS['zeros'])",
    lambda ctx, b: b["t2"] + "\n" + b["t1"] + "\n" + INVALID_THREAD,
)
threads_case(
    "tstate-next-garbage",
    "`next` of a middle thread state → garbage (0x41 bytes)",
    "corrupt.set_next(T1, BUFFERS['bytes'])",
    lambda ctx, b: b["t2"] + "\n" + b["t1"] + "\n" + INVALID_THREAD,
)
threads_case(
    "tstate-cycle-self",
    "`next` of the last thread state → itself",
    "corrupt.set_next(MAIN, MAIN)",
    lambda ctx, b: "\n".join([b["t2"], b["t1"]] + [b["main"]] * 98) + "\n...\n",
)
threads_case(
    "tstate-cycle-head",
    "`next` of the last thread state → the head (a 3-cycle)",
    "corrupt.set_next(MAIN, T2)",
    lambda ctx, b: "\n".join(([b["t2"], b["t1"], b["main"]] * 34)[:100]) + "\n...\n",
)

# -- the extension-module list (3.10+) ------------------------------------------------

MODULES = """
    import gc, sys, _socket, corrupt
    gc.disable()
    sys.modules["not_in_the_stdlib"] = _socket
    def crash():
        {corrupt}
        faulthandler._sigsegv()                         # @crash
    faulthandler.enable()
    crash()                                             # @call
"""


def modules_check(listed):
    def check(ctx):
        expected = HEADERS[SEGV] + thread_block([ctx.frame("crash", "crash"), ctx.frame("call", "<module>")], True)
        if listed and MINOR >= 10:
            expected += "\nExtension modules: not_in_the_stdlib (total: 1)\n"
        assert_text(ctx.lastwords.plain, expected)
        assert ctx.lastwords.returncode == SEGV

    return check


case(
    id="modules-keys-unmapped",
    title="sys.modules' keys table → unmapped (extension-module list)",
    code=sub(MODULES, corrupt="corrupt.write_ptr(id(sys.modules) + corrupt.L['dict_keys'], corrupt.unmapped())"),
    check=modules_check(listed=False),
)
case(
    id="modules-intact",
    title="sys.modules intact, one non-stdlib extension (reference)",
    code=sub(MODULES, corrupt="pass"),
    check=modules_check(listed=True),
)

# -- 5: thread churn ------------------------------------------------------------------

CHURN = """
    import threading
    churned = threading.Event()
    def noop():
        pass
    made = [0] * 4
    def churn(k):
        for _ in range(100000):
            batch = [threading.Thread(target=noop) for _ in range(8)]
            for t in batch:
                t.start()
            for t in batch:
                t.join()
            made[k] += len(batch)
            if sum(made) >= 600:
                churned.set()
    churners = [threading.Thread(target=churn, args=(k,), daemon=True) for k in range(4)]
    for t in churners:
        t.start()
    churned.wait()
    def crash():
        faulthandler._sigsegv({release})                # @crash
    faulthandler.enable()
    crash()                                             # @call
"""

LINE_GRAMMAR = re.compile(
    r"Current thread's C stack trace \(most recent call first\):|  Binary file .*|  <truncated rest of calls>|"
    r'Fatal Python error: Segmentation fault|(Current thread|Thread) 0x[0-9a-f]{16}( \[.*\])? \(most recent call first\):'
    r'|  File (".*"|\?\?\?), line (\d+|\?\?\?) in .*|  <invalid frame>|<invalid thread state>|\.\.\.|  \.\.\.'
    r'|\s*<no Python frame>|  Garbage-collecting|Extension modules: .*|'
)


def churn_check(require_current):
    def check(ctx):
        for i, (stdlib, lastwords) in enumerate(ctx.runs):
            out = lastwords.plain
            path = ctx.path.replace(f"{os.sep}run0{os.sep}", f"{os.sep}run{i}{os.sep}")
            assert lastwords.returncode == SEGV, out
            assert out.startswith(HEADERS[SEGV]), out
            assert out.count("Fatal Python error") == 1, out
            for line in lastwords.output.splitlines():
                assert LINE_GRAMMAR.fullmatch(line), (line, out)
            frames = [ctx.frame("crash", "crash"), ctx.frame("call", "<module>")]
            current = thread_block([f.replace(ctx.path, path) for f in frames], current=True)
            blocks = out[len(HEADERS[SEGV]) :].split("\n\n")
            mine = [b for b in blocks if b.startswith("Current thread")]
            if require_current or mine:
                assert len(mine) == 1 and mine[0].rstrip("\n") + "\n" == current, out

    return check


case(
    id="churn-gil-held",
    title="fault while 4 threads create/join 8 threads at a time (600+ in all); GIL held (×5)",
    code=sub(CHURN, release=""),
    check=churn_check(require_current=True),
    complete=lambda r: "Current thread" in r.output,
    repeat=5,
)
case(
    id="churn-gil-released",
    title="same, `_sigsegv(True)`: the list changes during the walk (×5)",
    code=sub(CHURN, release="True"),
    check=churn_check(require_current=False),
    complete=lambda r: "Current thread" in r.output,
    repeat=5,
)

# -- 6: GC, finalization, other threads ---------------------------------------------


def current_only(*frames, gc=False, status=SEGV):
    def check(ctx):
        body = [ctx.frame(tag, name) for tag, name in frames]
        expected = HEADERS[status] + thread_block(([GC_LINE] if gc else []) + body, True)
        assert_text(ctx.lastwords.plain, expected)
        assert ctx.lastwords.returncode == status

    return check


case(
    id="gc-del",
    title="`__del__` faults during `gc.collect()`",
    code="""
        import gc
        class Crash:
            def __del__(self):
                faulthandler._sigsegv()                 # @crash
        a = Crash()
        a.cycle = a
        del a
        faulthandler.enable()
        gc.collect()                                    # @call
    """,
    check=current_only(("crash", "__del__"), ("call", "<module>"), gc=True),
)
case(
    id="atexit",
    title="an atexit handler faults (finalization)",
    code="""
        import atexit
        def on_exit():
            faulthandler._sigsegv()                     # @crash
        atexit.register(on_exit)
        faulthandler.enable()
    """,
    check=current_only(("crash", "on_exit")),
)
case(
    id="module-del-at-shutdown",
    title="`__del__` of a module-level object faults at shutdown",
    code="""
        import sys, _socket
        sys.modules["not_in_the_stdlib"] = _socket
        class Last:
            def __del__(self, crash=faulthandler._sigsegv):
                crash()                                 # @crash
        obj = Last()
        faulthandler.enable()
    """,
    check=current_only(("crash", "__del__"), gc=True),
)


def threading_frames():
    """A regex for the frames threading puts under a thread's target; their
    line numbers vary by version, so they are matched by function."""
    path = re.escape(threading.__file__)
    return "".join(
        rf'  File "{path}", line \d+ in {name}\n' for name in ("run", "_bootstrap_inner", "_bootstrap")
    )


def check_thread_overflow(ctx):
    out = ctx.lastwords.plain
    assert ctx.lastwords.returncode == SEGV, out
    head = re.escape(HEADERS[SEGV] + "Current thread 0xTHREAD (most recent call first):\n")
    assert re.match(head + threading_frames() + r"\nThread 0xTHREAD", out), out


case(
    id="stack-overflow-in-thread",
    title="stack overflow in a non-main thread",
    code="""
        import threading
        faulthandler.enable()
        t = threading.Thread(target=faulthandler._stack_overflow)
        t.start()
        t.join()                                        # @join
    """,
    check=check_thread_overflow,
)

# -- 7: faults around the handler ------------------------------------------------------


UNCHECKED = {"LASTWORDS_FORCE_UNCHECKED_READS": "1"}

case(
    id="sigabrt-unchecked-reads",
    title="plain `abort()` on the main thread with `LASTWORDS_FORCE_UNCHECKED_READS=1` (the seccomp fallback), nothing corrupted",
    code="""
        def crash():
            faulthandler._sigabrt()                     # @crash
        faulthandler.enable()
        crash()                                         # @call
    """,
    check=current_only(("crash", "crash"), ("call", "<module>"), status=ABRT),
    lastwords_env=UNCHECKED,
)


def check_nested_unchecked(ctx):
    """Unchecked reads cannot avoid the second fault: the SIGABRT report stops
    at the corruption. The process should still die of the signal it was
    handling."""
    out = ctx.lastwords.plain
    prefix = HEADERS[ABRT] + thread_block([ctx.frame("c", "c"), ctx.frame("b", "b")], True)
    assert out.startswith(prefix), out
    assert ctx.lastwords.returncode == ABRT, (ctx.lastwords.returncode, out)


case(
    id="nested-fault-unchecked-reads",
    title="SIGSEGV inside the SIGABRT report (unchecked reads, `previous` → unmapped, in a thread)",
    code="""
        import gc, threading, corrupt
        gc.disable()
        def a():
            b()                                         # @a
        def b():
            c()                                         # @b
        def c():
            corrupt.set_previous(corrupt.find_frame(b.__code__), corrupt.unmapped())
            faulthandler._sigabrt()                     # @c
        faulthandler.enable()
        t = threading.Thread(target=a)
        t.start()
        t.join()
    """,
    check=check_nested_unchecked,
    lastwords_env=UNCHECKED,
)


# -- user signals (register() exists in the installed build) ------------------------



def check_user_dump_in_progress(ctx):
    expected = (
        re.escape(HEADERS[SEGV] + "Thread 0xTHREAD (most recent call first):\n" + ctx.frame("parked", "park"))
        + threading_frames()
        + re.escape(
            "\n" + thread_block([ctx.frame("crash", "crash"), ctx.frame("call", "<module>")], True)
        )
    )
    out = ctx.lastwords.plain
    assert re.fullmatch(expected, out), out
    assert ctx.lastwords.returncode == SEGV


case(
    id="fatal-during-user-dump",
    title="fault while another thread's user-signal dump is in progress (its write blocks on a full pipe)",
    code="""
        import fcntl, os, signal, threading, time
        hold = threading.Lock()
        hold.acquire()
        started = threading.Event()
        def park():
            started.set()
            hold.acquire()                              # @parked
        t = threading.Thread(target=park, daemon=True)
        t.start()
        started.wait()
        # A pipe nobody reads, filled up: a dump written to it blocks.
        r, w = os.pipe()
        fcntl.fcntl(w, fcntl.F_SETFL, os.O_NONBLOCK)
        try:
            while True:
                os.write(w, b"x" * 4096)
        except BlockingIOError:
            pass
        fcntl.fcntl(w, fcntl.F_SETFL, 0)
        faulthandler.register(signal.SIGUSR1, file=w)
        signal.pthread_kill(t.ident, signal.SIGUSR1)
        # Wait (bounded) until the thread sits in write(w) inside the handler.
        for _ in range(10000):
            with open(f"/proc/self/task/{t.native_id}/syscall") as f:
                fields = f.read().split()
            if fields[0] in ("1", "64") and int(fields[1], 16) == w:
                break
            time.sleep(0.001)
        else:
            raise SystemExit("the user-signal handler never blocked")
        def crash():
            faulthandler._sigsegv()                     # @crash
        faulthandler.enable()
        crash()                                         # @call
    """,
    check=check_user_dump_in_progress,
)

FLOOD = """
    import os, signal, subprocess, sys, threading, time, warnings
    # Debug builds warn about the flooders still running at the crash; the
    # report is what is checked, line by line.
    warnings.simplefilter("ignore", ResourceWarning)
    hold = threading.Lock()
    hold.acquire()
    t = threading.Thread(target=hold.acquire, daemon=True)
    t.start()
    {handler}
    dumps = open("dumps.txt", "w")
    faulthandler.register(signal.SIGUSR1, file=dumps, chain={chain})
    # Threads come and go all through the flood.
    def churn():
        while True:
            workers = [threading.Thread(target=sum, args=(range(10),)) for _ in range(8)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
    threading.Thread(target=churn, daemon=True).start()
    # A flooder stops when this process is gone: a dead but not yet reaped
    # process still accepts kill(), but the flooder is reparented at once.
    FLOODER = (
        "import os, signal, sys\\n"
        "pid = int(sys.argv[1])\\n"
        "for i in range(3000000):\\n"
        "    if i % 256 == 0 and os.getppid() != pid:\\n"
        "        break\\n"
        "    try:\\n"
        "        os.kill(pid, signal.SIGUSR1)\\n"
        "    except ProcessLookupError:\\n"
        "        break\\n"
    )
    for _ in range(6):
        subprocess.Popen([sys.executable, "-c", FLOODER, str(os.getpid())],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(20000):
        with open("dumps.txt") as f:
            if f.read().count("most recent call first") >= 200:
                break
        time.sleep(0.001)
    else:
        raise SystemExit("no dumps")
    print("flooded", flush=True)
    def crash():
        faulthandler._sigsegv()                         # @crash
    faulthandler.enable()
    crash()                                             # @call
"""


def flood_complete(result):
    return "Current thread" in result.output


def check_flood(ctx):
    """Always true under a flood while threads churn: the process survives
    it, dies of SIGSEGV at the fault, stderr starts with the fatal header, and
    every line written anywhere (each dump, the report) is well formed."""
    for i, (stdlib, lastwords) in enumerate(ctx.runs):
        out = lastwords.output
        assert lastwords.stdout == "flooded\n", (i, lastwords.returncode, out)
        assert lastwords.returncode == SEGV, out
        assert out.startswith(HEADERS[SEGV]), out
        assert out.count("Fatal Python error") == 1, out
        for line in out.splitlines():
            assert LINE_GRAMMAR.fullmatch(line), (line, out)
        dumps = (ctx.workdir.parent.parent / f"run{i}" / LASTWORDS / "dumps.txt").read_text()
        assert dumps.count("most recent call first") >= 200
        # A user-signal dump still being written when the fault ends the
        # process leaves its last line unterminated: only that line is cut.
        complete, _, cut = dumps.rpartition("\n")
        for line in complete.splitlines():
            assert LINE_GRAMMAR.fullmatch(line), line
        assert len(cut) < 4096, cut


case(
    id="user-signal-flood",
    title="fault during a flood of SIGUSR1 from 6 other processes while threads churn, `register(chain=False)` (×3)",
    code=sub(FLOOD, chain="False", handler="pass"),
    check=check_flood,
    complete=flood_complete,
    repeat=3,
)
case(
    id="user-signal-flood-chain",
    title="the same flood with `register(chain=True)` and a Python SIGUSR1 handler (×6)",
    code=sub(FLOOD, chain="True", handler="signal.signal(signal.SIGUSR1, lambda *args: None)"),
    check=check_flood,
    complete=flood_complete,
    repeat=6,
)


def check_chained(ctx):
    """The SIGABRT handler that was there before enable() faults when lastwords
    re-raises SIGABRT to it: two complete reports, death by SIGSEGV."""
    frames = [ctx.frame("crash", "crash"), ctx.frame("call", "<module>")]
    expected = (
        HEADERS[ABRT] + thread_block(frames, True) + HEADERS[SEGV] + thread_block(frames, True)
    )
    assert_text(ctx.lastwords.plain, expected)
    assert ctx.lastwords.returncode == SEGV


case(
    id="previous-abrt-handler-faults",
    title="SIGSEGV while SIGABRT is handled: the previous SIGABRT handler (`strlen`) faults",
    code="""
        import ctypes, signal
        libc = ctypes.CDLL(None)
        class Sigaction(ctypes.Structure):
            _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16),
                        ("flags", ctypes.c_int), ("restorer", ctypes.c_void_p)]
        act = Sigaction()
        act.handler = ctypes.cast(libc.strlen, ctypes.c_void_p).value  # strlen((char *)6) faults
        assert libc.sigaction(signal.SIGABRT, ctypes.byref(act), None) == 0
        def crash():
            faulthandler._sigabrt()                     # @crash
        faulthandler.enable()
        crash()                                         # @call
    """,
    check=check_chained,
)


# ---- running and describing -----------------------------------------------------------


def _run_one(code, module, cwd, env, timeout):
    try:
        return run(code, module, cwd=str(cwd), env=env, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return Result(out, "", None)


def execute(c, tmp_path):
    """Run the case under the stdlib and under lastwords (`c.repeat` times)."""
    code = textwrap.dedent(c.code)
    runs = []
    for i in range(c.repeat):
        base = Path(tmp_path) / f"run{i}"
        base.mkdir(parents=True)
        pair = []
        for module in (STDLIB, LASTWORDS):
            work = base / "work"
            work.mkdir()
            env = child_env({**c.env, **(c.lastwords_env if module == LASTWORDS else {})})
            pair.append(_run_one(code, module, work, env, c.timeout))
            work.rename(base / module)
        runs.append(tuple(pair))
    stdlib, lastwords = runs[0]
    ctx = Ctx(
        code=code,
        path=str(Path(tmp_path) / "run0" / "work" / "snippet.py"),
        lastwords=lastwords,
        stdlib=stdlib,
        workdir=Path(tmp_path) / "run0" / LASTWORDS,
        runs=runs,
    )
    return ctx


def status_name(code):
    if code is None:
        return "hang (killed by the test)"
    if code < 0:
        try:
            return f"{signal.Signals(-code).name} ({code})"
        except ValueError:
            return f"signal {-code}"
    return f"exit {code}"


_TOKEN_RULES = [
    (re.compile(r"Fatal Python error: (.*)"), lambda m: f"[{m.group(1)}]"),
    (re.compile(r"Current thread .*"), lambda m: "current:"),
    (re.compile(r"Thread 0x(0{16}|(41){8}) .*"), lambda m: f"thread 0x{m.group(1)[:4]}…:"),
    (re.compile(r"Thread .*"), lambda m: "thread:"),
    (re.compile(r'  File "(.*)", line (.*) in (.*)'), None),
    (re.compile(r"  File \?\?\?, line (.*) in (.*)"), lambda m: f"???:{m.group(1)}:{m.group(2)}"),
    (re.compile(r"  Garbage-collecting"), lambda m: "(gc)"),
    (re.compile(r"\s*(<.*>)"), lambda m: f"`{m.group(1)}`"),
    (re.compile(r"Extension modules: (.*)"), lambda m: f"ext: {m.group(1)}"),
    (re.compile(r"\s*\.\.\."), lambda m: "…"),
]


def _file_token(m, snippet):
    path, line, name = m.groups()
    where = "" if path == snippet else (os.path.basename(path) if len(path) < 60 else path[:12] + "…") + ":"
    return f"{where}{name}:{line}"


def describe(result, snippet, limit=14):
    """A one-line summary of a run: exit status, then the report condensed."""
    status = status_name(result.returncode)
    text = result.output
    if not text.strip():
        return f"{status}; no output"
    tokens = []
    for line in text.splitlines():
        if not line:
            continue
        for rx, fmt in _TOKEN_RULES:
            m = rx.fullmatch(line)
            if m:
                tokens.append(_file_token(m, snippet) if fmt is None else fmt(m))
                break
        else:
            tokens.append(repr(line[:30]))
    if len(tokens) > limit:
        tokens = tokens[: limit - 3] + [f"… ({len(tokens) - limit + 3} more) …"] + tokens[-2:]
    cut = "" if text.endswith("\n") else " (cut mid-line)"
    return f"{status}; " + " ".join(tokens) + cut


def row(c, ctx):
    if ctx is None:
        return (c.title, "—", f"skipped: {c.skip}")
    snippet = ctx.path
    cells = []
    for index in (0, 1):
        statuses = sorted({status_name(r[index].returncode) for r in ctx.runs})
        first = ctx.runs[0][index]
        text = describe(Result(first.output, "", first.returncode), snippet)
        if len(ctx.runs) > 1:
            done = ""
            if c.complete:
                n = sum(bool(c.complete(r[index])) for r in ctx.runs)
                done = f"; complete report in {n}/{len(ctx.runs)}"
            text = f"{len(ctx.runs)} runs, {' / '.join(statuses)}{done}; 1st: " + text.split("; ", 1)[1]
        cells.append(text)
    if ctx.stdlib.plain == ctx.lastwords.plain and ctx.stdlib.returncode == ctx.lastwords.returncode:
        cells[0] = "same as lastwords: " + cells[0]
    return (c.title, cells[0], cells[1])


ROWS = {}


def table(rows, verdicts=None):
    out = ["| case | stdlib outcome | lastwords outcome |", "|---|---|---|"]
    for cid, (title, std, lw) in rows.items():
        v = (verdicts or {}).get(cid)
        if v:
            lw = f"{lw} — **{v}**"
        out.append(f"| {title} | {std} | {lw} |".replace("\n", " "))
    return "\n".join(out)


def _params():
    for c in CASES:
        marks = []
        if c.xfail:
            marks.append(pytest.mark.xfail(strict=c.xfail_strict, reason=c.xfail))
        if c.skip:
            marks.append(pytest.mark.skip(reason=c.skip))
        yield pytest.param(c, id=c.id, marks=marks)


VERDICTS = {}


@pytest.fixture(scope="module", autouse=True)
def _print_table(request):
    yield
    if ROWS and request.config.getoption("capture") == "no":
        print(f"\n\nHostile cases on CPython {sys.version.split()[0]}:\n")
        print(table(ROWS, VERDICTS))


@pytest.mark.parametrize("c", list(_params()))
def test_hostile(c, tmp_path):
    ctx = execute(c, tmp_path)
    ROWS[c.id] = row(c, ctx)
    VERDICTS[c.id] = "known issue (xfail)" if c.xfail else None
    c.check(ctx)


def main(argv):
    """``python tests/test_hostile.py --table [substring...]``: run every case
    and print the table (xfail cases marked)."""
    if "--table" not in argv:
        print(main.__doc__)
        return 2
    wanted = [a for a in argv if not a.startswith("--")]
    rows, verdicts = {}, {}
    for c in CASES:
        if wanted and not any(w in c.id for w in wanted):
            continue
        if c.skip:
            rows[c.id] = row(c, None)
            continue
        tmp = tempfile.mkdtemp(prefix="hostile-")
        try:
            ctx = execute(c, tmp)
            rows[c.id] = row(c, ctx)
            try:
                c.check(ctx)
                verdicts[c.id] = "UNEXPECTED PASS" if c.xfail else None
            except AssertionError as e:
                verdicts[c.id] = "known issue (xfail)" if c.xfail else f"FAIL: {str(e).splitlines()[0][:80]}"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(f"{c.id}: {verdicts[c.id] or 'ok'}", file=sys.stderr)
    print(f"Hostile cases on CPython {sys.version.split()[0]}:\n")
    print(table(rows, verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
