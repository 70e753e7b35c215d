"""Regenerate the README's pictures in docs/img/ from the README's own command:

    .venv/bin/python scripts/readme_images.py

Runs `tinygrad-seq vanishing --seq-len 60 --hidden 16 --keep-steps 1` in a temporary directory, copies
the plots, and crops each graph to its last time step, the folded run before it and the loss, at the
picture's own scale: a whole graph is 1500-1800 px wide, so GitHub's ~880 px column would shrink every
label below reading size. The crop box comes from the SVG drawn with the PNG (same layout): the
cluster labelled "t=<T-1>" and the folded-run box; without them the whole picture is kept. Pillow
(installed with matplotlib) crops and reduces the PNGs to 256 colours.
"""
from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMG = ROOT / "docs" / "img"
T = 60
ARGS = ["vanishing", "--seq-len", str(T), "--hidden", "16", "--keep-steps", "1"]
MARGIN = 14  # pt around the crop box
_NUM = r"-?\d+(?:\.\d+)?"


def _box(points: str) -> tuple[float, float, float, float]:
    xy = [float(v) for v in re.findall(_NUM, points)]
    xs, ys = xy[0::2], xy[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def crop_box(svg: str, last: int) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) in the SVG's user units (pt, before its translate) around the cluster of step
    `last`, the folded box and everything below them down to the loss; None if they are not found."""
    step = [_box(re.search(r'\s(?:d|points)="([^"]+)"', g).group(1))
            for g in re.findall(r'<g id="clust\d+" class="cluster">(.*?)</g>\s*</g>', svg, re.S)
            if re.search(rf">t={last}</text>", g)]
    nodes = re.findall(r'<g id="node\d+" class="node">(.*?)</g>\s*(?=<g|</g)', svg, re.S)
    fold = [_box(m) for g in nodes if re.search(r"steps \(t=", g) for m in re.findall(r'\s(?:points|d)="([^"]+)"', g)]
    loss = [_box(m) for g in nodes if re.search(r">L = ", g) for m in re.findall(r'\s(?:points|d)="([^"]+)"', g)]
    if not step or not fold:
        return None
    boxes = step + fold + loss
    return (min(b[0] for b in boxes) - MARGIN, min(b[1] for b in boxes) - MARGIN,
            max(b[2] for b in boxes) + MARGIN, max(b[3] for b in boxes) + MARGIN)


def crop_png(png: Path, svg: Path, dst: Path, last: int) -> None:
    from PIL import Image
    text = svg.read_text(encoding="utf-8")
    im = Image.open(png).convert("RGB")
    box = crop_box(text, last)
    if box is not None:
        w_pt, h_pt = (float(v) for v in re.search(rf'viewBox="{_NUM} {_NUM} ({_NUM}) ({_NUM})"', text).groups())
        tx, ty = (float(v) for v in re.search(rf"translate\(({_NUM}) ({_NUM})\)", text).groups())
        sx, sy = im.width / w_pt, im.height / h_pt
        x0, y0, x1, y1 = box
        im = im.crop((max(0, int((x0 + tx) * sx)), max(0, int((y0 + ty) * sy)),
                      min(im.width, int((x1 + tx) * sx)), min(im.height, int((y1 + ty) * sy))))
    im.quantize(256).save(dst, optimize=True)
    print(f"{dst.relative_to(ROOT)}: {im.width}x{im.height}{'' if box else ' (whole picture: no crop box found)'}")


def main() -> int:
    from tinygrad_seq.cli import main as cli
    from PIL import Image
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if cli(ARGS + ["--out", str(out)]) != 0:
            return 1
        IMG.mkdir(parents=True, exist_ok=True)
        for cell in ("rnn", "lstm", "gru"):
            if not (out / f"{cell}.png").exists():
                print(f"no {cell}.png (is Graphviz installed?)", file=sys.stderr)
                return 1
            crop_png(out / f"{cell}.png", out / f"{cell}.svg", IMG / f"vanishing_{cell}.png", T - 1)
        for name in ("gradient_flow", "sweep_forget_bias", "sweep_sigma"):
            Image.open(out / f"{name}.png").convert("RGB").quantize(256).save(IMG / f"vanishing_{name}.png", optimize=True)
        shutil.copy(out / "lstm.svg", IMG / "vanishing_lstm.svg")  # the whole LSTM picture, linked from the README
    return 0


if __name__ == "__main__":
    sys.exit(main())
