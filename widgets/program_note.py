"""The open program's title and docstring, shown in full above the graph.

A sample's docstring says what to look for ("look at conv1's eight 3x3
filters"); ``ProgramNote.show_program`` shows it whole when a program opens.
The user hides it with its close button; the next program shows it again.
"""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from widgets.data import MUTED_COLOR


class ProgramNote(QFrame):
    """A closable note: the program's title in bold, then its description."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("program_note")
        self.setStyleSheet(
            "QFrame#program_note { background: #f3f6fb; border: 1px solid #d0d9e8;"
            " border-radius: 4px; }"
        )
        self._plain = ""
        self._text = QLabel()
        self._text.setWordWrap(True)
        self._text.setTextFormat(Qt.TextFormat.RichText)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Hide the program's description")
        close.clicked.connect(self.hide)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 4, 4, 4)
        row.addWidget(self._text, 1)
        row.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_program(self, title: str, description: str) -> None:
        """Show ``title`` and every paragraph of ``description``."""
        paragraphs = [html.escape(p) for p in description.split("\n\n") if p.strip()]
        body = "".join(f"<p style='margin-top:4px'>{p}</p>" for p in paragraphs)
        if not body:
            body = f"<p style='color:{MUTED_COLOR}'>This program has no description.</p>"
        self._text.setText(f"<b>{html.escape(title)}</b>{body}")
        self._plain = f"{title}\n\n{description}".strip()
        self.show()

    def text(self) -> str:
        """The note as plain text (title, then the description)."""
        return self._plain
