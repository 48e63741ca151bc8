"""dump_traceback_later / cancel_dump_traceback_later: the watchdog."""

import re
import signal
import sys

import pytest

from helpers import LASTWORDS, STDLIB, assert_same, run, run_both


@pytest.mark.parametrize("timeout,header", [(0.5, "Timeout (0:00:00.500000)!"), (1, "Timeout (0:00:01)!")])
@pytest.mark.parametrize("spin", ["default", "0"], ids=["spin", "no-spin"])
def test_timeout_dump_matches_stdlib(timeout, header, spin, tmp_path):
    code = f"""
        import threading, time
        stop = threading.Event()
        def waiter():
            stop.wait()
        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        def hang():
            faulthandler.dump_traceback_later({timeout}, exit=True)
            time.sleep(30)
        hang()
    """
    # LASTWORDS_WATCHDOG_SPIN=0: the watchdog sleeps up to the deadline
    # instead of waking early, rehearsing the dump and spinning.
    env = {} if spin == "default" else {"LASTWORDS_WATCHDOG_SPIN": spin}
    stdlib, lastwords = run_both(code, tmp_path, env=env)
    assert_same(stdlib, lastwords)
    assert lastwords.returncode == 1
    lines = lastwords.masked.splitlines()
    assert lines[0] == header
    # The watchdog has no thread state: no thread is "Current".
    assert re.fullmatch(r"Thread 0xTHREAD( \[.*\])? \(most recent call first\):", lines[1])
    assert "Current thread" not in lastwords.output


# Waiting on what a test waits for, never for a fixed time: `wait_until`
# polls a condition (bounded, so a failure ends the test instead of hanging
# it); the watchdog thread is found by its name.
WAITING = """
import os, platform, time
def wait_until(condition, what, limit=30):
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "waited in vain for " + what
        time.sleep(0.001)
def watchdog_tid():
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/comm" % tid) as f:
                if f.read().startswith("lastwords-watch"):
                    return int(tid)
        except OSError:
            pass
    return None
def in_write(tid):
    nr = {"x86_64": "1", "aarch64": "64"}[platform.machine()]
    try:
        with open("/proc/self/task/%d/syscall" % tid) as f:
            return f.read().split()[:1] == [nr]
    except OSError:
        return False
"""


def test_repeat_and_cancel(tmp_path):
    result = run(
        """
        import os
        report = os.environ["REPORT"]
        def dumps():
            return open(report).read().count("Timeout (")
        faulthandler.dump_traceback_later(0.05, repeat=True, file=open(report, "w"))
        def repeat_three_times():
            wait_until(lambda: dumps() >= 3, "three dumps")
            faulthandler.cancel_dump_traceback_later()
            faulthandler.cancel_dump_traceback_later()  # idempotent
        repeat_three_times()
        at_cancel = dumps()
        # With nothing armed the watchdog thread ends: no dump can follow.
        wait_until(lambda: watchdog_tid() is None, "the watchdog to end")
        print(at_cancel >= 3, dumps() - at_cancel)
        """,
        cwd=str(tmp_path),
        env={"REPORT": str(tmp_path / "report.txt")},
        prelude=WAITING,
    )
    assert result.returncode == 0, result.output
    # At most a dump that was already being written when cancel was called.
    assert result.stdout in ("True 0\n", "True 1\n"), result.stdout
    report = (tmp_path / "report.txt").read_text()
    blocks = report.split("Timeout (0:00:00.050000)!\n")[1:]
    assert len(blocks) >= 3
    for block in blocks:
        assert block.startswith("Thread 0x")
        # The main thread runs Python code while the watchdog reads it: its
        # listing reaches the function that waits, or ends with the
        # documented marker for frames that changed under the walk.
        assert "in repeat_three_times\n" in block or block.endswith("  <invalid frame>\n"), block


def test_second_call_replaces_the_first(tmp_path):
    result = run(
        """
        import time
        faulthandler.dump_traceback_later(0.1, exit=True)
        faulthandler.dump_traceback_later(30, exit=True)
        # Not a synchronisation: the window in which the replaced deadline
        # (0.1 s) must not fire, ten times as long.
        time.sleep(1)
        print("survived")
        faulthandler.cancel_dump_traceback_later()
        """,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0
    assert result.stdout == "survived\n"
    assert result.output == ""


def test_fires_while_another_thread_holds_the_gil(tmp_path):
    """The main thread sleeps in C without releasing the GIL; the watchdog
    needs no GIL."""
    code = """
        import ctypes
        libc = ctypes.PyDLL(None)  # PyDLL: the GIL stays held during the call
        def stuck():
            faulthandler.dump_traceback_later(0.2, exit=True)
            libc.sleep(20)
        stuck()
    """
    stdlib, lastwords = run_both(code, tmp_path, timeout=30)
    assert_same(stdlib, lastwords)
    assert lastwords.returncode == 1
    assert lastwords.output.startswith("Timeout (0:00:00.200000)!\nThread 0x")


def test_no_call_waits_for_a_stuck_dump(tmp_path):
    """A timeout dump blocked on a full pipe must not block cancel, re-arm,
    enable or disable. The stuck dump stays blocked on its own duplicate of
    the fd; a re-armed timeout is served by a fresh watchdog thread."""
    result = run(
        """
        import fcntl, os, threading
        r, w = os.pipe()
        fcntl.fcntl(w, fcntl.F_SETFL, os.O_NONBLOCK)
        try:
            while True:
                os.write(w, b"x" * 65536)
        except BlockingIOError:
            pass
        fcntl.fcntl(w, fcntl.F_SETFL, 0)  # blocking again: the dump will hang
        faulthandler.dump_traceback_later(0.05, file=w)
        wait_until(lambda: watchdog_tid() and in_write(watchdog_tid()), "the dump to block")
        stuck = watchdog_tid()
        report = open("second.txt", "w")
        def calls():
            faulthandler.cancel_dump_traceback_later()
            faulthandler.dump_traceback_later(0.05, file=report)
            faulthandler.enable()
            faulthandler.disable()
        caller = threading.Thread(target=calls)
        caller.start()
        # A liveness bound, not a timing: with a call that waits for the
        # stuck dump, the caller would never end (nothing drains the pipe).
        caller.join(timeout=20)
        wait_until(lambda: open("second.txt").read().count("Timeout ("), "the second dump")
        faulthandler.cancel_dump_traceback_later()
        report.close()
        print(caller.is_alive(), in_write(stuck), open("second.txt").read().count("Timeout (0:00:00.050000)!"), flush=True)
        os._exit(0)  # the stuck watchdog thread stays blocked until the end
        """,
        cwd=str(tmp_path),
        timeout=60,
        prelude=WAITING,
    )
    assert result.returncode == 0, result.output
    # The calls returned while the first dump was still blocked in write().
    assert result.stdout == "False True 1\n"


@pytest.mark.parametrize(
    "timeout",
    ["0", "-1", "0.0", "float('nan')", "1e10", "2**63", "'x'", "None"],
)
def test_bad_timeouts(timeout, tmp_path):
    code = f"""
        try:
            faulthandler.dump_traceback_later({timeout})
        except Exception as e:
            print(type(e).__name__, e)
        else:
            print("ok")
            faulthandler.cancel_dump_traceback_later()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert lastwords.stdout == stdlib.stdout
    assert lastwords.stdout != "ok\n"


def test_fork_child_starts_disarmed(tmp_path):
    result = run(
        """
        import os, sys, time, warnings
        # 3.12+ warns that fork() in a process with threads (the watchdog) may
        # deadlock; lastwords' fork handlers are what prevents that.
        warnings.simplefilter("ignore", DeprecationWarning)
        faulthandler.dump_traceback_later(0.3, exit=True)
        pid = os.fork()
        if pid == 0:
            # The parent's watchdog thread did not survive the fork: its
            # 0.3 s plan must not fire here (a window, not a synchronisation).
            time.sleep(1.0)
            faulthandler.cancel_dump_traceback_later()  # a no-op, never a hang
            faulthandler.dump_traceback_later(0.1, exit=True)  # the child's own
            time.sleep(10)  # ended by that dump's exit
            os._exit(0)
        faulthandler.cancel_dump_traceback_later()
        _, status = os.waitpid(pid, 0)
        print("child exit", os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status >> 8)
        """,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "child exit 1\n"
    # One dump only: the child's own, after 0.1 s, never the parent's plan.
    assert result.output.count("Timeout (") == 1
    assert result.output.startswith("Timeout (0:00:00.100000)!\n")


def test_dumps_survive_thread_churn(tmp_path):
    """The stdlib's watchdog segfaults within seconds here; lastwords' reads
    are checked and its output stays whole. The main thread waits, blocked
    in C, while another thread starts and joins threads: its stack holds
    still, so every dump must list it whole, down to <module>. (With the
    main thread running Python code instead, its listing could end early
    with the marker for frames that changed under the walk.)"""
    result = run(
        """
        import threading
        def short():
            sum(range(100))
        def churn():
            for _ in range(100):
                threads = [threading.Thread(target=short) for _ in range(20)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            done.set()
        done = threading.Event()
        faulthandler.dump_traceback_later(0.001, repeat=True, file=open("dumps.txt", "w"))
        threading.Thread(target=churn).start()
        done.wait()  # MAIN WAITS
        faulthandler.cancel_dump_traceback_later()
        print("alive")
        """,
        cwd=str(tmp_path),
        timeout=120,
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "alive\n"
    text = (tmp_path / "dumps.txt").read_text()
    blocks = text.split("Timeout (0:00:00.001000)!\n")[1:]
    assert len(blocks) > 20
    frame_line = re.compile(r'  File ".*", line (\d+|\?\?\?) in .*|  <invalid frame>|( {2})?<no Python frame>|  \.\.\.')
    header = re.compile(r"Thread 0x([0-9a-f]{16})( \[.*\])? \(most recent call first\):")
    for block in blocks[:-1]:  # the last one may have been cut by cancel
        lines = block.rstrip("\n").split("\n")
        for line in lines:
            m = header.fullmatch(line)
            if m:
                # A pthread_t is a user-space address: a freed thread state
                # read as garbage would show up here.
                assert int(m.group(1), 16) < 2**47, line
            else:
                assert line == "" or frame_line.fullmatch(line), line
        # The main thread is the oldest, so listed last: whole, whether it
        # was caught starting the churn thread or waiting for it.
        assert block.rstrip("\n").endswith(" in <module>"), block


def test_a_thread_caught_mid_call_is_listed_whole(tmp_path):
    """A thread that keeps calling Python functions from C is read by the
    watchdog halfway through a call or a return now and then (on 3.11-3.15
    its frame pointer is set before the frame is linked, or points at a
    frame being reused): 1-10% of such dumps listed it as `<invalid frame>`,
    with no frame at all, or cut after its top frame. Such a thread is read
    again: its listings are whole, down to <module>. (The stdlib's watchdog
    segfaults here.)"""
    result = run(
        """
        import os
        def f(x):
            return x
        report = open("dumps.txt", "w+")
        faulthandler.dump_traceback_later(0.0005, repeat=True, file=report)
        # 1,500 dumps; only C calls between two calls of f.
        while os.pread(report.fileno(), 1 << 22, 0).count(b"Timeout (") < 1500:
            list(map(f, range(100)))
        faulthandler.cancel_dump_traceback_later()
        """,
        cwd=str(tmp_path),
        timeout=120,
    )
    assert result.returncode == 0, result.output
    text = (tmp_path / "dumps.txt").read_text()
    blocks = text.split("Timeout (0:00:00.000500)!\n")[1:]
    assert len(blocks) >= 1500
    torn = [
        block
        for block in blocks
        if "<invalid frame>" in block or not block.rstrip("\n").endswith(" in <module>")
    ]
    # Before the rereads: 18 to 150 of 1,500 listings on 3.11-3.15. After: 0
    # to 2 in 5,000 on this machine (a thread descheduled halfway through a
    # call for longer than the 0.5 ms of rereads), hence a bound, not zero.
    assert len(torn) <= 3, torn


def test_head_lock_left_as_found_when_busy(tmp_path):
    """While another thread holds HEAD_LOCK for longer than the watchdog's
    100 ms wait, the dump goes ahead without it, and HEAD_LOCK is left as it
    was: held once, free once released. (A failed wait once released the
    lock anyway, on 3.9-3.12, after which two threads could hold it.)"""
    import lastwords._lastwords as native

    layout = native._layout_info()[2]
    if "head_lock_kind: ThreadLock" not in layout:
        pytest.skip("HEAD_LOCK is a PyMutex here (3.13+): the watchdog spins on it without PyThread calls")
    offset = int(re.search(r"runtime_head_lock: (\d+)", layout).group(1))
    # The dump comes in one write: the snippet polls for a non-empty file with
    # C calls only. (A call into Python code, as open() makes on 3.12, can be
    # caught halfway by a walk that holds neither HEAD_LOCK nor the GIL, and
    # then listed as `<invalid frame>`: a thread that never showed `<module>`
    # kept the old poll waiting for ever.)
    result = run(
        f"""
        import ctypes, os, time
        lib = ctypes.CDLL(None)  # calls release the GIL
        lib.PyThread_acquire_lock_timed.argtypes = [ctypes.c_void_p, ctypes.c_longlong, ctypes.c_int]
        lib.PyThread_acquire_lock_timed.restype = ctypes.c_int
        lib.PyThread_release_lock.argtypes = [ctypes.c_void_p]
        runtime = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
        head_lock = ctypes.c_void_p.from_address(runtime + {offset}).value

        def try_lock():
            return lib.PyThread_acquire_lock_timed(head_lock, 0, 0)

        report = open("report.txt", "w+")
        assert try_lock() == 1
        faulthandler.dump_traceback_later(0.05, file=report)
        # The watchdog waits 100 ms for HEAD_LOCK, then dumps without it.
        while not os.stat("report.txt").st_size:
            time.sleep(0.001)  # polling for the dump
        lib.PyThread_release_lock(head_lock)
        first, second = try_lock(), try_lock()
        lib.PyThread_release_lock(head_lock)
        print(first, second)
        """,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "1 0\n"
    # The whole dump: the main thread, polling for it on line 18 (the loop's
    # condition) or 19 (its sleep). The lock is taken before
    # arming: a dump that came before it was held would test nothing.
    report = (tmp_path / "report.txt").read_text()
    assert re.fullmatch(
        r'Timeout \(0:00:00\.050000\)!\nThread 0x[0-9a-f]{16} \(most recent call first\):\n'
        r'  File ".*snippet\.py", line (18|19) in <module>\n',
        report,
    ), report


# What the process holds, from /proc: its thread count and open fds.
PROCESS_COUNTS = """
import os, threading, time
def counts():
    with open("/proc/self/status") as f:
        threads = next(int(line.split()[1]) for line in f if line.startswith("Threads:"))
    return threads, sorted(os.listdir("/proc/self/fd")), threading.active_count()
def back_to(baseline):
    # Poll, for at most 30 s, until the counts are the baseline again.
    deadline = time.monotonic() + 30
    while counts() != baseline and time.monotonic() < deadline:
        time.sleep(0.005)
    return counts() == baseline
def dumps(path):
    with open(path) as f:
        return f.read().count("Timeout (")
def wait_for_dumps(path, n):
    deadline = time.monotonic() + 30
    while dumps(path) < n and time.monotonic() < deadline:
        time.sleep(0.005)
    return dumps(path)
"""


@pytest.mark.parametrize(
    "disarm",
    [
        "faulthandler.dump_traceback_later(3600, file=report); faulthandler.cancel_dump_traceback_later()",
        "faulthandler.dump_traceback_later(0.01, file=report); wait_for_dumps('report.txt', 1)",
        "faulthandler.dump_traceback_later(0.01, repeat=True, file=report); wait_for_dumps('report.txt', 2);"
        " faulthandler.cancel_dump_traceback_later()",
    ],
    ids=["cancel", "one-shot-fired", "repeat-cancelled"],
)
@pytest.mark.parametrize("module", [STDLIB, LASTWORDS])
def test_nothing_is_left_while_disarmed(disarm, module, tmp_path):
    """Like the stdlib, no thread and no fd stays behind once nothing is
    armed (lastwords keeps its watchdog across back-to-back re-arms only),
    and threading never sees the watchdog. Twice: the second arm starts a
    watchdog again."""
    result = run(
        f"""
        report = open("report.txt", "w")
        baseline = counts()
        for _ in range(2):
            {disarm}
            print(back_to(baseline), counts()[2] == baseline[2])
        """,
        module,
        prelude=PROCESS_COUNTS,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "True True\nTrue True\n"


@pytest.mark.skipif(sys.version_info < (3, 12), reason="os.fork() warns about threads from 3.12")
@pytest.mark.parametrize(
    "disarm",
    [
        "faulthandler.dump_traceback_later(3600, file=report); faulthandler.cancel_dump_traceback_later()",
        "faulthandler.dump_traceback_later(0.01, file=report); wait_for_dumps('report.txt', 1)",
    ],
    ids=["cancel", "one-shot-fired"],
)
@pytest.mark.parametrize("warnings", ["recorded", "error"])
def test_fork_right_after_disarm_does_not_warn(warnings, disarm, tmp_path):
    """os.fork() right after a cancel (or a one-shot timeout that fired)
    issues no DeprecationWarning about threads: no thread of lastwords' may be
    left. 3.12-3.14 issue the warning (recorded here) and clear it even under
    -W error; from 3.15, -W error makes os.fork() raise. (The stdlib's cancel
    waits only until its watchdog says it is done, not until the thread is
    gone: a fork right after it warns now and then.)"""
    if warnings == "error" and sys.version_info < (3, 15):
        pytest.skip("-W error makes os.fork() raise from 3.15; 3.12-3.14 clear the warning")
    fork = {
        "recorded": """
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                pid = os.fork()
                if pid == 0:
                    os._exit(7)
            print([str(w.message) for w in seen])
            """,
        "error": """
            pid = os.fork()
            if pid == 0:
                os._exit(7)
            print([])
            """,
    }[warnings]
    result = run(
        f"""
        import os, textwrap, warnings
        report = open("report.txt", "w")
        {disarm}
        exec(textwrap.dedent({fork!r}))
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
        report.close()
        """,
        prelude=PROCESS_COUNTS,
        cwd=str(tmp_path),
        env={"PYTHONWARNINGS": "error"},
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "[]\n7\n"
    assert result.output == ""


def test_watchdog_is_gone_after_interpreter_exit(tmp_path):
    """An armed timeout at exit: lastwords cancels it at interpreter exit and
    its thread and timer are gone before the atexit handlers registered
    before the arm run (they run after lastwords' own)."""
    result = run(
        """
        import atexit
        baseline = counts()
        atexit.register(lambda: print(counts() == baseline))
        faulthandler.dump_traceback_later(3600)
        print(counts()[0] == baseline[0] + 1)
        """,
        prelude=PROCESS_COUNTS,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "True\nTrue\n"


def test_timeout_dump_larger_than_the_buffer(tmp_path):
    """30 threads x 100 frames of 500-character file names: about 1.6 MB,
    more than the 1 MiB the watchdog renders under HEAD_LOCK. Nothing is
    cut: the rest is written as it is rendered, byte for byte the stdlib's."""
    from helpers import PARKING

    code = f"""
        import time
        # The parking code compiled under a 500-character file name.
        long_name = "/" + "p" * 496 + ".py"
        ns = {{}}
        exec(compile({PARKING!r}, long_name, "exec"), ns)
        ns["park_threads"]([120] * 30)
        report = open("report.txt", "w")
        def wait():
            faulthandler.dump_traceback_later(0.05, file=report, exit=True)
            time.sleep(60)
        wait()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert stdlib.returncode == lastwords.returncode == 1
    expected = (tmp_path / STDLIB / "report.txt").read_text()
    got = (tmp_path / LASTWORDS / "report.txt").read_text()
    assert len(expected) > 1_500_000
    assert re.sub(r"0x[0-9a-f]{16}", "0xTHREAD", got) == re.sub(r"0x[0-9a-f]{16}", "0xTHREAD", expected)
