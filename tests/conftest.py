"""Shared fixtures: process-wide state reset around every test (structlog's, as structlog's own
suite does, and the interpreter's), and signals as a terminal's job has them."""

from __future__ import annotations

import gc
import signal
import sys
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _keep_the_interpreters_settings() -> Iterator[None]:
    """mypy run in-process (``mypy.api.run``) raises the recursion limit and the collector's
    thresholds for good: a later test of input nested too deeply for the default limit
    would then parse it, and garbage (with its ResourceWarnings) be found in other tests."""
    limit, thresholds = sys.getrecursionlimit(), gc.get_threshold()
    yield
    sys.setrecursionlimit(limit)
    gc.set_threshold(*thresholds)


@pytest.fixture
def terminal_signals() -> Iterator[None]:
    """SIGINT and SIGHUP handled as in a terminal's foreground job, for tests that send them.

    A test run started in the background of a script has SIGINT ignored, one
    under ``nohup`` SIGHUP; a child inherits that, and dagwave (as trio) leaves
    an ignored signal ignored. A handler set here is the default in a child.
    """
    stops = (signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in stops}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: not set from Python, cannot be put back
                signal.signal(sig, handler)
