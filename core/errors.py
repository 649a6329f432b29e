"""Errors a user can cause; each message names the op, the shapes and the line."""


class GradstepError(Exception):
    """Base of every error the engine raises on purpose."""


class OpError(GradstepError, ValueError):
    """An op could not run on these inputs."""


class ShapeError(OpError):
    """Input shapes do not fit the op."""


class DtypeError(OpError, TypeError):
    """Inputs mix dtypes the op cannot combine."""


class DeviceError(OpError):
    """Inputs live on different devices, or a device is unavailable."""


class GradError(GradstepError, RuntimeError):
    """backward() cannot run as asked."""
