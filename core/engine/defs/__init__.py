"""The op definitions, by family; importing this package registers every op."""

from core.engine.defs import elementwise, index, loss, math, nn, reduce, shape  # noqa: F401
