"""`tg.utils`: helpers outside the engine, named as torch.utils (`tg.utils.data`)."""
from . import data  # noqa: F401
