"""``python -m lastwords run script.py [args]`` / ``python -m lastwords run -m module [args]``:
run a program with lastwords enabled, so that a crash prints every thread's traceback."""

import argparse
import runpy
import sys

import lastwords


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="lastwords",
        description="Run a Python program with lastwords enabled: if it crashes, "
        "the traceback of every thread is written to stderr.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a script or module under lastwords")
    run.add_argument("-m", dest="module", help="run a library module as a script")
    run.add_argument("--file", help="write reports to this file instead of stderr")
    run.add_argument("args", nargs=argparse.REMAINDER, help="script path and its arguments")
    options = parser.parse_args(argv)

    if options.module is None and not options.args:
        run.error("a script path or -m module is required")
    report = open(options.file, "a") if options.file else None
    lastwords.enable(file=report)
    if options.module is not None:
        sys.argv = [options.module] + options.args
        runpy.run_module(options.module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = options.args
        sys.path.insert(0, __import__("os").path.dirname(options.args[0]) or ".")
        runpy.run_path(options.args[0], run_name="__main__")


if __name__ == "__main__":
    main()
