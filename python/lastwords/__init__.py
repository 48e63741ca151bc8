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

# The stdlib's crash helpers (_sigsegv, _read_null, ...) that the running
# version's faulthandler has, so that CPython's own tests can drive lastwords.
for _name in dir(_lastwords):
    if _name.startswith("_") and not _name.startswith("__") and _name != "_layout_info":
        globals()[_name] = getattr(_lastwords, _name)
del _name
