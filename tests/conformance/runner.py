"""Run this interpreter's own Lib/test/test_faulthandler.py against lastwords.

    python -m tests.conformance.runner      (from the repository root)
    python tests/conformance/runner.py

`faulthandler` names lastwords in this process and in every child process the
test file starts, the way users get it: LASTWORDS=1 in the environment, which
the lastwords.pth file installed with the package turns into
lastwords.install() at start-up. The children run with -E, which ignores
PYTHON* variables but not .pth files nor LASTWORDS.

Prints one row per test, the tracebacks of the unexpected failures and a
summary line; exits 0 iff no test failed unexpectedly and no test listed in
expected.py passed.
"""

import os
import subprocess
import sys
import sysconfig
import unittest

import lastwords
import lastwords._lastwords as native

if __package__:
    from .expected import EXPECTED_FAILURES
else:  # run as a script: this directory is sys.path[0]
    from expected import EXPECTED_FAILURES

ENV_VAR = "LASTWORDS"
VERSION = "%d.%d" % sys.version_info[:2]
ERROR_WIDTH = 100  # of an error in the table; the full text follows the table


def test_file_path():
    """Where this interpreter's test_faulthandler.py is."""
    return os.path.join(sysconfig.get_path("stdlib"), "test", "test_faulthandler.py")


def check_children():
    """Exit unless a child started the way the test file starts its children
    (script_helper.spawn_python passes -E) gets lastwords as faulthandler."""
    # The stand-in is lastwords' native module: like the stdlib's C module it
    # is an extension module, and fatal reports list it as "faulthandler".
    code = "import faulthandler, lastwords._lastwords as native; print(faulthandler is native)"
    proc = subprocess.run(
        [sys.executable, "-E", "-c", code], capture_output=True, text=True
    )
    if proc.stdout.strip() != "True":
        sys.exit(
            "conformance: child processes do not get lastwords as faulthandler\n"
            + proc.stdout
            + proc.stderr
        )


def load_test_module():
    """test.test_faulthandler, imported with lastwords standing in here too."""
    lastwords.install()
    from test import test_faulthandler

    if (
        sys.modules["faulthandler"] is not native
        or test_faulthandler.faulthandler is not native
    ):
        sys.exit("conformance: test_faulthandler does not use lastwords")
    return test_faulthandler


def test_names(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from test_names(item)
        else:
            yield item._testMethodName


def error_line(text):
    """The exception line of a formatted traceback: the first line that is
    neither the "Traceback" header nor indented."""
    return next(
        (line for line in text.splitlines() if not line.startswith((" ", "Traceback"))),
        text,
    )


class Outcomes(unittest.TestResult):
    """One outcome per test method, printed as a table row when it is known.

    A test listed in expected.py that fails is an expected failure; one that
    passes is an unexpected pass.
    """

    def __init__(self, expected, width):
        super().__init__()
        self.expected = expected
        self.width = width
        self.counts = dict.fromkeys(
            ("passed", "FAILED", "skipped", "expected failure", "UNEXPECTED PASS"), 0
        )
        self.tracebacks = []  # (name, text) of the unexpected failures

    def startTest(self, test):
        super().startTest(test)
        self.raw = ("pass", "")

    def _fail(self, test, err):
        if self.raw[0] != "fail":  # keep the first failure of the test
            self.raw = ("fail", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._fail(test, err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._fail(test, err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._fail(test, err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        # On Linux the stdlib module has every function the test file probes
        # with hasattr(faulthandler, ...): such a skip is a lastwords gap.
        if "faulthandler" in reason:
            self.raw = ("fail", f"skipped: {reason}")
        else:
            self.raw = ("skip", reason)

    def addExpectedFailure(self, test, err):
        # Marked @expectedFailure by CPython itself: it fails with the stdlib.
        super().addExpectedFailure(test, err)
        self.raw = ("skip", "expected to fail by CPython's test file")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.raw = ("fail", "passed although CPython's test file expects a failure")

    def stopTest(self, test):
        super().stopTest(test)
        name = test._testMethodName
        kind, detail = self.raw
        reason = self.expected.get(name)
        if kind == "fail" and reason is not None:
            outcome, detail = "expected failure", reason
        elif kind == "fail":
            outcome = "FAILED"
            self.tracebacks.append((name, detail))
            detail = error_line(detail)[:ERROR_WIDTH]
        elif kind == "pass" and reason is not None:
            outcome, detail = "UNEXPECTED PASS", f"listed in expected.py: {reason}"
        else:
            outcome = {"pass": "passed", "skip": "skipped"}[kind]
        self.counts[outcome] += 1
        print(f"{name:<{self.width}}  {outcome:<16}  {detail}".rstrip())
        sys.stdout.flush()

    def ok(self):
        return self.counts["FAILED"] == 0 and self.counts["UNEXPECTED PASS"] == 0

    def summary(self):
        c = self.counts
        line = (
            f"conformance {VERSION}: {c['passed']} passed, {c['FAILED']} failed, "
            f"{c['skipped']} skipped, {c['expected failure']} expected failures"
        )
        if c["UNEXPECTED PASS"]:
            line += f", {c['UNEXPECTED PASS']} unexpected passes"
        return line


def main():
    path = test_file_path()
    if not os.path.exists(path):
        print(f"conformance {VERSION}: {path} not found", file=sys.stderr)
        return 2
    os.environ[ENV_VAR] = "1"
    check_children()
    module = load_test_module()
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    names = list(test_names(suite))
    print(
        f"lastwords {lastwords.__version__} ({os.path.dirname(lastwords.__file__)})\n"
        f"as faulthandler in {module.__file__}\n"
        f"on CPython {sys.version.split()[0]} ({sys.executable})\n",
        flush=True,
    )
    result = Outcomes(EXPECTED_FAILURES, max(map(len, names)))
    suite.run(result)

    for name, text in result.tracebacks:
        print(f"\n{'=' * 70}\nFAILED: {name}\n{'-' * 70}\n{text.rstrip()}")
    stale = sorted(set(EXPECTED_FAILURES) - set(names))
    if stale:
        print(f"\nnote: expected.py lists tests this file does not have: {', '.join(stale)}")
    print("\n" + result.summary())
    return 0 if result.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
