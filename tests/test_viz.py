"""draw_graph: DOT structure, folding, colours, gradients (values and theory), rendering and fallbacks."""
import math
import re
import shutil
import sys

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.models import LSTM, RNN
from tinygrad_seq.nn import Module, Parameter

pytest.importorskip("graphviz")
from tinygrad_seq.viz import draw_graph, render, style  # noqa: E402
from tinygrad_seq.viz.experiments import Probe, orthogonal  # noqa: E402

HAS_DOT = shutil.which("dot") is not None


class SigmoidRNN(Module):
    """h_t = σ(W_hh h_{t-1} + W_ih x_t), composed from engine ops, following the recurrent contract
    (name scope "l0", tg.time_step(t), `.name = "h"`). torch.nn.RNN has no sigmoid variant."""

    def __init__(self, I, H, w_hh):
        super().__init__()
        self.weight_ih_l0 = Parameter(tg.rng().uniform(-1, 1, (H, I)))
        self.weight_hh_l0 = Parameter(w_hh)

    def forward(self, x):
        h = tg.Tensor(np.zeros((x.shape[1], self.weight_hh_l0.shape[0])))
        hs = []
        with tg.name_scope("l0"):
            for t in range(x.shape[0]):
                with tg.time_step(t):
                    h = (x[t] @ self.weight_ih_l0.T + h @ self.weight_hh_l0.T).sigmoid()
                    h.name = "h"
                    hs.append(h)
        return hs


def lstm_loss(T=20, H=8, B=3, seed=0, **kw):
    tg.manual_seed(seed)
    m = LSTM(2, H, dtype=np.float64, **kw)
    x = tg.randn(T, B, 2, dtype=np.float64)
    out, _ = m(x)
    return (out[-1] ** 2).mean(), m


def step_clusters(src: str) -> set:
    return set(re.findall(r"cluster_[^\s\"]*@t=(\d+)", src))


def test_dot_structure_clusters_fold_legend_labels():
    loss, m = lstm_loss(T=20)
    g = draw_graph(loss, keep_steps=2)
    src = g.source
    assert step_clusters(src) == {"0", "1", "18", "19"}  # first and last keep_steps steps kept
    assert "cluster_LSTM" in src and "cluster_LSTM/l0" in src
    assert len(g.stats["folds"]) == 1 and g.stats["folds"][0]["n"] == 16
    assert "×16 steps (t=2…17)" in src and "∂L/∂h ×" in src and "∂L/∂c ×" in src
    assert "legend" in src and "shared by every picture" in src and "strip" in src
    assert "lstm.weight_hh_l0" in src and "lstm.weight_ih_l0" in src  # module path + attribute
    assert re.search(r"label=<<B>c_t  \(t=19\)</B>", src) and re.search(r"label=<<B>h_t  \(t=0\)</B>", src)
    assert "3×8" in src and "3×32" in src  # tensor shapes (B×H, B×4H)
    # the model's own names win when given
    tg.manual_seed(0)
    p = Probe("lstm", 8)
    from tinygrad_seq.demos.data import adding_problem
    from tinygrad_seq.viz.experiments import probe_loss
    x, y = adding_problem(2, 12, np.random.default_rng(0), dtype=np.float64)
    loss2, _ = probe_loss(p, x, y)
    src2 = draw_graph(loss2, model=p).source
    assert "lstm.weight_hh_l0" in src2 and "head.weight" in src2


def test_no_fold_draws_every_step_and_short_runs_stay():
    loss, _ = lstm_loss(T=9)
    g = draw_graph(loss, fold=False)
    assert step_clusters(g.source) == {str(t) for t in range(9)} and not g.stats["folds"]
    g = draw_graph(loss, keep_steps=4)  # 9 steps: steps 1..8 identical, 8 - 2*4 < 2 -> nothing to fold
    assert not g.stats["folds"]
    with pytest.raises(ValueError, match="keep_steps"):
        draw_graph(loss, keep_steps=-1)
    with pytest.raises(TypeError, match="root"):
        draw_graph(np.ones(3))


def test_colour_monotone_in_gradient_norm():
    norms = 10.0 ** np.linspace(-10, 2, 121)
    lum = [style.luminance(style.grad_color(n)) for n in norms]
    assert all(a >= b for a, b in zip(lum, lum[1:]))           # darker as the norm grows
    inside = [style.luminance(style.grad_color(10.0 ** e)) for e in range(-8, 1)]
    assert all(a > b for a, b in zip(inside, inside[1:]))        # strictly, decade by decade
    assert style.grad_color(1e-12) == style.grad_color(1e-8) and style.grad_color(None) == style.NO_GRAD
    w = [style.edge_width(n) for n in norms]
    assert all(a <= b for a, b in zip(w, w[1:])) and w[0] < w[-1]
    # in a graph: the fill of each h node is the colour of its measured norm, darker near the loss
    loss, _ = lstm_loss(T=6)
    g = draw_graph(loss, fold=False)
    ch = next(c for c in g.stats["chains"] if c["name"] == "h")
    for t, n in zip(ch["steps"], ch["norms"]):
        assert re.search(rf'label=<<B>h_t  \(t={t}\)[^\]]*fillcolor="{style.grad_color(n)}"', g.source) or \
            re.search(rf'fillcolor="{style.grad_color(n)}"[^\]]*label=<<B>h_t  \(t={t}\)', g.source)
    assert ch["norms"][-1] > ch["norms"][0]


def test_node_norms_match_autograd_grad():
    loss, m = lstm_loss(T=5)
    g = draw_graph(loss, fold=False)
    ch = next(c for c in g.stats["chains"] if c["name"] == "c")
    # the same tensors' gradients through the public API
    tg.manual_seed(0)
    m2 = LSTM(2, 8, dtype=np.float64)
    x = tg.randn(5, 3, 2, dtype=np.float64)
    out, _, st = m2(x, return_states=True)
    l2 = (out[-1] ** 2).mean()
    gs = tg.autograd.grad(l2, st["c"][0], retain_graph=True)
    np.testing.assert_allclose(ch["norms"], [np.linalg.norm(gg.numpy()) for gg in gs], rtol=1e-10)


def test_user_grad_untouched_and_backward_still_works():
    loss, m = lstm_loss(T=8)
    w = m.weight_hh_l0
    w.grad = tg.Tensor(np.full(w.shape, 7.0))
    before = {n: (None if p.grad is None else p.grad.numpy().copy()) for n, p in m.named_parameters()}
    draw_graph(loss)
    for n, p in m.named_parameters():
        if before[n] is None:
            assert p.grad is None
        else:
            np.testing.assert_array_equal(p.grad.numpy(), before[n])
    expected = tg.autograd.grad(loss, [w], retain_graph=True)[0].numpy()
    loss.backward()
    np.testing.assert_allclose(w.grad.numpy(), 7.0 + expected, rtol=1e-12)


def test_released_graph_raises_clear_error():
    loss, _ = lstm_loss(T=3)
    loss.backward()
    with pytest.raises(RuntimeError, match="before backward\\(\\), or call backward\\(retain_graph=True\\)"):
        draw_graph(loss)


def test_no_recursion_on_5000_steps():
    tg.manual_seed(0)
    m = RNN(1, 2, dtype=np.float64)
    x = tg.randn(5000, 1, 1, dtype=np.float64)
    out, _ = m(x)
    loss = out[-1].sum()
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(400)  # any recursion over the 5000 steps would overflow this
    try:
        g = draw_graph(loss)
    finally:
        sys.setrecursionlimit(old)
    assert g.stats["folds"][0]["n"] >= 4990 and g.stats["nodes"] < 100
    assert len(g.stats["chains"][0]["norms"]) == 5000


@pytest.mark.slow
def test_1000_step_lstm_fits_500_nodes():
    tg.manual_seed(0)
    m = LSTM(4, 16)
    out, _ = m(tg.randn(1000, 2, 4))
    g = draw_graph((out[-1] ** 2).mean(), model=m)
    n_src = len(re.findall(r"^\s*\"?(n\d+(@\d+)?|fold\d+|strip|legend)\"? \[", g.source, flags=re.M))
    assert n_src == g.stats["nodes"] <= 500
    assert "×994 steps" in g.source
    assert g.source.count("t=") >= 24  # the strip bins 1000 steps into cells labelled t=a–b


def test_rnn_theory_orthogonal_sigma_09_never_breaks_bound():
    tg.manual_seed(1)
    H, T = 16, 40
    m = RNN(3, H, dtype=np.float64)
    m.weight_hh_l0.numpy()[...] = 0.9 * orthogonal(H, np.random.default_rng(3))
    out, _ = m(tg.randn(T, 4, 3, dtype=np.float64))
    g = draw_graph(out[-1].sum())  # loss on h_T only: every other h gets gradient through the chain
    ch = g.stats["chains"][0]
    assert ch["kind"] == "rnn" and ch["gamma"] == 1.0
    assert ch["sigma_max"] == pytest.approx(0.9, rel=1e-10) and ch["bound"] == pytest.approx(0.9)
    assert len(ch["ratios"]) == T - 1 and all(0 < r <= 0.9 * (1 + 1e-9) for r in ch["ratios"])
    assert not ch["violations"] and ch["mean_ratio"] < 0.9
    # the step Jacobians diag(tanh')·W_hh, each against the bound, and against torch.autograd
    assert len(ch["jacobian_norms"]) == T - 1 and all(j <= 0.9 * (1 + 1e-9) for j in ch["jacobian_norms"])
    assert "no step breaks it" in g.source and "σ_max(W_hh)·γ = 0.9 &lt; 1: vanishing guaranteed" in g.source
    torch = pytest.importorskip("torch")
    hs = [s for s in _states(out[-1].sum(), "h")]
    w = torch.tensor(m.weight_hh_l0.numpy())
    for k in (0, 17, T - 2):
        norms = []
        for b in range(4):  # torch differentiates h_(k+1) = tanh(a + W_hh h_k) of each sequence at its h_k
            h_prev = torch.tensor(hs[k].numpy()[b])
            a = torch.atanh(torch.tensor(hs[k + 1].numpy()[b])) - w @ h_prev
            jac = torch.autograd.functional.jacobian(lambda h: torch.tanh(a + w @ h), h_prev)
            norms.append(np.linalg.norm(jac.numpy(), 2))
        assert ch["jacobian_norms"][k] == pytest.approx(max(norms), rel=1e-9)


def _states(loss, name):
    from tinygrad_seq.viz.grads import find_chains, topo_order
    return next(c for c in find_chains(topo_order(loss)) if c.name == name).states


def test_sigmoid_rnn_gamma_quarter_and_violations_flagged():
    tg.manual_seed(2)
    H = 6
    w = 2.0 * orthogonal(H, np.random.default_rng(0))
    m = SigmoidRNN(2, H, w)
    hs = m(tg.randn(15, 3, 2, dtype=np.float64))
    g = draw_graph(hs[-1].sum(), fold=False)
    ch = g.stats["chains"][0]
    assert ch["gamma"] == 0.25 and ch["bound"] == pytest.approx(0.5)
    assert all(r <= 0.5 * (1 + 1e-9) for r in ch["ratios"]) and not ch["violations"]
    # a loss on every step adds direct gradient to each h: gradient RATIOS exceed the bound, but the bound is
    # on Jacobians, and no step Jacobian exceeds it: nothing is flagged
    g2 = draw_graph(tg.stack(hs).sum(), fold=False)
    ch2 = g2.stats["chains"][0]
    assert any(r > 0.5 for r in ch2["ratios"]) and not ch2["violations"]
    assert max(ch2["jacobian_norms"]) <= 0.5 and "no step breaks it" in g2.source
    # the flag compares Jacobians with the bound: a wrong γ (1/8 instead of 1/4) makes steps break it
    from tinygrad_seq.viz.grads import find_chains, topo_order
    c = find_chains(topo_order(hs[-1].sum()), {id(h): np.ones((3, H)) for h in hs})[0]
    c.gamma = 0.125
    assert c.violations == [k for k, j in enumerate(c.jacobian_norms) if j > 2.0 * 0.125] and c.violations


def test_lstm_cell_path_decays_like_product_of_forget_gates():
    tg.manual_seed(3)
    H, T, B = 5, 12, 2
    m = LSTM(2, H, dtype=np.float64)
    m.weight_hh_l0.numpy()[...] = 0.0  # no path through h: the cell path carries all of dL/dc
    x = tg.randn(T, B, 2, dtype=np.float64)
    out, (h_n, c_n) = m(x)
    g = draw_graph(c_n.sum(), fold=False)
    ch = next(c for c in g.stats["chains"] if c["name"] == "c")
    assert ch["kind"] == "lstm-cell"
    a = x.numpy() @ m.weight_ih_l0.numpy().T + m.bias_ih_l0.numpy() + m.bias_hh_l0.numpy()
    f = 1 / (1 + np.exp(-a[..., H:2 * H]))  # (T, B, H) forget gates
    for k in range(T):
        expect = np.linalg.norm(np.prod(f[k + 1:], axis=0)) if k < T - 1 else np.sqrt(B * H)
        assert ch["norms"][k] == pytest.approx(expect, rel=1e-10)
    assert ch["mean_gate"] == pytest.approx(f[1:].mean(), rel=1e-10)
    # without W_hh the lane alone is the whole story: its per-unit product of gates IS the measured decay,
    # and its norm is set by the units whose gates stay highest, not by the mean gate
    assert ch["lane_rate"] == pytest.approx(ch["mean_ratio"], rel=1e-10)
    assert ch["half_life"] == pytest.approx(math.log(0.5) / math.log(ch["mean_ratio"]))
    assert ch["dominant_gate"] == pytest.approx(np.exp(np.log(f[1:]).mean(0)).max(), rel=1e-10)
    assert ch["mean_ratio"] > f[1:].mean()
    assert "c lane alone ×" in g.source and "0% from the measured half-life" in g.source


def test_attention_and_transformer_graphs_cluster_layers():
    from tinygrad_seq.demos.drawables import build_graph_model
    loss, model, _ = build_graph_model("transformer", 4, 8)
    src = draw_graph(loss, model=model).source  # depth=None: every op
    clusters = set(re.findall(r'subgraph "?(cluster_[^\s"{]*)', src))
    layers = {c for c in clusters if re.fullmatch(r"cluster_Seq2SeqTransformer/(encoder|decoder)/\d", c)}
    assert len(layers) == 4  # 2 encoder + 2 decoder layers, each a cluster
    assert "cluster_Seq2SeqTransformer" not in clusters  # the root module is the picture, not a cluster
    assert any(c.endswith("/self_attn") for c in clusters) and any(c.endswith("/multihead_attn") for c in clusters)
    assert "transformer.encoder.layers.0.self_attn.in_proj_weight" in src
    tree = cluster_tree(src)
    assert tree["cluster_Seq2SeqTransformer/encoder/0"][1] == "layers.0  (TransformerEncoderLayer)"
    attn = {c for c in clusters if c.endswith(("/self_attn", "/multihead_attn"))}
    assert len(attn) == 6  # 2 encoder self-attn, 2 decoder self-attn + 2 cross-attn: each with 2 head clusters
    assert sorted(v[0] for v in head_clusters(tree).values()) == sorted(list(attn) * 2)
    loss, model, _ = build_graph_model("attention", 4, 8)
    g = draw_graph(loss, model=model)
    assert "in_proj_weight" in g.source and g.stats["nodes"] > 5
    assert len(head_clusters(cluster_tree(g.source))) == 2
    loss, model, _ = build_graph_model("transformer", 4, 8, split_heads=False)
    assert head_clusters(cluster_tree(draw_graph(loss, model=model).source)) == {}


def cluster_tree(src: str) -> dict:
    """cluster name -> (parent cluster name or None, label) from the nesting of the DOT source."""
    tree, stack = {}, []
    for line in src.splitlines():
        s = line.strip()
        m = re.match(r'subgraph "?(cluster_[^"{]*?)"? \{$', s)
        if m:
            tree[m.group(1)] = [stack[-1] if stack else None, None]
            stack.append(m.group(1))
        elif s == "}" and stack:
            stack.pop()
        elif stack and tree[stack[-1]][1] is None and "[" not in s and (lab := re.search(r'\blabel="([^"]*)"', s)):
            tree[stack[-1]][1] = lab.group(1)
    return {k: tuple(v) for k, v in tree.items()}


def head_clusters(tree: dict) -> dict:
    return {c: v for c, v in tree.items() if re.search(r"/head\d+$", c)}


def test_attention_heads_drawn_as_clusters_nested_in_their_module():
    from tinygrad_seq.models import MultiheadAttention, TransformerEncoderLayer
    tg.manual_seed(0)
    m = MultiheadAttention(12, 3, batch_first=True, split_heads=True).double()
    x = tg.randn(2, 4, 12, dtype=np.float64)
    out, _ = m(x, x, x, key_padding_mask=np.array([[0, 0, 0, 1], [0, 0, 0, 0]], bool))
    tree = cluster_tree(draw_graph((out * out).mean(), model=m).source)
    heads = head_clusters(tree)  # the root module itself is no cluster: the heads sit at the top
    assert sorted(heads) == [f"cluster_MultiheadAttention/head{i}" for i in range(3)]
    assert all(v[0] is None and v[1].startswith(f"head {c[-1]}  ‖∂L/∂α‖") and "H(α)" in v[1] for c, v in heads.items())

    layer = TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0).double()
    x = tg.randn(5, 2, 8, dtype=np.float64)
    draw = lambda: cluster_tree(draw_graph((layer(x) ** 2).mean(), model=layer).source)  # noqa: E731
    assert head_clusters(draw()) == {}  # default: all heads in one batched computation
    layer.self_attn.split_heads = True
    tree = draw()
    attn = "cluster_TransformerEncoderLayer/self_attn"
    assert tree[attn] == (None, "self_attn  (MultiheadAttention)")
    assert {c: v[0] for c, v in head_clusters(tree).items()} == {f"{attn}/head{i}": attn for i in range(2)}


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz `dot` not installed")
def test_svg_rendering_and_jupyter(tmp_path):
    loss, m = lstm_loss(T=10)
    g = draw_graph(loss, model=m)
    p = render(g, tmp_path / "g.svg")
    assert p == tmp_path / "g.svg" and "<svg" in p.read_text()
    assert g.write(tmp_path / "g2.png").read_bytes()[:4] == b"\x89PNG"
    assert "image/svg+xml" in g._repr_mimebundle_()
    with pytest.raises(ValueError, match="format"):
        render(g, tmp_path / "g.gif")


def test_fallback_without_dot(tmp_path, monkeypatch, capsys):
    loss, m = lstm_loss(T=6)
    g = draw_graph(loss)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no `dot` anywhere
    p = render(g, tmp_path / "out" / "g.svg")
    assert p.suffix == ".dot" and p.read_text() == g.source
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dot not found: wrote") and "install Graphviz" in lines[0]
    src = g.render(str(tmp_path / "graphviz_style"), format="png")  # graphviz's own API, same fallback
    assert src.endswith("graphviz_style") and "digraph" in open(src).read()
    assert capsys.readouterr().out.count("\n") == 1
    bundle = g._repr_mimebundle_()
    assert "digraph" in bundle["text/plain"] and "install Graphviz" in bundle["text/plain"]


def test_bidirectional_two_layer_chains_follow_computation_order():
    tg.manual_seed(4)
    m = RNN(2, 3, num_layers=2, bidirectional=True, dtype=np.float64)
    out, _, st = m(tg.randn(7, 2, 2, dtype=np.float64), return_states=True)
    loss = out.sum()
    g = draw_graph(loss, model=m)
    chains = {c["path"]: c for c in g.stats["chains"]}
    assert set(chains) == {"RNN/l0", "RNN/l0_reverse", "RNN/l1", "RNN/l1_reverse"}
    assert chains["RNN/l0"]["steps"] == list(range(7)) and chains["RNN/l1_reverse"]["steps"] == list(range(6, -1, -1))
    gs = tg.autograd.grad(loss, st["h"][1], retain_graph=True)  # layer 0, reverse direction, indexed by t
    np.testing.assert_allclose(chains["RNN/l0_reverse"]["norms"][::-1], [np.linalg.norm(x.numpy()) for x in gs],
                               rtol=1e-10)
    assert "weight_hh_l1_reverse" in g.source


def test_graph_command_draws_heads_unless_batched_heads(tmp_path, capsys):
    from tinygrad_seq.cli import main
    for flag, n_heads in (([], 2), (["--batched-heads"], 0)):
        out = tmp_path / str(n_heads)
        assert main(["graph", "--model", "attention", "--seq-len", "4", "--hidden", "8", "--format", "svg",
                     "--out", str(out)] + flag) == 0
        drawn = next(out.glob("attention.*")).read_text()  # svg, or the DOT source without `dot`
        assert len(set(re.findall(r"cluster_SelfAttentionReverser/self_attn/head\d", drawn))) == n_heads
    assert capsys.readouterr().out.count("nodes") == 2
