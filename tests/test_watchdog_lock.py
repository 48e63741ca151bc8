"""The watchdog holds CPython's HEAD_LOCK while it walks the thread list.
On 3.13+ HEAD_LOCK is a PyMutex, and releasing one that has parked waiters
needs CPython's PyMutex_Unlock. Everything the release needs is resolved
before the lock is ever taken: where PyMutex_Unlock cannot be found, the
watchdog walks without the lock instead of leaving it held (which would
deadlock every thread start and exit)."""

import os
import shutil
import subprocess
import sys

import pytest

from helpers import MINOR, run

# An LD_PRELOAD shim under which dlsym() does not find PyMutex_Unlock.
NO_UNLOCK_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
void *dlsym(void *handle, const char *name) {
    static void *(*real)(void *, const char *);
    if (!real) real = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
    if (!real) real = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
    if (strcmp(name, "PyMutex_Unlock") == 0) return NULL;
    return real(handle, name);
}
"""

CHURN = """
    import os, threading, time
    out = open(os.environ["REPORT"], "w")
    faulthandler.dump_traceback_later(0.001, repeat=True, file=out)
    def worker():
        pass
    deadline = time.monotonic() + 2
    started = 0
    while time.monotonic() < deadline:
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        started += len(threads)
    faulthandler.cancel_dump_traceback_later()
    print("alive", started > 0)
"""


@pytest.mark.skipif(MINOR < 13, reason="HEAD_LOCK is a PyMutex from 3.13 on")
def test_no_deadlock_without_pymutex_unlock(tmp_path):
    if shutil.which("gcc") is None:
        pytest.fail("gcc is needed to build the LD_PRELOAD shim of this test")
    (tmp_path / "shim.c").write_text(NO_UNLOCK_SHIM)
    shim = tmp_path / "shim.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(shim), str(tmp_path / "shim.c"), "-ldl"], check=True)
    result = run(
        CHURN,
        cwd=str(tmp_path),
        env={"LD_PRELOAD": str(shim), "REPORT": str(tmp_path / "dumps.txt")},
        timeout=60,
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "alive True\n"
    dumps = (tmp_path / "dumps.txt").read_text()
    assert dumps.count("Timeout (0:00:00.001000)!\n") > 10
