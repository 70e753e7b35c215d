"""`tinygrad-seq classify`: which language is a word? Text classification from the last states only.

Data (offline): the frequent-word lists that the `wordfreq` package ships, the top `--words` words of
each language in `--langs`, lower-case, letters only, at least 3 letters; words found in more than one
of the lists are dropped (their language is ambiguous); a fixed stratified 80/20 split.
Model: characters -> Embedding -> bidirectional LSTM or GRU over the padded batch with `lengths=`
(padding never reaches either direction), logits = W [h→_last ; h←_first] + b: the forward
direction's state after the word's last real character and the backward direction's state after its
first. Baseline: character 1-3-gram TF-IDF features + logistic regression (scikit-learn).
Reported: held-out accuracy of each, and a confusion-matrix plot.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

import numpy as np

import tinygrad_seq as tg
from tinygrad_seq import optim
from tinygrad_seq.nn import functional as F
from tinygrad_seq.nn.utils import clip_grad_norm_

from .common import (add_common_args, csv_choices, minibatches, positive_float, positive_int, print_table, progress,
                     require, resolve_args, RunDir, seed_everything, UsageError)

CELLS = ("lstm", "gru")
PAD, UNK = 0, 1


# ------------------------------------------------------------------------------------------ data
def load_words(langs: list[str], n: int) -> tuple[list[str], np.ndarray]:
    """(words, language index) from wordfreq's top-n lists, ambiguous words removed."""
    try:
        import wordfreq
    except ImportError:
        raise ImportError("tinygrad-seq classify needs wordfreq (pip install wordfreq, or the 'demos' extra) "
                          "for its word lists") from None
    known = set(wordfreq.available_languages())
    bad = [lang for lang in langs if lang not in known]
    if bad:
        raise UsageError(f"--langs: wordfreq has no list for {bad}; available: {sorted(known)}")
    lists = []
    for lang in langs:
        ws = {w.lower() for w in wordfreq.top_n_list(lang, n)}
        lists.append({w for w in ws if w.isalpha() and len(w) >= 3})
    counts: dict[str, int] = {}
    for ws in lists:
        for w in ws:
            counts[w] = counts.get(w, 0) + 1
    words, labels = [], []
    for i, ws in enumerate(lists):
        for w in sorted(ws):
            if counts[w] == 1:
                words.append(w)
                labels.append(i)
    return words, np.array(labels)


def split(labels: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Stratified index split: the same fraction of every class held out."""
    tr, te = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        k = int(round(len(idx) * test_fraction))
        te.append(idx[:k])
        tr.append(idx[k:])
    return np.concatenate(tr), np.concatenate(te)


def encode(words: list[str], stoi: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) char ids padded with 0 (unknown characters 1) and the lengths (B,)"""
    lengths = np.array([len(w) for w in words])
    ids = np.full((len(words), lengths.max()), PAD, np.int64)
    for i, w in enumerate(words):
        ids[i, :len(w)] = [stoi.get(c, UNK) for c in w]
    return ids, lengths


# ------------------------------------------------------------------------------------------ model
class BiRNNClassifier(tg.nn.Module):
    """logits = W [h→_T ; h←_1] + b over a bidirectional LSTM/GRU of the character embeddings"""

    def __init__(self, vocab: int, emb: int, hidden: int, classes: int, cell: str = "lstm"):
        super().__init__()
        from tinygrad_seq import models

        self.embed = tg.nn.Embedding(vocab, emb, padding_idx=PAD)
        self.rnn = (models.LSTM if cell == "lstm" else models.GRU)(emb, hidden, batch_first=True, bidirectional=True)
        self.head = tg.nn.Linear(2 * hidden, classes)

    def forward(self, ids: np.ndarray, lengths: np.ndarray) -> tg.Tensor:
        _, hn = self.rnn(self.embed(tg.Tensor(ids)), lengths=lengths)
        h = hn[0] if isinstance(hn, tuple) else hn  # (2, B, H): forward's last state, backward's (at t = 0)
        return self.head(tg.cat([h[0], h[1]], dim=-1))


def ngram_baseline(train_words, y_tr, test_words, y_te) -> tuple[float, np.ndarray]:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
    clf = LogisticRegression(max_iter=2000, C=5.0)
    clf.fit(vec.fit_transform(train_words), y_tr)
    pred = clf.predict(vec.transform(test_words))
    return float((pred == y_te).mean()), pred


def confusion(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros((k, k), np.int64)
    np.add.at(m, (y, pred), 1)
    return m


# ------------------------------------------------------------------------------------------ run
DEFAULTS = dict(out="runs/classify", epochs=6, lr=5e-3, hidden=64, batch_size=64, emb=24, words=3000,
                langs="en,de,fr,es,it,nl,pt,pl,sv,fi", clip=1.0)
MIN_WORDS = 10  # per language, after filtering: the 20% held out then has 2 of each
QUICK = dict(epochs=4, hidden=32, emb=16, words=800, langs="en,de,fi,pl")


def train_cell(cell: str, args, data) -> tuple[dict[str, Any], np.ndarray]:
    (tr_w, y_tr, te_w, y_te, stoi, k) = data
    data_rng = seed_everything(args.seed)
    model = BiRNNClassifier(len(stoi) + 2, args.emb, args.hidden, k, cell)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    run = RunDir(args.out / f"bi{cell}")
    step, _ = run.begin(model, opt, {"data": data_rng}, resume=args.resume)
    per_epoch = math.ceil(len(tr_w) / args.batch_size)
    te_ids, te_len = encode(te_w, stoi)

    def predict() -> np.ndarray:
        model.eval()
        with tg.no_grad():
            out = np.concatenate([model(*encode(te_w[i:i + 512], stoi)).numpy().argmax(1)
                                  for i in range(0, len(te_w), 512)])
        model.train()
        return out

    t0 = time.perf_counter()
    with progress(args.epochs * per_epoch, desc=f"classify bi{cell}", initial=step) as bar:
        for epoch in range(step // per_epoch, args.epochs):
            losses = []
            for idx in minibatches(len(tr_w), args.batch_size, data_rng):
                ids, lengths = encode([tr_w[i] for i in idx], stoi)
                loss = F.cross_entropy(model(ids, lengths), y_tr[idx])
                opt.zero_grad()
                loss.backward()
                clip_grad_norm_(model.parameters(), args.clip)
                opt.step()
                losses.append(loss.item())
                step += 1
                bar.update(1)
                if step % 50 == 0:
                    bar.set_postfix(loss=float(np.mean(losses[-50:])))
            acc = float((predict() == y_te).mean())
            run.log(step, "train", loss=float(np.mean(losses)), epoch=epoch + 1)
            run.log(step, "test", accuracy=acc, epoch=epoch + 1)
            run.save_checkpoint(step, model, opt, {"data": data_rng})
    run.plot(title=f"classify: Bi{cell.upper()} training loss")
    pred = predict()
    return {"model": f"Bi{cell.upper()} (last states)", "test accuracy": float((pred == y_te).mean()),
            "epochs": step // per_epoch, "seconds": round(time.perf_counter() - t0, 1)}, pred


def plot_confusions(path, mats: dict[str, np.ndarray], langs: list[str]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.4 * len(mats), 4.2), dpi=100)
    axes = np.atleast_1d(fig.subplots(1, len(mats)))
    for ax, (name, m) in zip(axes, mats.items()):
        norm = m / np.maximum(m.sum(1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(langs)):
            for j in range(len(langs)):
                if m[i, j]:
                    ax.text(j, i, f"{norm[i, j]:.2f}".lstrip("0") if norm[i, j] < 1 else "1", ha="center",
                            va="center", fontsize=6, color="white" if norm[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(langs)), langs, fontsize=8)
        ax.set_yticks(range(len(langs)), langs, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}: acc {np.trace(m) / m.sum():.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")


def run_classify(args: argparse.Namespace) -> int:
    args = resolve_args(args)
    require("wordfreq", "matplotlib")
    langs = list(dict.fromkeys(s.strip() for s in args.langs.split(",") if s.strip()))
    if len(langs) < 2:
        raise UsageError(f"--langs needs at least two languages, got {langs}")
    words, labels = load_words(langs, args.words)
    counts = np.bincount(labels, minlength=len(langs)) if len(labels) else np.zeros(len(langs), int)
    if counts.min() < MIN_WORDS:
        few = ", ".join(f"{lang} {n}" for lang, n in zip(langs, counts) if n < MIN_WORDS)
        raise UsageError(f"--words {args.words} leaves too few unambiguous words of 3+ letters ({few}; "
                         f"need {MIN_WORDS} per language for a held-out split): raise --words")
    tr, te = split(labels, 0.2, np.random.default_rng([args.seed, 2]))
    tr_w, te_w = [words[i] for i in tr], [words[i] for i in te]
    y_tr, y_te = labels[tr], labels[te]
    chars = sorted({c for w in tr_w for c in w})
    stoi = {c: i + 2 for i, c in enumerate(chars)}
    k = len(langs)
    rows, mats = [], {}
    for cell in args.cells:
        row, pred = train_cell(cell, args, (tr_w, y_tr, te_w, y_te, stoi, k))
        rows.append(row)
        mats[f"Bi{cell.upper()}"] = confusion(y_te, pred, k)
    t0 = time.perf_counter()
    acc, pred = ngram_baseline(tr_w, y_tr, te_w, y_te)
    rows.append({"model": "char 1-3-gram logistic regression", "test accuracy": acc, "epochs": "",
                 "seconds": round(time.perf_counter() - t0, 1)})
    mats["n-gram LR"] = confusion(y_te, pred, k)
    plot_confusions(args.out / "confusion.png", mats, langs)
    majority = float(np.bincount(y_te).max() / len(y_te))
    print_table(rows, title=f"language of a word: {len(tr_w)} train / {len(te_w)} held-out words "
                            f"({', '.join(langs)}; majority class {majority:.3f})")
    (args.out / "results.json").write_text(json.dumps({"rows": rows, "langs": langs, "majority": majority,
                                                       "confusion": {n: m.tolist() for n, m in mats.items()}},
                                                      indent=1))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("classify", help="language of a word from its characters: BiLSTM/BiGRU last "
                                               "states vs char n-gram logistic regression",
                              description=__doc__.split("\n\n")[0])
    add_common_args(p, DEFAULTS, QUICK)
    p.add_argument("--cells", type=csv_choices(CELLS), default=list(CELLS), metavar="CELLS",
                   help=f"comma-separated cells, from {','.join(CELLS)} (default {','.join(CELLS)})")
    p.add_argument("--langs", default=None, help=f"comma-separated wordfreq languages (default {DEFAULTS['langs']})")
    p.add_argument("--words", type=positive_int, default=None, help="top words per language before filtering (default 3000)")
    p.add_argument("--emb", type=positive_int, default=None, help="character embedding size (default 24)")
    p.add_argument("--clip", type=positive_float, default=None, help="gradient-norm clipping (default 1.0)")
    p.set_defaults(func=run_classify)
