"""Attention pictures for the seq2seq demos (PNG via matplotlib, imported lazily with the Agg backend).

- `save_attention_heatmap`: the (target step x source position) weight matrix of one example, source
  tokens along x, emitted tokens along y (each row sums to 1).
- `save_image_attention`: captioning; for each emitted token the attention over the CNN's spatial
  feature grid, upsampled to the image size and laid over the image.
"""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def _pyplot():
    import matplotlib
    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt
    return plt


def _check_2d(weights: np.ndarray, rows: int, cols: int, what: str) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] < rows or w.shape[1] < cols:
        raise ValueError(f"{what}: weights of shape {w.shape} cannot cover {rows} output x {cols} input tokens")
    return w[:rows, :cols]


def save_attention_heatmap(weights: np.ndarray, src_tokens: Sequence[str], tgt_tokens: Sequence[str],
                           path: str, title: str | None = None) -> str:
    """Write the attention matrix `weights[t, s]` (weight of source token s when emitting token t) as a PNG."""
    w = _check_2d(weights, len(tgt_tokens), len(src_tokens), "save_attention_heatmap")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(3.0, 0.28 * len(src_tokens) + 1.5), max(2.5, 0.28 * len(tgt_tokens) + 1.2)))
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(1e-9, float(w.max())), aspect="auto")
    ax.set_xticks(range(len(src_tokens)))
    ax.set_xticklabels(["\u2423" if t == " " else t for t in src_tokens], fontsize=7,
                       rotation=90 if any(len(t) > 1 and not t.startswith("<") for t in src_tokens) else 0)
    ax.set_yticks(range(len(tgt_tokens)))
    ax.set_yticklabels(list(tgt_tokens), fontsize=7)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    if title:
        ax.set_title(title, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def upsample(grid: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a (h, w) map to `size` (align_corners=False, as torch's interpolate)."""
    grid = np.asarray(grid, dtype=np.float64)
    h, w = grid.shape
    H, W = size

    def coords(n_out, n_in):
        x = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        x = np.clip(x, 0, n_in - 1)
        lo = np.floor(x).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, x - lo

    r0, r1, fr = coords(H, h)
    c0, c1, fc = coords(W, w)
    top = grid[r0][:, c0] * (1 - fc) + grid[r0][:, c1] * fc
    bot = grid[r1][:, c0] * (1 - fc) + grid[r1][:, c1] * fc
    return top * (1 - fr[:, None]) + bot * fr[:, None]


def save_image_attention(image: np.ndarray, weights: np.ndarray, tokens: Sequence[str], path: str,
                         title: str | None = None) -> str:
    """One panel per emitted token: the image with that step's attention over the (h, w) feature grid
    (`weights`: (T, h, w)), upsampled to the image's size, as an overlay."""
    img = np.asarray(image, dtype=np.float64).squeeze()
    w = np.asarray(weights, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"save_image_attention: image must be 2-D (or 1 x H x W), got shape {np.shape(image)}")
    if w.ndim != 3 or w.shape[0] < len(tokens):
        raise ValueError(f"save_image_attention: weights must be (T, h, w) with T >= {len(tokens)}, got {w.shape}")
    plt = _pyplot()
    n = len(tokens) + 1
    fig, axes = plt.subplots(1, n, figsize=(1.5 * n, 1.9))
    axes = np.atleast_1d(axes)
    axes[0].imshow(img, cmap="gray_r")
    axes[0].set_title("image", fontsize=8)
    for ax, tok, a in zip(axes[1:], tokens, w):
        ax.imshow(img, cmap="gray_r")
        ax.imshow(upsample(a, img.shape), cmap="jet", alpha=0.5, vmin=0.0, vmax=max(1e-9, float(a.max())))
        ax.set_title(tok, fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
