"""Neural-network building blocks: Module, Parameter, layers, init, functional, utils."""
from . import functional, init, utils  # noqa: F401
from .layers import *  # noqa: F401,F403
from .module import Module, Parameter  # noqa: F401
from .batchnorm import BatchNorm1d, BatchNorm2d, BatchNorm3d  # noqa: F401,E402  (issue 12)
