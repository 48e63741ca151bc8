"""`lastwords dump --core` against `pystack core`, on the same cores, in one run.

    python bench/bench_core.py [--versions 3.11 3.12 3.13] [--runs 21] [--json]

For each version: a target of 10 threads x 50 frames (the one of
bench_remote.py) parked on an Event, cored by gdb's gcore, then killed. Both
commands then read that core, from process start to exit, interleaved
(lastwords, pystack, lastwords, ...), `--runs` times each, their output
thrown away: `lastwords dump --core CORE` and `pystack core CORE` (pystack
from PyPI: `pip install pystack`; both print the Python stacks of every
thread, and find the executable and libraries from the core's notes).
Prints each one's median and the ratio. Targets come from ~/.pyenv/versions
(the sid root's are not gcore'd: see tests/remote/check_core.py).

A measurement, never a test: nothing here passes or fails on a figure.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_remote import Target, timed, tool  # noqa: E402


def make_core(version, directory):
    t = Target(version, 10, 50)
    try:
        out = subprocess.run(["gcore", "-o", os.path.join(directory, "core"), str(t.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
        if out.returncode != 0:
            raise SystemExit(f"gcore failed: {out.stderr}")
        return os.path.join(directory, f"core.{t.pid}")
    finally:
        t.close()


def measure(versions, runs):
    lastwords, pystack = tool("lastwords"), tool("pystack")
    if not lastwords:
        raise SystemExit("lastwords is not installed (pip install .)")
    if not pystack:
        raise SystemExit("pystack is not installed (pip install pystack)")
    if not shutil.which("gcore"):
        raise SystemExit("gcore (gdb) is not installed")
    rows = []
    for version in versions:
        directory = tempfile.mkdtemp(prefix="lastwords-bench-core-")
        try:
            core = make_core(version, directory)
            ours, theirs = [], []
            for _ in range(runs):
                ours.append(timed([lastwords, "dump", "--core", core]))
                theirs.append(timed([pystack, "core", core]))
            rows.append({
                "version": version,
                "core_mib": os.path.getsize(core) / (1 << 20),
                "lastwords_ms": statistics.median(ours) / 1e6,
                "pystack_ms": statistics.median(theirs) / 1e6,
                "runs": runs,
            })
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=["3.11", "3.12", "3.13"])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.versions, args.runs)
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'version':8} {'core':>9} {'lastwords dump --core':>22} {'pystack core':>13} {'ratio':>7}")
    for r in rows:
        print(f"{r['version']:8} {r['core_mib']:5.0f} MiB {r['lastwords_ms']:19.2f} ms {r['pystack_ms']:10.2f} ms "
              f"{r['pystack_ms'] / r['lastwords_ms']:6.1f}x")


if __name__ == "__main__":
    main()
