"""Sequence-to-sequence demos of `tinygrad-seq`: translate, copy, reverse, g2p, caption.

    tinygrad-seq translate --models rnn,transformer   # dates "Tuesday, March 3, 1998" -> "1998-03-03"
    tinygrad-seq copy                                 # Transformer copies a random token sequence
    tinygrad-seq reverse                              # ... or reverses it
    tinygrad-seq g2p                                  # CMUdict letters -> phonemes, RNN+attention vs Transformer
    tinygrad-seq caption                              # 8x8 digit image -> "seven", CNN + attention decoder

Every demo trains with teacher forcing (cross-entropy over the next target token, padding ignored),
Adam with a linear-warmup + cosine learning-rate schedule and gradient clipping, and evaluates by
greedy decoding on held-out data (exact match of the whole output). g2p also holds out a validation
split: the checkpoint with the lowest validation (WER, PER) is tested, decoded by beam search (--beam),
and WER/PER accept any of a word's CMUdict pronunciations (first-pronunciation scores are also given). Conventions shared with the other
demos (run directory, metrics.jsonl, loss PNG, checkpoint + `--resume`, `--seed`, `--quick`) come from
`common.py`; with two `--models` each model gets a sub-directory (`OUT/rnn`, `OUT/transformer`) and
OUT gets a comparison plot and `summary.json`. Attention heatmaps of a few held-out examples are saved
as `OUT/<model>/attention_*.png`. The models train eagerly by default and say why in the output
(`--compile` runs them through tg.compile).

Measured with the defaults (seed 0, CPU, a few minutes each on a shared 2-core machine), held-out:
translate (3,000 iterations) exact match RNN 1.000 / Transformer 1.000 on 1000 distinct unseen dates, 1.000 /
0.921 on dates of unseen years; copy / reverse (2,000 iterations) 1.000 / 1.000 on 919 unseen sequences,
0.145 / 0.000 on longer ones (13-16 tokens) (README, "Held-out splits");
g2p WER RNN 0.367 (PER 0.092, 3,000 steps) / Transformer 0.351 (PER 0.090, 12,000 steps) on 11,432
unseen words (beam 5, any pronunciation; checkpoint chosen on validation);
caption exact match 0.969 (359 unseen images).
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

import tinygrad_seq as tg
import tinygrad_seq.nn.functional as F

from . import common
from . import seq2seq_data as D

MODELS = ("rnn", "transformer")


# ----------------------------------------------------------------------------------------- tasks
@dataclass
class Task:
    """A data set ready for training: pairs are (source, target) token sequences (or, for captioning,
    (image, target)); `make_batch(pairs)` turns a list of pairs into a padded `D.Batch`."""
    name: str
    src_vocab: D.Vocab | None
    tgt_vocab: D.Vocab
    train: list
    test: list
    max_out: int                        # greedy decoding stops after this many tokens
    src_join: str = ""                  # how tokens are joined for display ("" for characters)
    tgt_join: str = ""
    make_batch: Callable[[list], D.Batch] | None = None
    extra_metrics: Callable[[list, list], dict] | None = None   # (hyps, refs) -> metrics
    extra_tests: dict | None = None     # name -> pairs: further held-out splits, scored once at the end
    valid: list | None = None           # when given: monitoring and checkpoint choice use it, not test
    score: Callable[[list, list], dict] | None = None           # (sources, hyps) -> metrics
    select: tuple[str, ...] = ()        # metrics of `score` whose validation minimum (lexicographic) picks the checkpoint

    def batch(self, pairs: list) -> D.Batch:
        if self.make_batch is not None:
            return self.make_batch(pairs)
        return D.make_batch(pairs, self.src_vocab, self.tgt_vocab)


def translate_task(n_train: int, n_test: int, seed: int) -> Task:
    """Dates in the 15 formats. Held out: `n_test` distinct calendar dates never in training, each once in
    a random format ("test"); and `n_test` dates of the years D.HELD_OUT_YEARS, of which no date is in
    training ("unseen_years": the year's digit combination was never seen)."""
    train_dates, test_dates, year_dates = D.split_dates_by_year(n_test, seed=seed)
    gen = np.random.default_rng([seed, 2])  # fixed data set, independent of the batch stream
    sv, tv = D.date_vocabs()
    years = [year_dates[i] for i in np.sort(gen.choice(len(year_dates), min(n_test, len(year_dates)), replace=False))]
    return Task("translate", sv, tv, D.date_pairs(train_dates, n_train, gen), D.date_pairs_once(test_dates, gen),
                max_out=12, extra_tests={"unseen_years": D.date_pairs_once(years, gen)})


def token_task(name: str, n_train: int, n_test: int, seed: int, n_tokens: int, min_len: int,
               max_len: int) -> Task:
    """Random sequences; train / test share no sequence (test: unseen sequences of the training lengths);
    "longer": unseen lengths max_len+1 .. max_len+4, longer than any training sequence."""
    gen = np.random.default_rng([seed, 2])
    rev = name == "reverse"
    train, test, longer = D.token_task_splits(n_train, n_test, gen, n_tokens, min_len, max_len, reverse=rev,
                                              n_long=n_test, long_extra=LONGER_BY)
    v = D.token_vocab(n_tokens)
    return Task(name, v, v, train, test, max_out=max_len + LONGER_BY + 1, src_join=" ", tgt_join=" ",
                extra_metrics=_token_accuracy, extra_tests={"longer": longer})


LONGER_BY = 4  # the length-generalisation split of copy/reverse: up to this many tokens past --max-len


def g2p_task(n_train: int, n_test: int, n_valid: int, seed: int, max_len: int) -> Task:
    """CMUdict: deterministic word split (CRC32) into train / validation (5%) / test (10%), then seeded
    subsets of at most n_train / n_valid / n_test words. Training pairs use each word's first
    pronunciation; WER and PER count a word right if it matches any of its pronunciations."""
    entries = D.load_cmudict(max_len=max_len, all_pronunciations=True)
    train, valid, test = D.split_g2p_valid(entries)
    gen = np.random.default_rng([seed, 2])

    def subset(part: list, n: int) -> list:
        return part if n >= len(part) else [part[i] for i in np.sort(gen.choice(len(part), n, replace=False))]

    train, test = subset(train, n_train), subset(test, n_test)
    valid = [valid[i] for i in gen.permutation(len(valid))[:n_valid]]  # shuffled: not only the a... words
    refs = {w: alts for w, alts in entries}
    train, valid, test = ([(w, alts[0]) for w, alts in part] for part in (train, valid, test))
    sv = D.Vocab.from_sequences(w for w, _ in train)
    tv = D.Vocab.from_sequences(p for _, p in train)

    def score(words: list, hyps: list) -> dict:
        every = D.g2p_scores(hyps, [refs[w] for w in words])
        first = D.g2p_scores(hyps, [refs[w][:1] for w in words])
        return {**every, "wer_first_ref": first["wer"], "per_first_ref": first["per"]}

    return Task("g2p", sv, tv, train, test, max_out=max_len + 4, src_join="", tgt_join=" ", valid=valid,
                score=score, select=("wer", "per"))


def caption_task(seed: int) -> Task:
    (tr_img, tr_cap, _), (te_img, te_cap, _) = D.load_digit_captions(seed=seed)
    tv = D.caption_vocab()

    def make_batch(pairs: list) -> D.Batch:
        tgt, _ = D.pad_batch([tv.encode(c, sos=True, eos=True) for _, c in pairs])
        images = np.stack([im for im, _ in pairs])
        return D.Batch(images, None, tgt[:, :-1], tgt[:, 1:], None)

    return Task("caption", None, tv, list(zip(tr_img, tr_cap)), list(zip(te_img, te_cap)), max_out=7,
                make_batch=make_batch)


def _token_accuracy(hyps: list, refs: list) -> dict:
    """Fraction of reference positions whose token the hypothesis reproduces (position by position)."""
    hit = sum(sum(a == b for a, b in zip(h, r)) for h, r in zip(hyps, refs))
    return {"token_accuracy": hit / max(1, sum(len(r) for r in refs))}


# ----------------------------------------------------------------------------------------- models
def build_model(kind: str, task: Task, args: argparse.Namespace) -> tg.nn.Module:
    """The model for `kind` ("rnn", "transformer" or "caption") sized by args."""
    from tinygrad_seq import models as S  # lazy: keeps `tinygrad-seq --help` light
    if kind == "caption":
        return S.CaptionModel(len(task.tgt_vocab), hidden=args.hidden, attention=args.attention)
    if kind == "rnn":
        return S.RNNSeq2Seq(len(task.src_vocab), len(task.tgt_vocab), emb_size=args.emb, hidden_size=args.hidden,
                            attention=args.attention, dropout=args.rnn_dropout, pad_idx=D.PAD_IDX)
    if kind == "transformer":
        return S.Seq2SeqTransformer(args.layers, args.layers, args.d_model, args.heads, len(task.src_vocab),
                                    len(task.tgt_vocab), dim_feedforward=args.ff, dropout=args.dropout,
                                    batch_first=True, pad_idx=D.PAD_IDX)
    raise ValueError(f"unknown model kind {kind!r}; expected one of {MODELS + ('caption',)}")


def _src_padding_mask(batch: D.Batch) -> np.ndarray:
    return batch.src == D.PAD_IDX


def teacher_forced_logits(kind: str, model: tg.nn.Module, batch: D.Batch) -> tg.Tensor:
    """(B, T, V) logits of every target position given the true previous tokens."""
    if kind == "caption":
        return model(tg.Tensor(batch.src), batch.tgt_in)[0]
    if kind == "rnn":
        return model(batch.src, batch.tgt_in, src_lengths=batch.src_len)[0]
    return model(batch.src, batch.tgt_in, src_key_padding_mask=_src_padding_mask(batch))


def greedy_decode(kind: str, model: tg.nn.Module, batch: D.Batch, max_len: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Greedy decoding: (B, T) token ids and, where the model exposes it, the (B, T, S) attention weights
    over source positions (captioning: over feature-grid cells)."""
    if kind == "caption":
        return model.greedy_decode(tg.Tensor(batch.src), max_len, D.SOS_IDX, D.EOS_IDX)
    if kind == "rnn":
        return model.greedy_decode(batch.src, max_len, D.SOS_IDX, D.EOS_IDX, src_lengths=batch.src_len)
    return model.greedy_decode(batch.src, max_len, D.SOS_IDX, D.EOS_IDX,
                               src_key_padding_mask=_src_padding_mask(batch), return_attention=True)


# ----------------------------------------------------------------------------------------- training
# Why these models are not run through tg.compile by default (measured, 1 BLAS thread):
EAGER_BY_DEFAULT = {
    "rnn": "tg.compile: graph break, RNNSeq2Seq reads its token ids and source lengths in Python (the "
           "padding mask and the encoder's lengths= are NumPy)",
    "transformer": "tg.compile replays Seq2SeqTransformer without a graph break, but the demo runs no faster: "
                   "translate --models transformer --transformer-iters 200 took 16.5-18.3 s compiled vs 16.2-19.9 s "
                   "eager on a shared CPU (batches come in ~9 source lengths, one recording each; at one fixed "
                   "shape a step is about as fast as eager)",
    "caption": "tg.compile replays CaptionModel without a graph break, but gains little: caption --iters 150 "
               "took 6.2 s compiled vs 6.5 s eager",
}

def _lr_schedule(optimizer, args: argparse.Namespace):
    warmup = max(1, min(args.warmup, args.iters // 4))
    return tg.optim.lr_scheduler.WarmupCosineLR(optimizer, warmup_steps=warmup, total_steps=max(args.iters, warmup + 1),
                                                eta_min=args.lr * 0.02)


def beam_decode(kind: str, model: tg.nn.Module, batch: D.Batch, max_len: int, beam: int) -> np.ndarray:
    """(B, T) token ids of the highest-scoring beam (Σ log p, models/seq2seq.py `beam_search`)."""
    if kind == "rnn":
        return model.beam_search(batch.src, beam, max_len, D.SOS_IDX, D.EOS_IDX, src_lengths=batch.src_len)[0]
    if kind == "transformer":
        return model.beam_search(batch.src, beam, max_len, D.SOS_IDX, D.EOS_IDX,
                                 src_key_padding_mask=_src_padding_mask(batch))[0]
    raise ValueError(f"beam search is not available for {kind!r}")


def evaluate(kind: str, model: tg.nn.Module, task: Task, pairs: list, batch_size: int = 256, beam: int = 1) -> dict:
    """Decode `pairs` (greedy, or beam search with beam > 1) and compare with the references: exact match
    (+ task metrics)."""
    was_training = model.training
    model.eval()
    hyps, refs = [], []
    with tg.no_grad():
        for idx in common.minibatches(len(pairs), batch_size):
            chunk = [pairs[i] for i in idx]
            if beam > 1:
                ids = beam_decode(kind, model, task.batch(chunk), task.max_out, beam)
            else:
                ids, _ = greedy_decode(kind, model, task.batch(chunk), task.max_out)
            hyps += [task.tgt_vocab.decode(row) for row in ids]
            refs += [list(t) for _, t in chunk]
    model.train(was_training)
    out = {"exact_match": float(np.mean([h == r for h, r in zip(hyps, refs)]))}
    if task.extra_metrics is not None:
        out.update(task.extra_metrics(hyps, refs))
    if task.score is not None:
        out.update(task.score([s for s, _ in pairs], hyps))
    return out


def train(kind: str, task: Task, args: argparse.Namespace, out: Path) -> dict:
    """Train one model on `task` into run directory `out`; returns the final held-out metrics.

    Batches are drawn with replacement from the training pairs by the data generator (checkpointed, so a
    resumed run continues the same stream). "val" lines in metrics.jsonl are greedy scores on a fixed
    slice of the held-out set (of the validation set when the task has one: then the checkpoint with the
    lowest validation `task.select` is kept as best.npz and is the one tested, with --beam); "test" is the
    whole held-out set after the last step."""
    data_rng = common.seed_everything(args.seed)
    model = common.compile_model(build_model(kind, task, args), args, why_eager=EAGER_BY_DEFAULT[kind])
    params = list(model.parameters())
    optimizer = tg.optim.Adam(params, lr=args.lr)
    scheduler = _lr_schedule(optimizer, args)
    run = common.RunDir(out)
    start, _ = run.begin(model, optimizer, {"data": data_rng}, resume=args.resume, config=_run_config(kind, args))
    if start:  # closed-form schedule: jump to the restored step
        scheduler.last_epoch = start - 1
        scheduler.step()
    n_params = sum(p.numel() for p in params)
    label = kind
    print(f"[{task.name}/{label}] {n_params} parameters, {len(task.train)} training / {len(task.test)} "
          f"held-out examples, steps {start}->{args.iters}", flush=True)
    held = task.valid if task.valid is not None else task.test
    val = held[:min(len(held), args.val_size)]
    selecting = task.valid is not None and bool(task.select)
    best = _load_best(out, None) if selecting and args.resume and (out / _BEST).exists() else None
    smoothing = getattr(args, "label_smoothing", 0.0)
    window: list[float] = []
    model.train()
    stop = args.iters if args.stop_after is None else min(args.iters, start + args.stop_after)
    with common.progress(args.iters, desc=f"{task.name}/{label}", initial=start) as bar:
        for step in range(start + 1, stop + 1):
            idx = data_rng.integers(0, len(task.train), args.batch_size)
            batch = task.batch([task.train[i] for i in idx])
            logits = teacher_forced_logits(kind, model, batch)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.tgt_out.reshape(-1),
                                   ignore_index=D.PAD_IDX, label_smoothing=smoothing)
            optimizer.zero_grad()
            loss.backward()
            grad_norm = tg.nn.utils.clip_grad_norm_(params, args.clip)
            optimizer.step()
            scheduler.step()
            window.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=float(np.mean(window[-20:])))
            if step % args.log_every == 0 or step == args.iters:
                run.log(step, "train", loss=float(np.mean(window)), lr=optimizer.param_groups[0]["lr"],
                        grad_norm=float(grad_norm))
                window = []
            if step % args.eval_every == 0 or step == args.iters:
                m = evaluate(kind, model, task, val)
                run.log(step, "val", **m)
                value = [m[k] for k in task.select] if selecting else None
                if selecting and (best is None or value < best["value"]):  # ties on WER go to the lower PER
                    best = {"step": step, "value": value}
                    tg.save({"model": dict(model.state_dict()), "step": step, "value": np.array(value)}, out / _BEST)
            if step % args.eval_every == 0 or step == stop:
                run.save_checkpoint(step, model, optimizer, {"data": data_rng})
                run.plot("loss.png", key="loss", title=f"{task.name} / {label}: training loss")
    if stop < args.iters:
        print(f"[{task.name}/{label}] stopped at step {stop} (--stop-after); continue with --resume", flush=True)
        return {"model": label, "parameters": n_params, "stopped_at": stop}
    chosen = {}
    if selecting:
        _load_best(out, model)  # test the checkpoint validation chose, not the last one
        chosen = {"best_step": best["step"], **{f"valid_{k}": v for k, v in zip(task.select, best["value"])}}
    beam = getattr(args, "beam", 1)
    final = evaluate(kind, model, task, task.test, beam=beam)
    for split, pairs in (task.extra_tests or {}).items():
        final.update({f"{split}_{k}": v for k, v in evaluate(kind, model, task, pairs, beam=beam).items()})
    if beam > 1:  # the same checkpoint decoded greedily, to show what the beam adds
        greedy = evaluate(kind, model, task, task.test)
        final.update({f"greedy_{k}": v for k, v in greedy.items() if k in ("wer", "per", "exact_match")})
    final = {**chosen, "beam": beam, **final} if selecting or beam > 1 else final
    run.log(args.iters, "test", **final)
    _save_examples(kind, model, task, out, n=args.n_heatmaps)
    print(f"[{task.name}/{label}] held-out: " + ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                                          for k, v in final.items()), flush=True)
    return {"model": label, "parameters": n_params, **final}


_BEST = "best.npz"


def _load_best(out: Path, model: tg.nn.Module | None) -> dict:
    """{"step", "value" (list of the selection metrics)} of the run's best checkpoint; its weights go
    into `model` when given."""
    obj = tg.load(out / _BEST)
    if model is not None:
        model.load_state_dict(obj["model"])
    return {"step": int(obj["step"]), "value": [float(v) for v in np.asarray(obj["value"]).ravel()]}


def _save_examples(kind: str, model: tg.nn.Module, task: Task, out: Path, n: int) -> None:
    """Attention heatmaps (and a text file of predictions) for the first `n` held-out examples."""
    from . import heatmaps

    if n <= 0:
        return
    chunk = task.test[:n]
    model.eval()
    with tg.no_grad():
        ids, attn = greedy_decode(kind, model, task.batch(chunk), task.max_out)
    lines = []
    for i, (src, ref) in enumerate(chunk):
        hyp = task.tgt_vocab.decode(ids[i])
        shown = _emitted_tokens(task.tgt_vocab, ids[i])
        ok = "ok" if hyp == list(ref) else "WRONG"
        if task.name == "caption":
            lines.append(f"{''.join(ref):>6} -> {''.join(hyp)} [{ok}]")
            if attn is not None:
                heatmaps.save_image_attention(src, attn[i][:len(shown)], shown, str(out / f"attention_{i}.png"),
                                              title=f"caption: {''.join(hyp)}")
            continue
        src_tokens = list(src) + [D.EOS]
        lines.append(f"{task.src_join.join(src)} -> {task.tgt_join.join(hyp)} [{ok}]")
        if attn is not None:
            heatmaps.save_attention_heatmap(attn[i][:len(shown), :len(src_tokens)], src_tokens, shown,
                                            str(out / f"attention_{i}.png"),
                                            title=f"{task.src_join.join(src)} -> {task.tgt_join.join(hyp)}")
    (out / "examples.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:5]), flush=True)


def _emitted_tokens(vocab: D.Vocab, ids: np.ndarray) -> list[str]:
    """The decoded steps as tokens, up to and including the first <eos> (one per attention row)."""
    out = []
    for i in ids:
        out.append(vocab.itos[int(i)])
        if int(i) == D.EOS_IDX:
            break
    return out


# what a resumed run must share with the checkpoint it continues (saved as config.json), per model
_DATA_CONFIG = ("seed", "n_train", "n_test", "n_tokens", "min_len", "max_len", "max_word")
_MODEL_CONFIG = {"rnn": ("emb", "hidden", "attention"), "transformer": ("d_model", "heads", "layers", "ff"),
                 "caption": ("hidden", "attention")}


def _run_config(kind: str, args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in _DATA_CONFIG + _MODEL_CONFIG[kind] if hasattr(args, k)}


def _model_dirs(args: argparse.Namespace) -> list[tuple[str, argparse.Namespace, Path]]:
    """(kind, its arguments, its run directory) per model to train; with --resume each directory's
    config, checkpoint and metrics are checked here, before any model trains."""
    kinds = getattr(args, "models", None) or ["caption"]
    out = Path(args.out)
    runs = []
    for kind in kinds:
        sub = out / kind if len(kinds) > 1 else out
        kargs = _model_args(args, kind)
        common.RunDir(sub).check_resume(kargs, list(_run_config(kind, kargs)), args.resume)
        for k in _run_config(kind, kargs):  # a value taken from the saved config holds for the task too
            setattr(args, k, getattr(kargs, k))
        runs.append((kind, kargs, sub))
    return runs


def run_models(task: Task, args: argparse.Namespace, runs: list) -> int:
    out = Path(args.out)
    results = []
    kinds = [kind for kind, _, _ in runs]
    for kind, kargs, sub in runs:
        results.append(train(kind, task, kargs, sub))
    if len(kinds) > 1:
        curves = {}
        for kind in kinds:
            recs = common.RunDir(out / kind).records("train")
            curves[kind] = ([r["step"] for r in recs], [r["loss"] for r in recs])
        common.plot_curves(curves, out / "loss.png", title=f"{task.name}: training loss")
    (out / "summary.json").write_text(json.dumps(results, indent=1) + "\n")
    common.print_table(results, title=f"{task.name}: held-out results")
    per_run = "metrics.jsonl,loss.png,checkpoint.npz,config.json"
    if args.n_heatmaps > 0 and not any("stopped_at" in r for r in results):
        per_run += ",examples.txt,attention_*.png"
    if len(kinds) > 1:
        print(f"outputs in {out}/: summary.json, loss.png, " + ", ".join(f"{k}/{{{per_run}}}" for k in kinds))
    else:
        print(f"outputs in {out}/: summary.json, {per_run.replace(',', ', ')}")
    return 0


def _model_args(args: argparse.Namespace, kind: str) -> argparse.Namespace:
    """Per-model overrides (`--rnn-lr`, `--transformer-iters`, ...) on top of the shared flags."""
    ns = argparse.Namespace(**vars(args))
    ns._explicit = set(getattr(args, "_explicit", ()))
    for key in ("lr", "iters", "label_smoothing", "warmup"):  # the last two: g2p only
        v = getattr(args, f"{kind}_{key}", None)
        if v is not None:
            setattr(ns, key, v)
    return ns


# ----------------------------------------------------------------------------------------- CLI
# Defaults per demo; `quick` entries are the --quick sizes (seconds, used by the tests).
_SHARED = dict(batch_size=64, lr=2e-3, hidden=128, emb=32, d_model=64, heads=4, layers=2, ff=128, dropout=0.0,
               rnn_dropout=0.0,
               attention="bahdanau", clip=1.0, warmup=200, log_every=25, eval_every=500, val_size=256,
               n_heatmaps=4)
_QUICK_SHARED = dict(batch_size=32, lr=1e-2, hidden=32, emb=16, d_model=32, heads=2, layers=1, ff=64, warmup=20,
                     log_every=5, eval_every=40, val_size=64, n_heatmaps=2)

CONFIGS: dict[str, dict[str, Any]] = {
    "translate": dict(defaults=dict(iters=3000, n_train=50000, n_test=1000, hidden=64, models=list(MODELS)),
                      quick=dict(iters=60, n_train=2000, n_test=100)),
    "copy": dict(defaults=dict(iters=2000, n_train=20000, n_test=1000, n_tokens=10, min_len=2, max_len=12,
                               models=["transformer"]),
                 quick=dict(iters=80, n_train=2000, n_test=100, max_len=6)),
    "reverse": dict(defaults=dict(iters=2000, n_train=20000, n_test=1000, n_tokens=10, min_len=2, max_len=12,
                                  models=["transformer"]),
                    quick=dict(iters=80, n_train=2000, n_test=100, max_len=6)),
    # g2p: measured (README): at 3,000 steps (~2 epochs) a wider Transformer (d 128, FF 512) with dropout
    # and label smoothing 0.1 was *worse* (44.1% WER) than the small unregularised one (42.3%); the
    # Transformer is short of training, not of capacity, so it gets more steps (12,000: 35.1% WER)
    "g2p": dict(defaults=dict(iters=3000, n_train=200000, n_test=200000, max_word=12, models=list(MODELS),
                              val_size=1000, beam=5, label_smoothing=0.1, warmup=500, dropout=0.0,
                              transformer_label_smoothing=0.0, transformer_warmup=200,
                              transformer_iters=12000),
                quick=dict(iters=60, n_train=2000, n_test=100, max_word=6, beam=2, transformer_iters=60,
                           transformer_warmup=20),
                # --full: near the published settings (Transformer 3+3 layers of 256, bi-GRU 256, ~25
                # epochs of batch 128); hours on this machine, not measured here
                full=dict(iters=20000, batch_size=128, hidden=256, emb=64, d_model=256, ff=1024, layers=3,
                          heads=4, warmup=4000, lr=1e-3, eval_every=1000, dropout=0.1, transformer_iters=20000,
                          transformer_label_smoothing=0.1, transformer_warmup=4000)),
    "caption": dict(defaults=dict(iters=1500, hidden=64, lr=5e-3),
                    quick=dict(iters=60)),
}
# flags of the RNN encoder-decoder / the Transformer only: the caption model has neither
_SEQ2SEQ_ONLY = ("emb", "d_model", "heads", "layers", "ff", "dropout", "rnn_dropout")
_INT_FLAGS = {  # key -> (type, help)
    "emb": (common.positive_int, "RNN model: token embedding size"),
    "d_model": (common.positive_int, "Transformer: model width"),
    "heads": (common.positive_int, "Transformer: attention heads (must divide --d-model)"),
    "layers": (common.positive_int, "Transformer: encoder and decoder layers"),
    "ff": (common.positive_int, "Transformer: feed-forward width"),
    "warmup": (common.nonnegative_int, "learning-rate warm-up iterations (at most a quarter of --iters)"),
    "log_every": (common.positive_int, "iterations between training-loss lines in metrics.jsonl"),
    "eval_every": (common.positive_int, "iterations between held-out evaluations and checkpoints"),
    "val_size": (common.positive_int, "held-out examples scored at each evaluation"),
    "n_heatmaps": (common.nonnegative_int, "held-out examples drawn as attention heatmaps"),
    "n_train": (common.positive_int, "training examples"),
    "n_test": (common.positive_int, "held-out examples"),
    "n_tokens": (common.int_at_least(2), "vocabulary size of the random token sequences"),
    "min_len": (common.positive_int, "shortest token sequence"),
    "max_len": (common.positive_int, "longest token sequence"),
    "max_word": (common.int_at_least(2), "longest CMUdict word used (letters)"),
}
# optional packages each command needs (all in the `demos` extra), checked before any work
_NEEDS = {"translate": ("matplotlib",), "copy": ("matplotlib",), "reverse": ("matplotlib",),
          "g2p": ("matplotlib", "cmudict"), "caption": ("matplotlib", "sklearn")}

_HELP = {
    "translate": "date-format translation ('Tuesday, March 3, 1998' -> '1998-03-03'): RNN+attention vs Transformer",
    "copy": "Transformer copy task on random token sequences",
    "reverse": "Transformer reverse task on random token sequences",
    "g2p": "grapheme-to-phoneme on the CMU Pronouncing Dictionary: RNN+attention vs Transformer",
    "caption": "caption 8x8 digit images with their names: CNN features + attention GRU decoder",
}


def _run(name: str, args: argparse.Namespace) -> int:
    return _run_task(name, args)  # resolve_args caps the BLAS threads (--blas-threads, common.py)


def _apply_full(args: argparse.Namespace, full: dict) -> argparse.Namespace:
    """With --full, every flag the user did not give takes its --full value (before the defaults)."""
    if getattr(args, "full", False):
        if args.quick:
            raise common.UsageError("--full and --quick exclude each other")
        for k, v in full.items():
            if getattr(args, k, None) is None:
                setattr(args, k, v)
    return args


# flags that shape one model only: given while that model is not trained, they would be silently ignored
_MODEL_FLAGS = {"rnn": ("hidden", "emb", "attention", "rnn_dropout", "rnn_lr", "rnn_iters"),
                "transformer": ("d_model", "heads", "layers", "ff", "dropout", "transformer_lr",
                                "transformer_iters", "transformer_label_smoothing", "transformer_warmup")}


def _unused_model_flags(args: argparse.Namespace, models: list[str]) -> None:
    for kind, keys in _MODEL_FLAGS.items():
        given = ["--" + k.replace("_", "-") for k in keys if getattr(args, k, None) is not None]
        if kind not in models and given:
            raise common.UsageError(f"{' '.join(given)} shape{'s' if len(given) == 1 else ''} the {kind} model, "
                                    f"which --models {','.join(models)} does not train: add {kind} to --models")


def _run_task(name: str, args: argparse.Namespace) -> int:
    if name != "caption":  # before --full fills flags the user did not give
        _unused_model_flags(args, args.models or CONFIGS[name]["defaults"]["models"])
    _apply_full(args, CONFIGS[name].get("full", {}))
    common.resolve_args(args)
    common.require(*_NEEDS[name])
    if getattr(args, "max_len", 1) < getattr(args, "min_len", 1):
        raise common.UsageError(f"--max-len {args.max_len} is shorter than --min-len {args.min_len}")
    if getattr(args, "heads", None) and args.d_model % args.heads:
        raise common.UsageError(f"--heads {args.heads} does not divide --d-model {args.d_model}")
    if name in ("copy", "reverse") and args.max_len - args.min_len + 1 > args.n_train:
        raise common.UsageError(f"--min-len {args.min_len} --max-len {args.max_len} are "
                                f"{args.max_len - args.min_len + 1} lengths, more than --n-train {args.n_train} "
                                "sequences: some lengths would never be trained")
    if name == "translate" and args.n_test >= D.n_open_dates():
        raise common.UsageError(f"--n-test {args.n_test}: the years outside the held-out ones have only "
                                f"{D.n_open_dates()} dates, and test dates are distinct and never trained")
    runs = _model_dirs(args)
    if name == "translate":
        task = translate_task(args.n_train, args.n_test, args.seed)
    elif name in ("copy", "reverse"):
        task = token_task(name, args.n_train, args.n_test, args.seed, args.n_tokens, args.min_len, args.max_len)
    elif name == "g2p":
        task = g2p_task(args.n_train, args.n_test, args.val_size, args.seed, args.max_word)
    else:
        task = caption_task(args.seed)
    return run_models(task, args, runs)


def _model_list(value: str) -> list[str]:
    """The deprecated `--model rnn|transformer|both` as a --models list."""
    if value not in MODELS + ("both",):
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(MODELS + ('both',))}, got {value!r}")
    return list(MODELS) if value == "both" else [value]


def register(subparsers) -> None:
    """Add the translate, copy, reverse, g2p and caption subcommands."""
    for name, cfg in CONFIGS.items():
        p = subparsers.add_parser(name, help=_HELP[name], description=_HELP[name])
        defaults = {**_SHARED, **cfg["defaults"], "out": f"runs/{name}"}
        quick = {**_QUICK_SHARED, **cfg["quick"]}
        if name == "caption":
            defaults = {k: v for k, v in defaults.items() if k not in _SEQ2SEQ_ONLY}
            quick = {k: v for k, v in quick.items() if k not in _SEQ2SEQ_ONLY}
        else:
            p.add_argument("--models", type=common.csv_choices(MODELS), default=None, metavar="MODELS",
                           help=f"comma-separated models to train, from {','.join(MODELS)} "
                                f"(default {','.join(defaults['models'])})")
            common.deprecated(p, "--model", "--models", "models", type=_model_list, metavar="MODEL")
            for kind in MODELS:
                p.add_argument(f"--{kind}-lr", type=common.positive_float, default=None,
                               help=f"learning rate of the {kind} model (default: --lr)")
                own = defaults.get(f"{kind}_iters")
                p.add_argument(f"--{kind}-iters", type=common.positive_int, default=None,
                               help=f"training iterations of the {kind} model (default: "
                                    + (f"{own}, --quick {quick[f'{kind}_iters']})" if own else "--iters)"))
        p.add_argument("--attention", choices=["bahdanau", "luong"], default=None,
                       help=("decoder" if name == "caption" else "RNN model:") + " attention score, additive "
                            "(Bahdanau) or general (Luong) (default bahdanau)")
        for key, (typ, text) in _INT_FLAGS.items():
            if key in defaults:
                q = f", --quick {quick[key]}" if key in quick else ""
                p.add_argument("--" + key.replace("_", "-"), type=typ, default=None,
                               help=f"{text} (default {defaults[key]}{q})")
        common.add_compile_flag(p, eager_default=True)
        p.add_argument("--stop-after", type=common.positive_int, default=None,
                       help="stop after this many iterations of this invocation (checkpointed; continue with "
                            "--resume) (default: run to --iters)")
        if "beam" in defaults:
            p.add_argument("--beam", type=common.positive_int, default=None,
                           help=f"beam size of the final test decoding, 1 = greedy (default {defaults['beam']})")
            p.add_argument("--label-smoothing", type=common.probability, default=None,
                           help=f"label smoothing of the training loss (default {defaults['label_smoothing']})")
            p.add_argument("--transformer-label-smoothing", type=common.probability, default=None,
                           help="label smoothing of the transformer model (default "
                                f"{defaults['transformer_label_smoothing']})")
            p.add_argument("--transformer-warmup", type=common.nonnegative_int, default=None,
                           help=f"warm-up iterations of the transformer model (default {defaults['transformer_warmup']})")
        if "full" in cfg:
            p.add_argument("--full", action="store_true",
                           help="the longer, larger configuration near the published setting (hours on a CPU): "
                                + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in cfg["full"].items()))
        if "dropout" in defaults:
            p.add_argument("--dropout", type=common.probability, default=None,
                           help=f"Transformer: dropout probability (default {defaults['dropout']})")
            p.add_argument("--rnn-dropout", type=common.probability, default=None,
                           help="RNN model: dropout on the token embeddings and on the features the output layer "
                                f"reads (default {defaults['rnn_dropout']})")
        p.add_argument("--clip", type=common.positive_float, default=None,
                       help=f"gradient-norm clipping (default {defaults['clip']})")
        common.add_common_args(p, defaults, quick, {"iters": "training iterations (batches)",
                                                    "hidden": "decoder hidden size" if name == "caption"
                                                    else "RNN model: hidden size"})
        p.set_defaults(func=lambda a, _n=name: _run(_n, a))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tinygrad_seq.demos.seq2seq COMMAND ...`: the same as `tinygrad-seq COMMAND ...`."""
    from tinygrad_seq.cli import main as cli_main
    return cli_main(None if argv is None else [str(a) for a in argv])


if __name__ == "__main__":
    raise SystemExit(main())
