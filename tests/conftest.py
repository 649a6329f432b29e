"""Shared fixtures: the device for the engine tests, and the app's main window (Qt is
imported only by the tests that use it, so the engine tests run without Qt)."""

from __future__ import annotations

import pytest

import core


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request: pytest.FixtureRequest) -> str:
    """Each array module in turn: "cpu" (NumPy), then "cuda" (CuPy) or a skip saying why."""
    if request.param == "cuda" and not core.cuda.is_available():
        pytest.skip(f"cuda: {core.cuda.unavailable_reason()}")
    return request.param


@pytest.fixture
def window(qtbot, tmp_path):
    """The main window, shown, with a settings file of its own; its run ends after."""
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow

    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    yield w
    w.bridge.shutdown()
