# A process for lastwords-remote to discover: CPython 2.7 and 3.x alike.
#
#   python target.py PARKED [busy] [dupmap] [churn] [undumpable]
#
# Starts PARKED threads that block on a lock at a known line, optionally one
# thread that runs Python code without pause (it holds the GIL), decoy
# mappings of the interpreter's own file (as libffi's trampolines make), a
# thread that starts and joins short-lived threads without end (churn), and
# prctl(PR_SET_DUMPABLE, 0) (undumpable). Once
# every thread is where it should be, prints one JSON line on stdout: its
# pid, version, build and threads (ident = pthread_t, tid = kernel id). Then
# answers each line on stdin: "ping" -> "pong N" (N: the busy thread's
# progress), "exit" -> exits. No sleeps: every step waits on the previous.
import json
import os
import sys
import threading

try:
    import thread as _thread  # 2.7
except ImportError:
    import _thread


def native_id():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    import ctypes  # 2.7, 3.7: gettid(2) (x86-64: 186)

    return ctypes.CDLL(None, use_errno=True).syscall(186)


PARKED = int(sys.argv[1]) if len(sys.argv) > 1 else 2
BUSY = "busy" in sys.argv[2:]
DUPMAP = "dupmap" in sys.argv[2:]
CHURN = "churn" in sys.argv[2:]
UNDUMPABLE = "undumpable" in sys.argv[2:]

release = threading.Lock()
release.acquire()
ready = threading.Semaphore(0)
threads = []
record_lock = threading.Lock()
progress = [0]


def record(role):
    with record_lock:
        threads.append({"ident": _thread.get_ident(), "tid": native_id(), "role": role})


def parked():
    record("parked")
    ready.release()
    release.acquire()  # PARKED LINE
    release.release()


def busy():
    record("busy")
    ready.release()
    n = 0
    while True:  # BUSY LINE
        n += 1
        if n % 1000 == 0:
            progress[0] = n


def duplicate_mapping():
    """Map the interpreter's file again, read-only, at offset 0 (its first
    PT_LOAD), below and above where it is loaded: decoys for the load bias."""
    import ctypes

    path = None
    exe = os.path.realpath(sys.executable)
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) >= 6 and "libpython" in fields[5]:
                path = fields[5]
                break
            if path is None and len(fields) >= 6 and fields[5] == exe:
                path = fields[5]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    fd = os.open(path, os.O_RDONLY)
    prot_read, map_private = 1, 2
    # Hints, not MAP_FIXED: the kernel takes them when the range is free.
    got = [libc.mmap(hint, 4096, prot_read, map_private, fd, 0)
           for hint in (0x10000000, 0x7e0000000000)]
    os.close(fd)
    assert got == [0x10000000, 0x7e0000000000], got
    return got


def churn():
    record("churn")
    ready.release()
    n = 0
    while True:
        t = threading.Thread(target=int)
        t.start()
        t.join()
        n += 1
        progress[0] = n


if UNDUMPABLE:
    import ctypes

    PR_SET_DUMPABLE = 4
    assert ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0
keep = duplicate_mapping() if DUPMAP else None
for i in range(PARKED):
    t = threading.Thread(target=parked, name="parked-%d" % i)
    t.daemon = True
    t.start()
if BUSY:
    t = threading.Thread(target=busy, name="busy")
    t.daemon = True
    t.start()
if CHURN:
    t = threading.Thread(target=churn, name="churn")
    t.daemon = True
    t.start()
for _ in range(PARKED + (1 if BUSY else 0) + (1 if CHURN else 0)):
    ready.acquire()
record("main")
sys.stdout.write(
    json.dumps(
        {
            "pid": os.getpid(),
            "hexversion": sys.hexversion,
            "debug": hasattr(sys, "gettotalrefcount"),
            "threads": threads,
            "thread_count": threading.active_count(),
        }
    )
    + "\n"
)
sys.stdout.flush()
while True:
    line = sys.stdin.readline()
    if not line or line.strip() == "exit":
        break
    sys.stdout.write("pong %d\n" % progress[0])
    sys.stdout.flush()
os._exit(0)
