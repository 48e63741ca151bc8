"""The files of the lastwords wheel installed into the running interpreter's
environment: what a user of an older Linux gets from `pip install`."""

import importlib.metadata
import importlib.util
import os
import sysconfig

# The oldest glibc the wheel is built for (manylinux2014).
BASELINE = (2, 17)
BASELINE_TAG = "manylinux_2_17_x86_64"


def extension():
    """The extension module, lastwords/_lastwords.abi3.so."""
    return importlib.util.find_spec("lastwords._lastwords").origin


def command():
    """The native `lastwords` command (wheel-data/scripts/ in the wheel)."""
    return os.path.join(sysconfig.get_path("scripts"), "lastwords")


def version():
    return importlib.metadata.version("lastwords")


def wheel_tags():
    """The `Tag:` lines of the installed wheel's WHEEL file."""
    text = importlib.metadata.distribution("lastwords").read_text("WHEEL")
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]


def glibc():
    """The running glibc's version, e.g. (2, 31)."""
    name, _, number = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")
    assert name == "glibc", name
    return tuple(int(part) for part in number.split("."))
