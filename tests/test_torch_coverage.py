"""The README's PyTorch table is what scripts/torch_coverage.py makes from the
code now: adding a name (or an op) without regenerating it fails here."""

from __future__ import annotations

import importlib.util
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)


def coverage_script():
    path = os.path.join(ROOT, "scripts", "torch_coverage.py")
    spec = importlib.util.spec_from_file_location("torch_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_is_up_to_date():
    script = coverage_script()
    assert script.current() == script.render(), (
        "README.md's PyTorch table is stale: run python scripts/torch_coverage.py --write"
    )


def test_table_sorts_names_by_what_exists():
    script = coverage_script()
    table = script.render()
    row = next(line for line in table.splitlines() if line.startswith("| `torch.nn` |"))
    supported, missing = row.split(" | ")[2:4]
    assert "`GRU`" in supported and "`BatchNorm2d`" in supported
    assert "`Transformer`" in missing and "`GRU`" not in missing
    assert "*`argsort`*" in table  # an op without a gradient rule
