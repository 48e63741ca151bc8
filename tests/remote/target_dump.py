# A process for `lastwords dump` to read, with its own reference dump:
# CPython 2.7 and 3.x alike.
#
#   python target_dump.py REFERENCE_PATH [churn] [hostile]
#
# Parks two threads at known depths and the main thread at a known line,
# then a last thread writes the reference: `faulthandler.dump_traceback(
# all_threads=True)` on 3.x (the stdlib's own text), on 2.7 the same text
# built from sys._current_frames(); that thread then ends, and the target
# prints one JSON line on stdout ({"pid": ...}) and stays parked until it
# is killed (no thread is left to answer anything). With `churn`, a thread
# starts and joins short threads and another recurses deeply, for ever
# (dumps while the thread list and the stacks change). With `hostile`, the
# `previous` pointer of the first parked thread's second frame is made to
# point to unmapped memory (through tests/corrupt.py, whose layout comes in
# the environment: a target of the host's own version). No sleeps.
import json
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = sys.argv[1]
CHURN = "churn" in sys.argv[2:]
HOSTILE = "hostile" in sys.argv[2:]

release = threading.Lock()
release.acquire()
parked = threading.Semaphore(0)


def park(depth):
    if depth == 0:
        parked.release()
        release.acquire()  # PARKED
    else:
        park(depth - 1)


def churn():
    while True:
        t = threading.Thread(target=int)
        t.start()
        t.join()


def deep(n):
    if n == 0:
        return 0
    return deep(n - 1) + 1


def recurse():
    while True:
        deep(60)


def reference_27():
    """faulthandler's text for every thread but the calling one, from
    sys._current_frames() (2.7 has no faulthandler)."""
    import traceback

    me = threading.current_thread().ident
    frames = sys._current_frames()
    # Newest first, as the interpreter's list is: by thread creation order.
    order = [t.ident for t in reversed(threading.enumerate()) if t.ident != me]
    out = []
    for ident in order:
        lines = ["Thread 0x%016x (most recent call first):\n" % ident]
        for filename, line, name, _ in reversed(traceback.extract_stack(frames[ident])):
            lines.append('  File "%s", line %d in %s\n' % (filename, line, name))
        out.append("".join(lines))
    return "\n".join(out)


def write_reference():
    if HOSTILE:
        # The stdlib's own dump would follow the corrupt pointer and crash.
        text = ""
    elif sys.version_info[0] == 2:
        text = reference_27()
    else:
        import faulthandler

        with open(REFERENCE + ".raw", "w") as f:
            faulthandler.dump_traceback(f, all_threads=True)
        with open(REFERENCE + ".raw") as f:
            blocks = f.read().split("\n\n")
        # Leave out this thread's own block: it ends before the dump.
        text = "\n\n".join(b for b in blocks if not b.startswith("Current thread"))
    with open(REFERENCE, "w") as f:
        f.write(text)


threads = []
for depth in (3, 6):
    t = threading.Thread(target=park, args=(depth,))
    t.daemon = True
    t.start()
    threads.append(t)
    parked.acquire()
if HOSTILE:
    sys.path.insert(0, os.path.dirname(HERE))
    import corrupt

    tstate = [ts for ts in corrupt.tstates()
              if corrupt.read_ptr(ts + corrupt.L["tstate_thread_id"]) == threads[0].ident][0]
    victim = corrupt.find_frame(park.__code__, tstate, nth=1)
    corrupt.set_previous(victim, corrupt.unmapped())
main_parked = threading.Event()


def reference_then_report():
    main_parked.wait()
    # The main thread is in release.acquire() on the PARKED-MAIN line once
    # its state says so; the lock call releases the GIL before blocking.
    write_reference()
    if CHURN:
        # After the reference: its thread list must hold still while read.
        for target in (churn, recurse):
            t = threading.Thread(target=target)
            t.daemon = True
            t.start()
    sys.stdout.write(json.dumps({"pid": os.getpid(), "hexversion": sys.hexversion}) + "\n")
    sys.stdout.flush()


writer = threading.Thread(target=reference_then_report)
writer.start()
main_parked.set(); release.acquire()  # PARKED-MAIN
