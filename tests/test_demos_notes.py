"""The issue-12 demos in --quick mode (`tinygrad-seq norms | forecast | glimpse | classify`): each learns
(beats its baseline where one exists), writes its metrics, plots and checkpoints, and the measured
effect is the one the notes describe."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tinygrad_seq.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path.read_bytes()[:8] == PNG


# ============================================================================================ norms
def test_norms_data_and_layernorm_ignores_the_batch():
    from tinygrad_seq.models.demos import norms

    rng = np.random.default_rng(0)
    sents, y = norms.make_sentences(300, 12, 8, rng)
    assert all(3 <= len(s) <= 12 and s.min() >= 1 for s in sents)
    np.testing.assert_array_equal(y, [int(4 * (s == norms.TOK_A).sum() > len(s)) for s in sents])
    assert 0.3 < y.mean() < 0.7
    ids, mask = norms.pad_batch(sents[:4], 15)
    assert ids.shape == (4, 15) and mask.sum() == sum(len(s) for s in sents[:4])
    ln = norms.PooledClassifier(8, 6, 10, "layernorm")
    bn = norms.PooledClassifier(8, 6, 10, "batchnorm")
    ln.load_state_dict({k: v for k, v in bn.state_dict().items() if k in ln.state_dict()}, strict=False)
    a = [sents[0]] + sents[1:4]
    b = [sents[0]] + sents[10:17]
    # the same sentence, other companions and more padding: LayerNorm gives the same output, BatchNorm not
    np.testing.assert_allclose(norms.logit_margin(ln, a)[0], norms.logit_margin(ln, b, 30)[0], rtol=1e-5)
    assert abs(norms.logit_margin(bn, a)[0] - norms.logit_margin(bn, b, 30)[0]) > 1e-3


@pytest.mark.slow
def test_norms_quick_learns_and_measures_batch_sensitivity(tmp_path):
    assert main(["norms", "--quick", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    rows = {r["model"]: r for r in res["rows"]}
    for r in rows.values():
        assert r["test accuracy"] > res["majority"] + 0.3, r
    assert rows["layernorm"]["sensitivity"] < 1e-6 and rows["layernorm"]["train/eval gap"] < 1e-5
    for v in ("batchnorm", "batchnorm-b2"):
        assert rows[v]["sensitivity"] > 0.02 and rows[v]["train/eval gap"] > 0.02, rows[v]
    assert _is_png(tmp_path / "norms.png") and _is_png(tmp_path / "batchnorm" / "loss.png")
    assert (tmp_path / "batchnorm-b2" / "checkpoint.npz").exists()
    assert rows["batchnorm-b2"]["iters"] == 16 * rows["batchnorm"]["iters"]  # same sentences seen
