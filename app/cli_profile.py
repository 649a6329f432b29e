"""``gradstep profile`` and ``gradstep compare``.

    gradstep profile PROGRAM.py [PROGRAM.py ...] [--devices cpu,cuda]
                     [--modes eager,compiled] [--steps N] [--trace FILE] [--json FILE]
    gradstep compare PROGRAM.py [--steps N] [--device cpu|cuda]

``profile`` prints the matrix of runs (time per step, ops or kernels per step,
peak memory) and, per run, its top ops; a GPU column without a GPU says why.
``compare`` prints how far the compiled step is from the eager one and exits
1 when they disagree beyond the tolerance.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import TextIO

from core.debug import compare as comparing
from core.debug import profile as profiling
from core.errors import GradstepError


def add_commands(sub: argparse._SubParsersAction) -> None:
    prof = sub.add_parser("profile", help="time a program eager and compiled, on CPU and GPU")
    prof.add_argument("programs", nargs="+", help="model programs (.py)")
    prof.add_argument("--devices", default="cpu,cuda", help="comma-separated: cpu,cuda")
    prof.add_argument("--modes", default="eager,compiled", help="comma-separated: eager,compiled")
    prof.add_argument("--steps", type=int, default=20, help="timed steps per run")
    prof.add_argument("--warmup", type=int, default=3, help="steps before timing")
    prof.add_argument("--trace", metavar="FILE", help="a Chrome trace, one process per run")
    prof.add_argument("--json", metavar="FILE", help="the matrix and every run's ops as JSON")
    prof.add_argument("--top", type=int, default=8, help="ops shown per run")
    comp = sub.add_parser("compare", help="how far the compiled step is from the eager one")
    comp.add_argument("program", help="a model program (.py)")
    comp.add_argument("--steps", type=int, default=10)
    comp.add_argument("--device", choices=("cpu", "cuda"), default="cpu")


def _choices(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise GradstepError(f"--{what}: {', '.join(bad) or 'nothing'}; choose from {allowed}")
    return items


def cmd_profile(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from app.cli import Progress, table

    devices = _choices(args.devices, ("cpu", "cuda"), "devices")
    modes = _choices(args.modes, profiling.MODES, "modes")
    if args.steps < 1 or args.warmup < 0:
        raise GradstepError("--steps must be at least 1 and --warmup at least 0")
    for path in args.programs:
        if not os.path.isfile(path):
            raise GradstepError(f"{path}: no such file")
    for option in (args.trace, args.json):
        if option and not os.path.isdir(os.path.dirname(os.path.abspath(option))):
            raise GradstepError(f"{option}: the folder does not exist")
    runs: list[profiling.RunProfile] = []
    for path in args.programs:
        bar = Progress(100, err)
        runs += profiling.profile_matrix(
            path,
            devices,
            modes,
            args.steps,
            args.warmup,
            progress=lambda done, total, _label, bar=bar: bar.update(done * 100 // total, None),
        )
        bar.close()
    print(table(_matrix(runs), MATRIX_HEADER), file=out)
    for run in runs:
        if run.unavailable or not run.ops:
            continue
        print(f"\n{run.title}: {run.mode} on {run.device}, top ops by time per step", file=out)
        step = run.profiled_step_ms.median or 1.0
        rows = [
            [
                r.name,
                r.calls,
                r.self_ms.median,
                f"{r.self_ms.p10:.3g}-{r.self_ms.p90:.3g}",
                100.0 * r.self_ms.median / step,
            ]
            for r in run.ops[: args.top]
        ]
        print(table(rows, ["op or kernel", "calls", "ms", "p10-p90", "% of step"]), file=out)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump([r.to_json() for r in runs], fh, indent=1)
        print(f"\njson: {args.json}", file=out)
    if args.trace:
        with open(args.trace, "w", encoding="utf-8") as fh:
            json.dump(profiling.chrome_trace([r for r in runs if not r.unavailable]), fh)
        print(f"trace: {args.trace} (open in https://ui.perfetto.dev)", file=out)
    return 0


MATRIX_HEADER = [
    "program",
    "mode",
    "device",
    "ms/step",
    "p10-p90",
    "ops",
    "peak host KiB",
    "peak GPU KiB",
]


def _matrix(runs: list[profiling.RunProfile]) -> list[list]:
    rows = []
    for r in runs:
        name = os.path.basename(r.program)
        if r.unavailable:
            rows.append(
                [name, r.mode, r.device, "-", f"unavailable: {r.unavailable}", "-", "-", "-"]
            )
            continue
        gpu = "-" if r.peak_device_bytes is None else round(r.peak_device_bytes / 1024, 1)
        rows.append(
            [
                name,
                r.mode,
                r.device,
                r.step_ms.median,
                f"{r.step_ms.p10:.3g}-{r.step_ms.p90:.3g}",
                r.count,
                round(r.peak_host_bytes / 1024, 1),
                gpu,
            ]
        )
    return rows


def cmd_compare(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from app.cli import table

    if args.steps < 1:
        raise GradstepError("--steps must be at least 1")
    result = comparing.compare(args.program, args.steps, args.device)
    print(
        f"{result.program}: {args.steps} steps, eager against compiled on {args.device}", file=out
    )
    rows = [
        [r.name, r.max_abs, r.max_rel, r.worst_step, "yes" if r.ok() else "NO"] for r in result.rows
    ]
    print(
        table(rows, ["quantity", "max abs diff", "max rel diff", "worst step", "agrees"]), file=out
    )
    print(f"\ngraphs traced: {result.graphs}", file=out)
    for reason in result.retraces:
        print(f"retraced: {reason}", file=out)
    if result.entry is not None:
        for report in result.entry.reports:
            print(f"  {report}", file=out)
    if not result.ok:
        bad = ", ".join(r.name for r in result.rows if not r.ok())
        print(
            f"gradstep: compiled and eager disagree beyond rtol {comparing.RTOL}: {bad}", file=err
        )
        return 1
    return 0
