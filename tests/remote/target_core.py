# A process for `lastwords dump --core` to read the core of: CPython 2.7 and
# 3.x alike.
#
#   python target_core.py DIR park|abort-thread|segv-main
#
# Works in DIR (its working directory, where the kernel writes the core with
# a core_pattern such as the default "core"), with core dumps enabled
# (RLIMIT_CORE unlimited). Parks two threads at depths 3 and 6 and the main
# thread at a known line, then:
#
# park: a last thread writes DIR/reference.txt (faulthandler.dump_traceback
#   on 3.x, without its own block; on 2.7 the same text built from
#   sys._current_frames()), prints one JSON line and ends; the process stays
#   parked until the test cores it (gcore, or a signal) and kills it.
# abort-thread: a fourth thread, three calls deep, waits until the main
#   thread is parked, prints the JSON line and calls os.abort(): SIGABRT on
#   that thread. On 3.x faulthandler is enabled into DIR/fatal.txt (its
#   report is the reference); on 2.7 the thread writes DIR/reference.txt on
#   the line of the abort ("Current thread" is the aborting one).
# segv-main (3.x): the main thread prints the JSON line and reads address 0
#   through ctypes: SIGSEGV on the main thread, faulthandler's report in
#   DIR/fatal.txt.
#
# The JSON line: {"pid", "hexversion", "main": the main thread's ident}.
# No sleeps as synchronisation: each step waits on the previous.
import json
import os
import resource
import sys
import threading

DIR = sys.argv[1]
MODE = sys.argv[2]
os.chdir(DIR)
resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

release = threading.Lock()
release.acquire()
parked = threading.Semaphore(0)
main_parked = threading.Event()
# Thread idents in creation order (the interpreter lists the newest first).
created = [threading.current_thread().ident]


def park(depth):
    if depth == 0:
        parked.release()
        release.acquire()  # PARKED
    else:
        park(depth - 1)


def say():
    sys.stdout.write(json.dumps({"pid": os.getpid(), "hexversion": sys.hexversion,
                                 "main": created[0]}) + "\n")
    sys.stdout.flush()


def text_27(current=None, leave_out=None):
    """faulthandler's text for the threads, from sys._current_frames()
    (2.7 has no faulthandler)."""
    import traceback

    frames = sys._current_frames()
    if current is not None:
        # The calling thread as its caller sees it (not in this function).
        frames[current] = sys._getframe(1)
    out = []
    for ident in reversed(created):
        if ident == leave_out or ident not in frames:
            continue
        head = "Current thread" if ident == current else "Thread"
        lines = ["%s 0x%016x (most recent call first):\n" % (head, ident)]
        for filename, line, name, _ in reversed(traceback.extract_stack(frames[ident])):
            lines.append('  File "%s", line %d in %s\n' % (filename, line, name))
        out.append("".join(lines))
    return "\n".join(out)


def write_reference():
    me = threading.current_thread().ident
    if sys.version_info[0] == 2:
        text = text_27(leave_out=me)
    else:
        import faulthandler

        with open("reference.raw", "w") as f:
            faulthandler.dump_traceback(f, all_threads=True)
        with open("reference.raw") as f:
            blocks = f.read().split("\n\n")
        # Leave out this thread's own block: it ends before the core.
        text = "\n\n".join(b for b in blocks if not b.startswith("Current thread"))
    with open("reference.txt", "w") as f:
        f.write(text)


def main_is_parked():
    """The main thread's innermost frame is the module's, on the
    PARKED-MAIN line: it is in release.acquire() (or about to be, and it
    cannot run Python code while the caller holds the GIL)."""
    frame = sys._current_frames().get(created[0])
    return frame is not None and frame.f_code.co_name == "<module>" and frame.f_lineno == PARKED_MAIN


def abort(depth):
    if depth:
        return abort(depth - 1)
    main_parked.wait()
    while not main_is_parked():
        threading.Event().wait(0.001)  # polling the main thread's state
    say()
    if sys.version_info[0] == 2:
        me = threading.current_thread().ident
        with open("reference.txt", "w") as f: f.write(text_27(current=me)); f.flush(); os.abort()  # ABORT
    os.abort()  # ABORT


for depth in (3, 6):
    t = threading.Thread(target=park, args=(depth,))
    t.daemon = True
    t.start()
    created.append(t.ident)
    parked.acquire()

if MODE != "park" and sys.version_info[0] == 3:
    import faulthandler

    fatal = open("fatal.txt", "w")
    faulthandler.enable(fatal, all_threads=True)

if MODE == "segv-main":
    import ctypes

    say()
    ctypes.string_at(0)  # SEGV-MAIN

if MODE == "park":
    def reference_then_report():
        main_parked.wait()
        write_reference()
        say()

    writer = threading.Thread(target=reference_then_report)
    writer.start()
else:
    t = threading.Thread(target=abort, args=(3,))
    t.daemon = True
    t.start()
    created.append(t.ident)
PARKED_MAIN = sys._getframe().f_lineno + 1
main_parked.set(); release.acquire()  # PARKED-MAIN
