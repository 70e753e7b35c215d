"""Neural-network building blocks: Module, Parameter, layers, init, functional, utils."""
from . import functional, init, utils  # noqa: F401
from .layers import *  # noqa: F401,F403
from .module import Module, Parameter  # noqa: F401
