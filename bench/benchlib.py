"""Helpers shared by the benchmark scripts of this directory.

Each script puts its own directory first on ``sys.path`` (Python does that for
the script being run), so ``import benchlib`` works from anywhere.
"""


def stack_depth(frame):
    """Number of Python frames from `frame` down to the bottom of its thread."""
    depth = 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def first_difference(a, b, names=("stdlib", "lastwords")):
    """Where two dumps (bytes) first differ, for a warning line."""
    for i, (la, lb) in enumerate(zip(a.splitlines(), b.splitlines()), 1):
        if la != lb:
            left, right = (line.decode("ascii", "replace") for line in (la, lb))
            return f"line {i}: {names[0]} {left!r} / {names[1]} {right!r}"
    return f"one is a prefix of the other ({len(a)} / {len(b)} bytes)"


def _span(values, digits):
    lo, hi = min(values), max(values)
    if f"{lo:.{digits}f}" == f"{hi:.{digits}f}":
        return f"{lo:.{digits}f}"
    return f"{lo:.{digits}f}-{hi:.{digits}f}"


def summarize(paths):
    """Print, per Python version, the range over runs of the figures of
    ``bench_dump.py --json`` runs (one file per run): what scripts/bench
    prints, and what the README's table gives."""
    import json
    from collections import defaultdict

    runs = defaultdict(list)
    for path in paths:
        with open(path) as f:
            report = json.load(f)
        version = ".".join(report["python"].split()[0].split(".")[:2])
        runs[version].append(report)
    if not runs:
        print("no runs")
        return
    first = next(iter(runs.values()))[0]
    cfg, cmp = first["config"], first["comparison"]
    print(f"stdlib    {cmp['stdlib']}")
    print(f"lastwords {cmp['lastwords']}")
    print(
        f"state     {cfg['threads']} threads x {cfg['depth']} frames ({cfg.get('shape', 'recursive')} stacks);"
        f" each run: the median of {cfg['repeat']} calls, interleaved; ranges over runs"
    )
    targets = list(first["targets"])
    head = f"{'python':<8} {'runs':>4}"
    for target in targets:
        head += f"  | {target + ': stdlib us':>20} {'lastwords us':>13} {'ratio':>11}"
    print(head)
    problems = []
    for version in sorted(runs, key=lambda v: tuple(int(p) for p in v.split("."))):
        reports = runs[version]
        line = f"{version:<8} {len(reports):>4}"
        for target in targets:
            rows = [r["targets"][target] for r in reports]
            std = [row["stdlib"]["median_us"] for row in rows]
            lw = [row["lastwords"]["median_us"] for row in rows]
            ratio = [row["ratio_median"] for row in rows]
            line += f"  | {_span(std, 0):>20} {_span(lw, 1):>13} {_span(ratio, 1) + 'x':>11}"
        print(line)
        for r in reports:
            if not r["dump"]["identical"] or r["warnings"]:
                problems.append(f"{version}: {'; '.join(r['warnings']) or 'outputs differ'}")
    for p in problems:
        print(f"WARNING: {p}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] != ["summarize"]:
        sys.exit("usage: python bench/benchlib.py summarize RUN.json...")
    summarize(sys.argv[2:])
