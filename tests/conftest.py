"""Suite-wide pytest hooks: lines that tests want in the final summary (the
conformance counts per interpreter), shown even when every test passes."""

import pytest

_SUMMARY_LINES = pytest.StashKey[list]()


def pytest_configure(config):
    config.stash[_SUMMARY_LINES] = []


@pytest.fixture
def summary_lines(pytestconfig):
    """A list; each string appended is printed at the end of the run."""
    return pytestconfig.stash[_SUMMARY_LINES]


def pytest_terminal_summary(terminalreporter, config):
    for line in config.stash[_SUMMARY_LINES]:
        terminalreporter.write_line(line)
