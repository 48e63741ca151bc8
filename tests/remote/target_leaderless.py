# A process whose main thread has exited while another thread runs on: the
# main thread calls pthread_exit() (through ctypes, which lets go of the
# GIL for the call), so the kernel keeps it as a zombie task whose
# /proc/PID/maps, /root and process_vm_readv(PID) are empty or refused,
# while the process lives on in the thread it started. CPython 2.7 and 3.x.
#
#   python target_leaderless.py
#
# Prints its pid once the worker is parked, then exits its main thread; the
# worker stays parked until the process is killed.
import ctypes
import os
import sys
import threading

release = threading.Lock()
release.acquire()


def worker():
    sys.stdout.write("%d\n" % os.getpid())
    sys.stdout.flush()
    release.acquire()  # PARKED


threading.Thread(target=worker).start()
ctypes.CDLL(None).pthread_exit(None)  # EXITED
