"""``gradstep compile PROGRAM.py --out FILE.gsgraph``: trace one step of a
program, optimize it, and save it so ``gradstep run FILE.gsgraph`` runs it
without the program. The saved state is the program's state before that step,
so the file's run gives the same losses as ``gradstep run PROGRAM.py --mode
compiled``."""

from __future__ import annotations

import argparse
import os
from typing import TextIO

import numpy as np

import core
from core import cuda
from core.debug import program as programs
from core.deferred.runtime import flatten
from core.errors import GradstepError

BATCH_BUDGET = 64 << 20  # bytes of batches a graph file keeps at most


def _batches(run: programs.Run, wanted: int | None) -> tuple[list, int]:
    """The program's first batches to keep and their bytes: ``wanted`` of them
    (default: one per step of the program), no more than BATCH_BUDGET bytes, at
    least one."""
    count = run.steps if wanted is None else wanted
    kept, size = [], 0
    for i in range(max(1, count)):
        batch = run.batches(i)
        more = _nbytes(batch)
        if kept and size + more > BATCH_BUDGET:
            break
        kept.append(batch)
        size += more
    return kept, size


def _nbytes(value) -> int:
    leaves: list = []
    flatten(value, leaves)
    return sum(t.data.nbytes for t in leaves)


def cmd_compile(args: argparse.Namespace, out: TextIO) -> int:
    if not args.out.endswith(".gsgraph"):
        raise GradstepError(f"--out {args.out}: a graph file ends in .gsgraph")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise GradstepError(f"--out {args.out}: the folder {folder} does not exist")
    if args.device == "cuda" and not cuda.is_available():
        raise GradstepError(f"--device cuda: {cuda.unavailable_reason()}")
    program = programs.load(args.program)
    core.reset_ids()
    run = program.build(args.device)
    for name, t in run.named_parameters():  # the graph's state takes the program's names
        t.name = name
    compiled = core.compile(run.step)
    with np.errstate(all="ignore"):
        compiled(run.batches(0)) if run.batches is not None else compiled()
    entry = compiled.latest
    calls, kept_bytes = _batches(run, args.batches) if run.batches is not None else ([], 0)
    compiled.save(
        args.out,
        initial=True,
        calls=[((batch,), {}) for batch in calls],
        title=program.title,
        program=program.path,
        steps=run.steps,
    )
    traced = entry.trace.graph
    print(f"{program.title} — {program.path}", file=out)
    print(
        f"traced {len(traced.ops)} ops in {entry.trace_ns / 1e6:.1f} ms; after the passes "
        f"{len(entry.graph.ops) + sum(n.kind == 'fused' for n in entry.graph.nodes)} nodes, "
        f"{len(entry.program.kernels)} kernels ({entry.compile_ns / 1e6:.1f} ms)",
        file=out,
    )
    for report in entry.reports:
        print(f"  {report}", file=out)
    guards = [g for g in entry.graph.guards if g.value is not None]
    if guards:
        print(f"guards on values: {len(guards)} (a call that breaks one runs eagerly)", file=out)
    for note in entry.trace.notes:
        print(f"note: {note}", file=out)
    if calls:
        size = kept_bytes / 2**20
        again = "; a longer run takes them again from the first" if len(calls) < run.steps else ""
        print(f"batches: the first {len(calls)} kept ({size:.2f} MiB){again}", file=out)
    size = os.path.getsize(args.out) / 2**20
    print(f"graph: {args.out} ({size:.2f} MiB)", file=out)
    show = getattr(args, "show", "none")
    if show == "graph":
        print(f"\n{entry.graph}", file=out)
    elif show == "passes":
        print(f"\ntraced:\n{traced}", file=out)
        for report in entry.reports:
            print(f"\nafter {report}:\n{report.graph}", file=out)
    elif show == "code":
        print(f"\n{entry.program.source}", file=out)
    return 0
