"""The remote checks keep `dump --native`'s symbol indexes in a directory of
their own (removed at the end), not in the user's ~/.cache."""

import os
import shutil
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
