"""Reusable Qt widgets for Gradstep: each takes plain data and knows nothing of runs."""
