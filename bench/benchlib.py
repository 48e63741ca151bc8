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
