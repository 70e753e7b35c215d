"""Data for the recurrent demos: the adding problem, 8x8 digits read pixel by pixel, and a character
corpus (Python's own standard library by default) cut into truncated-BPTT windows.

All randomness comes from an explicit `np.random.Generator`, so a run (and a resumed run) is
reproducible from its seed.
"""
from __future__ import annotations

import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

# ------------------------------------------------------------------------------------------ adding
ADDING_BASELINE_MSE = 1 / 6
"""MSE of always predicting 1 = E[(a+b-1)^2] = Var(a+b) = 2 * 1/12 for a, b ~ U[0,1] independent."""


def adding_problem(n: int, T: int, rng: np.random.Generator, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter & Schmidhuber 1997): `n` sequences of length `T`, 2 features per step.

    x[:, t, 0] ~ U[0, 1] are the values; x[:, t, 1] is 1 at exactly one step of the first half
    [0, T//2) and one step of the second half [T//2, T), else 0; y = the sum of the two marked values,
    shape (n, 1). Returns (x: (n, T, 2), y: (n, 1)).
    """
    if T < 2:
        raise ValueError(f"adding_problem: T must be >= 2 (one marker per half), got {T}")
    if n < 1:
        raise ValueError(f"adding_problem: n must be >= 1, got {n}")
    half = T // 2
    values = rng.random((n, T))
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, T, size=n)
    markers = np.zeros((n, T))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = np.stack([values, markers], axis=-1).astype(dtype)
    y = (values[rows, first] + values[rows, second])[:, None].astype(dtype)
    return x, y


# ------------------------------------------------------------------------------------------ digits
def load_digits_sequences(test_fraction: float = 0.2, split_seed: int = 0,
                          dtype=np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (1797 images, offline) as pixel sequences.

    Each image becomes 64 steps of 1 feature (row-major pixels scaled from 0..16 to [0, 1]).
    The train/test split is fixed (stratified, `split_seed`), independent of the training seed.
    Returns (x_train (N, 64, 1), y_train (N,), x_test, y_test), labels int64.
    """
    from sklearn.datasets import load_digits  # lazy: scikit-learn is a demos extra
    from sklearn.model_selection import train_test_split

    ds = load_digits()
    x = (ds.data / 16.0).astype(dtype)[:, :, None]
    y = ds.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction, random_state=split_seed, stratify=y)
    return x_tr, y_tr, x_te, y_te


def load_digits_splits(valid_fraction: float = 0.2, split_seed: int = 0, dtype=np.float32):
    """`load_digits_sequences`' test set (360 images) untouched, and its training images split again,
    stratified, into train (1149) and validation (288): ((x, y) train, (x, y) valid, (x, y) test).
    Settings and epochs are chosen on validation; the test set is scored once."""
    from sklearn.model_selection import train_test_split

    x_tr, y_tr, x_te, y_te = load_digits_sequences(split_seed=split_seed, dtype=dtype)
    x_tr, x_va, y_tr, y_va = train_test_split(x_tr, y_tr, test_size=valid_fraction, random_state=split_seed,
                                              stratify=y_tr)
    return (x_tr, y_tr), (x_va, y_va), (x_te, y_te)


# ------------------------------------------------------------------------------------------ characters
# Not source a reader would write: generated codec tables, a dump of the docs' topics, test suites, and
# third-party installs.
_NOT_CORPUS = {"site-packages", "dist-packages", "encodings", "pydoc_data", "__pycache__", "__phello__",
               "test", "tests", "idle_test"}


def default_corpus_files(max_bytes: int = 1_000_000, packages: bool = False) -> list[Path]:
    """A deterministic set of Python standard-library sources: the top-level `*.py` files of
    `sysconfig.get_paths()["stdlib"]` in name order, then (with `packages`) the `*.py` files of its
    packages in path order, skipping test suites, site-packages and generated tables; until `max_bytes`."""
    root = Path(sysconfig.get_paths()["stdlib"])
    candidates = sorted(root.glob("*.py"))
    if packages:
        for p in sorted(root.glob("*/**/*.py")):
            folders = p.relative_to(root).parts[:-1]
            if not _NOT_CORPUS.intersection(folders) and not folders[0].startswith("config-"):
                candidates.append(p)
    files, total = [], 0
    for p in candidates:
        if total >= max_bytes:
            break
        files.append(p)
        total += p.stat().st_size
    if not files:
        raise RuntimeError(f"no Python sources found in the standard library directory {root}; pass --corpus")
    return files


def read_corpus(path: str | os.PathLike | None = None, max_bytes: int = 1_000_000, packages: bool = False) -> str:
    """Text of `path` (a file, or every *.py/*.txt file under a directory, in name order), or of the
    default standard-library set (`default_corpus_files`); truncated to `max_bytes` characters."""
    if path is None:
        files = default_corpus_files(max_bytes, packages)
    else:
        p = Path(path)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix in (".py", ".txt", ".md") and f.is_file())
        elif p.is_file():
            files = [p]
        else:
            raise ValueError("no such file or directory")
        if not files:
            raise ValueError("no .py/.txt/.md files in it")
    parts, total = [], 0
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        total += len(text)
        if total >= max_bytes:
            break
    return "".join(parts)[:max_bytes]


UNK_CHAR = "\ufffd"  # stands for every held-out character that never occurs in the training text


@dataclass
class CharCorpus:
    """A text split into train / validation / test id arrays over a character vocabulary (`itos`) built
    from the training text only, plus UNK_CHAR (last) for held-out characters training never shows."""
    itos: list[str]
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    @classmethod
    def from_text(cls, text: str, valid_fraction: float = 0.05, test_fraction: float = 0.05) -> "CharCorpus":
        """The first 1 - valid - test of the text trains, then validation (checkpoint selection), then test.
        A validation/test character absent from the training part maps to UNK_CHAR (which the model never
        sees in training, so it costs what it costs: the held-out score is not helped by peeking)."""
        if len(text) < 100:
            raise ValueError(f"corpus too small: {len(text)} characters (need at least 100)")
        if not (0 < valid_fraction and 0 <= test_fraction and valid_fraction + test_fraction < 1):
            raise ValueError(f"need 0 < valid_fraction, 0 <= test_fraction, sum < 1; got {valid_fraction}, "
                             f"{test_fraction}")
        cut_v = int(len(text) * (1 - valid_fraction - test_fraction))
        cut_t = int(len(text) * (1 - test_fraction))
        itos = sorted(set(text[:cut_v]) - {UNK_CHAR}) + [UNK_CHAR]
        lut = {c: i for i, c in enumerate(itos)}
        unk = len(itos) - 1
        ids = np.fromiter((lut.get(c, unk) for c in text), dtype=np.int64, count=len(text))
        return cls(itos, ids[:cut_v], ids[cut_v:cut_t], ids[cut_t:])

    @property
    def unk_index(self) -> int:
        return len(self.itos) - 1

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, s: str) -> np.ndarray:
        unknown = sorted(set(s) - set(self.itos))
        if unknown:
            raise ValueError(f"characters {unknown!r} are not in the corpus vocabulary")
        lut = {c: i for i, c in enumerate(self.itos)}
        return np.array([lut[c] for c in s], dtype=np.int64)

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.itos[i] for i in ids)

    def unigram_bpc(self, split: str = "test") -> float:
        """Cross-entropy (bits/char) of a held-out split ("valid" or "test") under the training-text
        character frequencies (add-one smoothed): the baseline a model that ignores context would reach."""
        counts = np.bincount(self.train, minlength=self.vocab_size) + 1.0
        p = counts / counts.sum()
        return float(-np.log2(p[getattr(self, split)]).mean())


def bptt_streams(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Cut a 1-D id array into `batch_size` contiguous streams, shape (batch_size, L): stream b continues
    in the next window, so a hidden state carried across windows sees contiguous text."""
    L = len(ids) // batch_size
    if L < 2:
        raise ValueError(f"bptt_streams: {len(ids)} ids are too few for batch_size {batch_size}")
    return ids[:L * batch_size].reshape(batch_size, L)


def bptt_window(streams: np.ndarray, i: int, bptt: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Window number `i` (wrapping around) of inputs and next-character targets, each (B, bptt).
    The flag is True when the window starts a new pass over the streams (carry no state into it)."""
    n_windows = (streams.shape[1] - 1) // bptt
    if n_windows < 1:
        raise ValueError(f"bptt_window: streams of length {streams.shape[1]} are shorter than bptt {bptt} + 1")
    j = i % n_windows
    s = j * bptt
    return streams[:, s:s + bptt], streams[:, s + 1:s + 1 + bptt], j == 0
