"""Corrupt CPython's own structures, from inside a child process, with ctypes.

Imported by the snippets of test_hostile.py (the test puts this directory on
the child's PYTHONPATH). It never imports lastwords: the offsets come from the
parent, which reads ``lastwords._lastwords._layout_info()`` on the same
interpreter and passes the ``Layout`` debug string in the environment
(``LASTWORDS_HOSTILE_LAYOUT``). So a snippet run under the stdlib's
faulthandler corrupts exactly the same fields without loading lastwords.

Everything here reads and writes raw memory: call it with the GIL held (plain
Python code does), right before the fatal signal, and keep the garbage
collector disabled (``gc.disable()``) so that nothing traverses a corrupted
object before the crash.
"""

import ctypes
import json
import mmap
import os
import re
import sys

LAYOUT_ENV = "LASTWORDS_HOSTILE_LAYOUT"

#: An address that no mapping covers (checked against /proc/self/maps).
UNMAPPED = 0x10000000000

#: Objects and buffers that must outlive the crash.
_keep = []


def parse_layout(debug):
    """The numbers of a Rust ``Debug`` of ``Layout`` as a dict.

    Plain fields become ints (``frame_previous: 48``); ``tstate_frame``
    becomes ``("direct", off)`` or ``("cframe", cframe, current_frame)``;
    ``frame_owner`` / ``shim_owner`` become an int or None."""
    layout = {name: int(value) for name, value in re.findall(r"\b(\w+): (\d+)\b", debug)}
    direct = re.search(r"tstate_frame: Direct\((\d+)\)", debug)
    via = re.search(r"tstate_frame: ViaCFrame \{ cframe: (\d+), current_frame: (\d+) \}", debug)
    if direct:
        layout["tstate_frame"] = ("direct", int(direct.group(1)))
    elif via:
        layout["tstate_frame"] = ("cframe", int(via.group(1)), int(via.group(2)))
    else:
        raise ValueError(f"no tstate_frame in {debug!r}")
    for name in ("frame_owner", "shim_owner"):
        m = re.search(rf"{name}: (?:Some\((\d+)\)|None)", debug)
        layout[name] = int(m.group(1)) if m and m.group(1) else None
    # The nested fields of tstate_frame were picked up as plain ones too.
    layout.pop("cframe", None)
    layout.pop("current_frame", None)
    return layout


L = parse_layout(os.environ[LAYOUT_ENV]) if LAYOUT_ENV in os.environ else None

_api = ctypes.pythonapi  # PyDLL: calls keep the GIL
_api.PyThreadState_Get.restype = ctypes.c_void_p
_api.PyThreadState_Get.argtypes = []
_api.PyInterpreterState_Get.restype = ctypes.c_void_p
_api.PyInterpreterState_Get.argtypes = []
_api.PyInterpreterState_ThreadHead.restype = ctypes.c_void_p
_api.PyInterpreterState_ThreadHead.argtypes = [ctypes.c_void_p]
_api.PyThreadState_Next.restype = ctypes.c_void_p
_api.PyThreadState_Next.argtypes = [ctypes.c_void_p]
_api.Py_IncRef.argtypes = [ctypes.py_object]
_api.Py_IncRef.restype = None

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
PAGE = mmap.PAGESIZE


# ---- raw memory ----------------------------------------------------------------


def read_ptr(addr):
    return ctypes.c_size_t.from_address(addr).value


def write_ptr(addr, value):
    ctypes.c_size_t.from_address(addr).value = value & (2**64 - 1)


def write_ssize(addr, value):
    ctypes.c_ssize_t.from_address(addr).value = value


def is_mapped(addr):
    """Whether /proc/self/maps lists a mapping that contains `addr`."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return True
    return False


def unmapped():
    """`UNMAPPED`, after checking that it is."""
    assert not is_mapped(UNMAPPED), hex(UNMAPPED)
    return UNMAPPED


def anon(npages):
    """`npages` fresh zeroed pages (never unmapped unless asked)."""
    p = _libc.mmap(None, npages * PAGE, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)
    assert p not in (None, ctypes.c_void_p(-1).value), ctypes.get_errno()
    return p


def unmapped_page():
    """The address of a page that was mapped and has just been unmapped
    (a freed mapping)."""
    p = anon(1)
    assert _libc.munmap(p, PAGE) == 0
    assert not is_mapped(p)
    return p


def garbage(fill, size=PAGE):
    """A readable buffer of `size` bytes, every byte `fill`."""
    p = anon((size + PAGE - 1) // PAGE)
    ctypes.memset(p, fill, size)
    return p


def pointers_to(target, size=PAGE):
    """A readable buffer whose every 8-byte word is `target`."""
    p = anon((size + PAGE - 1) // PAGE)
    for off in range(0, size, 8):
        write_ptr(p + off, target)
    return p


def guarded(size):
    """The address of `size` zeroed readable bytes that end exactly where a
    PROT_NONE page starts: a read that goes past them straddles a mapping
    boundary."""
    npages = (size + PAGE - 1) // PAGE
    p = anon(npages + 1)
    assert _libc.mprotect(p + npages * PAGE, PAGE, 0) == 0  # PROT_NONE
    return p + npages * PAGE - size


def keep(obj):
    """Keep `obj` alive for ever (an extra reference, and one here)."""
    _api.Py_IncRef(obj)
    _keep.append(obj)
    return obj


# ---- thread states and frames --------------------------------------------------


def tstate():
    """The calling thread's PyThreadState (public API)."""
    return _api.PyThreadState_Get()


def tstates():
    """Every thread state of the interpreter, head (newest) first (public API)."""
    out = []
    t = _api.PyInterpreterState_ThreadHead(_api.PyInterpreterState_Get())
    while t and len(out) < 10000:
        out.append(t)
        t = _api.PyThreadState_Next(t)
    return out


def frame_slot(ts):
    """The address of the word that holds the thread's innermost frame."""
    kind, *offs = L["tstate_frame"]
    if kind == "direct":
        return ts + offs[0]
    cframe = read_ptr(ts + offs[0])
    assert cframe, "thread has no cframe"
    return cframe + offs[1]


def frames(ts=None):
    """The frames of a thread, innermost first: PyFrameObject addresses on
    3.9/3.10, _PyInterpreterFrame addresses from 3.11 (shims included)."""
    f = read_ptr(frame_slot(ts or tstate()))
    out = []
    while f and len(out) < 10000:
        out.append(f)
        f = read_ptr(f + L["frame_previous"])
    return out


def code_of(frame):
    return read_ptr(frame + L["frame_code"])


def find_frame(code, ts=None, nth=0):
    """The address of the `nth` (0 = innermost) frame running `code`."""
    matches = [f for f in frames(ts) if code_of(f) == id(code)]
    assert len(matches) > nth, f"no frame #{nth} of {code.co_name}"
    return matches[nth]


def set_previous(frame, value):
    """Overwrite `previous` (3.11+) / `f_back` (3.9, 3.10) of a frame."""
    write_ptr(frame + L["frame_previous"], value)


def set_code(frame, value):
    """Overwrite a frame's code pointer (f_code / f_executable)."""
    write_ptr(frame + L["frame_code"], value)


def set_filename(code, value):
    """Overwrite a code object's co_filename pointer (`value`: an address;
    keep whatever it points to alive yourself)."""
    write_ptr(id(code) + L["code_filename"], value)


def set_str_length(s, n):
    """Overwrite the length field of a str object."""
    write_ssize(id(s) + L["unicode_length"], n)


def set_next(ts, value):
    """Overwrite tstate->next."""
    write_ptr(ts + L["tstate_next"], value)


def fake_frame(code):
    """A readable page laid out as a frame whose code pointer is `code` and
    whose every other field is zero (so `previous` is NULL)."""
    p = anon(1)
    write_ptr(p + L["frame_code"], code)
    return p


def fake_code(fields):
    """A bytes object (a real object, not a code object) laid out so that, read
    as a code object, the fields named in `fields` (layout names such as
    ``code_filename``) hold the given addresses; everything else is zero."""
    size = 256
    payload = bytearray(size)
    header = 32  # ob_refcnt, ob_type, ob_size, ob_shash
    for name, value in fields.items():
        off = L[name] - header
        payload[off : off + 8] = value.to_bytes(8, sys.byteorder)
    return keep(bytes(payload))


# ---- an oracle that does not use faulthandler ------------------------------------


def thread_oracle(path="oracle.json", extra=None):
    """Write every thread's frames as sys._current_frames() sees them, with the
    order of the C thread list, to `path` (JSON)."""
    import threading

    by_ident = {}
    for ident, frame in sys._current_frames().items():
        rows = []
        while frame is not None:
            rows.append([frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name])
            frame = frame.f_back
        by_ident[ident] = rows
    data = {
        "threads": {str(k): v for k, v in by_ident.items()},
        "main": threading.main_thread().ident,
        "extra": extra or {},
    }
    with open(path, "w") as f:
        json.dump(data, f)
    return data


def marker_line(tag):
    """The line number of the line of ``__main__`` that carries ``# <tag>``."""
    path = sys.modules["__main__"].__file__
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.rstrip().endswith("# " + tag):
                return number
    raise LookupError(tag)


def wait_parked(threads, code, line, limit=10.0):
    """Wait (polling a condition, bounded) until every thread's innermost frame
    runs `code` at `line`: from then on, what a dump shows of those threads
    does not change (they can only be blocked on that line or about to be)."""
    import time

    deadline = time.monotonic() + limit
    while True:
        current = sys._current_frames()
        if all(
            t.ident in current
            and current[t.ident].f_code is code
            and current[t.ident].f_lineno == line
            for t in threads
        ):
            return
        assert time.monotonic() < deadline, "threads did not park"
        time.sleep(0.001)


def tstate_order(by_ident):
    """The idents of `by_ident` ({ident: tstate}) in the order of the C thread
    list (head first); unknown thread states are listed as None."""
    ident_of = {ts: ident for ident, ts in by_ident.items()}
    return [ident_of.get(ts) for ts in tstates()]
