"""Bad calls get the stdlib's exception, message and warnings, on this interpreter.

The table (bad_calls.py, several hundred calls) is run in three child
processes: under the stdlib, under ``import lastwords as faulthandler``, and
with lastwords standing in (``lastwords.install()``, then ``import
faulthandler``). Every record of lastwords must equal the stdlib's: the
exception's class, message, context and cause, or what the call returned,
and the warnings. The functions' names, module, signatures and docstrings
are compared the same way.
"""

import faulthandler
import json
import os
import subprocess
import sys

import pytest

import bad_calls

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ("lastwords", "standin")
# The calls of functions the running version has (dump_c_stack from 3.14).
CALLS = bad_calls.calls_for(faulthandler)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """mode -> the child's record, for the stdlib and both lastwords modes."""
    out = tmp_path_factory.mktemp("bad_calls")
    env = dict(os.environ)
    for name in ("LASTWORDS", "PYTHONFAULTHANDLER", "PYTHONWARNINGS"):
        env.pop(name, None)
    result = {}
    for mode in ("stdlib", *MODES):
        path = out / f"{mode}.json"
        proc = subprocess.run(
            [sys.executable, os.path.join(HERE, "bad_calls.py"), mode, str(path)],
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        assert proc.returncode == 0, f"the {mode} child failed ({proc.returncode}):\n{proc.stderr}"
        with open(path, encoding="utf-8") as f:
            result[mode] = json.load(f)
    return result


def test_table_is_large(records):
    """At least 150 calls are made on every version, most of them errors."""
    calls = records["stdlib"]["calls"]
    errors = [r for r in calls.values() if "raised" in r]
    assert len(calls) >= 150 and len(errors) >= 150, (len(calls), len(errors))


@pytest.mark.parametrize("mode", MODES)
def test_same_calls_made(records, mode):
    """lastwords has exactly the functions the stdlib has on this version."""
    assert sorted(records[mode]["calls"]) == sorted(records["stdlib"]["calls"])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("call", CALLS)
def test_bad_call(records, mode, call):
    expected = records["stdlib"]["calls"][call]
    if sys.version_info < (3, 14) and call.startswith("fh.enable(") and "c_stack=" in call:
        # A lastwords addition (test_c_stack_setting.py): enable(c_stack=)
        # before 3.14, where the stdlib has no such keyword.
        assert expected["raised"] == "builtins.TypeError" and "'c_stack'" in expected["message"]
        expected = {"returned": "None", "warnings": []}
    assert records[mode]["calls"][call] == expected


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", bad_calls.FUNCTIONS)
def test_function_face(records, mode, name):
    """__name__, __qualname__, __module__, __text_signature__, __doc__ and
    inspect.signature() of each function are the stdlib's."""
    assert records[mode]["faces"][name] == records["stdlib"]["faces"][name]


def test_standin_module_face(records):
    """Standing in, faulthandler.__name__ and __doc__ are the stdlib's."""
    assert records["standin"]["module"] == records["stdlib"]["module"]


def test_package_name():
    """The Python package keeps its own name."""
    import lastwords

    assert lastwords.__name__ == "lastwords"
