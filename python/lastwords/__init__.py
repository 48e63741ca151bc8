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

    Where lastwords cannot dump (an interpreter whose layout it does not know),
    nothing changes and a RuntimeWarning says why: the stdlib stays in charge.

    Setting ``LASTWORDS=1`` in the environment does this at start-up in every
    Python process, children included (through ``lastwords.pth``).
    """
    import sys
    import warnings

    previous = sys.modules.get("faulthandler")
    if previous is _lastwords:
        return
    try:
        _lastwords._layout_info()
    except RuntimeError as e:
        warnings.warn(f"lastwords cannot stand in for faulthandler: {e}", RuntimeWarning, stacklevel=2)
        return
    sys.modules["faulthandler"] = _lastwords
    if previous is not None and previous.is_enabled():
        previous.disable()
        _lastwords.enable()


def _start():
    """What ``lastwords.pth`` runs at start-up when ``LASTWORDS`` is set:
    stand in for faulthandler and, when ``LASTWORDS_ENABLE`` is set too (as
    ``lastwords run`` sets it), enable lastwords, writing to the file named by
    ``LASTWORDS_FILE`` (appended) or to stderr."""
    import os
    import sys

    install()
    if os.environ.get("LASTWORDS_ENABLE", "") in ("", "0") or sys.modules.get("faulthandler") is not _lastwords:
        return
    path = os.environ.get("LASTWORDS_FILE")
    if path:
        # Kept open for the life of the process: enable() keeps a reference.
        _lastwords.enable(open(path, "a"))
    elif not _lastwords.is_enabled():
        _lastwords.enable()

