"""The README runs as written: its ```python blocks, in order, in one namespace (they are small), and
every `tinygrad-seq ...` line of its ```bash blocks is a valid command line."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)


def test_readme_has_python_and_bash_blocks():
    assert len(_blocks("python")) >= 3 and len(_blocks("bash")) >= 2


def test_python_blocks_run_in_order(tmp_path, monkeypatch, capsys):
    pytest.importorskip("graphviz")
    monkeypatch.chdir(tmp_path)  # the blocks write lstm.svg, ckpt.npz, ... where they run
    namespace: dict = {"__name__": "__readme__"}
    for i, code in enumerate(_blocks("python")):
        exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)
    out = capsys.readouterr().out
    assert "LSTMCell" in out  # help(tg.models.LSTMCell) printed its docstring
    assert (tmp_path / "ckpt.npz").exists()


def test_bash_command_lines_parse():
    from tinygrad_seq.cli import build_parser

    lines = [ln.split("#")[0].strip() for block in _blocks("bash") for ln in block.splitlines()]
    commands = [shlex.split(ln)[1:] for ln in lines if ln.startswith("tinygrad-seq ")]
    assert len(commands) >= 3
    for argv in commands:
        args = build_parser().parse_args(argv)  # a bad flag exits here (SystemExit 2)
        assert callable(args.func), argv
