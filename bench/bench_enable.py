"""Benchmark: what enabling costs, stdlib faulthandler against lastwords.

Run it with an interpreter that has lastwords installed (3.14+ is where the
C stack makes lastwords' enable() do more than the stdlib's):

    python bench/bench_enable.py              # the table
    python bench/bench_enable.py --json       # machine-readable output

What it measures, each part with both implementations in the same run:

1. Start-up. ``python -X faulthandler -c pass`` (the stdlib enables itself)
   against ``LASTWORDS=1 python -X faulthandler -c pass`` (the .pth installs
   lastwords, which takes over and enables itself), ``--startups`` runs of
   each, interleaved; wall time from fork to exit, median and minimum.
   Goal: lastwords' median within 1 ms of the stdlib's.

2. The first enable(). A fresh child per sample imports the module (stdlib
   or lastwords, interleaved) and times its first ``enable()`` with
   ``perf_counter_ns``; ``--firsts`` samples of each. Reported as a ratio.

3. Later enable() calls. In one process, both modules imported, ``--calls``
   calls of each timed one by one, interleaved in blocks of 100. Goal:
   lastwords' median within 2x of the stdlib's.

4. Memory. A child per implementation runs ``--rounds`` rounds of
   {load a small shared library that nothing else loaded, ``enable()``,
   unload it} (``_ctypes.dlopen``/``dlclose``: each round changes the
   loader's object list, which is what used to make lastwords rebuild its
   symbol tables), after 50 rounds of warm-up; reported: growth of RssAnon
   and VmData in KiB over the measured rounds. Goal: no growth.

Nothing here is a pass/fail test: figures move with the machine's load.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

MINOR = sys.version_info[1] if sys.version_info[0] == 3 else 0

# Small libraries a bare interpreter does not load; the first one found (and
# not already mapped in the child) is loaded and unloaded in part 4.
CANDIDATE_LIBRARIES = [
    "libbz2.so.1.0",
    "liblzma.so.5",
    "libexpat.so.1",
    "libuuid.so.1",
    "libutil.so.1",
    "libz.so.1",
    "libmagic.so.1",
    "libcrypt.so.1",
]


def run_child(code, env=None):
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}): {out.stderr.strip()}")
    return out.stdout


def clean_env():
    env = dict(os.environ)
    for name in ("LASTWORDS", "LASTWORDS_ENABLE", "LASTWORDS_FILE", "PYTHONFAULTHANDLER"):
        env.pop(name, None)
    return env


def startup(args):
    base = clean_env()
    lw = dict(base, LASTWORDS="1")
    cmd = [sys.executable, "-X", "faulthandler", "-c", "pass"]
    # Check that LASTWORDS=1 really puts lastwords in charge.
    probe = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c",
         "import sys, faulthandler; print(faulthandler.__spec__ is None or 'lastwords' in repr(sys.modules['faulthandler']), faulthandler.is_enabled())"],
        env=lw, capture_output=True, text=True, check=False,
    )
    samples = {"stdlib": [], "lastwords": []}
    for _ in range(3):  # warm the page cache
        subprocess.run(cmd, env=base, check=True)
        subprocess.run(cmd, env=lw, check=True)
    for _ in range(args.startups):
        for name, env in (("stdlib", base), ("lastwords", lw)):
            t0 = time.perf_counter_ns()
            subprocess.run(cmd, env=env, check=True)
            samples[name].append((time.perf_counter_ns() - t0) / 1e6)
    return {"samples_ms": samples, "probe": probe.stdout.strip() or probe.stderr.strip()}


FIRST_CHILD = """
import sys, time
name = sys.argv[1] if len(sys.argv) > 1 else {name!r}
if name == "stdlib":
    import faulthandler as m
else:
    import lastwords as m
t0 = time.perf_counter_ns()
m.enable()
print(time.perf_counter_ns() - t0)
"""


def first_enable(args):
    env = clean_env()
    samples = {"stdlib": [], "lastwords": []}
    for _ in range(args.firsts):
        for name in samples:
            out = run_child(FIRST_CHILD.format(name=name), env=env)
            samples[name].append(int(out.split()[-1]) / 1e3)
    return {"samples_us": samples}


def later_enables(args):
    import faulthandler

    import lastwords

    samples = {"stdlib": [], "lastwords": []}
    modules = {"stdlib": faulthandler, "lastwords": lastwords}
    for m in modules.values():
        m.enable()
    clock = time.perf_counter_ns
    blocks = max(1, args.calls // 100)
    for _ in range(blocks):
        for name, m in modules.items():
            enable = m.enable
            out = samples[name]
            for _ in range(100):
                t0 = clock()
                enable()
                out.append((clock() - t0) / 1e3)
    lastwords.disable()
    faulthandler.disable()
    return {"samples_us": samples}


MEMORY_CHILD = """
import sys, os, ctypes, _ctypes
name, rounds, lib = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if name == "stdlib":
    import faulthandler as m
else:
    import lastwords as m

def status():
    fields = {{}}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "VmData"):
                fields[key] = int(value.split()[0])
    return fields

def round_trip():
    handle = _ctypes.dlopen(lib, os.RTLD_NOW | os.RTLD_LOCAL)
    m.enable()
    _ctypes.dlclose(handle)

m.enable()
for _ in range(50):
    round_trip()
before = status()
for _ in range(rounds):
    round_trip()
after = status()
m.disable()
print(before["RssAnon"], after["RssAnon"], before["VmData"], after["VmData"])
"""

FIND_LIBRARY_CHILD = """
import sys, ctypes
maps = open("/proc/self/maps").read()
for name in sys.argv[1:]:
    if name in maps:
        continue
    try:
        h = ctypes.CDLL(name)
    except OSError:
        continue
    for line in open("/proc/self/maps"):
        if name in line:
            print(line.split()[-1])
            raise SystemExit
"""


def memory(args):
    env = clean_env()
    out = subprocess.run(
        [sys.executable, "-c", FIND_LIBRARY_CHILD, *CANDIDATE_LIBRARIES],
        env=env, capture_output=True, text=True, check=False,
    )
    lib = out.stdout.strip()
    if not lib:
        return {"error": "no small shared library to load was found"}
    result = {"library": lib, "rounds": args.rounds}
    for name in ("stdlib", "lastwords"):
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD.format(), name, str(args.rounds), lib],
            env=env, capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            result[name] = {"error": out.stderr.strip()}
            continue
        rss0, rss1, data0, data1 = map(int, out.stdout.split())
        result[name] = {"rss_anon_kib": rss1 - rss0, "vm_data_kib": data1 - data0}
    return result


def summary(values):
    return {"median": statistics.median(values), "min": min(values)}


def print_report(report):
    print(f"python {report['python']}")
    print(f"lastwords {report['lastwords']}")
    s = report["startup"]["samples_ms"]
    a, b = summary(s["stdlib"]), summary(s["lastwords"])
    print()
    print(f"1. start-up, -X faulthandler -c pass ({len(s['stdlib'])} runs each; LASTWORDS=1 probe: {report['startup']['probe']})")
    print(f"   stdlib     median {a['median']:7.2f} ms   min {a['min']:7.2f} ms")
    print(f"   lastwords  median {b['median']:7.2f} ms   min {b['min']:7.2f} ms")
    diff = b["median"] - a["median"]
    print(f"   difference {diff:+.2f} ms (goal: <= 1 ms: {'met' if diff <= 1 else 'NOT met'})")
    f = report["first_enable"]["samples_us"]
    a, b = summary(f["stdlib"]), summary(f["lastwords"])
    print()
    print(f"2. first enable() in a fresh process ({len(f['stdlib'])} runs each)")
    print(f"   stdlib     median {a['median']:9.1f} us   min {a['min']:9.1f} us")
    print(f"   lastwords  median {b['median']:9.1f} us   min {b['min']:9.1f} us")
    print(f"   ratio lastwords/stdlib {b['median'] / a['median']:.2f}x")
    later = report["later_enables"]["samples_us"]
    a, b = summary(later["stdlib"]), summary(later["lastwords"])
    print()
    print(f"3. later enable() calls ({len(later['stdlib'])} each, interleaved in blocks of 100)")
    print(f"   stdlib     median {a['median']:9.2f} us   min {a['min']:9.2f} us")
    print(f"   lastwords  median {b['median']:9.2f} us   min {b['min']:9.2f} us")
    ratio = b["median"] / a["median"]
    print(f"   ratio lastwords/stdlib {ratio:.2f}x (goal: <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
    m = report["memory"]
    print()
    if "error" in m:
        print(f"4. memory: {m['error']}")
        return
    print(f"4. memory over {m['rounds']} rounds of dlopen + enable() + dlclose ({m['library']})")
    for name in ("stdlib", "lastwords"):
        r = m[name]
        if "error" in r:
            print(f"   {name:10} error: {r['error']}")
        else:
            print(f"   {name:10} RssAnon {r['rss_anon_kib']:+6d} KiB   VmData {r['vm_data_kib']:+6d} KiB")
    lw = m["lastwords"]
    if "error" not in lw:
        grew = max(lw["rss_anon_kib"], lw["vm_data_kib"]) > max(
            0, m["stdlib"].get("rss_anon_kib", 0), m["stdlib"].get("vm_data_kib", 0)
        ) + 64
        print(f"   goal: no growth beyond the stdlib's (+64 KiB of noise): {'NOT met' if grew else 'met'}")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--startups", type=int, default=40)
    p.add_argument("--firsts", type=int, default=20)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=1000)
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import lastwords

    report = {
        "python": " ".join(sys.version.split()),
        "platform": platform.platform(),
        "lastwords": lastwords.__version__,
        "startup": startup(args),
        "first_enable": first_enable(args),
        "later_enables": later_enables(args),
        "memory": memory(args),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
