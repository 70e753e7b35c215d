"""draw_graph's labels (formula names), module boxes (depth / expand), the residual strip and per-head
attention numbers, each checked against the engine's own gradients (float64)."""
import re

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.nn import Module

pytest.importorskip("graphviz")
from tinygrad_seq.demos.drawables import build_graph_model  # noqa: E402
from tinygrad_seq.viz import draw_graph  # noqa: E402
from tinygrad_seq.viz.grads import find_chains, topo_order  # noqa: E402

ENGINE_OPS = {"GetItem", "Stack", "Permute", "Reshape", "Add", "Mul", "Sub", "Linear", "Tanh", "Sigmoid", "Input"}


def node_labels(src: str) -> list[tuple[tuple[str, ...], str]]:
    """(enclosing cluster names, main label text) of every node with an HTML label, from the DOT source."""
    out, stack = [], []
    for line in src.splitlines():
        s = line.strip()
        m = re.match(r'subgraph "?(cluster_[^"{]*?)"? \{$', s)
        if m:
            stack.append(m.group(1))
        elif s == "}" and stack:
            stack.pop()
        else:
            lab = re.match(r'("[^"]+"|\w+) \[label=<(.*?)> \w+=', s)
            if lab:
                main = re.sub(r"<[^>]+>", "", lab.group(2).split("<BR/>")[0]).strip()
                out.append((tuple(stack), main))
    return out


@pytest.mark.parametrize("kind, names", [("lstm", {"i_t", "f_t", "g_t", "o_t", "a_t"}),
                                         ("gru", {"r_t", "z_t", "n_t", "a_r", "a_z", "a_n"})])
def test_recurrent_steps_are_labelled_by_their_formula(kind, names):
    loss, model, _ = build_graph_model(kind, 8, 6)
    src = draw_graph(loss, model=model).source
    labels = node_labels(src)
    in_step = [lab for clusters, lab in labels if clusters and "@t=" in clusters[-1]]
    assert names <= set(in_step)
    assert {"c_t  (t=7)" if kind == "lstm" else "h_t  (t=7)", "h_t  (t=0)"} <= set(in_step)
    # every node of a step reads as math: a formula name or an expression of names, never a bare engine op
    assert not [lab for lab in in_step if lab.split(" ")[0] in ENGINE_OPS], in_step
    assert any("* c_{t-1}" in lab for lab in in_step) if kind == "lstm" else any("z_t * h_{t-1}" in lab for lab in in_step)
    assert "input" not in {lab for _, lab in labels}  # x, y, h_0 are named: no anonymous leaf (GRU's old "input 48")
    assert "cluster_Probe {" not in src and "label=Probe" not in src  # the probe wrapper is no cluster
    assert f"label=\"{kind}  ({kind.upper()})\"" in src


def test_formula_terms_are_not_followed_as_states():
    loss, model, _ = build_graph_model("lstm", 6, 4)
    chains = find_chains(topo_order(loss))
    assert sorted(c.name for c in chains) == ["c", "h"]
    t = tg.zeros(2)
    assert t.named("f_t") is t and t.name == "f_t"


def small_transformer(split_heads=True):
    from tinygrad_seq import models
    tg.manual_seed(0)
    m = models.Seq2SeqTransformer(2, 2, 8, 2, 7, 7, dim_feedforward=16, dropout=0.0).double()
    models.set_split_heads(m, split_heads)
    rng = np.random.default_rng(0)
    src = rng.integers(2, 7, (3, 5))
    tgt_in = np.concatenate([np.ones((3, 1), int), src[:, :-1]], 1)
    seen = []
    attn = m.transformer.encoder.layers[0].self_attn
    attn.register_forward_hook(lambda mod, inp, out: seen.append((inp[0], out[0])))
    loss = tg.nn.functional.cross_entropy(m(src, tgt_in).reshape(-1, 7), tg.Tensor(src.reshape(-1)))
    return loss, m, seen[0]


def test_depth_draws_modules_as_boxes_with_the_gradient_in_and_out():
    loss, m, (x, out) = small_transformer()
    g = draw_graph(loss, model=m, depth=3)
    boxes = g.stats["boxes"]
    sa = "transformer.encoder.layers.0.self_attn"
    assert {sa, "transformer.encoder.layers.0.linear1", "transformer.decoder.layers.1.multihead_attn",
            "transformer.decoder.layers.1.norm3"} <= set(boxes)
    assert not re.search(r"cluster_[^\s\"]*/head\d", g.source)  # heads are inside the attention boxes
    gx, gout = tg.autograd.grad(loss, [x, out], retain_graph=True)
    # out: the gradient arriving at the module's output; in: what the module passes back to its input x
    # (x's other use is the residual, which carries dL/dy = dL/d out unchanged)
    assert boxes[sa]["grad_out"] == pytest.approx(np.linalg.norm(gout.numpy()), rel=1e-9)
    assert boxes[sa]["grad_in"] == pytest.approx(np.linalg.norm(gx.numpy() - gout.numpy()), rel=1e-9)
    assert len(boxes[sa]["heads"]) == 2
    n_boxes = len(boxes)
    # expand one: its ops (and its two head clusters) are drawn, the rest stay boxes
    g2 = draw_graph(loss, model=m, depth=3, expand=["encoder.layers.0.self_attn"])
    assert sa not in g2.stats["boxes"] and len(g2.stats["boxes"]) == n_boxes - 1
    assert len(set(re.findall(r"cluster_Seq2SeqTransformer/encoder/0/self_attn/head\d", g2.source))) == 2
    assert g2.stats["nodes"] > g.stats["nodes"]
    # depth=2: one box per layer; depth=None: every op, no box
    g3 = draw_graph(loss, model=m, depth=2)
    assert {"transformer.encoder.layers.0", "transformer.decoder.layers.1"} <= set(g3.stats["boxes"])
    assert g3.stats["nodes"] < g.stats["nodes"] and draw_graph(loss, model=m).stats["boxes"] == {}
    with pytest.raises(ValueError, match="expand='nope' names no module"):
        draw_graph(loss, model=m, depth=3, expand=["nope"])
    with pytest.raises(ValueError, match="depth"):
        draw_graph(loss, model=m, depth=0)


def test_residual_strip_splits_the_gradient_exactly():
    loss, m, _ = small_transformer()
    stats = draw_graph(loss, model=m, depth=3).stats["residuals"]
    assert len(stats) == 2 * 2 + 2 * 3  # encoder: attn + ffn per layer; decoder: self, cross, ffn
    assert [s["layer"] for s in stats[:4]] == ["transformer.encoder.layers.0"] * 2 + ["transformer.encoder.layers.1"] * 2
    assert [s["sublayer"] for s in stats[4:7]] == ["self-attn", "cross-attn", "ffn"]
    expect = []
    for r in topo_order(loss):
        if r.name == "residual":
            x = r._ctx.parents[0]
            gx, gr = tg.autograd.grad(loss, [x, r], retain_graph=True)
            expect.append((np.linalg.norm(gx.numpy()), np.linalg.norm(gr.numpy()),
                           np.linalg.norm(gx.numpy() - gr.numpy())))
    got = sorted((s["grad_x"], s["skip"], s["through_sublayer"]) for s in stats)
    np.testing.assert_allclose(got, sorted(expect), rtol=1e-9)


class Wrap(Module):
    def __init__(self, split_heads):
        super().__init__()
        self.attn = tg.models.MultiheadAttention(6, 3, batch_first=True, split_heads=split_heads).double()

    def forward(self, x, causal=False):
        return self.attn(x, x, x, is_causal=causal)[0]


def test_head_gradient_and_entropy_agree_split_or_batched_and_with_the_weights():
    x = tg.randn(2, 4, 6, dtype=np.float64)
    got = []
    for split in (True, False):
        tg.manual_seed(1)
        w = Wrap(split)
        out = w(x)
        heads = draw_graph((out * out).sum(), model=w, depth=1).stats["boxes"]["attn"]["heads"]
        got.append(heads)
    weights = w.attn(x, x, x, average_attn_weights=False)[1].numpy()  # (N, h, L, S)
    entropy = (-(weights * np.log(weights)).sum(-1)).mean(axis=(0, 2))
    for a, b, e in zip(*got, entropy):
        assert a["head"] == b["head"] and a["entropy"] == pytest.approx(b["entropy"], rel=1e-12)
        assert a["grad_alpha"] == pytest.approx(b["grad_alpha"], rel=1e-9) and a["grad_alpha"] > 0
        assert a["entropy"] == pytest.approx(e, rel=1e-12) and a["max_entropy"] == pytest.approx(np.log(4))


def test_graph_command_transformer_is_module_level_with_a_loss_that_carries_gradient(tmp_path, capsys):
    from tinygrad_seq.cli import main
    assert main(["graph", "--model", "transformer", "--seq-len", "4", "--hidden", "8", "--format", "svg",
                 "--train", "2", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "cross-entropy of copying" in out and "after 2 Adam steps" in out and "(depth=3)" in out
    drawn = next(tmp_path.glob("transformer.*")).read_text()
    assert "self_attn" in drawn and "residual" in drawn and "via the sublayer" in drawn
    for bad in (["--model", "transformer", "--expand", "nope"], ["--model", "lstm", "--train", "3"]):
        assert main(["graph", "--format", "svg", "--out", str(tmp_path / "bad")] + bad) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err


def test_uniform_entropy_reference_counts_only_the_keys_a_causal_row_sees():
    tg.manual_seed(2)
    w = Wrap(True)
    x = tg.randn(2, 5, 6, dtype=np.float64)
    out = w(x, causal=True)
    heads = draw_graph((out * out).sum(), model=w, depth=1).stats["boxes"]["attn"]["heads"]
    assert [h["max_entropy"] for h in heads] == pytest.approx([np.mean(np.log(np.arange(1, 6)))] * 3)
    assert all(0 < h["entropy"] < h["max_entropy"] for h in heads)


def test_a_boxed_recurrent_layer_keeps_its_named_inputs_and_its_strip():
    loss, model, _ = build_graph_model("lstm", 12, 5)
    g = draw_graph(loss, model=model, depth=1)
    assert set(g.stats["boxes"]) == {"lstm", "head"} and g.stats["graph_nodes"] < 15
    labels = {lab for _, lab in node_labels(g.source)}
    assert {"x", "h_0", "c_0", "h_T", "lstm", "head"} <= labels
    assert "strip" in g.source and len(g.stats["chains"]) == 2  # the per-step norms are still measured
    h_T = next(t for t in topo_order(loss) if t.name == "h_T")
    (gh,) = tg.autograd.grad(loss, [h_T], retain_graph=True)
    assert g.stats["boxes"]["head"]["grad_in"] == pytest.approx(np.linalg.norm(gh.numpy()), rel=1e-12)
