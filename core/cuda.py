"""``core.cuda``: the GPU's public questions, as ``torch.cuda`` asks them.

>>> import core
>>> core.cuda.is_available() in (True, False)
True
"""

from core.device import is_available, synchronize, unavailable_reason

__all__ = ["is_available", "synchronize", "unavailable_reason"]
