"""`tinygrad-seq`: one command line for the demos and pictures (argparse subcommands).

Each provider module below defines `register(subparsers)`, adding its subcommands; each subcommand
sets `func(args) -> int`. Providers are imported when the command line runs, so importing
tinygrad_seq never pulls in matplotlib, graphviz or tqdm.
"""
from __future__ import annotations

import argparse
import importlib
import sys

PROVIDERS = (
    "tinygrad_seq.viz.cli",               # vanishing, graph
    "tinygrad_seq.models.demos.recurrent",  # adding, digits, charlm
    "tinygrad_seq.models.demos.seq2seq",    # translate, copy, reverse, g2p, caption
    "tinygrad_seq.models.demos.notes",      # norms, forecast, glimpse, classify (issue 12)
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tinygrad-seq", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in PROVIDERS:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # provider not written yet
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
