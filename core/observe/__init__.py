"""Observing the engine: the event vocabulary, the bus and tensor statistics."""
