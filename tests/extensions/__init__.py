"""Extensions written outside the tunecv package, one module each (tests/integration/test_extensions.py)."""
