import sys
from typing import Any, Protocol, SupportsIndex

class _FileLike(Protocol):
    def fileno(self) -> int: ...

_File = _FileLike | int | None

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
if sys.version_info >= (3, 14):
    __all__ += ["dump_c_stack"]

__version__: str
version: tuple[int, ...]

# The running version's signatures, as its stdlib has them: flags are ints up
# to 3.11 and any object from 3.12; c_stack and dump_c_stack from 3.14;
# keyword-only max_threads from 3.15, where the timeout takes anything with
# __float__.
if sys.version_info >= (3, 15):
    def enable(
        file: _File = ..., all_threads: Any = True, c_stack: Any = True, *, max_threads: SupportsIndex = 100
    ) -> None: ...
    def dump_traceback(file: _File = ..., all_threads: Any = True, *, max_threads: SupportsIndex = 100) -> None: ...
    def dump_traceback_later(
        timeout: float | SupportsIndex,
        repeat: Any = False,
        file: _File = ...,
        exit: Any = False,
        *,
        max_threads: SupportsIndex = 100,
    ) -> None: ...
    def register(
        signum: SupportsIndex,
        file: _File = ...,
        all_threads: Any = True,
        chain: Any = False,
        *,
        max_threads: SupportsIndex = 100,
    ) -> None: ...
elif sys.version_info >= (3, 14):
    def enable(file: _File = ..., all_threads: Any = True, c_stack: Any = True) -> None: ...
    def dump_traceback(file: _File = ..., all_threads: Any = True) -> None: ...
    def dump_traceback_later(
        timeout: float | SupportsIndex, repeat: SupportsIndex = False, file: _File = ..., exit: SupportsIndex = False
    ) -> None: ...
    def register(signum: SupportsIndex, file: _File = ..., all_threads: Any = True, chain: Any = False) -> None: ...
else:
    # c_stack: a lastwords addition before 3.14 (keyword only; off unless
    # LASTWORDS_C_STACK=1).
    def enable(file: _File = ..., all_threads: Any = True, *, c_stack: Any = ...) -> None: ...
    def dump_traceback(file: _File = ..., all_threads: Any = True) -> None: ...
    def dump_traceback_later(
        timeout: float | SupportsIndex, repeat: SupportsIndex = False, file: _File = ..., exit: SupportsIndex = False
    ) -> None: ...
    def register(signum: SupportsIndex, file: _File = ..., all_threads: Any = True, chain: Any = False) -> None: ...

if sys.version_info >= (3, 14):
    def dump_c_stack(file: _File = ...) -> None: ...

def disable() -> bool: ...
def is_enabled() -> bool: ...
def cancel_dump_traceback_later() -> None: ...
def unregister(signum: SupportsIndex, /) -> bool: ...
def install() -> None: ...
