import pytest

from tests.vectors import shared_dir


def pytest_configure(config):
    if not (shared_dir() / "vectors").is_dir():
        raise pytest.UsageError(f"test vectors not found under {shared_dir()}: set CADENT_SHARED")
