"""`lastwords dump PID` against its peers, on the same targets, in one run.

    python bench/bench_remote.py [--versions 3.11 3.12 3.13] [--runs 21] [--json]
    python bench/bench_remote.py --walk [--versions 3.14 3.15]

Without --walk: the whole command, process start to exit, of `lastwords dump
PID` and `py-spy dump --pid PID` (py-spy from PyPI: `pip install py-spy`),
interleaved, on two targets per version: 10 threads x 50 frames and 100
threads x 50 frames, parked on an Event. Prints medians and ratios.

With --walk: the walk itself, inside one process over repeated dumps, per
frame: `lastwords dump --repeat N` (which walks and renders N times, each with
an empty cache, as one dump does) against CPython's own
`_remote_debugging.RemoteUnwinder(pid, all_threads=True).get_stack_trace()`
(3.14+, run by the target's own version in the sid root), on the same target.

Targets of 3.9-3.13 come from ~/.pyenv/versions, 3.14 and 3.15 run in the
sid root (scripts/sid-root). Neither tool stops the target here (py-spy dump
does; lastwords does not without --pause: both as their users run them).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TREE = os.path.dirname(HERE)
SID_ROOT = os.path.join(TREE, "scripts", "sid-root")
GUEST = "/work/lastwords"
PYENV = os.path.expanduser("~/.pyenv/versions")

TARGET = r"""
import sys, threading
def park(ev, depth):
    if depth == 0:
        ev.wait()
    else:
        park(ev, depth - 1)
ev = threading.Event()
started = threading.Semaphore(0)
def run(depth):
    started.release()
    park(ev, depth)
n, depth = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    threading.Thread(target=run, args=(depth,), daemon=True).start()
for _ in range(n):
    started.acquire()
print("ready", flush=True)
ev.wait()
"""

# Run inside the sid root, in the same mount namespace as the target (the
# RemoteUnwinder reads the target's files by the paths in its maps, which
# are the host's from outside the root): starts the target, prints its pid,
# and on "measure" times RemoteUnwinder.get_stack_trace() on it.
UNWINDER = r"""
import subprocess, sys, time, _remote_debugging
target = subprocess.Popen([sys.executable, sys.argv[1], "10", "50"], stdout=subprocess.PIPE, text=True)
assert target.stdout.readline() == "ready\n"
print(target.pid, flush=True)
n = int(sys.stdin.readline())
u = _remote_debugging.RemoteUnwinder(target.pid, all_threads=True)
frames = sum(len(t[1]) for t in u.get_stack_trace())
t0 = time.perf_counter_ns()
for _ in range(n):
    u.get_stack_trace()
per = (time.perf_counter_ns() - t0) / n
print(frames, per, flush=True)
target.kill()
"""


def tool(name):
    for d in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return shutil.which(name)


def python_of(version):
    if version in ("3.14", "3.15"):
        return None
    for d in sorted(os.listdir(PYENV)):
        if d.startswith(version + "."):
            return os.path.join(PYENV, d, "bin", "python")
    raise SystemExit(f"no CPython {version} in {PYENV}")


class Target:
    def __init__(self, version, threads, depth):
        script = os.path.join(HERE, ".bench_target.py")
        with open(script, "w") as f:
            f.write(TARGET)
        py = python_of(version)
        if py:
            argv = [py, script]
        else:
            argv = [SID_ROOT, "run", "--bind", f"{TREE}:{GUEST}", f"python{version}", GUEST + script[len(TREE):]]
        self.proc = subprocess.Popen(argv + [str(threads), str(depth)], stdout=subprocess.PIPE, universal_newlines=True)
        assert self.proc.stdout.readline() == "ready\n"
        self.pid = self._python_pid()

    def _python_pid(self):
        """The interpreter's pid (under the sid root's runner, a child)."""
        pid = self.proc.pid
        for _ in range(5):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b".bench_target.py" in f.read():
                    return pid
            children = open(f"/proc/{pid}/task/{pid}/children").read().split()
            pid = int(children[0])
        raise SystemExit("target not found")

    def close(self):
        os.kill(self.pid, 9)
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


def timed(argv):
    t0 = time.perf_counter_ns()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter_ns() - t0
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")
    return elapsed


def whole_command(versions, runs):
    lastwords, pyspy = tool("lastwords"), tool("py-spy")
    if not pyspy:
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    rows = []
    for version in versions:
        for threads in (10, 100):
            t = Target(version, threads, 50)
            try:
                ours, theirs = [], []
                for _ in range(runs):
                    ours.append(timed([lastwords, "dump", str(t.pid)]))
                    theirs.append(timed([pyspy, "dump", "--pid", str(t.pid)]))
                rows.append({
                    "version": version,
                    "target": f"{threads} threads x 50 frames",
                    "lastwords_ms": statistics.median(ours) / 1e6,
                    "py_spy_ms": statistics.median(theirs) / 1e6,
                })
            finally:
                t.close()
    return rows


def lastwords_walk(lastwords, pid, repeat):
    """ns per frame of `lastwords dump --repeat`, and the frames walked."""
    out = subprocess.run([lastwords, "dump", "--repeat", str(repeat), str(pid)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
    # "lastwords: N walks of process P: F frames each, X us per walk, Y ns per frame"
    words = out.stderr.split()
    frames = int(words[words.index("frames") - 1])
    return float(words[words.index("ns") - 1]), frames


def walk(versions, repeat):
    lastwords = tool("lastwords")
    rows = []
    for version in versions:
        if python_of(version) is not None:
            t = Target(version, 10, 50)
            try:
                ours, frames = lastwords_walk(lastwords, t.pid, repeat)
            finally:
                t.close()
            rows.append({"version": version, "frames": frames, "lastwords_ns_per_frame": ours})
            continue
        script = os.path.join(HERE, ".bench_target.py")
        with open(script, "w") as f:
            f.write(TARGET)
        driver = subprocess.Popen(
            [SID_ROOT, "run", "--bind", f"{TREE}:{GUEST}", f"python{version}", "-c", UNWINDER,
             GUEST + script[len(TREE):]],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True,
        )
        pid = None
        try:
            pid = int(driver.stdout.readline())
            ours, frames = lastwords_walk(lastwords, pid, repeat)
            driver.stdin.write(f"{repeat}\n")
            driver.stdin.flush()
            their_frames, per = driver.stdout.readline().split()
            rows.append({
                "version": version, "frames": frames, "lastwords_ns_per_frame": ours,
                "remote_unwinder_ns_per_frame": float(per) / int(their_frames),
            })
        finally:
            # The driver's runner does not pass a kill on to its children.
            if pid is not None:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            driver.kill()
            driver.wait()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--walk", action="store_true")
    parser.add_argument("--repeat", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.walk:
        rows = walk(args.versions or ["3.11", "3.14", "3.15"], args.repeat)
        if args.json:
            print(json.dumps(rows))
            return
        print(f"{'version':8} {'frames':>6} {'lastwords ns/frame':>19} {'RemoteUnwinder ns/frame':>24} {'ratio':>6}")
        for r in rows:
            theirs = r.get("remote_unwinder_ns_per_frame")
            ratio = f"{theirs / r['lastwords_ns_per_frame']:.2f}x" if theirs else ""
            print(f"{r['version']:8} {r['frames']:6} {r['lastwords_ns_per_frame']:19.0f} "
                  f"{theirs or float('nan'):24.0f} {ratio:>6}")
        return
    rows = whole_command(args.versions or ["3.11", "3.12", "3.13"], args.runs)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'version':8} {'target':25} {'lastwords dump':>15} {'py-spy dump':>12} {'ratio':>7}")
    for r in rows:
        print(f"{r['version']:8} {r['target']:25} {r['lastwords_ms']:12.2f} ms {r['py_spy_ms']:9.2f} ms "
              f"{r['py_spy_ms'] / r['lastwords_ms']:6.1f}x")


if __name__ == "__main__":
    main()
