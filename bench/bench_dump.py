"""Benchmark: stdlib faulthandler.dump_traceback() against lastwords.dump_traceback().

What it measures
----------------
The time of ONE call of ``dump_traceback(fd, all_threads=True)`` for the stdlib
``faulthandler`` and for ``lastwords``, in the same interpreter, on the same
process state:

* ``--threads N`` threads in the dump (default 10): the main thread, which does
  the measuring, plus N-1 worker threads (default 9).
* Every one of them is exactly ``--depth D`` Python frames deep (default 50),
  counting the bottom frames of the thread (``<module>`` for the main thread,
  ``threading``'s bootstrap frames for a worker). A worker is parked in its
  50th frame on a C-level ``_queue.SimpleQueue.get()`` (no Python frames on
  top); the main thread calls the dump function from its 50th frame. The
  measuring starts only after every worker has reported from its 50th frame
  (no sleeps). So the default dump is 10 threads x 50 frames = 500 frame lines.
* ``--shape``: how the threads get that deep. ``recursive`` (the default):
  through one recursive function, so most frames share a code object, a file
  name and a line, as in deep recursion. ``distinct``: through a chain of
  functions made for each thread, each with its own code object, function
  name and file name: no two frames of the dump share anything, which is the
  worst case for lastwords' per-dump caches (the stdlib has none: its time
  hardly depends on the shape).
* The output goes to a real file descriptor, so the write(2) calls are paid
  for: first an fd opened on /dev/null, then an fd on a regular temporary file
  (truncated before each call, outside the timed region).
* The two implementations are interleaved (stdlib, lastwords, stdlib, ...):
  ``--warmup`` calls each first (not counted), then ``--repeat`` calls each
  (default 200). The garbage collector is off while measuring. It reports the
  median and the minimum per call, in microseconds, and the ratio
  stdlib / lastwords.
* Bytes per dump are read back from the regular file after every call; the
  first dump of each implementation is compared byte for byte. A difference is
  printed as a WARNING (the outputs are meant to be identical).
* ``--syscalls``: write(2) calls per dump, counted with
  ``strace -f -c -e trace=write`` on child runs of this script that set up the
  same state and dump once to /dev/null (minus a child that does not dump).
* ``--fatal-path``: the lastwords side is the fatal-signal path instead:
  ``lastwords._lastwords._rehearse_fatal_report(fd)`` writes exactly what the
  SIGSEGV handler would (``Fatal Python error: Segmentation fault``, all
  threads, the extension-module list; from 3.14 without the C stack, which
  the stdlib's side does not have either) through the same checked reader
  (process_vm_readv) and writing as the handler writes (4 KiB pieces with checked reads), but called from Python,
  without a signal. ``lastwords.enable(<fd on /dev/null>, all_threads=...)``
  is called once before the threads start (it picks the reader) and
  ``disable()`` after. The stdlib has no such entry point; its fatal handler
  writes its header and then calls the very writer behind its
  ``dump_traceback(fd, all_threads=True)``, so the stdlib side stays
  ``faulthandler.dump_traceback(fd, all_threads=True)`` on the same state:
  the stdlib's figure leaves out its ~40-byte header (and extension-module
  line), lastwords' includes them. The byte check then expects lastwords'
  output to be that header, the stdlib's dump, and at most an
  ``Extension modules:`` line. Goal reported against on 3.11: lastwords'
  fatal path <= 1/3 of the stdlib's time.

It is a benchmark, not a test: it asserts nothing and prints only.

How to run it (from the repository root, with lastwords installed in the
interpreter's environment; Python 3.9+, no third-party packages)::

    python bench/bench_dump.py
    python bench/bench_dump.py --syscalls            # also count write(2) calls
    python bench/bench_dump.py --json                # machine-readable output
    python bench/bench_dump.py --fatal-path          # lastwords' fatal-signal path (see above)
    python bench/bench_dump.py --fatal-path --syscalls
    python bench/bench_dump.py --threads 10 --depth 50 --repeat 200 --no-all-threads
    python bench/bench_dump.py --shape distinct     # no two frames alike

On every interpreter of the machine, several runs each, with the range of
each figure over the runs (what the README gives)::

    scripts/bench                                   # 5 runs on 3.9-3.15
    RUNS=3 BENCH_ARGS="--shape distinct" scripts/bench 3.11 3.14

The stdlib stops a dump at 100 frames per thread and 100 threads: keep
``--depth`` and ``--threads`` at or below 100 to measure whole dumps.
"""

import argparse
import faulthandler
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from _queue import SimpleQueue  # the C queue: put()/get() add no Python frames

from benchlib import first_difference, stack_depth

try:
    import lastwords
except ImportError as exc:  # pragma: no cover - environment problem
    sys.exit(f"bench_dump.py: cannot import lastwords ({exc}); install it in this interpreter")


IMPLEMENTATIONS = {"stdlib": faulthandler.dump_traceback, "lastwords": lastwords.dump_traceback}

# --fatal-path: what lastwords' fatal handler writes before the threads.
FATAL_HEADER = b"Fatal Python error: Segmentation fault\n\n"
NO_REHEARSAL = (
    "--fatal-path needs lastwords._lastwords._rehearse_fatal_report, which the lastwords "
    "installed in this interpreter ({path}, {version}) does not have: reinstall lastwords from "
    "the current tree (pip install .) and run this again"
)


def dump_functions(args):
    """{name: (C callable, keyword arguments)}: one call is `fn(fd, **kwargs)`.

    No Python-level wrapper: it would add a frame to the main thread's stack.
    """
    stdlib = (faulthandler.dump_traceback, {"all_threads": args.all_threads})
    if args.fatal_path:
        # all_threads comes from lastwords.enable(); the call takes only the fd.
        return {"stdlib": stdlib, "lastwords": (lastwords._lastwords._rehearse_fatal_report, {})}
    return {"stdlib": stdlib, "lastwords": (lastwords.dump_traceback, {"all_threads": args.all_threads})}


def comparison(args):
    """What is compared with what, in words (printed and in the JSON)."""
    scope = "all_threads=True" if args.all_threads else "all_threads=False"
    if args.fatal_path:
        return {
            "mode": "fatal-path",
            "stdlib": f"faulthandler.dump_traceback(fd, {scope}) (what the stdlib's fatal handler writes after its header)",
            "lastwords": (
                "lastwords._lastwords._rehearse_fatal_report(fd): the fatal (SIGSEGV) report, header + threads"
                f" + extension modules, checked reads through the page cache, written as the handler writes; enable(all_threads={args.all_threads})"
            ),
        }
    return {
        "mode": "dump_traceback",
        "stdlib": f"faulthandler.dump_traceback(fd, {scope})",
        "lastwords": f"lastwords.dump_traceback(fd, {scope})",
    }


class FatalPathEnabled:
    """--fatal-path: lastwords.enable() on an fd of /dev/null, disable() after."""

    def __init__(self, args):
        self.args = args
        self.fd = None

    def __enter__(self):
        if self.args.fatal_path:
            self.fd = os.open(os.devnull, os.O_WRONLY)
            # From 3.14 a fatal report also has the C stack, which the
            # stdlib's side (dump_traceback) has not: leave it out of both.
            extra = {"c_stack": False} if sys.version_info >= (3, 14) else {}
            lastwords.enable(self.fd, all_threads=self.args.all_threads, **extra)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            lastwords.disable()
            os.close(self.fd)
            self.fd = None


# --- The process state: N threads, each exactly D Python frames deep ----------


def _descend(remaining, fn, args):
    if remaining == 0:
        return fn(*args)
    return _descend(remaining - 1, fn, args)


# --shape: "recursive" (the default) descends through one function, as deep
# recursion does; "distinct" through a chain of functions made for the call,
# each with its own code object, name and file name, so that no two frames
# of the dump (in any thread) share a code object or a string.
SHAPE = "recursive"
_GENERATED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "generated")
_chains = 0


def _distinct_chain(levels):
    """A new chain of `levels` functions: the first calls the second, ..., the
    last calls fn(*args). Returns the first."""
    global _chains
    _chains += 1
    following = None
    for k in reversed(range(levels)):
        name = f"level_{_chains:02d}_{k:03d}"
        body = "return fn(*args)" if following is None else "return following(fn, args)"
        code = compile(f"def {name}(fn, args):\n    {body}\n", os.path.join(_GENERATED, f"{name}.py"), "exec")
        namespace = {"following": following}
        exec(code, namespace)
        following = namespace[name]
    return following


def call_at_depth(depth, fn, *args):
    """Call fn(*args) so that fn's frame is the depth-th Python frame of this thread."""
    here = stack_depth(sys._getframe())  # this frame included
    # call_at_depth is at `here`, the first _descend at here + 1, the last one
    # at here + 1 + extra, and fn at here + 2 + extra.
    extra = depth - here - 2
    if extra < 0:
        raise ValueError(f"--depth {depth} is too small: this thread needs at least {here + 2}")
    if SHAPE == "distinct":
        return _distinct_chain(extra + 1)(fn, args)
    return _descend(extra, fn, args)


def _park(ready, gate):
    # Both calls on ONE line: whether the worker is still between them or is
    # blocked in get(), its top frame is this frame at this very line, so every
    # dump sees the same stack.
    ready.put(None); gate.get()  # noqa: E702


def _worker(depth, ready, gate):
    try:
        call_at_depth(depth, _park, ready, gate)
    except BaseException as exc:  # report it: the main thread is waiting
        ready.put(exc)


class ParkedThreads:
    """`count` worker threads, each parked at exactly `depth` Python frames."""

    def __init__(self, count, depth):
        self.ready = SimpleQueue()
        self.gate = SimpleQueue()
        self.threads = [
            threading.Thread(
                target=_worker,
                args=(depth, self.ready, self.gate),
                name=f"parked-{i}",
                daemon=True,
            )
            for i in range(count)
        ]

    def __enter__(self):
        for t in self.threads:
            t.start()
        errors = [self.ready.get() for _ in self.threads]  # every worker is in its last frame
        errors = [e for e in errors if e is not None]
        if errors:
            self.__exit__()
            raise errors[0]
        return self

    def __exit__(self, *exc):
        for _ in self.threads:
            self.gate.put(None)
        for t in self.threads:
            t.join()


# --- Measuring ----------------------------------------------------------------


def run_plan(plan):
    """Run each planned dump; the main thread's top frame is this function.

    Every dump is made from the same line, so every dump sees the same stacks.
    Returns, per call, (elapsed ns, bytes written or None, content or None).
    """
    perf = time.perf_counter_ns
    results = []
    for dump, kwargs, fd, regular, capture in plan:
        if regular:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        t0 = perf()
        dump(fd, **kwargs)
        t1 = perf()
        size = os.lseek(fd, 0, os.SEEK_CUR) if regular else None
        content = os.pread(fd, size, 0) if capture else None
        results.append((t1 - t0, size, content))
    return results


def parse_dump(text):
    """(thread headers, frame lines) of a faulthandler dump."""
    threads = frames = 0
    for line in text.decode("ascii", "replace").splitlines():
        if line.startswith(("Current thread 0x", "Thread 0x", "Stack (most recent call first)")):
            threads += 1
        elif line.startswith("  File "):
            frames += 1
    return threads, frames


def measure(args):
    """The in-process benchmark. Returns a dict of results."""
    warnings = []
    null_fd = os.open(os.devnull, os.O_WRONLY)
    tmp_fd, tmp_path = tempfile.mkstemp(prefix="bench_dump_", suffix=".txt")
    try:
        targets = [("/dev/null", null_fd, False), ("tmpfile", tmp_fd, True)]
        names = list(IMPLEMENTATIONS)
        functions = dump_functions(args)
        plan, labels = [], []

        def add(target, fd, regular, name, phase, capture=False):
            plan.append((*functions[name], fd, regular, capture))
            labels.append((target, name, phase))

        # One captured dump of each, for the byte-for-byte comparison.
        for name in names:
            add("tmpfile", tmp_fd, True, name, "check", capture=True)
        # Then, per target, warm-up and timed calls, interleaved A, B, A, B...
        for target, fd, regular in targets:
            for phase, count in (("warmup", args.warmup), ("timed", args.repeat)):
                for _ in range(count):
                    for name in names:
                        add(target, fd, regular, name, phase)

        with FatalPathEnabled(args), ParkedThreads(args.threads - 1, args.depth):
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                # One descent for the whole plan: the stacks never change.
                results = call_at_depth(args.depth, run_plan, plan)
            finally:
                if gc_was_enabled:
                    gc.enable()
    finally:
        os.close(null_fd)
        os.close(tmp_fd)
        os.unlink(tmp_path)

    # The captured dumps: same bytes? the expected shape?
    captured = {
        name: content
        for (target, name, phase), (_, _, content) in zip(labels, results)
        if phase == "check"
    }
    std, lw = captured["stdlib"], captured["lastwords"]
    fatal_extra = None
    if args.fatal_path:
        # lastwords' fatal report = header + the same dump + maybe the
        # extension-module list: compare its middle with the stdlib's dump.
        fatal_extra = {"header": 0, "extension_modules": 0, "text": ""}
        if lw.startswith(FATAL_HEADER):
            fatal_extra["header"] = len(FATAL_HEADER)
            lw = lw[len(FATAL_HEADER):]
        else:
            warnings.append(f"the fatal report does not start with {FATAL_HEADER!r}: {lw[:80]!r}")
        if lw.startswith(std) and len(lw) > len(std):
            tail = lw[len(std):]
            fatal_extra["extension_modules"] = len(tail)
            fatal_extra["text"] = tail.decode("ascii", "replace")
            if not tail.startswith(b"\nExtension modules: "):
                warnings.append(f"the fatal report has more after the threads than an extension-module list: {tail[:120]!r}")
            lw = lw[: len(std)]
    shape_threads, shape_frames = parse_dump(std)
    expected_threads = args.threads if args.all_threads else 1
    expected_frames = expected_threads * args.depth
    if (shape_threads, shape_frames) != (expected_threads, expected_frames):
        warnings.append(
            f"the stdlib dump has {shape_threads} threads / {shape_frames} frames, "
            f"expected {expected_threads} / {expected_frames}"
        )
    which = "fatal path: lastwords' report without its header and extension modules vs the stdlib's dump: " if args.fatal_path else ""
    if len(std) != len(lw):
        warnings.append(
            which
            + f"byte counts differ: stdlib wrote {len(std)} bytes, lastwords {len(lw)}: "
            f"the outputs differ ({first_difference(std, lw)})"
        )
    elif std != lw:
        warnings.append(which + f"same byte count but the outputs differ ({first_difference(std, lw)})")

    # The timed calls.
    per_target = {}
    for target, _, _ in targets:
        row = {}
        for name in names:
            timed = [
                (ns, size)
                for (t, n, phase), (ns, size, _) in zip(labels, results)
                if (t, n, phase) == (target, name, "timed")
            ]
            times_us = [ns / 1000.0 for ns, _ in timed]
            sizes = sorted({size for _, size in timed if size is not None})
            row[name] = {
                "median_us": statistics.median(times_us),
                "min_us": min(times_us),
                "calls": len(times_us),
                "bytes": sizes[0] if len(sizes) == 1 else (sizes or None),
            }
            if len(sizes) > 1:
                warnings.append(f"{target}: {name} wrote different byte counts across calls: {sizes}")
        if row["stdlib"]["bytes"] != row["lastwords"]["bytes"] and target == "tmpfile" and not args.fatal_path:
            warnings.append(
                f"{target}: stdlib wrote {row['stdlib']['bytes']} bytes per dump, "
                f"lastwords {row['lastwords']['bytes']}: the outputs differ"
            )
        row["ratio_median"] = row["stdlib"]["median_us"] / row["lastwords"]["median_us"]
        row["ratio_min"] = row["stdlib"]["min_us"] / row["lastwords"]["min_us"]
        per_target[target] = row

    if fatal_extra is not None:
        # Bytes per call as written (the timed figures), not the trimmed middle.
        lw_written = len(lw) + fatal_extra["header"] + fatal_extra["extension_modules"]
    else:
        lw_written = len(lw)
    return {
        "dump": {
            "threads": shape_threads,
            "frames": shape_frames,
            "bytes": {"stdlib": len(std), "lastwords": lw_written},
            "identical": std == lw,
            "fatal_extra": fatal_extra,
        },
        "targets": per_target,
        "tmpfile_dir": os.path.dirname(tmp_path),
        "warnings": warnings,
    }


# --- write(2) calls, with strace (optional) ----------------------------------


def child_main(args):
    """--_child MODE: set up the same state, dump once to /dev/null, exit quietly."""
    fd = os.open(os.devnull, os.O_WRONLY)
    with FatalPathEnabled(args), ParkedThreads(args.threads - 1, args.depth):
        if args._child != "none":
            plan = [(*dump_functions(args)[args._child], fd, False, False)]
            call_at_depth(args.depth, run_plan, plan)
    os.close(fd)


def strace_writes(args, mode):
    """write(2) calls of a child run in `mode`, or raise RuntimeError."""
    with tempfile.NamedTemporaryFile(prefix="bench_dump_strace_", suffix=".txt") as out:
        cmd = [
            "strace", "-f", "-c", "-e", "trace=write", "-o", out.name,
            sys.executable, os.path.abspath(__file__), "--_child", mode,
            "--threads", str(args.threads), "--depth", str(args.depth),
            "--all-threads" if args.all_threads else "--no-all-threads", "--shape", args.shape,
        ] + (["--fatal-path"] if args.fatal_path else [])  # fmt: skip
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"strace exited with {proc.returncode}: {proc.stderr.strip()[-300:]}")
        summary = out.read().decode()
    for line in summary.splitlines():
        fields = line.split()
        if fields and fields[-1] == "write":
            return int(fields[3])  # % time, seconds, usecs/call, calls, [errors], syscall
    return 0  # no write row: no write(2) at all


def count_syscalls(args):
    if shutil.which("strace") is None:
        return {"measured": False, "reason": "strace is not installed"}
    try:
        baseline = strace_writes(args, "none")
        counts = {name: strace_writes(args, name) - baseline for name in IMPLEMENTATIONS}
    except (RuntimeError, OSError) as exc:
        return {"measured": False, "reason": f"strace failed: {exc}"}
    return {"measured": True, "baseline": baseline, **counts}


# --- Output -------------------------------------------------------------------


def speed_phrase(ratio):
    if ratio >= 1:
        return f"lastwords is {ratio:.1f}x faster"
    return f"lastwords is {1 / ratio:.1f}x SLOWER"


def print_report(report):
    cfg = report["config"]
    cmp = report["comparison"]
    if cmp["mode"] == "fatal-path":
        print("fatal-path benchmark: stdlib faulthandler vs lastwords' fatal-signal report (--fatal-path)")
    else:
        print("dump_traceback benchmark: stdlib faulthandler vs lastwords")
    print(f"stdlib    {cmp['stdlib']}")
    print(f"lastwords {cmp['lastwords']}")
    print(f"python    {report['python']}")
    print(f"lastwords {report['lastwords']['version']} ({report['lastwords']['path']})")
    print(
        f"state     {cfg['threads']} threads (main + {cfg['threads'] - 1} parked) x {cfg['depth']} frames"
        f" ({cfg['shape']} stacks);"
        f" all_threads={cfg['all_threads']}"
    )
    print(f"runs      {cfg['repeat']} timed calls each, after {cfg['warmup']} warm-up, interleaved; gc off")
    d = report["dump"]
    same = "identical" if d["identical"] else "DIFFERENT"
    print(
        f"dump      {d['threads']} threads, {d['frames']} frames; "
        f"{d['bytes']['stdlib']} bytes (stdlib), {d['bytes']['lastwords']} bytes (lastwords): {same}"
    )
    fx = d.get("fatal_extra")
    if fx is not None:
        ext = fx["text"].strip() or "none"
        print(
            f"          ('{same}': lastwords' report minus its {fx['header']}-byte header and"
            f" {fx['extension_modules']}-byte extension-module list vs the stdlib's dump;"
            f" extension modules: {ext})"
        )
    print()
    print(f"{'target':<10} {'impl':<10} {'median us':>11} {'min us':>11} {'bytes':>8}")
    for target, row in report["targets"].items():
        for name in IMPLEMENTATIONS:
            r = row[name]
            size = "-" if r["bytes"] is None else str(r["bytes"])
            print(f"{target:<10} {name:<10} {r['median_us']:>11.1f} {r['min_us']:>11.1f} {size:>8}")
    print("(bytes: read back from the regular file; /dev/null gets the same dump)")
    print()
    for target, row in report["targets"].items():
        print(
            f"{target:<10} {speed_phrase(row['ratio_median'])} (median; "
            f"stdlib/lastwords = {row['ratio_median']:.1f}, min: {row['ratio_min']:.1f})"
        )
    if cmp["mode"] == "fatal-path":
        for target, row in report["targets"].items():
            met = "met" if row["ratio_median"] >= 3 else "NOT met"
            print(f"goal      {target}: fatal path <= 1/3 of the stdlib's time (ratio >= 3, stated for 3.11): {met}")
    sc = report["syscalls"]
    if sc is None:
        print("write(2)  not measured (pass --syscalls; needs strace)")
    elif not sc["measured"]:
        print(f"write(2)  not measured: {sc['reason']}")
    else:
        print(
            f"write(2)  per dump to /dev/null: stdlib {sc['stdlib']}, lastwords {sc['lastwords']}"
            f"  (strace -f -c -e trace=write, minus {sc['baseline']} in a child that does not dump)"
        )
    for w in report["warnings"]:
        print(f"WARNING: {w}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--all-threads", action=argparse.BooleanOptionalAction, default=True,
                   help="dump all threads (default) or only the current one")  # fmt: skip
    p.add_argument("--threads", type=int, default=10,
                   help="threads in the process, the main thread included (default 10)")  # fmt: skip
    p.add_argument("--depth", type=int, default=50,
                   help="Python frames per thread (default 50)")  # fmt: skip
    p.add_argument("--repeat", type=int, default=200,
                   help="timed calls per implementation and target (default 200)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=20,
                   help="untimed calls per implementation and target first (default 20)")  # fmt: skip
    p.add_argument("--syscalls", action="store_true",
                   help="also count write(2) calls per dump with strace")  # fmt: skip
    p.add_argument("--fatal-path", action="store_true",
                   help="lastwords side: _rehearse_fatal_report(fd), the fatal-signal report, after enable()")  # fmt: skip
    p.add_argument("--shape", choices=["recursive", "distinct"], default="recursive",
                   help="stacks through one recursive function (default), or through a distinct "
                        "function, code object and file name for every frame")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--_child", choices=["none", *IMPLEMENTATIONS], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads must be at least 1 (the main thread)")
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be at least 1 and --warmup at least 0")
    if args.fatal_path and not hasattr(lastwords._lastwords, "_rehearse_fatal_report"):
        p.exit(2, "bench_dump.py: " + NO_REHEARSAL.format(
            path=os.path.dirname(lastwords.__file__), version=lastwords.__version__) + "\n")  # fmt: skip
    sys.setrecursionlimit(max(sys.getrecursionlimit(), args.depth + 100))
    global SHAPE
    SHAPE = args.shape
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        if args._child:
            child_main(args)
            return
        results = measure(args)
    except ValueError as exc:
        sys.exit(f"bench_dump.py: {exc}")
    report = {
        "python": " ".join(sys.version.split()),
        "platform": platform.platform(),
        "lastwords": {"version": lastwords.__version__, "path": os.path.dirname(lastwords.__file__)},
        "config": {
            "threads": args.threads,
            "depth": args.depth,
            "shape": args.shape,
            "all_threads": args.all_threads,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "fatal_path": args.fatal_path,
        },
        "comparison": comparison(args),
    }
    report.update(results)
    report["syscalls"] = count_syscalls(args) if args.syscalls else None
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
