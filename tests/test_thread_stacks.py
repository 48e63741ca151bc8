"""Alternate signal stacks for the threads the interpreter starts while
lastwords is enabled (so that a stack overflow there is reported), given
without touching anything Python can see: `threading` is left as it is."""

import re
import signal
import threading

import pytest

from helpers import run

SEGV = -int(signal.SIGSEGV)


def line_of(path, text):
    """The number of the first line of the file at `path` that contains `text`."""
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)

# What sigaltstack() says on a new thread, as "(ss_flags, ss_size)".
ALT_STACK = """
import ctypes, _thread
_libc = ctypes.CDLL(None)
class _Stack(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]
def alt_stack():
    s = _Stack()
    assert _libc.sigaltstack(None, ctypes.byref(s)) == 0
    return "disabled" if s.flags & 2 else f"{s.size // 1024} KiB"
def on_new_thread(start):
    out = []
    done = _thread.allocate_lock(); done.acquire()
    def body():
        out.append(alt_stack()); done.release()
    start(body)
    done.acquire()
    return out[0]
"""


@pytest.mark.parametrize(
    "start",
    [
        "lambda f: threading.Thread(target=f).start()",
        "lambda f: _thread.start_new_thread(f, ())",
    ],
    ids=["threading.Thread", "_thread.start_new_thread"],
)
def test_new_threads_get_an_alternate_stack_while_enabled(start, tmp_path):
    """Threads started while enabled have lastwords' 256 KiB alternate stack;
    threads started before, or after disable(), have none (as with the
    stdlib). `threading` is imported only after enable()."""
    result = run(
        f"""
        print(on_new_thread(lambda f: _thread.start_new_thread(f, ())))
        faulthandler.enable()
        import threading
        start = {start}
        print(on_new_thread(start), on_new_thread(start))
        faulthandler.disable()
        print(on_new_thread(start))
        faulthandler.enable()
        print(on_new_thread(start))
        """,
        prelude=ALT_STACK,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "disabled\n256 KiB 256 KiB\ndisabled\n256 KiB\n"


def test_threading_is_left_untouched(tmp_path):
    """enable() and disable() change nothing in the threading module: same
    attributes, same objects (get_native_id is still _thread's, picklable)."""
    result = run(
        """
        import pickle, threading, _thread
        before = dict(vars(threading))
        faulthandler.enable()
        during = dict(vars(threading))
        faulthandler.disable()
        after = dict(vars(threading))
        same = lambda a, b: a.keys() == b.keys() and all(a[k] is b[k] for k in a)
        print(same(before, during), same(before, after))
        print(threading.get_native_id is _thread.get_native_id)
        faulthandler.enable()
        print(pickle.loads(pickle.dumps(threading.get_native_id)) is _thread.get_native_id)
        """,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "True True\nTrue\nTrue\n"


def test_stack_overflow_in_a_thread_started_after_enable(tmp_path):
    """The thread overflows its stack while the main thread waits on a line
    that does not change: the exact report, then death by SIGSEGV."""
    result = run(
        """
        import _thread
        faulthandler.enable()
        go = _thread.allocate_lock(); go.acquire()
        block = _thread.allocate_lock(); block.acquire()
        def overflow():
            go.acquire()
            faulthandler._stack_overflow()
        _thread.start_new_thread(overflow, ())
        go.release(); block.acquire()
        """,
        cwd=str(tmp_path),
    )
    path = tmp_path / "snippet.py"
    crash, wait = line_of(path, "_stack_overflow()"), line_of(path, "go.release(); block.acquire()")
    assert result.plain == (
        "Fatal Python error: Segmentation fault\n\n"
        "Current thread 0xTHREAD (most recent call first):\n"
        f'  File "{path}", line {crash} in overflow\n\n'
        "Thread 0xTHREAD (most recent call first):\n"
        f'  File "{path}", line {wait} in <module>\n'
    )
    assert result.returncode == SEGV


def test_stack_overflow_in_a_threading_thread(tmp_path):
    """The same with threading.Thread, threading imported after enable()."""
    result = run(
        """
        import _thread
        faulthandler.enable()
        import threading
        go = _thread.allocate_lock(); go.acquire()
        block = _thread.allocate_lock(); block.acquire()
        def overflow():
            go.acquire()
            faulthandler._stack_overflow()
        threading.Thread(target=overflow).start()
        go.release(); block.acquire()
        """,
        cwd=str(tmp_path),
    )
    crash = line_of(tmp_path / "snippet.py", "_stack_overflow()")
    wait = line_of(tmp_path / "snippet.py", "go.release(); block.acquire()")
    path = re.escape(str(tmp_path / "snippet.py"))
    frames = "".join(
        rf'  File "{re.escape(threading.__file__)}", line \d+ in {name}\n'
        for name in ("run", "_bootstrap_inner", "_bootstrap")
    )
    expected = (
        r"Fatal Python error: Segmentation fault\n\n"
        r"Current thread 0xTHREAD \(most recent call first\):\n"
        rf'  File "{path}", line {crash} in overflow\n' + frames + r"\n"
        r"Thread 0xTHREAD \(most recent call first\):\n"
        rf'  File "{path}", line {wait} in <module>\n'
    )
    assert re.fullmatch(expected, result.plain), result.output
    assert result.returncode == SEGV


def test_threads_start_while_enable_and_disable_race(tmp_path):
    """Four threads start 300 short threads each while the main thread turns
    lastwords on and off: every thread runs its target exactly once, and
    each has an alternate stack or none, never a broken one."""
    result = run(
        """
        import threading, _thread
        count_lock = _thread.allocate_lock()
        seen = {"ran": 0, "bad": 0}
        def body():
            state = alt_stack()
            with count_lock:
                seen["ran"] += 1
                if state not in ("disabled", "256 KiB"):
                    seen["bad"] += 1
        def starter():
            for _ in range(300):
                t = threading.Thread(target=body)
                t.start()
                t.join()
        starters = [threading.Thread(target=starter) for _ in range(4)]
        for s in starters:
            s.start()
        while any(s.is_alive() for s in starters):
            faulthandler.enable()
            faulthandler.disable()
        for s in starters:
            s.join()
        print(seen["ran"], seen["bad"])
        """,
        prelude=ALT_STACK,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "1200 0\n"
