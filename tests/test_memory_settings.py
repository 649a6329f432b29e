"""The process settings gradstep's entry point makes (core.memory)."""

from __future__ import annotations

import gc

import pytest

from core import memory


@pytest.fixture
def thresholds():
    saved = gc.get_threshold()
    yield
    gc.set_threshold(*saved)


def test_young_collections_run_less_often_and_cycles_are_still_collected(thresholds):
    gc.set_threshold(700, 10, 10)
    memory.collect_less_often()
    assert gc.get_threshold() == (memory.GC_YOUNG, 10, 10)

    class Node:
        pass

    collected = []
    gc.callbacks.append(lambda phase, info: collected.append(info) if phase == "stop" else None)
    try:
        for _ in range(3 * memory.GC_YOUNG):  # cycles only the collector can free
            a, b = Node(), Node()
            a.other, b.other = b, a
    finally:
        gc.callbacks.pop()
    assert sum(info["collected"] for info in collected) > 0


def test_the_entry_point_makes_them(thresholds, capsys):
    from app import cli

    gc.set_threshold(700, 10, 10)
    assert cli.main(["doctor"]) in (0, 1)
    assert gc.get_threshold()[0] == memory.GC_YOUNG
