"""`tinygrad-seq`: one command line for the demos and pictures (argparse subcommands).

Each provider module below defines `register(subparsers)`, adding its subcommands; each subcommand
sets `func(args) -> int`. Providers are imported when the command line runs, so importing
tinygrad_seq never pulls in matplotlib, graphviz or tqdm.

A mistake of the user's (a bad flag value, a missing file, a checkpoint that does not fit) is a
`UsageError`: `main` prints it as one line `tinygrad-seq <command>: error: ...` and returns 2, with no
traceback. Every other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import sys

PROVIDERS = (
    "tinygrad_seq.demos.pictures",   # vanishing, graph
    "tinygrad_seq.demos.explore",    # explore
    "tinygrad_seq.demos.recurrent",  # adding, digits, charlm
    "tinygrad_seq.demos.seq2seq",    # translate, copy, reverse, g2p, caption
    "tinygrad_seq.demos.notes",      # norms, forecast, glimpse, classify
)


class UsageError(Exception):
    """A mistake in how a command was called (flag value, input file, run directory): reported in one
    line with exit status 2, never with a traceback. Raise it before anything is written."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every flag's default; flags whose default is resolved later (None here) say it in their help."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or "default" in text or isinstance(action, argparse._HelpAction):
            return text
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (`prog: error: ...`, exit 2) and defaults shown in --help."""

    def __init__(self, *args, **kw):
        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kw)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> ArgumentParser:
    from . import __version__

    parser = ArgumentParser(prog="tinygrad-seq", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tinygrad-seq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in PROVIDERS:
        mod = importlib.import_module(name)
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(None if argv is None else [str(a) for a in argv])
        sub = parser._subparsers._group_actions[0].choices.get(getattr(args, "command", None), parser)
        if extra:  # say it as the subcommand, whose --help lists what it offers
            sub.error(f"unrecognized arguments: {' '.join(extra)}")
        for dest, (old, new, value) in getattr(args, "_deprecated_given", {}).items():
            if getattr(args, dest) != value:  # a deprecated alias and its new flag, the new one given later
                sub.error(f"{old} and {new} both given: {old} is the deprecated spelling of {new}, give only {new}")
    except SystemExit as e:  # --help, --version, or a usage error argparse already printed
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"tinygrad-seq {args.command}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError as e:  # sizes given on the command line that this machine cannot hold
        why = str(e) or "out of memory"
        print(f"tinygrad-seq {args.command}: error: {why}; choose smaller sizes", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # checkpoints are written atomically: what was saved stays loadable
        print(f"tinygrad-seq {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
