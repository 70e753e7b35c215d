"""The engine's error classes for arguments that do not fit an op.

PyTorch raises RuntimeError for most of these (a shape mismatch, a wrong index dtype) and IndexError for a
class index out of range; Python and NumPy code raises ValueError / TypeError. Each class here is both, so
`except RuntimeError` in code written for PyTorch and `except ValueError` in code written for NumPy catch
the same error."""


class EngineError(Exception):
    """The base of the classes below: a wrapper that adds context to a message keeps the class."""


class ShapeError(EngineError, ValueError, RuntimeError):
    """Shapes that do not fit an op (PyTorch: RuntimeError)."""


class DtypeError(EngineError, TypeError, ValueError, RuntimeError):
    """A dtype an op does not take (PyTorch: RuntimeError; ValueError for a recurrent layer's input)."""


class OutOfRangeError(EngineError, ValueError, IndexError):
    """A value used as an index outside its range, e.g. a class target >= C (PyTorch: IndexError)."""
