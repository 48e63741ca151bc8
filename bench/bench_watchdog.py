"""Benchmark: stdlib faulthandler against lastwords for dump_traceback_later().

What it measures
----------------
Both implementations in the same interpreter, interleaved (stdlib, lastwords,
stdlib, ...), with the garbage collector off, on a small process state: the
main thread only (no other Python thread), a few Python frames deep.

1. Re-arm cost. One "pair" is ``dump_traceback_later(3600, file=fd)``
   immediately followed by ``cancel_dump_traceback_later()`` (fd: /dev/null;
   the 1 h timeout never fires). ``--warmup`` pairs of each first (not
   counted), then ``--repeat`` timed pairs of each (default 2000), timed with
   ``time.perf_counter_ns()`` around the pair. Reported: median and minimum µs
   per pair and the ratio stdlib / lastwords. A second, shorter pass reads the
   clock between the two calls too, to split a pair into arm and cancel (that
   pass pays one more clock read per pair; the headline figures do not).
   Goal reported against: lastwords <= 1/25 of the stdlib's time (ratio >= 25).

   A third pass times the same pairs in blocks of 100 of one implementation
   back to back (blocks alternated). Back to back, caches stay warm for one
   implementation; interleaved, each pair follows the other implementation's
   (for the stdlib, a thread start and join). The per-pair interleaved figure
   is the headline; both are printed.

2. Lateness of a short timeout (``--timeout-ms``, default 20 ms).
   ``dump_traceback_later(0.020, file=w)`` where ``w`` is the write end of a
   pipe; the main thread then blocks in ``select()`` on the read end and reads
   ``time.monotonic_ns()`` as soon as it returns (first byte readable), then
   drains the dump, records when its last byte arrived, and cancels.
       lateness = first-byte arrival - (time just before the arm call + timeout)
   So it includes the arm call itself, the timer's wake-up (kernel timer slack,
   50 µs by default for an ordinary thread), whatever the watchdog does before
   its first write(2), and the wake-up of the main thread from select().
   lastwords' watchdog also notes, by its own clock, when each dump was due,
   began and was written (``lastwords._lastwords._last_timeout_timing()``);
   the medians are printed, which separates its own lateness from the
   reader's wake-up. The stdlib has no such record.
   ``--timeouts`` trials of each (default 50), interleaved. Reported: median,
   p90 and max lateness in ms (the JSON has every sample), the ratio of the
   medians, and the median arm-call time and lateness measured from the END
   of the arm call instead. The trials run twice (``--reader both``, the
   default): 2a with the main thread blocked in select(), 2b with it polling
   the pipe in a loop, which takes its own wake-up (tens of µs on a virtual
   machine, the same for both implementations) out of the figure, so that
   it measures the watchdogs. Goal reported against, for each: lastwords
   median <= 0.1 ms, or <= 1/5 of the stdlib's median in the same run.

   The first byte is NOT the same point of the dump for both: the stdlib's
   watchdog writes its ``Timeout (...)!`` header first and then walks the
   threads, writing piece by piece; lastwords' watchdog renders the whole
   dump in memory (walking the threads through checked reads) and writes it
   with one write(2). So the first-byte lateness of lastwords includes its
   whole dump, the stdlib's only its header. The last-byte lateness (the dump
   is complete in the pipe) is reported too, and compares like with like.

   Two references separate the timer from the dump:
   * dump-only cost: ``dump_traceback(w, all_threads=True)`` called by the main
     thread on the same state (same depth, pipe drained after each call),
     ``--dumps`` calls of each (default 200), interleaved. Not exactly the
     watchdog's dump: that one runs on another thread, without the GIL, and
     (lastwords) through the checked reader into memory;
   * timer floor: ``select()`` on the empty pipe with the same timeout, no
     watchdog at all (lateness of a plain 20 ms sleep on this machine, seen
     from Python): no watchdog can do much better than this.

It is a benchmark, not a test: it asserts nothing and prints only. The most
common timeout dump of each implementation is compared byte for byte (a
difference is printed as a WARNING; both should be ``Timeout (0:00:00.020000)!``
and the main thread's stack, the same bytes), and every dump with the most
common one of its implementation (the count of those that differ is printed,
and a WARNING shows one). The stdlib's watchdog writes its header before it
walks the threads, so the main thread may wake up and move on while its stack
is being read: a few stdlib dumps can show a later or a torn stack.

How to run it (from the repository root, with lastwords installed in the
interpreter's environment; Python 3.9+, Linux, no third-party packages)::

    python bench/bench_watchdog.py
    python bench/bench_watchdog.py --json             # machine-readable output
    python bench/bench_watchdog.py --repeat 2000 --timeouts 50 --dumps 200 --timeout-ms 20
    python bench/bench_watchdog.py --reader poll      # lateness with a polling reader only
"""

import argparse
import collections
import faulthandler
import gc
import json
import os
import platform
import select
import statistics
import sys
import time

from benchlib import first_difference, stack_depth

try:
    import lastwords
except ImportError as exc:  # pragma: no cover - environment problem
    sys.exit(f"bench_watchdog.py: cannot import lastwords ({exc}); install it in this interpreter")


IMPLEMENTATIONS = {
    "stdlib": (faulthandler.dump_traceback_later, faulthandler.cancel_dump_traceback_later,
               faulthandler.dump_traceback),
    "lastwords": (lastwords.dump_traceback_later, lastwords.cancel_dump_traceback_later,
                  lastwords.dump_traceback),
}  # fmt: skip
NAMES = list(IMPLEMENTATIONS)

# How long to wait for a timeout dump before calling it lost (seconds).
FIRE_WAIT_S = 5.0
# After the first byte, how long to wait for more before calling the dump done
# when its last line (the main thread's <module> frame) never came.
QUIET_S = 0.5


def percentile(values, p):
    """The p-th percentile (nearest rank) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil
    return ordered[int(rank) - 1]


# --- 1. Re-arm cost -------------------------------------------------------------


def rearm_pairs(fd, count, names):
    """Time `count` arm+cancel pairs of each implementation, interleaved (ns)."""
    perf = time.perf_counter_ns
    times = {name: [] for name in names}
    for _ in range(count):
        for name in names:
            later, cancel, _ = IMPLEMENTATIONS[name]
            t0 = perf()
            later(3600, file=fd)
            cancel()
            t1 = perf()
            times[name].append(t1 - t0)
    return times


def rearm_blocks(fd, count, names, block=100):
    """The same pairs, `block` of one implementation in a row, blocks alternated.

    Back to back, a pair starts while the previous pair's effects (a watchdog
    thread waking up, a thread exiting) may still be in flight on another CPU;
    interleaved per pair, there is always the other implementation's pair in
    between. The two orders can differ a lot: both are reported.
    """
    times = {name: [] for name in names}
    done = 0
    while done < count:
        n = min(block, count - done)
        for name in names:
            times[name].extend(rearm_pairs(fd, n, [name])[name])
        done += n
    return times


def rearm_split(fd, count, names):
    """Like rearm_pairs, with a clock read in between: (arm ns, cancel ns) lists."""
    perf = time.perf_counter_ns
    times = {name: ([], []) for name in names}
    for _ in range(count):
        for name in names:
            later, cancel, _ = IMPLEMENTATIONS[name]
            t0 = perf()
            later(3600, file=fd)
            t1 = perf()
            cancel()
            t2 = perf()
            times[name][0].append(t1 - t0)
            times[name][1].append(t2 - t1)
    return times


def clock_overhead_ns(count=2000):
    perf = time.perf_counter_ns
    samples = []
    for _ in range(count):
        t0 = perf()
        t1 = perf()
        samples.append(t1 - t0)
    return statistics.median(samples)


def measure_rearm(args):
    fd = os.open(os.devnull, os.O_WRONLY)
    try:
        rearm_pairs(fd, args.warmup, NAMES)
        pairs = rearm_pairs(fd, args.repeat, NAMES)
        blocks = rearm_blocks(fd, args.repeat, NAMES)
        split_count = max(1, args.repeat // 4)
        split = rearm_split(fd, split_count, NAMES)
        overhead = clock_overhead_ns()
    finally:
        os.close(fd)
    result = {"pairs": args.repeat, "split_pairs": split_count, "clock_read_ns": overhead}
    for name in NAMES:
        us = [ns / 1000.0 for ns in pairs[name]]
        arm_us = [ns / 1000.0 for ns in split[name][0]]
        cancel_us = [ns / 1000.0 for ns in split[name][1]]
        result[name] = {
            "median_us": statistics.median(us),
            "min_us": min(us),
            "p90_us": percentile(us, 90),
            "blocks_median_us": statistics.median(ns / 1000.0 for ns in blocks[name]),
            "blocks_min_us": min(blocks[name]) / 1000.0,
            "arm_median_us": statistics.median(arm_us),
            "cancel_median_us": statistics.median(cancel_us),
        }
    result["ratio_median"] = result["stdlib"]["median_us"] / result["lastwords"]["median_us"]
    result["ratio_min"] = result["stdlib"]["min_us"] / result["lastwords"]["min_us"]
    result["ratio_blocks_median"] = (
        result["stdlib"]["blocks_median_us"] / result["lastwords"]["blocks_median_us"]
    )
    return result


# --- 2. Lateness of a short timeout ---------------------------------------------


def drain(r, data, last_line):
    """Read the rest of a dump from `r` (already holding `data`).

    Returns (data, arrival ns of its last chunk, complete?). The dump is
    complete when it ends with `last_line` (the main thread's bottom frame).
    """
    last = time.monotonic_ns()
    while not data.endswith(last_line):
        ready, _, _ = select.select([r], [], [], QUIET_S)
        if not ready:
            return data, last, False
        chunk = os.read(r, 1 << 16)
        last = time.monotonic_ns()
        if not chunk:
            return data, last, False
        data += chunk
    return data, last, True


def empty_pipe(r):
    """Read whatever is left in the pipe (non-blocking). Returns the bytes."""
    leftover = b""
    while select.select([r], [], [], 0)[0]:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        leftover += chunk
    return leftover


def wait_readable(r, spin):
    """Block in select() until `r` is readable (or poll it, with spin). Ready?"""
    if not spin:
        return bool(select.select([r], [], [], FIRE_WAIT_S)[0])
    give_up = time.monotonic() + FIRE_WAIT_S
    while not select.select([r], [], [], 0)[0]:
        if time.monotonic() > give_up:
            return False
    return True


def fire_once(name, r, w, timeout_s, last_line, spin):
    """Arm a `timeout_s` dump to `w`, wait for it on `r`, cancel.

    Returns a dict of monotonic ns timestamps and the bytes, or None on loss.
    The main thread's stack here: <module>, main, measure_lateness,
    run_lateness, fire_once, wait_readable (then select(), a C call).
    """
    later, cancel, _ = IMPLEMENTATIONS[name]
    mono = time.monotonic_ns
    t_arm = mono()
    later(timeout_s, file=w)
    t_armed = mono()
    ready = wait_readable(r, spin)
    t_first = mono()
    if not ready:
        cancel()
        return None
    data = os.read(r, 1 << 16)
    data, t_last, complete = drain(r, data, last_line)
    cancel()
    # lastwords' watchdog notes when the dump was due, began and was written.
    own_clock = lastwords._lastwords._last_timeout_timing() if name == "lastwords" else None
    return {
        "own_clock": own_clock,
        "arm": t_arm,
        "armed": t_armed,
        "first": t_first,
        "last": t_last,
        "complete": complete,
        "data": data,
    }


def dump_at_depth(dump, w):
    """dump_traceback(w) from where wait_readable waits (the same stack depth)."""
    perf = time.perf_counter_ns
    t0 = perf()
    dump(w, all_threads=True)
    t1 = perf()
    return t1 - t0


def dump_once(name, r, w, last_line):
    """dump_traceback(w) on the state of fire_once; (ns, bytes, complete)."""
    _, _, dump = IMPLEMENTATIONS[name]
    ns = dump_at_depth(dump, w)
    data = os.read(r, 1 << 16)
    data, _, complete = drain(r, data, last_line)
    return ns, data, complete


def floor_once(r, timeout_s):
    """select() on the empty pipe for timeout_s: the lateness of a plain sleep."""
    mono = time.monotonic_ns
    t0 = mono()
    select.select([r], [], [], timeout_s)
    t1 = mono()
    return t1 - t0


def run_lateness(args, r, w):
    """All of part 2; every call is made from this frame (same stack depth)."""
    timeout_s = args.timeout_ms / 1000.0
    timeout_ns = int(round(args.timeout_ms * 1e6))
    last_line = b" in <module>\n"
    warnings = []
    fired = {name: [] for name in NAMES}
    lost = {name: 0 for name in NAMES}
    dumps = {name: [] for name in NAMES}
    dump_bytes = {name: set() for name in NAMES}
    floor = []

    # Warm-up: one timeout of each (the stdlib's first thread start, lastwords'
    # watchdog thread and its buffer), a few dumps; not counted.
    for name in NAMES:
        fire_once(name, r, w, timeout_s, last_line, args.spin)
        empty_pipe(r)
        for _ in range(5):
            dump_once(name, r, w, last_line)
    for _ in range(args.timeouts):
        for name in NAMES:
            res = fire_once(name, r, w, timeout_s, last_line, args.spin)
            leftover = empty_pipe(r)
            if res is None:
                lost[name] += 1
                continue
            if not res["complete"] or leftover:
                warnings.append(
                    f"{name}: a timeout dump did not end with the main thread's <module> frame "
                    f"({len(res['data'])} bytes, {len(leftover)} more after cancel)"
                )
            res["data"] += leftover
            fired[name].append(res)
        floor.append(floor_once(r, timeout_s))
    for _ in range(args.dumps):
        for name in NAMES:
            ns, data, complete = dump_once(name, r, w, last_line)
            dumps[name].append(ns)
            dump_bytes[name].add(len(data))
            if not complete:
                warnings.append(f"{name}: a dump_traceback() did not end with <module>")
    return timeout_ns, fired, lost, dumps, dump_bytes, floor, warnings


def stats_ms(values_ns):
    ms = [v / 1e6 for v in values_ns]
    return {
        "median_ms": statistics.median(ms),
        "p90_ms": percentile(ms, 90),
        "max_ms": max(ms),
        "min_ms": min(ms),
    }


def measure_lateness(args):
    r, w = os.pipe()
    try:
        (timeout_ns, fired, lost, dumps, dump_bytes, floor, warnings) = run_lateness(args, r, w)
    finally:
        os.close(r)
        os.close(w)
    result = {"timeout_ms": args.timeout_ms, "trials": args.timeouts, "dumps": args.dumps, "spin": args.spin}
    for name in NAMES:
        trials = fired[name]
        row = {"fired": len(trials), "lost": lost[name]}
        if trials:
            row["first_byte"] = stats_ms([t["first"] - t["arm"] - timeout_ns for t in trials])
            row["last_byte"] = stats_ms([t["last"] - t["arm"] - timeout_ns for t in trials])
            row["first_byte_from_arm_end"] = stats_ms([t["first"] - t["armed"] - timeout_ns for t in trials])
            row["first_byte_samples_ms"] = [round((t["first"] - t["arm"] - timeout_ns) / 1e6, 4) for t in trials]
            row["arm_call_median_ms"] = statistics.median((t["armed"] - t["arm"]) / 1e6 for t in trials)
            row["bytes"] = sorted({len(t["data"]) for t in trials})
            own = [t["own_clock"] for t in trials if t["own_clock"]]
            if own:
                row["own_clock"] = {
                    "began_after_due_us": statistics.median((b - d) / 1e3 for d, b, _ in own),
                    "written_after_due_us": statistics.median((w_ - d) / 1e3 for d, _, w_ in own),
                    "read_after_written_us": statistics.median(
                        (t["first"] - t["own_clock"][2]) / 1e3 for t in trials if t["own_clock"]
                    ),
                }
        dump_us = [ns / 1000.0 for ns in dumps[name]]
        row["dump_only"] = {
            "median_us": statistics.median(dump_us),
            "min_us": min(dump_us),
            "bytes": sorted(dump_bytes[name]),
        }
        result[name] = row
        if lost[name]:
            warnings.append(f"{name}: {lost[name]} timeout(s) did not fire within {FIRE_WAIT_S} s")
    result["floor"] = stats_ms([ns - timeout_ns for ns in floor])
    if all("first_byte" in result[n] for n in NAMES):
        s, lw = result["stdlib"], result["lastwords"]
        result["ratio_first_byte_median"] = s["first_byte"]["median_ms"] / lw["first_byte"]["median_ms"]
        result["ratio_last_byte_median"] = s["last_byte"]["median_ms"] / lw["last_byte"]["median_ms"]
    result["ratio_dump_only_median"] = (
        result["stdlib"]["dump_only"]["median_us"] / result["lastwords"]["dump_only"]["median_us"]
    )
    # The dumps' contents. Blocked in select(), the main thread's stack is the
    # same in every dump, unless it moves on before the dump has read it: the
    # stdlib's watchdog writes its header first (which wakes the main thread)
    # and only then walks the threads.
    typical = {}
    for name in NAMES:
        seen = collections.Counter(t["data"] for t in fired[name])
        if not seen:
            continue
        typical[name], count = seen.most_common(1)[0]
        result[name]["dumps_unlike_typical"] = len(fired[name]) - count
        if count != len(fired[name]) and not args.spin:
            other = next(d for d in seen if d != typical[name])
            why = (
                " (the stdlib writes its header before it walks the threads: the main thread can wake"
                " up and move on while its stack is being read)"
                if name == "stdlib"
                else ""
            )
            warnings.append(
                f"{name}: {len(fired[name]) - count} of {len(fired[name])} timeout dumps differ from the"
                f" most common one{why}; e.g. {first_difference(typical[name], other, (name, name))}"
            )
    if len(typical) == 2:
        a, b = typical["stdlib"], typical["lastwords"]
        result["timeout_dump"] = {
            "identical": a == b,
            "compared": not args.spin,
            "bytes": {"stdlib": len(a), "lastwords": len(b)},
            "lines": len(a.splitlines()),
            "text": a.decode("ascii", "replace"),
        }
        if a != b and not args.spin:
            warnings.append(f"the most common timeout dumps differ: {first_difference(a, b)}")
    return result, warnings


# --- Output -----------------------------------------------------------------------


def times_phrase(ratio):
    if ratio >= 1:
        return f"lastwords {ratio:.1f}x less"
    return f"lastwords {1 / ratio:.1f}x MORE"


def goal(met):
    return "met" if met else "NOT met"


def print_report(report):
    cfg = report["config"]
    print("dump_traceback_later benchmark: stdlib faulthandler vs lastwords")
    print(f"python    {report['python']}")
    print(f"lastwords {report['lastwords']['version']} ({report['lastwords']['path']})")
    print(f"state     main thread only, {report['main_depth']} Python frames while it waits; gc off")
    print()

    ra = report["rearm"]
    print(
        f"1. re-arm: dump_traceback_later(3600, file=/dev/null fd) + cancel_dump_traceback_later(),"
        f" {ra['pairs']} pairs each after {cfg['warmup']} warm-up, interleaved"
    )
    print(f"   {'impl':<10} {'median us':>10} {'min us':>10} {'p90 us':>10}   {'arm us':>8} {'cancel us':>10}")
    for name in NAMES:
        r = ra[name]
        print(
            f"   {name:<10} {r['median_us']:>10.2f} {r['min_us']:>10.2f} {r['p90_us']:>10.2f}"
            f"   {r['arm_median_us']:>8.2f} {r['cancel_median_us']:>10.2f}"
        )
    print(
        f"   (arm/cancel: medians of a separate pass of {ra['split_pairs']} pairs with a clock read in between;"
        f" one perf_counter_ns() read costs ~{ra['clock_read_ns']:.0f} ns)"
    )
    print(
        f"   ratio stdlib/lastwords: {ra['ratio_median']:.1f} (median), {ra['ratio_min']:.1f} (min)"
        f"  -> goal lastwords <= 1/25 of the stdlib: {goal(ra['ratio_median'] >= 25)}"
    )
    print(
        f"   same pairs in blocks of 100 back to back (blocks alternated): median stdlib"
        f" {ra['stdlib']['blocks_median_us']:.2f} us, lastwords {ra['lastwords']['blocks_median_us']:.2f} us,"
        f" ratio {ra['ratio_blocks_median']:.1f}"
    )
    print()

    for la, label in zip(report["lateness"], ("2a", "2b")):
        print_lateness(la, label)
        print()
    for w in report["warnings"]:
        print(f"WARNING: {w}")


def print_lateness(la, label):
    waiting = "POLLING the read end" if la["spin"] else "BLOCKED in select() on the read end"
    print(
        f"{label}. lateness of dump_traceback_later({la['timeout_ms'] / 1000:g}, file=pipe):"
        f" {la['trials']} trials each, interleaved; main thread {waiting}"
    )
    print("   lateness = arrival - (time before the arm call + timeout); includes the arm call, the timer")
    print("   wake-up, the watchdog's work before the byte is written, and the main thread's wake-up.")
    print("   first byte: the stdlib writes its 'Timeout' header before walking the threads; lastwords")
    print("   renders the whole dump first and writes it at once, so its first byte includes its dump.")
    print(f"   {'impl':<10} {'':<11} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} {'min ms':>8}")
    for name in NAMES:
        row = la[name]
        if "first_byte" not in row:
            print(f"   {name:<10} no timeout fired")
            continue
        for key, label in (("first_byte", "first byte"), ("last_byte", "last byte")):
            s = row[key]
            print(
                f"   {name:<10} {label:<11} {s['median_ms']:>10.3f} {s['p90_ms']:>8.3f}"
                f" {s['max_ms']:>8.3f} {s['min_ms']:>8.3f}"
            )
    fl = la["floor"]
    print(
        f"   {'reference':<10} {'timer floor':<11} {fl['median_ms']:>10.3f} {fl['p90_ms']:>8.3f}"
        f" {fl['max_ms']:>8.3f} {fl['min_ms']:>8.3f}   (select() on the empty pipe, no watchdog)"
    )
    for name in NAMES:
        row = la[name]
        if "arm_call_median_ms" in row:
            print(
                f"   {name}: arm call {row['arm_call_median_ms'] * 1000:.1f} us (median, included above;"
                f" first byte from the END of the arm call: {row['first_byte_from_arm_end']['median_ms']:.3f} ms);"
                f" dump {row['bytes']} bytes; fired {row['fired']}, lost {row['lost']}"
            )
    own = la["lastwords"].get("own_clock")
    if own:
        print(
            f"   lastwords by its watchdog's own clock (medians): dump began {own['began_after_due_us']:.1f} us"
            f" after the deadline, written {own['written_after_due_us']:.1f} us after it; the reader saw it"
            f" {own['read_after_written_us']:.1f} us after the write"
        )
    print(f"   dump-only cost, dump_traceback(pipe, all_threads=True) from the main thread, same depth,"
          f" {la['dumps']} calls each:")  # fmt: skip
    for name in NAMES:
        d = la[name]["dump_only"]
        print(f"   {name:<10} median {d['median_us']:.1f} us, min {d['min_us']:.1f} us, {d['bytes']} bytes")
    if "ratio_first_byte_median" in la:
        lw_median = la["lastwords"]["first_byte"]["median_ms"]
        ratio = la["ratio_first_byte_median"]
        met = lw_median <= 0.1 or ratio >= 5
        print(
            f"   ratio of medians stdlib/lastwords: first byte {ratio:.2f}"
            f" ({times_phrase(ratio)} late), last byte {la['ratio_last_byte_median']:.2f},"
            f" dump only {la['ratio_dump_only_median']:.2f}"
        )
        print(
            f"   -> goal lastwords median <= 0.1 ms ({lw_median:.3f} ms) or <= 1/5 of the stdlib's"
            f" (ratio {ratio:.2f}): {goal(met)}"
        )
    td = la.get("timeout_dump")
    if td and not td["compared"]:
        print("   timeout dumps: not compared (polling, the main thread runs while it is dumped)")
    elif td:
        same = "identical" if td["identical"] else "DIFFERENT"
        unlike = ", ".join(f"{n} {la[n].get('dumps_unlike_typical', 0)}" for n in NAMES)
        print(
            f"   timeout dump (the most common of each): {td['lines']} lines,"
            f" {td['bytes']['stdlib']} / {td['bytes']['lastwords']} bytes: {same}; dumps unlike it: {unlike}"
        )


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=2000,
                   help="timed arm+cancel pairs per implementation (default 2000)")  # fmt: skip
    p.add_argument("--warmup", type=int, default=200,
                   help="untimed arm+cancel pairs per implementation first (default 200)")  # fmt: skip
    p.add_argument("--timeouts", type=int, default=50,
                   help="timeout trials per implementation for the lateness (default 50)")  # fmt: skip
    p.add_argument("--dumps", type=int, default=200,
                   help="dump_traceback() calls per implementation for the dump-only cost (default 200)")  # fmt: skip
    p.add_argument("--timeout-ms", type=float, default=20.0,
                   help="the timeout of the lateness trials, in ms (default 20)")  # fmt: skip
    p.add_argument("--reader", choices=("both", "select", "poll"), default="both",
                   help="lateness: the main thread blocks in select() on the pipe, polls it in a loop"
                        " (which takes its own wake-up out of the figure), or both, one pass each"
                        " (default both)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0 or args.timeouts < 1 or args.dumps < 1:
        p.error("--repeat, --timeouts and --dumps must be at least 1, --warmup at least 0")
    if args.timeout_ms <= 0:
        p.error("--timeout-ms must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    # <module> -> main -> measure_lateness -> run_lateness -> fire_once -> wait_readable
    main_depth = stack_depth(sys._getframe()) + 4
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        rearm = measure_rearm(args)
        lateness, warnings = [], []
        for spin in {"both": (False, True), "select": (False,), "poll": (True,)}[args.reader]:
            result, found = measure_lateness(argparse.Namespace(**{**vars(args), "spin": spin}))
            lateness.append(result)
            warnings.extend(found)
    finally:
        if gc_was_enabled:
            gc.enable()
    report = {
        "python": " ".join(sys.version.split()),
        "platform": platform.platform(),
        "lastwords": {"version": lastwords.__version__, "path": os.path.dirname(lastwords.__file__)},
        "config": {
            "repeat": args.repeat,
            "warmup": args.warmup,
            "timeouts": args.timeouts,
            "dumps": args.dumps,
            "timeout_ms": args.timeout_ms,
            "reader": args.reader,
        },
        "main_depth": main_depth,
        "rearm": rearm,
        "lateness": lateness,
        "warnings": warnings,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
