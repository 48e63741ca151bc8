"""``python -m lastwords [--file PATH] run ARGS...``: ``python ARGS...`` with
lastwords enabled, so that a crash prints every thread's traceback.

Like the native ``lastwords`` command, this replaces itself with the
interpreter (``os.execv``), so that everything after ``run`` means what it
means to ``python`` (and the interpreter flags this module was started with,
such as ``-X dev``, are passed on). Other commands (``dump``) are the native
command's: this module hands them over to it.
"""

import os
import subprocess
import sys
import sysconfig

USAGE = """\
usage: python -m lastwords [--file PATH] run [PYTHON ARGS...]
       python -m lastwords dump ...   (the native `lastwords` command)"""


def _native_command():
    """The native `lastwords` executable installed with this package."""
    for scheme_dir in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        path = os.path.join(scheme_dir, "lastwords")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _usage_error(message):
    print(f"lastwords: {message}\n{USAGE}", file=sys.stderr)
    return 2


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    report_file = None
    while args:
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            print(USAGE)
            return 0
        if arg == "--file":
            if not args:
                return _usage_error("--file needs a path")
            report_file = os.path.abspath(args.pop(0))
        elif arg == "run":
            env = dict(os.environ, LASTWORDS="1", LASTWORDS_ENABLE="1")
            env.pop("LASTWORDS_FILE", None)
            if report_file is not None:
                env["LASTWORDS_FILE"] = report_file
            flags = subprocess._args_from_interpreter_flags()
            # None where the descriptor was closed at start (Python's way).
            for stream in (sys.stdout, sys.stderr):
                if stream is not None:
                    stream.flush()
            os.execve(sys.executable, [sys.executable, *flags, *args], env)
        else:
            native = _native_command()
            if native is None:
                return _usage_error(f"unknown command {arg!r} (the native lastwords command is not installed)")
            os.execv(native, [native, arg, *args])
    return _usage_error("a command is required")


if __name__ == "__main__":
    sys.exit(main())
