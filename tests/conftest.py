"""Shared fixtures for the engine tests (no Qt here)."""

from __future__ import annotations

import pytest

import core


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    """Each array module in turn: "cpu" (NumPy), then "cuda" (CuPy) or a skip saying why."""
    if request.param == "cuda" and not core.cuda.is_available():
        pytest.skip(f"cuda: {core.cuda.unavailable_reason()}")
    return request.param
