"""lastwords: CPython's faulthandler, rebuilt in Rust.

``import lastwords as faulthandler`` is a drop-in: same functions, arguments,
errors and output bytes as the stdlib module of the running interpreter.
"""

from lastwords._lastwords import (
    __version__,
    cancel_dump_traceback_later,
    disable,
    dump_traceback,
    dump_traceback_later,
    enable,
    is_enabled,
    register,
    unregister,
    version,
)
from lastwords import _lastwords

__all__ = [
    "__version__",
    "install",
    "cancel_dump_traceback_later",
    "disable",
    "dump_traceback",
    "dump_traceback_later",
    "enable",
    "is_enabled",
    "register",
    "unregister",
    "version",
]

# dump_c_stack exists where the running version's stdlib has it (3.14+).
if hasattr(_lastwords, "dump_c_stack"):
    dump_c_stack = _lastwords.dump_c_stack
    __all__.append("dump_c_stack")

# The stdlib's crash helpers (_sigsegv, _read_null, ...) that the running
# version's faulthandler has, so that CPython's own tests can drive lastwords.
for _name in dir(_lastwords):
    if _name.startswith("_") and not _name.startswith("__") and _name not in (
        "_layout_info",
        "_rehearse_fatal_report",
    ):
        globals()[_name] = getattr(_lastwords, _name)
del _name


def install():
    """Make lastwords the ``faulthandler`` module of this process.

    Every later ``import faulthandler`` (pytest's plugin included) gets
    lastwords. If the stdlib's handler is already enabled (by ``-X
    faulthandler``, ``PYTHONFAULTHANDLER`` or a call to ``enable()``), it is
    disabled and lastwords is enabled in its place, writing to ``sys.stderr``
    with all_threads=True, so that a crash is reported once.

    All or nothing: where lastwords cannot stand in (an interpreter whose
    layout it does not know, no usable ``sys.stderr`` for a handler to move
    to, ``enable()`` failing), nothing changes (the stdlib's module stays in
    ``sys.modules``, its handler enabled as it was) and a RuntimeWarning says
    why: the stdlib stays in charge.

    Setting ``LASTWORDS=1`` in the environment does this at start-up in every
    Python process, children included (through ``lastwords.pth``).
    """
    reason = _take_over(None, False)
    if reason is not None:
        import warnings

        warnings.warn(reason, RuntimeWarning, stacklevel=2)


def _take_over(file, enable):
    """Make lastwords ``sys.modules["faulthandler"]`` and enable it on `file`
    (None: ``sys.stderr``) when `enable` is true or the stdlib's handler is
    enabled (it is moved over). Returns None when done; otherwise why not,
    with everything as it was."""
    import sys

    previous = sys.modules.get("faulthandler")
    if previous is _lastwords:
        # Already standing in (install() ran first): only enable it if asked.
        if enable and not (file is None and _lastwords.is_enabled()):
            try:
                _lastwords.enable(file)
            except Exception as e:
                return f"lastwords cannot enable itself: {e}"
        return None
    try:
        _lastwords._layout_info(False)
    except RuntimeError as e:
        return f"lastwords cannot stand in for faulthandler: {e}"
    carried = previous is not None and previous.is_enabled()
    if carried or enable:
        # What enable() will do with the file, checked before anything
        # changes: most failures (sys.stderr None or missing, a file without
        # a usable fileno()) leave the stdlib untouched.
        # The fd to give the stdlib back if the move fails after all: that
        # of sys.stderr, where -X faulthandler and PYTHONFAULTHANDLER put it.
        stderr_fd = 2
        try:
            if file is None:
                file = sys.stderr
                if file is None:
                    raise RuntimeError("sys.stderr is None")
                fd = stderr_fd = file.fileno()
            else:
                fd = file.fileno()
            if not isinstance(fd, int) or fd < 0:
                raise RuntimeError("file.fileno() is not a valid file descriptor")
        except Exception as e:
            return f"lastwords cannot stand in for faulthandler: {e}"
        if carried:
            previous.disable()
        try:
            _lastwords.enable(file)
        except Exception as e:
            if carried:
                _reenable(previous, stderr_fd)
            return f"lastwords cannot stand in for faulthandler: {e}"
    sys.modules["faulthandler"] = _lastwords
    return None


def _reenable(stdlib, fd):
    """Enable the stdlib's handler again after a failed move: on sys.stderr,
    as -X faulthandler does, or else on sys.stderr's fd as checked before the
    move (2 when it was not checked)."""
    import sys

    for file in (getattr(sys, "stderr", None), fd):
        if file is None:
            continue
        try:
            stdlib.enable(file)
            return
        except Exception:
            pass


# _start() runs once per process: site processes a venv's site-packages (and
# so lastwords.pth) twice.
_started = False


def _start():
    """What ``lastwords.pth`` runs at start-up when ``LASTWORDS`` is set:
    stand in for faulthandler and, when ``LASTWORDS_ENABLE`` is set too (as
    ``lastwords run`` sets it), enable lastwords, writing to the file named by
    ``LASTWORDS_FILE`` (appended) or to stderr. All or nothing, like
    install(): on failure the process goes on as without lastwords, after one
    warning on stderr (none when stderr is closed)."""
    global _started
    import os

    if _started:
        return
    _started = True
    enable = os.environ.get("LASTWORDS_ENABLE", "") not in ("", "0")
    path = os.environ.get("LASTWORDS_FILE") if enable else None
    file = None
    if path:
        try:
            # Kept open for the life of the process: enable() keeps a reference.
            file = open(path, "a")
        except OSError as e:
            _warn_at_start(f"lastwords cannot open LASTWORDS_FILE: {e}")
            return
    reason = _take_over(file, enable)
    if reason is not None:
        if file is not None:
            file.close()
        _warn_at_start(reason)


def _warn_at_start(message):
    """A RuntimeWarning from start-up; under ``-W error`` one line on stderr
    instead of an exception (which site would print as a traceback)."""
    import sys
    import warnings

    try:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    except Warning as e:
        stderr = getattr(sys, "stderr", None)
        if stderr is not None:
            try:
                print(f"{type(e).__name__}: {e}", file=stderr)
            except Exception:
                pass
