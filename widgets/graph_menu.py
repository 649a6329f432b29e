"""The graph view's context menu and its picture exports (PNG, SVG).

``node_menu`` builds the menu for a right-click at a scene point: breakpoints
on the node, its op or its module, "Go to source", "Check gradient", copying
the node's name, collapsing or expanding a module, fitting and tidying. Its
actions only emit the view's signals or call the view; the app does the rest.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtWidgets import QMenu, QWidget

from widgets.graph_colours import BACKGROUND

EXPORT_SCALE = 2.0  # PNG exports are drawn at twice the scene's size


def node_menu(view: Any, pos: QPointF, parent: QWidget) -> QMenu:
    """The context menu for a right-click at scene point ``pos``."""
    menu = QMenu(parent)
    index = view.node_at(pos)
    if index is not None:
        _add_node_actions(view, menu, index)
        menu.addSeparator()
    scope = view.scope_header_at(pos)
    if scope is not None:
        text = "Expand" if scope in view.collapsed else "Collapse"
        menu.addAction(f"{text} {scope}").triggered.connect(lambda: view.toggle_scope(scope))
    menu.addAction("Fit to window").triggered.connect(view.fit)
    menu.addAction("Tidy layout").triggered.connect(lambda: view.relayout())
    return menu


def _add_node_actions(view: Any, menu: QMenu, index: int) -> None:
    node = view.model.nodes[index]
    view.select(index, emit=True)
    emit = view.sig_breakpoint_requested.emit
    if node.node_id is not None:
        menu.addAction(f"Break at node {node.label}").triggered.connect(
            lambda: emit("node", node.label)
        )
        menu.addAction(f"Break at every {node.op}").triggered.connect(lambda: emit("op", node.op))
    if node.scope and node.phase == "forward":
        module = view.model.namer.path_of(node.scope)
        menu.addAction(f"Break on entering {module}").triggered.connect(
            lambda: emit("module", module)
        )
    if node.scope:
        menu.addAction(f"Collapse {node.scope}").triggered.connect(
            lambda: view.toggle_scope(node.scope)
        )
    if node.source is not None:
        menu.addAction(f"Go to source (line {node.source.line})").triggered.connect(
            lambda: view.sig_go_to_source.emit(index)
        )
    menu.addAction("Check gradient").triggered.connect(lambda: view.sig_check_gradient.emit(index))
    menu.addAction("Copy name").triggered.connect(
        lambda: QGuiApplication.clipboard().setText(node.label)
    )


def export_png(view: Any, path: str, scale: float = EXPORT_SCALE) -> None:
    """The whole graph as a PNG, ``scale`` times the scene's size."""
    rect = view.item.boundingRect()
    size = rect.size() * scale
    image = QImage(
        max(1, int(size.width())), max(1, int(size.height())), QImage.Format.Format_ARGB32
    )
    image.fill(BACKGROUND)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    view.scene().render(painter, QRectF(image.rect()), rect)
    painter.end()
    if not image.save(path):
        raise OSError(f"could not write {path}")


def export_svg(view: Any, path: str) -> None:
    """The whole graph as an SVG drawing."""
    from PySide6.QtSvg import QSvgGenerator

    rect = view.item.boundingRect()
    generator = QSvgGenerator()
    generator.setFileName(path)
    generator.setSize(rect.size().toSize())
    generator.setViewBox(QRectF(0, 0, rect.width(), rect.height()))
    generator.setTitle("Gradstep graph")
    painter = QPainter(generator)
    painter.fillRect(QRectF(0, 0, rect.width(), rect.height()), BACKGROUND)
    view.scene().render(painter, QRectF(0, 0, rect.width(), rect.height()), rect)
    painter.end()
