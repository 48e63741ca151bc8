"""`lastwords dump --native` against py-spy and pystack, on the same targets and cores, in one run.

    python bench/bench_native.py [--versions 3.11 3.12 3.13] [--runs 21] [--json] [--lastwords PATH]

For each version: the target of bench_remote.py (10 threads x 50 frames,
parked on an Event). First the live process: `lastwords dump --native PID`
and `py-spy dump --native --pid PID`, interleaved, process start to exit,
`--runs` times each (both stop the target's threads for the length of the
read). Then gdb's gcore of the same target, which is killed, and the core:
`lastwords dump --native --core CORE` and `pystack core --native CORE`,
interleaved the same way. Prints each one's median and the ratios. py-spy and
pystack come from PyPI (`pip install py-spy pystack`); targets from
~/.pyenv/versions (the sid root's are not gcore'd: see
tests/remote/check_core.py).

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


def measure(versions, runs, lastwords):
    pyspy, pystack = tool("py-spy"), tool("pystack")
    if not lastwords:
        raise SystemExit("lastwords is not installed (pip install .)")
    if not pyspy or not pystack:
        raise SystemExit("py-spy and pystack are needed (pip install py-spy pystack)")
    if not shutil.which("gcore"):
        raise SystemExit("gcore (gdb) is not installed")
    rows = []
    for version in versions:
        directory = tempfile.mkdtemp(prefix="lastwords-bench-native-")
        t = Target(version, 10, 50)
        try:
            live_ours, live_theirs = [], []
            for _ in range(runs):
                live_ours.append(timed([lastwords, "dump", "--native", str(t.pid)]))
                live_theirs.append(timed([pyspy, "dump", "--native", "--pid", str(t.pid)]))
            out = subprocess.run(["gcore", "-o", os.path.join(directory, "core"), str(t.pid)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, universal_newlines=True)
            if out.returncode != 0:
                raise SystemExit(f"gcore failed: {out.stderr}")
            core = os.path.join(directory, f"core.{t.pid}")
            t.close()
            t = None
            core_ours, core_theirs = [], []
            for _ in range(runs):
                core_ours.append(timed([lastwords, "dump", "--native", "--core", core]))
                core_theirs.append(timed([pystack, "core", "--native", core]))
            rows.append({
                "version": version,
                "runs": runs,
                "live_lastwords_ms": statistics.median(live_ours) / 1e6,
                "live_py_spy_ms": statistics.median(live_theirs) / 1e6,
                "core_lastwords_ms": statistics.median(core_ours) / 1e6,
                "core_pystack_ms": statistics.median(core_theirs) / 1e6,
            })
        finally:
            if t is not None:
                t.close()
            shutil.rmtree(directory, ignore_errors=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--versions", nargs="+", default=["3.11", "3.12", "3.13"])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--lastwords", default=None, help="the lastwords command (default: the installed one)")
    args = parser.parse_args()
    rows = measure(args.versions, args.runs, args.lastwords or tool("lastwords"))
    if args.json:
        print(json.dumps(rows))
        return
    print(f"{'version':8} {'dump --native PID':>17} {'py-spy --native':>16} {'ratio':>7}   "
          f"{'dump --native --core':>20} {'pystack --native':>17} {'ratio':>7}")
    for r in rows:
        print(f"{r['version']:8} {r['live_lastwords_ms']:14.2f} ms {r['live_py_spy_ms']:13.2f} ms "
              f"{r['live_py_spy_ms'] / r['live_lastwords_ms']:6.1f}x   "
              f"{r['core_lastwords_ms']:17.2f} ms {r['core_pystack_ms']:14.2f} ms "
              f"{r['core_pystack_ms'] / r['core_lastwords_ms']:6.1f}x")


if __name__ == "__main__":
    main()
