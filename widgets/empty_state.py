"""A panel's empty state: a muted, centred sentence saying what fills the panel,
stacked over the panel's body (page 0: the sentence, page 1: the body)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QStackedWidget, QWidget

from widgets.data import MUTED_COLOR


def empty_stack(text: str, body: QWidget) -> tuple[QStackedWidget, QLabel]:
    """The stack showing ``text`` until ``setCurrentIndex(1)`` shows ``body``."""
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {MUTED_COLOR};")
    stack = QStackedWidget()
    stack.addWidget(label)
    stack.addWidget(body)
    return stack, label
