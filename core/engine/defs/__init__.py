"""The op definitions, by family; importing this package registers every op."""

from core.engine.defs import elementwise, nn, shape  # noqa: F401
