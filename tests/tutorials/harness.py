"""Run a PyTorch tutorial script under `tinygrad_seq` or real PyTorch, on generated data.

The only edits made to a script's text are (1) its torch import lines, rewritten to import
tinygrad_seq under the same names, and (2) the explicit `overrides` a test passes (iteration
counts and the like, each a whole line that must occur exactly once, so a changed script fails
loudly instead of silently running something else). The loss curve is read off the script's own
`plt.plot(losses)` call, so no line is added to record it.
"""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# `import torch` and friends -> the same names bound to tinygrad_seq's modules of the same path.
IMPORT_REWRITES = [
    (r"^(\s*)import torch\s*$", r"\1import tinygrad_seq as torch"),
    (r"^(\s*)import torch((?:\.\w+)+) as (\w+)\s*$", r"\1import tinygrad_seq\2 as \3"),
    (r"^(\s*)from torch((?:\.\w+)*) import (.+)$", r"\1from tinygrad_seq\2 import \3"),
]


def rewrite_imports(src: str) -> str:
    """Rewrite each torch import line; any other line is left byte-identical."""
    out = []
    for line in src.split("\n"):
        for pat, rep in IMPORT_REWRITES:
            if re.match(pat, line):
                line = re.sub(pat, rep, line)
                break
        else:
            if re.match(r"^\s*(import|from)\s+torch\b", line):  # e.g. `import torch.nn` (binds torch itself)
                raise ValueError(f"no tinygrad_seq rewrite for import line {line!r}")
        out.append(line)
    return "\n".join(out)


def apply_overrides(src: str, overrides: dict[str, str]) -> str:
    lines = src.split("\n")
    for old, new in overrides.items():
        hits = [i for i, line in enumerate(lines) if line == old]
        if len(hits) != 1:
            raise ValueError(f"override line {old!r} found {len(hits)} times (expected once)")
        lines[hits[0]] = new
    return "\n".join(lines)


# ---------------------------------------------------------------- generated data, tutorial formats

# Each language gets its own syllables, so the language is visible at every character and a few
# hundred SGD steps are enough to learn it. A few names carry accents, for the Unicode->ASCII step.
_SYLLABLES = {
    "Italian": ["ri", "ni", "lo", "to", "bel", "cci", "ra", "gio"],
    "Russian": ["ov", "sky", "kov", "ev", "iak", "shin", "vich", "zh"],
    "German": ["sch", "mann", "berg", "el", "hof", "stein", "ür", "ke"],
    "Spanish": ["ez", "gar", "ña", "ro", "cia", "lo", "mé", "que"],
    "Chinese": ["zh", "ang", "xi", "ao", "wu", "li", "qi", "ng"],
    "Japanese": ["ka", "mo", "to", "su", "ki", "ya", "shi", "da"],
}


def make_names_data(workdir: Path, n_per_lang: int = 60, seed: int = 0) -> Path:
    """data/names/<Language>.txt: UTF-8, one name per line (the tutorials' data.zip layout)."""
    rng = random.Random(seed)
    d = Path(workdir) / "data" / "names"
    d.mkdir(parents=True, exist_ok=True)
    for lang, syl in _SYLLABLES.items():
        names = set()
        while len(names) < n_per_lang:
            names.add("".join(rng.choice(syl) for _ in range(rng.randint(2, 3))).capitalize())
        (d / f"{lang}.txt").write_text("\n".join(sorted(names)) + "\n", encoding="utf-8")
    return d


# English -> French pairs whose English side starts with the tutorial's "i am / he is ..." prefixes.
_SUBJECTS = [("I am", "je suis"), ("He is", "il est"), ("She is", "elle est"), ("You are", "tu es"),
             ("We are", "nous sommes"), ("They are", "ils sont")]
_COMPLEMENTS = [("cold", "froid"), ("too cold", "trop froid"), ("small", "petit"), ("too small", "trop petit"),
                ("happy", "heureux"), ("tired", "fatigue"), ("very tired", "tres fatigue"), ("here", "ici"),
                ("at home", "a la maison"), ("not afraid", "pas peur"), ("a young director", "un jeune directeur")]
# Sentences the seq2seq tutorial translates at its end (French side), so all their words must be known.
_EXTRA = [("She is five years younger than me.", "Elle a cinq ans de moins que moi."),
          ("I am not afraid of dying.", "Je ne crains pas de mourir."),
          ("He is a young director full of talent.", "C'est un jeune directeur plein de talent."),
          ("I am too cold.", "Je suis trop froid.")]


def make_eng_fra_data(workdir: Path) -> Path:
    """data/eng-fra.txt: UTF-8, one `English<TAB>French` pair per line (the seq2seq tutorial's file)."""
    d = Path(workdir) / "data"
    d.mkdir(parents=True, exist_ok=True)
    pairs = [(f"{se} {ce}.", f"{sf.capitalize()} {cf}.") for se, sf in _SUBJECTS for ce, cf in _COMPLEMENTS]
    pairs += _EXTRA
    pairs.append(("Go.", "Va !"))  # filtered out by the tutorial's prefix rule, as most real pairs are
    path = d / "eng-fra.txt"
    path.write_text("\n".join(f"{e}\t{f}" for e, f in pairs) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------- running a script

_RUNNER = r"""
import json, random, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
src_path, backend, seed, out_path, report = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
plots = []
_plot = plt.plot
def _recording_plot(*args, **kw):
    plots.append([float(v) for v in args[0]])
    return _plot(*args, **kw)
plt.plot = _recording_plot
plt.show = lambda *a, **k: None
random.seed(seed)
if backend == "torch":
    import torch
    torch.manual_seed(seed)
    torch.set_num_threads(1)  # batch-1 RNN steps: threads only add overhead
else:
    import tinygrad_seq
    tinygrad_seq.manual_seed(seed)
src = open(src_path, encoding="utf-8").read()
ns = {"__name__": "__main__"}
exec(compile(src, src_path, "exec"), ns)
json.dump({"plots": plots, "report": {k: eval(e, ns) for k, e in report.items()}}, open(out_path, "w"))
"""


def run_script(script: Path | str, backend: str, workdir: Path, overrides: dict[str, str] | None = None,
               seed: int = 0, report: dict[str, str] | None = None, timeout: float = 300) -> dict:
    """Run `script` with cwd=workdir; backend "torch" (as written) or "tinygrad_seq" (imports rewritten).

    Returns {"plots": [[y values of each plt.plot call], ...], "report": {name: value of each `report`
    expression, evaluated in the script's namespace after it ran}, "stdout": ...}; raises RuntimeError
    with the script's traceback if it fails.
    """
    src = Path(script).read_text(encoding="utf-8")
    src = apply_overrides(src, overrides or {})
    if backend == "tinygrad_seq":
        src = rewrite_imports(src)
    elif backend != "torch":
        raise ValueError(f"backend must be 'torch' or 'tinygrad_seq', got {backend!r}")
    workdir = Path(workdir)
    run_src = workdir / f"_run_{backend}_{Path(script).name}"
    run_src.write_text(src, encoding="utf-8")
    out = workdir / f"_out_{backend}.json"
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(run_src), backend, str(seed), str(out),
                           json.dumps(report or {})],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().split("\n")[-25:])
        raise RuntimeError(f"{Path(script).name} under {backend} failed:\n{tail}")
    res = json.loads(out.read_text())
    res["stdout"] = proc.stdout
    return res
