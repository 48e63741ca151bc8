"""The tests of CPython's test_faulthandler.py that lastwords cannot pass yet.

EXPECTED_FAILURES maps a test method name to why it fails. Empty today: every
test of the file passes on CPython 3.9-3.13, except the Windows-only ones,
which the file itself skips. A listed test that passes fails the run as an
unexpected pass: remove it from here when its feature lands.
"""

EXPECTED_FAILURES = {}
