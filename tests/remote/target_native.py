"""A target for tests/remote/check_native.py: the main thread blocks in
read(2) inside the C extension blocker (built by the test into the directory
given), three Python calls deep; a second thread parks in a lock acquire (a
futex wait) called back from C (map). Prints one JSON line when both are about to block; the test
polls /proc until they have. Runs in that directory, with core dumps on, so
that a SIGQUIT leaves its core there (where kernel.core_pattern is relative)."""

import json
import os
import resource
import sys
import threading

resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
os.chdir(sys.argv[1])
sys.path.insert(0, sys.argv[1])
import blocker  # noqa: E402

read_end, write_end = os.pipe()
lock = threading.Lock()
lock.acquire()
started = threading.Event()


def park_in_lock(_):
    started.set()
    lock.acquire()  # PARK_LOCK


def parker():
    # Through C (map), so that two calls of the eval loop run this thread.
    list(map(park_in_lock, [None]))  # PARKER


def level_two():
    return blocker.outer(read_end)  # LEVEL_TWO


def level_one():
    return level_two()  # LEVEL_ONE


worker = threading.Thread(target=parker)
worker.daemon = True
worker.start()
started.wait()
sys.stdout.write(json.dumps({"pid": os.getpid()}) + "\n")
sys.stdout.flush()
level_one()  # MAIN
