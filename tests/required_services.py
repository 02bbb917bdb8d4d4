"""In CI a test that needs a service must run: its skip is turned into a failure.

``TUNECV_REQUIRE_SERVICES`` (set by ``.ci/run``) names service markers, comma-separated
(``postgres,slurm,ray``). A test carrying one of them that skips — a missing package, a server that
cannot start — is reported as failed with the skip's reason, so CI can never pass with a whole engine
untested. Unset (a developer's machine), such tests skip as usual.
"""

from __future__ import annotations

import os

import pytest

ENV = "TUNECV_REQUIRE_SERVICES"


def required() -> set[str]:
    return {name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    needed = required() & {mark.name for mark in item.iter_markers()}
    if report.skipped and needed:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (f"skipped, but {ENV} requires the {', '.join(sorted(needed))} tests to run here: "
                           f"{reason}")
