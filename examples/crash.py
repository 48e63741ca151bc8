"""A program that dies: a worker thread waits while the main thread
segfaults three calls deep. Run it under lastwords:

    python -m lastwords run examples/crash.py
"""

import ctypes
import threading


def wait_for_work(ready, stop):
    ready.set()
    stop.wait()


def parse(record):
    return checksum(record)


def checksum(record):
    # Stand-in for a bug in a C extension: a real segmentation fault.
    ctypes.string_at(0)


ready, stop = threading.Event(), threading.Event()
worker = threading.Thread(target=wait_for_work, args=(ready, stop), name="worker", daemon=True)
worker.start()
ready.wait()
parse(b"record")
