# A process whose main thread has exited while another thread runs on: the
# main thread calls pthread_exit() (through ctypes, which lets go of the
# GIL for the call), so the kernel keeps it as a zombie task whose
# /proc/PID/maps, /root and process_vm_readv(PID) are empty or refused,
# while the process lives on in the thread it started. CPython 2.7 and 3.x.
#
#   python target_leaderless.py [crash DIR]
#
# Prints its pid once the worker is parked, then exits its main thread; the
# worker stays parked until the process is killed. With `crash DIR`, the
# worker instead waits until the main thread is a zombie and dereferences
# NULL, with core dumps enabled and DIR as the working directory (where a
# relative core_pattern puts the core).
import ctypes
import os
import sys
import threading

CRASH = sys.argv[1:2] == ["crash"]
if CRASH:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    os.chdir(sys.argv[2])

release = threading.Lock()
release.acquire()


def main_thread_gone():
    with open("/proc/self/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def worker():
    sys.stdout.write("%d\n" % os.getpid())
    sys.stdout.flush()
    if CRASH:
        while not main_thread_gone():
            pass  # polling the kernel's state of the main thread
        ctypes.string_at(0)  # CRASHED
    release.acquire()  # PARKED


threading.Thread(target=worker).start()
ctypes.CDLL(None).pthread_exit(None)  # EXITED
