"""Pin the BLAS threads of a bench before NumPy loads: import this module and
call ``pin_from_argv()`` before anything that imports NumPy (this module does
not), or the setting comes too late and OpenBLAS starts one thread per core.

``--blas-threads N`` on the command line sets it; 0 leaves the environment as
it is. The default is 1: on a small, shared machine a second BLAS thread makes
both sides' times swing by 2x and more (busy-waiting workers compete with the
Python thread). An explicit OPENBLAS_NUM_THREADS in the environment is
respected. The benches report the count OpenBLAS really uses
(``blas_threads`` in their environment line).
"""

from __future__ import annotations

import os
import sys

VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pin_from_argv(argv: list[str] | None = None) -> None:
    if "numpy" in sys.modules:
        raise RuntimeError("blas_threads.pin_from_argv() must run before NumPy is imported")
    value = None
    args = sys.argv[1:] if argv is None else argv
    for i, arg in enumerate(args):
        if arg == "--blas-threads" and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--blas-threads="):
            value = arg.split("=", 1)[1]
    if value is None:
        value = os.environ.get("OPENBLAS_NUM_THREADS", "1")
    if value != "0":
        for var in VARIABLES:
            os.environ[var] = value
