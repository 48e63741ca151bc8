"""3.14+: the C stack section of fatal reports and dump_c_stack(), and
3.15's max_threads. Addresses differ between runs, so the C stack is checked
for its shape and for the frames that must be there, not compared byte for
byte with the stdlib's."""

import os
import re
import signal
import struct

import pytest

from helpers import MINOR, PARKING, assert_same, run, run_both

pytestmark = pytest.mark.skipif(MINOR < 14, reason="C stacks exist in the stdlib from 3.14")

HEADER = "Current thread's C stack trace (most recent call first):"
# The stdlib's own line format (its test_faulthandler.py checks the same).
FRAME = re.compile(
    r'  Binary file "[^"]+"(, at \S*[+-]0x[0-9a-f]+)? \[0x[0-9a-f]+\]'
    r"|  Binary file '<unknown>' \[0x[0-9a-f]+\]"
    r"|  <truncated rest of calls>"
)


def c_stack_lines(text):
    lines = text.split("\n")
    start = lines.index(HEADER)
    section = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        section.append(line)
    return lines, start, section


def test_fatal_report_has_the_c_stack(tmp_path):
    result = run(
        """
        def crash():
            faulthandler._sigsegv()
        faulthandler.enable()
        crash()
        """,
        cwd=str(tmp_path),
    )
    assert result.returncode == -signal.SIGSEGV
    lines, start, section = c_stack_lines(result.output)
    # After the Python threads, a blank line, then the section.
    assert lines[start - 1] == ""
    assert 'line 6 in <module>' in lines[start - 2]
    assert 2 <= len(section) <= 33
    for line in section:
        assert FRAME.fullmatch(line), line
    # lastwords' unwinder starts at the faulting instruction (in libc's
    # raise(), called by lastwords' helper) and names what the binaries'
    # symbol tables name.
    assert "libc.so" in section[0]
    assert any("_lastwords.abi3.so" in line for line in section[:4])
    assert any("Binary file" in line and ", at main" in line or "Py_BytesMain" in line for line in section)


def elf_build_id(path):
    """The GNU build ID of an ELF64 little-endian file, as hex (or None)."""
    with open(path, "rb") as f:
        data = f.read()
    shoff, = struct.unpack_from("<Q", data, 40)
    shnum, = struct.unpack_from("<H", data, 60)
    for i in range(shnum):
        sh_type, = struct.unpack_from("<I", data, shoff + 64 * i + 4)
        offset, size = struct.unpack_from("<QQ", data, shoff + 64 * i + 24)
        at = offset
        while sh_type == 7 and at + 12 <= offset + size:
            namesz, descsz, kind = struct.unpack_from("<III", data, at)
            name_at = at + 12
            desc_at = name_at + (namesz + 3) // 4 * 4
            if kind == 3 and data[name_at:name_at + namesz] == b"GNU\0":
                return data[desc_at:desc_at + descsz].hex()
            at = desc_at + (descsz + 3) // 4 * 4
    return None


def has_static_symbol(path, name):
    """Whether `name` is in the file, or in its detached debug file."""
    candidates = [path]
    build_id = elf_build_id(path)
    if build_id:
        candidates.append(f"/usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug")
    # String tables share tails ("wstring_at" holds "string_at"): a match
    # of the name and its NUL is enough for this check.
    needle = name.encode() + b"\0"
    for candidate in candidates:
        if os.path.exists(candidate):
            with open(candidate, "rb") as f:
                if needle in f.read():
                    return True
    return False


def test_static_functions_of_an_extension_imported_after_enable(tmp_path):
    # _ctypes is loaded by `import ctypes`, after enable(): its static
    # function string_at() (which calls strlen(NULL) here) is named from the
    # module's file or its debug file, read by the report itself. The stdlib
    # prints "at +0x..." for it (dladdr sees only exported symbols).
    import _ctypes

    if not has_static_symbol(_ctypes.__file__, "string_at"):
        pytest.skip(f"{_ctypes.__file__} has no .symtab and no debug file here")
    result = run(
        """
        faulthandler.enable()
        import ctypes
        ctypes.string_at(0)
        """,
        cwd=str(tmp_path),
    )
    assert result.returncode == -signal.SIGSEGV, result.output
    lines, start, section = c_stack_lines(result.output)
    for line in section:
        assert FRAME.fullmatch(line), line
    ctypes_lines = [line for line in section if "/_ctypes." in line]
    # GCC's LTO may suffix a local name: string_at.lto_priv.0.
    named = re.compile(r", at string_at(\.[\w.]+)?\+0x")
    assert any(named.search(line) for line in ctypes_lines), section


def test_c_stack_false_leaves_it_out(tmp_path):
    code = """
        faulthandler.enable(c_stack=False)
        faulthandler._sigsegv()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert_same(stdlib, lastwords)
    assert HEADER not in lastwords.output


def test_dump_c_stack(tmp_path):
    result = run(
        """
        import sys
        with open("c_stack.txt", "w") as f:
            faulthandler.dump_c_stack(f)
        faulthandler.dump_c_stack()
        """,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    for text in (result.output, (tmp_path / "c_stack.txt").read_text()):
        lines = text.rstrip("\n").split("\n")
        # No leading blank line in dump_c_stack().
        assert lines[0] == HEADER
        for line in lines[1:]:
            assert FRAME.fullmatch(line), line
        # The first frame is the binding itself (the stdlib's is its own
        # _Py_DumpStack).
        assert "_lastwords.abi3.so" in lines[1]


@pytest.mark.skipif(MINOR < 15, reason="max_threads is new in 3.15")
@pytest.mark.parametrize("max_threads", [1, 2, 0, -1])
def test_max_threads_matches_stdlib(max_threads, tmp_path):
    code = f"""
        park_threads([0, 1, 2])
        faulthandler.dump_traceback(max_threads={max_threads})
        faulthandler.register(10, max_threads={max_threads})
        import os
        os.kill(os.getpid(), 10)
    """
    stdlib, lastwords = run_both(code, tmp_path, prelude=PARKING)
    assert_same(stdlib, lastwords)
    expected = {1: 1, 2: 2, 0: 4, -1: 0}[max_threads]
    assert lastwords.output.count("most recent call first") == 2 * expected


@pytest.mark.skipif(MINOR < 15, reason="max_threads is new in 3.15")
def test_max_threads_errors(tmp_path):
    code = """
        for value in (2**63, 1.5, "x", None):
            for call in (
                lambda: faulthandler.dump_traceback(max_threads=value),
                lambda: faulthandler.enable(max_threads=value),
                lambda: faulthandler.dump_traceback_later(10, max_threads=value),
            ):
                try:
                    call()
                    print("ok")
                except Exception as e:
                    print(type(e).__name__, e)
                faulthandler.cancel_dump_traceback_later()
    """
    stdlib, lastwords = run_both(code, tmp_path)
    assert lastwords.stdout == stdlib.stdout
