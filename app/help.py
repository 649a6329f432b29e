"""The Help menu's pages: the keyboard sheet (made from the action table, so it
never disagrees with the shortcuts) and a short "first steps"."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from app import actions as A

FIRST_STEPS = """
<h3>First steps</h3>
<ol>
<li><b>Open a program</b>: double-click a sample on the left (or Ctrl+O). It opens
<i>paused before its first op</i>; its description says what to look for.</li>
<li><b>Step</b>: F11 steps into the next op (entering modules), F10 steps over a
module call, Shift+F11 steps out. Each op appears in the graph as it runs; the
outlined node is where the run is.</li>
<li><b>Look</b>: click a node. The inspector shows its value and, once backward has
reached it, its gradient: statistics, a histogram, a heatmap (a conv weight: all its
filters).</li>
<li><b>Go back</b>: Shift+F10 steps back through the recording; nothing runs again.
F10 and F11 then replay forward.</li>
<li><b>Stop where it matters</b>: right-click a node for a breakpoint on it (it fires
in every step), or add one in the Breakpoints panel: an op, a module, the first
NaN/Inf, a gradient norm. F5 runs to the next one.</li>
<li><b>Find</b>: Ctrl+F and a name (<code>fc1.linear</code>); Enter zooms to it.
Double-click a module box's title to open or close it.</li>
</ol>
"""


def shortcut_sheet() -> str:
    """Every action with a shortcut, as an HTML table."""
    rows = "".join(
        f"<tr><td><b>{html.escape(spec.shortcut)}</b></td><td>{html.escape(spec.text)}</td>"
        f"<td>{html.escape(spec.tip)}</td></tr>"
        for spec in A.ACTIONS
        if spec.shortcut
    )
    extra = (
        "<tr><td><b>Arrow keys</b></td><td>Move in the graph</td><td>Left: an input of the"
        " selected node; right: a node reading it; up, down: neighbours</td></tr>"
    )
    return f"<h3>Keyboard</h3><table cellspacing='6'>{rows}{extra}</table>"


def show_page(parent: QWidget, title: str, text: str) -> QMessageBox:
    """A non-blocking window with ``text`` (rich text)."""
    box = QMessageBox(parent)
    box.setWindowTitle(title)
    box.setTextFormat(Qt.TextFormat.RichText)
    box.setText(text)
    box.setModal(False)
    box.show()
    return box
