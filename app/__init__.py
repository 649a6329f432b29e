"""Gradstep's application layer: the command line now, the main window later."""
