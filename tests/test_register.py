"""register / unregister: dumps on user signals."""

import signal

import pytest

from helpers import assert_same, run, run_both


@pytest.mark.parametrize("all_threads", [True, False])
def test_user_signal_dump_matches_stdlib(all_threads, tmp_path):
    code = f"""
        import os, signal, threading
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        faulthandler.register(signal.SIGUSR1, all_threads={all_threads})
        def poke():
            os.kill(os.getpid(), signal.SIGUSR1)
        poke()
        stop.set()
        t.join()
        print("after", faulthandler.unregister(signal.SIGUSR1), faulthandler.unregister(signal.SIGUSR1))
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert lastwords.stdout == "after True False\n"
    assert ("Current thread 0x" in lastwords.output) == all_threads
    assert ("Stack (most recent call first):" in lastwords.output) == (not all_threads)


def test_chain_calls_the_python_handler(tmp_path):
    code = """
        import os, signal
        def handler(signum, frame):
            print("python handler", signum == signal.SIGUSR2, flush=True)
        signal.signal(signal.SIGUSR2, handler)
        faulthandler.register(signal.SIGUSR2, chain=True)
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGUSR2)
        faulthandler.unregister(signal.SIGUSR2)
        print(signal.getsignal(signal.SIGUSR2) is handler)
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert lastwords.stdout == "python handler True\npython handler True\nTrue\n"
    assert lastwords.output.count("most recent call first") == 2


def test_register_twice_keeps_the_original_handler(tmp_path):
    code = """
        import os, signal
        def handler(signum, frame):
            print("original", flush=True)
        signal.signal(signal.SIGUSR1, handler)
        faulthandler.register(signal.SIGUSR1)
        faulthandler.register(signal.SIGUSR1, all_threads=False)
        os.kill(os.getpid(), signal.SIGUSR1)
        faulthandler.unregister(signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGUSR1)
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert lastwords.stdout == "original\n"
    assert lastwords.output.startswith("Stack (most recent call first):\n")


def test_system_calls_go_on(tmp_path):
    """SA_RESTART: a read interrupted by the dump resumes."""
    result = run(
        """
        import os, signal, threading, time
        r, w = os.pipe()
        faulthandler.register(signal.SIGUSR1, all_threads=False)
        def later():
            time.sleep(0.2)
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.2)
            os.write(w, b"done")
        threading.Thread(target=later).start()
        print(os.read(r, 4))
        """,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "b'done'\n"


@pytest.mark.parametrize("all_threads", [True, False])
def test_signal_on_a_thread_without_python_state(all_threads, tmp_path):
    code = f"""
        import ctypes, signal, time
        libc = ctypes.CDLL(None)
        tid = ctypes.c_ulong()
        libc.pthread_create(ctypes.byref(tid), None, ctypes.cast(libc.pause, ctypes.c_void_p), None)
        faulthandler.register(signal.SIGUSR1, all_threads={all_threads})
        signal.pthread_kill(tid.value, signal.SIGUSR1); time.sleep(0.5)
        print("alive")
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert lastwords.stdout == "alive\n"
    if all_threads:
        assert "Current thread" not in lastwords.output
        assert "Thread 0x" in lastwords.output
    else:
        assert lastwords.output == ""


def test_bad_signals(tmp_path):
    code = """
        import signal
        for call in (
            lambda: faulthandler.register(signal.SIGSEGV),
            lambda: faulthandler.register(0),
            lambda: faulthandler.register(65),
            lambda: faulthandler.register(signal.SIGKILL),
            lambda: faulthandler.unregister(signal.SIGABRT),
            lambda: faulthandler.unregister(-3),
            lambda: faulthandler.unregister(signum=10),
            lambda: faulthandler.register("x"),
        ):
            try:
                call()
                print("ok")
            except Exception as e:
                print(type(e).__name__, e)
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert lastwords.stdout == stdlib.stdout
    assert "ok" not in lastwords.stdout.split()


def test_api_from_many_threads_while_signals_arrive(tmp_path):
    """enable/disable/register/unregister/dump_traceback_later/cancel from
    many threads at once while SIGUSR1 keeps arriving: no crash, no lost
    handler; the Python handler installed first is back at the end."""
    result = run(
        """
        import os, signal, threading, time
        seen = []
        def original(signum, frame):
            seen.append(signum)
        signal.signal(signal.SIGUSR1, original)
        devnull = open(os.devnull, "w")
        stop = threading.Event()
        def churn(k):
            while not stop.is_set():
                faulthandler.enable(devnull)
                faulthandler.register(signal.SIGUSR1, file=devnull, chain=bool(k % 2))
                faulthandler.dump_traceback_later(0.001, file=devnull, repeat=True)
                faulthandler.unregister(signal.SIGUSR1)
                faulthandler.cancel_dump_traceback_later()
                faulthandler.disable()
        def poke():
            while not stop.is_set():
                os.kill(os.getpid(), signal.SIGUSR1)
                time.sleep(0.0005)
        threads = [threading.Thread(target=churn, args=(k,)) for k in range(6)]
        threads.append(threading.Thread(target=poke))
        for t in threads:
            t.start()
        time.sleep(2.0)
        stop.set()
        for t in threads:
            t.join()
        faulthandler.unregister(signal.SIGUSR1)
        faulthandler.cancel_dump_traceback_later()
        faulthandler.disable()
        print(signal.getsignal(signal.SIGUSR1) is original, faulthandler.is_enabled(), len(seen) > 0)
        """,
        cwd=str(tmp_path),
        timeout=60,
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "True False True\n"
