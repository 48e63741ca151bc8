"""The tests of CPython's test_faulthandler.py that lastwords cannot pass yet.

EXPECTED_FAILURES maps a test method name to why it fails. The list is the
same for CPython 3.9-3.13 (a name missing from some version's file, such as a
test added later, is simply not run there). A listed test that passes fails
the run as an unexpected pass: remove it from here when its feature lands.
"""

STARTUP = (
    "-X faulthandler / PYTHONFAULTHANDLER enable the stdlib, not lastwords, "
    "until install() exists (issue 4)"
)

EXPECTED_FAILURES = {
    "test_sys_xoptions": STARTUP,
    "test_env_var": STARTUP,
}
