"""A service test that skips where TUNECV_REQUIRE_SERVICES names its marker fails instead."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TESTS = """
import pytest

@pytest.mark.ray
def test_ray():
    pytest.skip("ray is not installed")

@pytest.mark.ray
@pytest.mark.skipif(True, reason="no cluster")
def test_ray_skipif():
    pass

@pytest.mark.gpu
def test_gpu():
    pytest.skip("needs CUDA")
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest("from tests.required_services import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makeini("[pytest]\nmarkers =\n    ray: r\n    gpu: g\n")
    pytester.makepyfile(TESTS)
    return pytester


def test_required_service_skips_become_failures(suite, monkeypatch):
    monkeypatch.setenv("TUNECV_REQUIRE_SERVICES", "postgres,ray")
    result = suite.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1, errors=1, skipped=1)  # a skipif skips in setup: an error there
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*TUNECV_REQUIRE_SERVICES requires the ray tests to run here: *ray is not installed*"])


def test_without_the_variable_they_skip(suite, monkeypatch):
    monkeypatch.delenv("TUNECV_REQUIRE_SERVICES", raising=False)
    suite.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(skipped=3)
