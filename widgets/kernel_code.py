"""The generated code of one compiled kernel, shown beside the program's source.

In Compiled mode each node of the graph belongs to a kernel (a fused group is
the box around its nodes); selecting a node, or stepping onto a kernel, shows
that kernel's generated code here: its name, what it covers, its phase, and
the lines of the generated step that compute it (a fused kernel's own function
first).
"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from widgets.data import MUTED_COLOR
from widgets.source_view import SourceView

EAGER_TEXT = (
    "Eager mode runs op by op: there are no kernels. Choose Compiled in the toolbar's "
    "Mode and run, then select a node or step (F11) to see its kernel's generated code."
)
NO_KERNEL_TEXT = "Select a node of a compiled step to see the code of the kernel computing it."


class KernelCode(QWidget):
    """A header (kernel, ops covered, phase) over the read-only code."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = QLabel(EAGER_TEXT)
        self.header.setWordWrap(True)
        self.header.setStyleSheet(f"color: {MUTED_COLOR}; padding: 2px;")
        self.code = SourceView()
        self.code.setPlaceholderText("")
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.header)
        box.addWidget(self.code, 1)
        self.kernel: int | None = None

    def show_kernel(self, kernel: int, name: str, ops: int, phase: str, code: str | None) -> None:
        """Show kernel ``kernel`` (``ops``: how many traced ops it covers)."""
        self.kernel = kernel
        what = "one op" if ops == 1 else f"{ops} ops fused"
        self.header.setText(f"<b>kernel {kernel}: {name}</b> · {what} · {phase}")
        self.header.setStyleSheet("padding: 2px;")
        if code is None:
            code = "# the generated code is not kept in recordings: run the program to see it"
        self.code.set_source("", code)

    def clear(self, compiled: bool) -> None:
        """Nothing selected: say what to do (``compiled``: the run is compiled)."""
        self.kernel = None
        self.header.setText(NO_KERNEL_TEXT if compiled else EAGER_TEXT)
        self.header.setStyleSheet(f"color: {MUTED_COLOR}; padding: 2px;")
        self.code.set_source("", "")
