"""What every remote check shares: `dump --native`'s symbol indexes in a
directory of their own (removed at the end), not in the user's ~/.cache;
SIGINT and SIGQUIT at their defaults for the processes the checks start."""

import os
import shutil
import signal
import tempfile

import pytest


@pytest.fixture(autouse=True, scope="session")
def private_symbol_cache():
    directory = tempfile.mkdtemp(prefix="lastwords-symbol-cache-")
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = directory
    yield directory
    if previous is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = previous
    shutil.rmtree(directory, ignore_errors=True)


# A run started in the background by a shell without job control inherits
# SIGINT and SIGQUIT ignored, and so would every target and dumper these
# checks start, which are sent those signals (a dumper interrupted while it
# holds a target; SIGQUIT for a kernel core): put the defaults back, which
# the children then inherit.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
if signal.getsignal(signal.SIGQUIT) == signal.SIG_IGN:
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
