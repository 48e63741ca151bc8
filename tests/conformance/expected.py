"""The tests of CPython's test_faulthandler.py that lastwords cannot pass yet.

EXPECTED_FAILURES maps a test method name to why it fails. The list is the
same for CPython 3.9-3.13 (a name missing from some version's file, such as a
test added later, is simply not run there). A listed test that passes fails
the run as an unexpected pass: remove it from here when its feature lands.
"""

DUMP_LATER = "dump_traceback_later: not implemented yet (issue 4)"
CANCEL_LATER = "cancel_dump_traceback_later: not implemented yet (issue 4)"
REGISTER = "register/unregister: not implemented yet (issue 4)"
STARTUP = (
    "-X faulthandler / PYTHONFAULTHANDLER enable the stdlib, not lastwords, "
    "until install() exists (issue 4)"
)

EXPECTED_FAILURES = {
    # Checks enable(), dump_traceback() and then dump_traceback_later() with
    # sys.stderr None; the first two pass.
    "test_stderr_None": DUMP_LATER,
    "test_dump_traceback_later": DUMP_LATER,
    "test_dump_traceback_later_cancel": DUMP_LATER,
    "test_dump_traceback_later_fd": DUMP_LATER,
    "test_dump_traceback_later_file": DUMP_LATER,
    "test_dump_traceback_later_repeat": DUMP_LATER,
    "test_dump_traceback_later_twice": DUMP_LATER,
    "test_cancel_later_without_dump_traceback_later": CANCEL_LATER,
    # Skipped by the test file when faulthandler has no register(): the
    # runner counts that skip as a failure.
    "test_register": REGISTER,
    "test_register_chain": REGISTER,
    "test_register_fd": REGISTER,
    "test_register_file": REGISTER,
    "test_register_threads": REGISTER,
    "test_unregister": REGISTER,
    "test_sys_xoptions": STARTUP,
    "test_env_var": STARTUP,
}
