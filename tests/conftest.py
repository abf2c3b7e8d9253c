"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The trained models the tests run against (the shipped ones unless COMPOSER_TEST_MODELS says)."""
    return Path(os.environ.get("COMPOSER_TEST_MODELS", "models"))
