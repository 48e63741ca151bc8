"""The C stack of fatal reports as a setting, on every version: the stdlib
prints it from 3.14 (on by default); lastwords adds it to 3.9-3.13, off by
default, switched on by `enable(c_stack=True)` in code or by
`LASTWORDS_C_STACK=1` in the environment (which also switches it off on
3.14+ with `0`). Everything but the section stays the stdlib's bytes."""

import re
import signal
import textwrap

import pytest

from helpers import MINOR, PARKING, assert_same, run, run_both

HEADER = "Current thread's C stack trace (most recent call first):"
FRAME = re.compile(
    r'  Binary file "[^"]+"(, at \S*[+-]0x[0-9a-f]+)? \[0x[0-9a-f]+\]'
    r"|  Binary file '<unknown>' \[0x[0-9a-f]+\]"
    r"|  <truncated rest of calls>"
)
# What Result.masked puts where the section was, with its blank line.
MASKED_SECTION = "\n<C stack>\n"

# A crash with a second thread parked, under `enable(**KW)`: KW is given only
# to lastwords (the stdlib before 3.14 has no c_stack), on the same line.
CRASH = """
    park_threads([2])
    KW = {} if faulthandler.__name__ == "faulthandler" else LASTWORDS_KW
    faulthandler.enable(**KW)
    faulthandler._sigsegv()
"""


def crash(kw):
    return f"LASTWORDS_KW = {kw!r}\n" + textwrap.dedent(CRASH)


def check_section(output):
    """The section is there once, well formed, starting in the crash helper."""
    lines = output.split("\n")
    assert lines.count(HEADER) == 1, output
    start = lines.index(HEADER)
    assert lines[start - 1] == "", output
    section = []
    for line in lines[start + 1 :]:
        if not line.startswith("  "):
            break
        section.append(line)
    assert 2 <= len(section) <= 33, output
    for line in section:
        assert FRAME.fullmatch(line), line
    # The unwind starts at the faulting instruction: libc's raise(), called
    # by the extension's _sigsegv().
    assert "libc.so" in section[0], section
    assert any("_lastwords.abi3.so" in line for line in section[:4]), section


@pytest.mark.parametrize(
    "how",
    [
        pytest.param({"kw": {"c_stack": True}, "env": {}}, id="code"),
        pytest.param({"kw": {}, "env": {"LASTWORDS_C_STACK": "1"}}, id="environment"),
    ],
)
def test_switched_on_adds_only_the_section(how, tmp_path):
    stdlib, lastwords = run_both(crash(how["kw"]), tmp_path, env=how["env"], prelude=PARKING)
    assert lastwords.returncode == stdlib.returncode == -signal.SIGSEGV
    check_section(lastwords.output)
    if MINOR >= 14:
        # The stdlib's default: its report has the section too.
        assert_same(stdlib, lastwords)
    else:
        # Between the threads and the extension modules, as 3.14 puts it.
        text = stdlib.masked
        at = text.find("\nExtension modules: ")
        at = len(text) if at < 0 else at
        assert lastwords.masked == text[:at] + MASKED_SECTION + text[at:]


@pytest.mark.parametrize(
    "how",
    [
        pytest.param({"kw": {}, "env": {}}, id="default"),
        pytest.param({"kw": {"c_stack": False}, "env": {"LASTWORDS_C_STACK": "1"}}, id="code-wins"),
        pytest.param({"kw": {}, "env": {"LASTWORDS_C_STACK": "0"}}, id="environment-off"),
    ],
)
def test_switched_off_is_the_stdlib_report_without_a_c_stack(how, tmp_path):
    if MINOR >= 14 and how["kw"] == {} and how["env"] == {}:
        pytest.skip("3.14+'s default is on: test_c_stack.py covers it")
    # The stdlib without a C stack: its default before 3.14, c_stack=False
    # after.
    stdlib_kw = {"c_stack": False} if MINOR >= 14 else {}
    code = f"STDLIB_KW = {stdlib_kw!r}\n" + crash(how["kw"]).replace(
        "KW = {} if", "KW = STDLIB_KW if"
    )
    stdlib, lastwords = run_both(code, tmp_path, env=how["env"], prelude=PARKING)
    assert lastwords.returncode == -signal.SIGSEGV, lastwords.output
    assert HEADER not in lastwords.output
    assert_same(stdlib, lastwords)


def test_a_bad_environment_value_is_a_clear_error(tmp_path):
    result = run(
        """
        try:
            faulthandler.enable()
        except ValueError as e:
            print(e)
        print(faulthandler.is_enabled())
        """,
        env={"LASTWORDS_C_STACK": "yes"},
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.output
    assert result.stdout == "LASTWORDS_C_STACK must be 0 or 1, not \"yes\"\nFalse\n"


def test_standing_in_through_the_environment(tmp_path):
    # LASTWORDS=1 users switch it on without code changes: pytest's plain
    # faulthandler.enable() gets the section.
    result = run(
        """
        faulthandler.enable(all_threads=True)
        faulthandler._sigsegv()
        """,
        module="faulthandler",
        env={"LASTWORDS": "1", "LASTWORDS_C_STACK": "1"},
        cwd=str(tmp_path),
    )
    assert result.returncode == -signal.SIGSEGV, result.output
    check_section(result.output)


# Calls with c_stack= on 3.9-3.13 behave as the stdlib's call without it
# (which it has no parameter for), c_stack converted last.
BAD_CALLS = """
class Boom:
    def __bool__(self):
        raise ZeroDivisionError("c_stack's truth")
calls = [
    ((), {"bogus": 1}),
    (("not a file",), {}),
    ((None, True, True), {}),
    ((), {"file": None, "all_threads": "x"}),
    ((), {"file": 1.5}),
    ((-1,), {}),
    ((), {"all_threads": 2**100}),
]
for args, kwargs in calls:
    if faulthandler.__name__ != "faulthandler":
        kwargs = dict(kwargs, c_stack=True)
    try:
        faulthandler.enable(*args, **kwargs)
        print("ok")
    except Exception as e:
        print(type(e).__name__, e)
    faulthandler.disable()
if faulthandler.__name__ != "faulthandler":
    try:
        faulthandler.enable(c_stack=Boom())
    except ZeroDivisionError as e:
        print("raised", e, faulthandler.is_enabled())
"""


@pytest.mark.skipif(MINOR >= 14, reason="3.14+ has c_stack in the stdlib (test_bad_calls.py)")
def test_calls_with_the_keyword_fail_as_the_stdlib_without_it(tmp_path):
    stdlib, lastwords = run_both(BAD_CALLS, tmp_path)
    assert stdlib.returncode == lastwords.returncode == 0, lastwords.output
    assert lastwords.stdout == stdlib.stdout + "raised c_stack's truth False\n"
    assert lastwords.output == stdlib.output
