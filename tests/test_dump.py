"""Explicit dumps (dump_traceback): the same program under the stdlib and
under lastwords must print the same bytes."""

import pytest

from helpers import MINOR, PARKING, assert_same, mask, run, run_both


@pytest.mark.parametrize("all_threads", [True, False])
def test_dump_with_threads(all_threads, tmp_path):
    code = f"""
        park_threads([0, 3, 7])
        def dump():
            faulthandler.dump_traceback(all_threads={all_threads})
        dump()
    """
    stdlib, lastwords = run_both(code, tmp_path, prelude=PARKING)
    assert_same(stdlib, lastwords)
    assert lastwords.returncode == 0
    assert lastwords.output.count("most recent call first") == (4 if all_threads else 1)


@pytest.mark.parametrize("depth", [98, 99, 100, 101, 150])
def test_frame_limit(depth, tmp_path):
    code = f"""
        import sys
        sys.setrecursionlimit(10000)
        def recurse(n):
            if n == 0:
                faulthandler.dump_traceback(all_threads=False)
            else:
                recurse(n - 1)
        recurse({depth})
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    frames = min(depth + 2, 100)
    assert lastwords.output.count("  File ") == frames


def test_thread_limit(tmp_path):
    code = """
        park_threads([0] * 120)
        faulthandler.dump_traceback()
    """
    stdlib, lastwords = run_both(code, tmp_path, prelude=PARKING)
    assert_same(stdlib, lastwords)
    assert lastwords.output.endswith("\n...\n")
    assert lastwords.output.count("most recent call first") == 100


def test_strings_escaped_and_truncated(tmp_path):
    # A file name and function names with non-ASCII characters, control
    # characters, a backslash, and names longer than 500 code points.
    code = r'''
        src = (
            "def g\u00e9\u4e2dx():\n    faulthandler.dump_traceback(all_threads=False)\n"
            "def " + "a" * 600 + "():\n    g\u00e9\u4e2dx()\n"
            "def h\u4e2d\u00ff():\n    " + "a" * 600 + "()\n"
        )
        ns = {"faulthandler": faulthandler}
        exec(compile(src, "dir\\caf\u00e9 \u2603\t\U0001f600" + "x" * 520 + ".py", "exec"), ns)
        ns["h\u4e2d\u00ff"]()
    '''
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert "g\\xe9\\u4e2dx" in lastwords.output
    assert "a" * 500 + "..." in lastwords.output


def test_line_numbers_in_many_shapes(tmp_path):
    """Line tables: multi-line expressions, comprehensions, generators,
    decorators, lambdas, class bodies, try/finally, async, nested functions."""
    code = """
        import asyncio
        def dump():
            faulthandler.dump_traceback(all_threads=False)
        def deco(f):
            dump()
            return f
        class K:
            @deco
            def m(self):
                return [
                    x
                    for x in (
                        dump(),
                    )
                ]
        def gen():
            yield (lambda: (
                dump()
            ))()
        def tryer():
            try:
                1 / 0
            except ZeroDivisionError:
                pass
            finally:
                list(gen())
        async def coro():
            K().m()
            tryer()
            dump()
        asyncio.run(coro())
        def very_long():
""" + "".join(f"            x{i} = {i}\n" for i in range(400)) + """\
            dump()
        very_long()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert lastwords.output.count("Stack (most recent call first)") == 5


def test_dump_from_a_thread_with_all_threads(tmp_path):
    code = """
        import threading
        def work():
            faulthandler.dump_traceback()
        t = threading.Thread(target=work)
        t.start()
        t.join()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)


def test_thread_state_without_frames(tmp_path):
    """A thread state with no Python frame prints <no Python frame>."""
    code = """
        import ctypes
        api = ctypes.pythonapi
        api.PyInterpreterState_Get.restype = ctypes.c_void_p
        api.PyThreadState_New.restype = ctypes.c_void_p
        api.PyThreadState_New.argtypes = [ctypes.c_void_p]
        tstate = api.PyThreadState_New(api.PyInterpreterState_Get())
        faulthandler.dump_traceback()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    # 3.15 prints the header of a thread without frames and nothing under it.
    assert ("<no Python frame>\n" in lastwords.output) == (MINOR < 15)


def test_dump_to_file_and_fd(tmp_path):
    code = """
        with open("out.txt", "w") as f:
            faulthandler.dump_traceback(f)
            faulthandler.dump_traceback(f.fileno(), all_threads=False)
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert stdlib.output == lastwords.output == ""
    texts = [(tmp_path / m / "out.txt").read_text() for m in ("faulthandler", "lastwords")]
    assert texts[0].replace(texts[0][15:33], "") == texts[1].replace(texts[1][15:33], "")
    assert texts[1].count(" in <module>\n") == 2


def test_exact_dump_text(tmp_path):
    result = run(
        """
        def f():
            faulthandler.dump_traceback(all_threads=False)
        f()
        """,
        cwd=str(tmp_path),
    )
    path = tmp_path / "snippet.py"
    assert result.returncode == 0
    assert result.output == (
        "Stack (most recent call first):\n"
        f'  File "{path}", line 4 in f\n'
        f'  File "{path}", line 5 in <module>\n'
    )


@pytest.mark.parametrize("where", ["explicit", "fatal"])
def test_frame_without_a_line(where, tmp_path):
    """A code object with an empty line table: its line is `???`. Up to
    3.13 the listing goes on; from 3.14 the stdlib ends it there with
    `  <invalid frame>`. Each version's own stdlib is the reference."""
    table = "co_lnotab" if MINOR == 9 else "co_linetable"
    action = "faulthandler.dump_traceback()" if where == "explicit" else "faulthandler._sigsegv()"
    code = f"""
        def inner():
            {action}
        inner.__code__ = inner.__code__.replace({table}=b"")
        def outer():
            inner()
        faulthandler.enable()
        outer()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    if MINOR >= 14:
        assert "in inner\n  <invalid frame>\n" in lastwords.output
    elif MINOR >= 10:
        assert "line ??? in inner\n" in lastwords.output
        assert "in outer\n" in lastwords.output


@pytest.mark.skipif(MINOR < 14, reason="thread names are printed from 3.14 on")
def test_current_thread_name_without_proc(tmp_path):
    """With /proc unmounted (a minimal container), the stdlib still names
    the current thread (pthread_getname_np asks the kernel for it): so does
    lastwords, through prctl(PR_GET_NAME)."""
    import shutil
    import subprocess
    import sys

    if shutil.which("unshare") is None or shutil.which("umount") is None:
        pytest.fail("unshare and umount (util-linux) are needed for this test")
    code = "import faulthandler; faulthandler.dump_traceback(all_threads=True)"
    outputs = []
    for module in ("faulthandler", "lastwords"):
        prog = code.replace("import faulthandler", f"import {module} as faulthandler")
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "unchanged", "sh", "-c",
             'umount -l /proc && exec "$0" -c "$1"', sys.executable, prog],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stderr)
    stdlib, lastwords = outputs
    assert "Current thread 0x" in stdlib and "[" in stdlib.splitlines()[0], stdlib
    assert mask(lastwords) == mask(stdlib)
