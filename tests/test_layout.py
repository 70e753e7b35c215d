"""Each top-level folder is one layer and imports only the layers below it:
engine (tinygrad_seq/) < models/ < viz/ < demos/. Read from the sources (import statements), so a
stray upward import fails here rather than as an import cycle somewhere else."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# folder -> its installed package
PACKAGE = {"tinygrad_seq": "tinygrad_seq", "models": "tinygrad_seq.models", "viz": "tinygrad_seq.viz",
           "demos": "tinygrad_seq.demos"}
LAYERS = ("tinygrad_seq", "models", "viz", "demos")  # bottom to top
ABOVE = {name: [PACKAGE[n] for n in LAYERS[i + 1:]] for i, name in enumerate(LAYERS)}


def _imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import statement in the file."""
    rel = path.relative_to(ROOT / path.relative_to(ROOT).parts[0]).with_suffix("")
    parts = [*package.split("."), *rel.parts]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    here = parts[:-1] if path.name != "__init__.py" else parts  # the package the file is in
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            else:
                names = [node.module]
            out += [(node.lineno, n) for n in names]
    return out


@pytest.mark.parametrize("folder", LAYERS[:-1])
def test_no_folder_imports_a_layer_above_it(folder):
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        # the engine's package __init__ files hold the PyTorch-style lazy aliases (tg.models, tg.nn.LSTM);
        # cli.py names its command providers by string
        if folder == "tinygrad_seq" and path.name == "__init__.py":
            continue
        for line, mod in _imports(path, PACKAGE[folder]):
            if any(mod == up or mod.startswith(up + ".") for up in ABOVE[folder]):
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, "\n".join(bad)


def test_the_scan_sees_relative_and_absolute_imports():
    # the checker itself: a relative import two levels up resolves to the right package
    found = dict((m, ln) for ln, m in _imports(ROOT / "demos" / "seq2seq.py", "tinygrad_seq.demos"))
    assert "tinygrad_seq.demos.common" in found and "tinygrad_seq" in found
    found = [m for _, m in _imports(ROOT / "viz" / "grads.py", "tinygrad_seq.viz")]
    assert "tinygrad_seq.autograd" in found and "tinygrad_seq.ops" in found


def test_the_core_engine_files_import_one_way_only():
    """errors < autograd < ops < tensor: errors.py (the error classes) imports nothing of the engine, autograd
    and ops never import tensor.py (an op builds its result as `inputs[0]._result_type`), tensor.py imports
    neither the modules above it nor anything at its bottom; printing.py (how tensor.py's repr looks) only
    reads dtypes."""
    core = {name: ROOT / "tinygrad_seq" / f"{name}.py" for name in ("errors", "autograd", "ops", "printing", "tensor")}
    below = {"errors": set(), "autograd": set(), "ops": {"tinygrad_seq.autograd", "tinygrad_seq.errors"},
             "printing": {"tinygrad_seq.dtypes"},
             "tensor": {"tinygrad_seq.autograd", "tinygrad_seq.ops", "tinygrad_seq.dtypes", "tinygrad_seq.device",
                        "tinygrad_seq.errors", "tinygrad_seq.printing"}}
    for name, path in core.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {n.lineno for node in ast.walk(tree) if isinstance(node, ast.If)
                       and getattr(node.test, "id", "") == "TYPE_CHECKING" for b in node.body for n in ast.walk(b)
                       if hasattr(n, "lineno")}
        mods = {m for ln, m in _imports(path, "tinygrad_seq") if ln not in typing_only}
        engine = {m for m in mods if m.startswith("tinygrad_seq.") or m == "tinygrad_seq"}
        assert engine <= below[name], f"{name}.py imports {sorted(engine - below[name])}"
        first_def = min(n.lineno for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef)))
        late = [n.lineno for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) and n.lineno > first_def]
        assert not late, f"{name}.py imports below its first definition, at lines {late}"
