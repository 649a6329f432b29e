#!/usr/bin/env python
"""GUI responsiveness: event-loop latency during a live run, graph feeding and layout, repaint.

Headless (``QT_QPA_PLATFORM=offscreen`` unless set). One JSON line per figure,
each a median over repeats, with its target and whether it was met:

- ``event_loop_latency``: samples/mlp_moons.py runs at full speed with recording
  on inside a real MainWindow (shown offscreen, ``open_program(path, then="load")``
  then ``start_run()`` with more steps); a 5 ms QTimer probe on the GUI thread
  records how late each tick is (actual minus expected interval). p50/p99/max
  over the run (from start_run until the worker's last event), the largest
  lateness while the GUI caught up afterwards, the events the window processed,
  the cyclic GC's full (gen-2) collections during the run (they stop every
  thread), and the run's events/s with the GUI attached against the same
  Session headless (run alternately). Target: p99 < 50 ms.
- ``layout_1000`` / ``layout_10000``: synthetic engine events (TensorCreated,
  OpForward, ModuleEnter) for a ``widgets.layout.training_dag`` graph with that
  many op nodes; ``GraphView.feed(events, 0)`` (incremental placement) and
  ``GraphView.relayout(wait=True)`` timed separately on a fresh view.
  Target: each under 1 s at 10,000 (scaled linearly for 1,000).
- ``repaint_10000``: a 1600x1000 GraphView showing the whole 10,000-op graph
  (``fit()``), ``viewport().grab()`` timed (the first, which builds the cached
  paths, reported as ``repaint_10000_cold``), and ``repaint_10000_zoom100``: the
  same at 100% scale centred on the graph, labels drawn. Target: < 100 ms.
- ``stop_latency``: a program whose step never ends and keeps making tensor ops
  runs in a MainWindow until its step holds 20,000 events; Shift+F5 is sent to
  the window (QTest) and the time until the window shows "stopped" with Run
  enabled again is taken, several times. Target: < 200 ms.

    python bench/gui_responsiveness.py                     # everything (about 2 minutes)
    python bench/gui_responsiveness.py --only layout repaint
    python bench/gui_responsiveness.py --only event_loop --steps 1000 --run-repeats 1
    python bench/gui_responsiveness.py --only event_loop --profile   # GUI thread, to stderr

What-if flags change only the live run, not the app, to measure a remedy before
making it: ``--gc-freeze N`` (the worker calls ``gc.freeze()`` every N events),
``--switch-interval S`` (``sys.setswitchinterval``), ``--hide events loss``
(those docks hidden, so never repainted). The line then has a ``whatif`` field.

By default the process gets the allocator and GC settings of gradstep's entry
point (``core.memory``: glibc keeps freed memory, young GC collections every
10,000 allocations instead of 700); ``--process default`` leaves CPython's and
glibc's own, and each line says which (``process``).

Timings depend on the machine and its load: each line carries the 1-minute load
average, the CPU count and the CPU model. The live run is bimodal: the worker thread and the
GUI thread share the GIL, and once the GUI thread falls behind, its batches grow
(see ``per_run_p50_ms``).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
ENDLESS = os.path.join(ROOT, "tests", "data", "endless.py")  # a step that never ends

import numpy as np  # noqa: E402
from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from core.observe.events import ModuleEnter, OpForward, TensorCreated  # noqa: E402
from widgets.layout import training_dag  # noqa: E402

PROGRAM = os.path.join(ROOT, "samples", "mlp_moons.py")
PROBE_MS = 5
TARGET_P99_MS = 50.0
TARGET_LAYOUT_S_PER_OP = 1.0 / 10_000
TARGET_REPAINT_MS = 100.0
VIEW_SIZE = (1600, 1000)
SEED = 2024
_TEMP_DIRS: list[tempfile.TemporaryDirectory] = []


def cpu_model() -> str:
    """The CPU's name as the OS reports it (Linux: /proc/cpuinfo; else platform)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


PROCESS = {"settings": "default"}  # main() sets it: whose allocator and GC settings


def emit(record: dict) -> None:
    record["process"] = PROCESS["settings"]
    record["load_avg_1m"] = round(os.getloadavg()[0], 2)
    record["cpus"] = os.cpu_count()
    record["cpu_model"] = cpu_model()
    print(json.dumps(record), flush=True)


def app() -> QApplication:
    return QApplication.instance() or QApplication(sys.argv[:1])


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, float), q)) if values else float("nan")


def med(values: list[float], digits: int = 3) -> float:
    return round(statistics.median(values), digits)


# -- 1. event-loop latency during a live run ---------------------------------------------


class WhatIf:
    """Changes tried on the live run without touching the app (all off by default).

    ``gc_freeze``: every that many events, at a StepEnded, the worker calls
    ``gc.freeze()`` (the Recording's events then leave the cyclic GC's generations,
    so full collections stop rescanning them); applied to the headless run too.
    ``switch_interval``: ``sys.setswitchinterval`` for the process.
    ``hide``: names of docks to hide (e.g. ``events``) before the run.
    """

    def __init__(self, gc_freeze: int = 0, switch_interval: float = 0.0, hide=()) -> None:
        self.gc_freeze = gc_freeze
        self.switch_interval = switch_interval
        self.hide = tuple(hide)

    def describe(self) -> dict:
        out: dict[str, Any] = {}
        if self.gc_freeze:
            out["gc_freeze_every_events"] = self.gc_freeze
        if self.switch_interval:
            out["switch_interval_s"] = self.switch_interval
        if self.hide:
            out["hidden_docks"] = list(self.hide)
        return out

    def attach(self, session: Any) -> None:
        if not self.gc_freeze:
            return
        from core.observe.events import StepEnded

        rec, every, last = session.recording, self.gc_freeze, [0]

        def freeze(event: Any) -> None:
            if type(event) is StepEnded and len(rec.events) - last[0] >= every:
                last[0] = len(rec.events)
                gc.freeze()

        session.on_event(freeze)


class GcPauses:
    """Cyclic-GC pauses (any thread) while active, via gc.callbacks."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, str]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            ms = (time.perf_counter() - self._start) * 1000
            self.pauses.append((info["generation"], ms, threading.current_thread().name))

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *_: Any) -> None:
        gc.callbacks.remove(self)

    def gen2(self) -> list[float]:
        return [ms for gen, ms, _ in self.pauses if gen == 2]


def headless_rate(steps: int, whatif: WhatIf) -> tuple[float, int]:
    """events/s of mlp_moons run by a Session with recording on and no window."""
    from core.debug.session import Session

    session = Session.from_file(PROGRAM, steps=steps)
    whatif.attach(session)
    session.start()
    if not session.wait(600):
        session.stop()
        raise RuntimeError("the headless run did not finish in 600 s")
    return _rate(session.recording), len(session.recording.events)


def _rate(rec: Any) -> float:
    """events/s over the run, from the Recording's arrival times (perf_counter_ns)."""
    span = (rec.times[-1] - rec.times[0]) / 1e9
    return (len(rec.times) - 1) / span if span > 0 else float("nan")


def make_window(steps: int, whatif: WhatIf | None = None):
    """A MainWindow shown offscreen, settings in a temp file, runs of ``steps`` steps."""
    import app.main_window as main_window
    import app.run_control as run_control
    from core.debug.session import Session

    whatif = whatif or WhatIf()

    def session_with_steps(*args: Any, **kwargs: Any) -> Session:
        # start_run's own Session call; only fills in the steps when the window gives none
        if kwargs.get("steps") is None:
            kwargs["steps"] = steps
        session = Session(*args, **kwargs)
        whatif.attach(session)
        return session

    run_control.Session = session_with_steps
    folder = tempfile.TemporaryDirectory(prefix="gradstep-bench-")
    _TEMP_DIRS.append(folder)  # removed at exit
    ini = os.path.join(folder.name, "settings.ini")
    window = main_window.MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
    box = getattr(window, "steps", None)
    if box is not None and hasattr(box, "setValue"):
        box.setValue(steps)  # the window's own steps box, when it has one
    window.show()
    for name in whatif.hide:
        window.docks[name].hide()
    app().processEvents()
    if not window.open_program(PROGRAM, then="load"):
        raise RuntimeError(window.problems.toPlainText())
    return window


def gui_run(window, steps: int, profile: cProfile.Profile | None = None) -> dict:
    """One live run in ``window`` with the probe ticking; its figures."""
    qapp = app()
    ticks: list[float] = []
    probe = QTimer()
    probe.setTimerType(Qt.TimerType.PreciseTimer)
    probe.setInterval(PROBE_MS)
    probe.timeout.connect(lambda: ticks.append(time.perf_counter()))
    seen = {"stop": 0, "finished_at": None, "batches": 0}
    loop = QEventLoop()

    def on_events(start: int, stop: int) -> None:
        seen["stop"] = max(seen["stop"], stop)
        seen["batches"] += 1

    def on_done(*_: Any) -> None:
        if seen["finished_at"] is None:
            seen["finished_at"] = time.perf_counter()

    bridge = window.bridge
    bridge.sig_events.connect(on_events)
    for signal in (bridge.sig_finished, bridge.sig_aborted, bridge.sig_errored):
        signal.connect(on_done)

    def check() -> None:
        s = bridge.session
        if s is None or not s.done or seen["finished_at"] is None:
            return
        drained = seen["stop"] >= len(s.recording.events)
        if drained and time.perf_counter() - seen["finished_at"] > 0.25:
            loop.quit()  # drained, finished state shown, and a quarter second of ticks after

    checker = QTimer()
    checker.setInterval(20)
    checker.timeout.connect(check)
    qapp.processEvents()
    probe.start()
    checker.start()
    with GcPauses() as pauses:
        t0 = time.perf_counter()
        ticks.append(t0)
        if profile is not None:
            profile.enable()
        window.start_run()
        loop.exec()
        if profile is not None:
            profile.disable()
    probe.stop()
    checker.stop()
    bridge.sig_events.disconnect(on_events)
    for signal in (bridge.sig_finished, bridge.sig_aborted, bridge.sig_errored):
        signal.disconnect(on_done)
    session = bridge.session
    rec = session.recording
    if session.state != "finished":
        raise RuntimeError(f"the run ended {session.state}: {session.error}")
    run_end = rec.times[-1] / 1e9  # perf_counter_ns: the worker's last event
    late_run, late_after = [], []
    for a, b in zip(ticks, ticks[1:]):
        (late_run if b <= run_end else late_after).append((b - a) * 1000 - PROBE_MS)
    gen2 = pauses.gen2()
    if os.environ.get("GUI_BENCH_GC_DEBUG"):
        print(
            "gc gen2 pauses (ms, thread):",
            [(round(ms), th) for g, ms, th in pauses.pauses if g == 2],
            file=sys.stderr,
        )
    return {
        "p50_ms": percentile(late_run, 50),
        "p99_ms": percentile(late_run, 99),
        "max_ms": max(late_run) if late_run else float("nan"),
        "ticks": len(late_run),
        "after_run_max_ms": max(late_after) if late_after else 0.0,
        "catch_up_s": seen["finished_at"] - run_end,
        "run_s": run_end - t0,
        "events": len(rec.events),
        "events_processed": seen["stop"],
        "batches": seen["batches"],
        "events_per_s": _rate(rec),
        "gc_gen2": len(gen2),
        "gc_gen2_max_ms": max(gen2, default=0.0),
        "gc_gen2_total_ms": sum(gen2),
    }


def bench_event_loop(steps: int, repeats: int, whatif: WhatIf, profile: bool = False) -> None:
    if whatif.switch_interval:
        sys.setswitchinterval(whatif.switch_interval)
    window = make_window(steps, whatif)
    runs, headless = [], []
    prof = cProfile.Profile() if profile else None
    for i in range(repeats):  # alternate, so both see the same machine load
        headless.append(headless_rate(steps, whatif)[0])
        runs.append(gui_run(window, steps, prof if i == 0 else None))
    window.close()
    app().processEvents()
    gui_rate = statistics.median(r["events_per_s"] for r in runs)
    head_rate = statistics.median(headless)

    def m(key: str, digits: int = 2) -> float:
        return med([r[key] for r in runs], digits)

    emit(
        {
            "figure": "event_loop_latency",
            "p50_ms": m("p50_ms"),
            "p99_ms": m("p99_ms"),
            "max_ms": m("max_ms"),
            "target_p99_ms": TARGET_P99_MS,
            "ok": m("p99_ms") < TARGET_P99_MS,
            "probe_interval_ms": PROBE_MS,
            "probe_ticks": int(m("ticks", 0)),
            "after_run_max_ms": m("after_run_max_ms"),
            "catch_up_s": m("catch_up_s", 3),
            "run_s": m("run_s", 3),
            "events": int(m("events", 0)),
            "events_processed": int(m("events_processed", 0)),
            "batches": int(m("batches", 0)),
            "events_per_s_gui": round(gui_rate, 1),
            "events_per_s_headless": round(head_rate, 1),
            "gui_vs_headless": round(gui_rate / head_rate, 3),
            "gc_gen2_pauses": int(m("gc_gen2", 0)),
            "gc_gen2_max_ms": m("gc_gen2_max_ms", 1),
            "gc_gen2_total_ms": m("gc_gen2_total_ms", 1),
            "steps": steps,
            "repeats": repeats,
            "per_run_p50_ms": [round(r["p50_ms"], 2) for r in runs],
            "per_run_p99_ms": [round(r["p99_ms"], 2) for r in runs],
            **({"whatif": whatif.describe()} if whatif.describe() else {}),
        }
    )
    if prof is not None:
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        out.write("GUI thread during the first live run (wall time: includes GIL waits)\n")
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(25)
        print(out.getvalue(), file=sys.stderr, flush=True)


# -- 2. feeding and layout of generated graphs -----------------------------------------------

UNARY = ["tanh", "relu", "exp", "sum", "reshape", "softmax", "mean", "neg"]
BINARY = ["matmul", "add", "mul", "sub", "linear", "div"]
MANY = ["add", "where", "concat"]


def synthetic_events(n_ops: int, seed: int = SEED) -> list[Any]:
    """Engine events for a training_dag graph with ``n_ops`` op nodes (no StepStarted:
    one graph). Leaves are TensorCreated; ops OpForward; tensor id = dag index + 1."""
    total = 2 * n_ops
    while True:
        _, preds, _, groups = training_dag(total, seed)
        ops = np.cumsum([len(p) > 0 for p in preds])
        if ops[-1] >= n_ops:
            cut = int(np.searchsorted(ops, n_ops)) + 1
            preds, groups = preds[:cut], groups[:cut]
            break
        total = int(total * 1.5)
    rng = np.random.default_rng(seed)
    events: list[Any] = []
    entered: set[str] = set()
    for i, (p, scope) in enumerate(zip(preds, groups, strict=True)):
        parts = scope.split(".") if scope else []
        for k in range(1, len(parts) + 1):
            path = ".".join(parts[:k])
            if path not in entered:
                entered.add(path)
                name = parts[k - 1].rstrip("0123456789")
                events.append(ModuleEnter(path, name.capitalize() or "Module"))
        shape = (16, int(rng.integers(1, 64)))
        if not p:
            kind = "parameter" if scope.startswith("model") else "input"
            events.append(TensorCreated(i + 1, kind, f"t{i}", shape, "float32", "cpu", True, scope))
            continue
        names = UNARY if len(p) == 1 else BINARY if len(p) == 2 else MANY
        op = names[int(rng.integers(len(names)))]
        events.append(
            OpForward(
                i + 1,
                op,
                tuple(q + 1 for q in p),
                i + 1,
                (),
                shape,
                "float32",
                "cpu",
                1000,
                scope,
                "forward",
                True,
            )
        )
    return events


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fed_view(events: list[Any], size: tuple[int, int] | None = None):
    from widgets.graph_view import GraphView

    view = GraphView()
    if size is not None:
        view.resize(*size)
        view.show()
        app().processEvents()
    return view


def bench_layout(n_ops: int, repeats: int) -> None:
    events = synthetic_events(n_ops)
    feed_t, relayout_t = [], []
    view = None
    for _ in range(repeats):
        view = fed_view(events)
        feed_t.append(timed(lambda v=view: v.feed(events, 0)))
        relayout_t.append(timed(lambda v=view: v.relayout(wait=True)))
        app().processEvents()
    assert view is not None
    ops = sum(n.kind == "op" for n in view.model.nodes)
    target = round(n_ops * TARGET_LAYOUT_S_PER_OP, 3)
    f, r = med(feed_t, 4), med(relayout_t, 4)
    emit(
        {
            "figure": f"layout_{n_ops}",
            "feed_s": f,
            "relayout_s": r,
            "feed_min_s": round(min(feed_t), 4),
            "relayout_min_s": round(min(relayout_t), 4),
            "target_s": target,
            "ok": f < target and r < target,
            "op_nodes": ops,
            "nodes": len(view.model.nodes),
            "edges": len(view.model.edges),
            "events": len(events),
            "scopes": len(view.scope_rects()),
            "repeats": repeats,
        }
    )
    view.deleteLater()


# -- 3. repaint of the 10,000-op view ---------------------------------------------------------


def grab_ms(view) -> float:
    start = time.perf_counter()
    view.viewport().grab()
    return (time.perf_counter() - start) * 1000


def bench_repaint(n_ops: int, repeats: int, png: str | None = None) -> None:
    events = synthetic_events(n_ops)
    view = fed_view(events, VIEW_SIZE)
    view.feed(events, 0)
    view.relayout(wait=True)
    view.fit()  # no event processing between here and the cold grab: nothing painted yet
    cold = grab_ms(view)
    warm = [grab_ms(view) for _ in range(repeats)]
    lod = view.transform().m11()
    if png:
        view.viewport().grab().save(png.replace(".png", "_fit.png"))
    emit(
        {
            "figure": f"repaint_{n_ops}",
            "median_ms": med(warm, 2),
            "min_ms": round(min(warm), 2),
            "max_ms": round(max(warm), 2),
            "target_ms": TARGET_REPAINT_MS,
            "ok": statistics.median(warm) < TARGET_REPAINT_MS,
            "scale": round(lod, 4),
            "view": list(VIEW_SIZE),
            "method": "viewport().grab()",
            "nodes": len(view.model.nodes),
            "repeats": repeats,
        }
    )
    emit(
        {
            "figure": f"repaint_{n_ops}_cold",
            "ms": round(cold, 2),
            "target_ms": TARGET_REPAINT_MS,
            "ok": cold < TARGET_REPAINT_MS,
            "note": "first paint after feed+relayout: builds edge paths and node colours",
        }
    )
    view.resetTransform()
    view.centerOn(view.item.boundingRect().center())
    app().processEvents()
    first = grab_ms(view)
    warm = [grab_ms(view) for _ in range(repeats)]
    if png:
        view.viewport().grab().save(png.replace(".png", "_zoom100.png"))
    emit(
        {
            "figure": f"repaint_{n_ops}_zoom100",
            "median_ms": med(warm, 2),
            "min_ms": round(min(warm), 2),
            "first_ms": round(first, 2),
            "target_ms": TARGET_REPAINT_MS,
            "ok": statistics.median(warm) < TARGET_REPAINT_MS,
            "scale": view.transform().m11(),
            "repeats": repeats,
        }
    )
    view.close()
    view.deleteLater()


TARGET_STOP_MS = 200.0


def bench_stop(repeats: int) -> None:
    """Shift+F5 on an endless tensor-op step: the key to an idle window, in ms."""
    from PySide6.QtTest import QTest

    from app import actions as A

    path = ENDLESS
    qapp = app()
    times = []
    for _ in range(repeats):
        window = make_window(3)
        window.open_program(path, then="run")
        rec = window.recording
        while len(rec) < 20_000:
            qapp.processEvents()
            time.sleep(0.002)
        start = time.perf_counter()
        QTest.keyClick(window, Qt.Key.Key_F5, Qt.KeyboardModifier.ShiftModifier)
        while not (
            window.bridge.session.state == "stopped"
            and window.status_phase.text().startswith("stopped")
            and window.actions_by_id[A.RUN].isEnabled()
        ):
            qapp.processEvents()
        times.append((time.perf_counter() - start) * 1000)
        window.bridge.shutdown()
        window.close()
    emit(
        {
            "figure": "stop_latency",
            "median_ms": med(times, 1),
            "max_ms": round(max(times), 1),
            "runs_ms": [round(t, 1) for t in times],
            "target_ms": TARGET_STOP_MS,
            "ok": statistics.median(times) < TARGET_STOP_MS,
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("event_loop", "layout", "repaint", "stop"),
        default=["event_loop", "layout", "repaint", "stop"],
    )
    parser.add_argument("--steps", type=int, default=3000, help="training steps of the live run")
    parser.add_argument("--run-repeats", type=int, default=3, help="live runs (and headless runs)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--layout-repeats", type=int, default=5)
    parser.add_argument("--repaint-repeats", type=int, default=10)
    parser.add_argument("--png", help="also save the repainted views as PNG (name_fit.png, ...)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the GUI thread during the first live run (to stderr)",
    )
    whatif = parser.add_argument_group("what-if (the live run only; nothing in the app changes)")
    whatif.add_argument(
        "--gc-freeze",
        type=int,
        default=0,
        metavar="EVENTS",
        help="gc.freeze() in the worker at a StepEnded every EVENTS events",
    )
    whatif.add_argument(
        "--switch-interval",
        type=float,
        default=0.0,
        metavar="S",
        help="sys.setswitchinterval(S) (the default is 0.005)",
    )
    whatif.add_argument(
        "--hide",
        nargs="+",
        default=[],
        metavar="DOCK",
        help="hide these docks first (events, loss, inspector, ...)",
    )
    parser.add_argument(
        "--process",
        choices=("app", "default"),
        default="app",
        help="app: the allocator and GC settings gradstep's entry point makes "
        "(core.memory); default: glibc's and CPython's own",
    )
    args = parser.parse_args(argv)
    if args.process == "app":
        from core.memory import tune_process

        tune_process()
    PROCESS["settings"] = args.process
    app()
    if "layout" in args.only:
        for n in args.sizes:
            bench_layout(n, args.layout_repeats)
    if "repaint" in args.only:
        bench_repaint(max(args.sizes), args.repaint_repeats, args.png)
    if "stop" in args.only:
        bench_stop(args.run_repeats)
    if "event_loop" in args.only:
        what = WhatIf(args.gc_freeze, args.switch_interval, args.hide)
        bench_event_loop(args.steps, args.run_repeats, what, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
