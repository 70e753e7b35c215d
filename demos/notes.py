"""Demos of what the notes teach beyond the layers (issue 12): `norms`, `forecast`, `glimpse`, `classify`.

Each demo lives in its own module; this provider registers those that exist.
"""
from __future__ import annotations

import argparse
import importlib

DEMOS = ("norms", "forecast", "glimpse", "classify")


def register(subparsers: argparse._SubParsersAction) -> None:
    for name in DEMOS:
        try:
            mod = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__package__}.{name}":  # not written yet
                continue
            raise
        mod.register(subparsers)
