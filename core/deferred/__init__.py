"""Deferred mode ("define then run"): trace a training step into a static
graph (``tracer``), optimize it (``passes``), generate code (``codegen``), run
it guarded (``runtime``), save and load it (``saved``). ``core.compile`` is the
entry point (``api``)."""
