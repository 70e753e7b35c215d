"""The step functions of models/cells.py and models/attention.attention on their own, against PyTorch
(float64, values and gradients), and the import rule of models/: public engine API only."""
import ast
from pathlib import Path

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.models import attention as A
from tinygrad_seq.models import cells

torch = pytest.importorskip("torch")

B, D, H = 3, 4, 5
MODELS = Path(__file__).resolve().parent.parent / "models"


def _leaves(rng, *shapes):
    arrs = [rng.standard_normal(s) for s in shapes]
    return arrs, [tg.Tensor(a, requires_grad=True) for a in arrs], [torch.tensor(a, requires_grad=True) for a in arrs]


def _check(ours, theirs, tl, pl):
    ours_out = ours if isinstance(ours, tuple) else (ours,)
    theirs_out = theirs if isinstance(theirs, tuple) else (theirs,)
    w = [np.random.default_rng(9).standard_normal(o.shape) for o in ours_out]
    for o, t in zip(ours_out, theirs_out):
        np.testing.assert_allclose(o.numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)
    sum((o * tg.Tensor(wi)).sum() for o, wi in zip(ours_out, w)).backward()
    sum((t * torch.tensor(wi)).sum() for t, wi in zip(theirs_out, w)).backward()
    for a, b in zip(tl, pl):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_lstm_step_is_torch_lstm_cell():
    rng = np.random.default_rng(0)
    _, (x, h, c, w_ih, w_hh, b), (px, ph, pc, pw_ih, pw_hh, pb) = _leaves(
        rng, (B, D), (B, H), (B, H), (4 * H, D), (4 * H, H), (4 * H,))
    ours = cells.lstm_step(x @ w_ih.T + b, h, c, w_hh)
    theirs = torch.lstm_cell(px, (ph, pc), pw_ih, pw_hh, pb, torch.zeros(4 * H, dtype=torch.float64))
    _check(ours, theirs, [x, h, c, w_ih, w_hh, b], [px, ph, pc, pw_ih, pw_hh, pb])


def test_gru_step_is_torch_gru_cell():
    rng = np.random.default_rng(1)
    _, (x, h, w_ih, w_hh, b_ih, b_hh), (px, ph, pw_ih, pw_hh, pb_ih, pb_hh) = _leaves(
        rng, (B, D), (B, H), (3 * H, D), (3 * H, H), (3 * H,), (3 * H,))
    ours = cells.gru_step(x @ w_ih.T + b_ih, h, w_hh, b_hh)
    theirs = torch.gru_cell(px, ph, pw_ih, pw_hh, pb_ih, pb_hh)
    _check(ours, theirs, [x, h, w_ih, w_hh, b_ih, b_hh], [px, ph, pw_ih, pw_hh, pb_ih, pb_hh])


def test_rnn_step_relu_and_tanh_are_torch_rnn_cells():
    rng = np.random.default_rng(2)
    for act, fn in (("tanh", torch.rnn_tanh_cell), ("relu", torch.rnn_relu_cell)):
        _, (x, h, w_ih, w_hh, b), (px, ph, pw_ih, pw_hh, pb) = _leaves(rng, (B, D), (B, H), (H, D), (H, H), (H,))
        ours = cells.rnn_step(x @ w_ih.T + b, h, w_hh, act)
        theirs = fn(px, ph, pw_ih, pw_hh, pb, torch.zeros(H, dtype=torch.float64))
        _check(ours, theirs, [x, h, w_ih, w_hh, b], [px, ph, pw_ih, pw_hh, pb])


def _torch_peephole(x_t, h, c, w_hh, w_ci, w_cf, w_co):
    a_i, a_f, a_g, a_o = (x_t + h @ w_hh.T).chunk(4, -1)
    i, f = torch.sigmoid(a_i + w_ci * c), torch.sigmoid(a_f + w_cf * c)
    c = f * c + i * torch.tanh(a_g)
    return torch.sigmoid(a_o + w_co * c) * torch.tanh(c), c


def _torch_cho(x_t, h, w_hh):
    x_r, x_z, x_n = x_t.chunk(3, -1)
    w_hr, w_hz, w_hn = w_hh.chunk(3, 0)
    r, z = torch.sigmoid(x_r + h @ w_hr.T), torch.sigmoid(x_z + h @ w_hz.T)
    n = torch.tanh(x_n + (r * h) @ w_hn.T)
    return (1 - z) * n + z * h


def test_peephole_and_cho_steps_match_their_formulas_in_torch():
    rng = np.random.default_rng(3)
    _, tl, pl = _leaves(rng, (B, 4 * H), (B, H), (B, H), (4 * H, H), (H,), (H,), (H,))
    _check(cells.peephole_lstm_step(*tl), _torch_peephole(*pl), tl, pl)
    _, tl, pl = _leaves(rng, (B, 3 * H), (B, H), (3 * H, H))
    w_hr, w_hz, w_hn = tl[2].chunk(3, 0)
    _check(cells.cho_gru_step(tl[0], tl[1], w_hr, w_hz, w_hn), _torch_cho(*pl), tl, pl)


def test_attention_is_torch_sdpa_with_masks():
    rng = np.random.default_rng(4)
    _, tl, pl = _leaves(rng, (2, 3, 4, 6), (2, 3, 5, 6), (2, 3, 5, 7))
    blocked = rng.random((2, 1, 4, 5)) < 0.3
    blocked[..., 0] = False  # no fully blocked row: torch gives NaN there
    bias = rng.standard_normal((4, 5))
    out, alpha = A.attention(*tl, 0.5, tg.Tensor(bias).masked_fill(blocked, -np.inf))  # blocked: bias -inf
    ref = torch.nn.functional.scaled_dot_product_attention(
        *pl, attn_mask=torch.tensor(bias).masked_fill(torch.tensor(blocked), -float("inf")), scale=0.5)
    _check(out, ref, tl, pl)
    assert np.all(alpha.numpy()[np.broadcast_to(blocked, alpha.shape)] == 0)


def test_fully_blocked_rows_give_zero_weights_without_warnings():
    s = tg.Tensor(np.random.default_rng(5).standard_normal((2, 3)), requires_grad=True)
    mask = np.array([[True, True, True], [False, True, False]])
    a = A.masked_softmax(s, mask)
    assert np.all(a.numpy()[0] == 0) and np.isclose(a.numpy()[1].sum(), 1)
    (a * tg.Tensor(np.arange(6.0).reshape(2, 3))).sum().backward()
    assert np.all(s.grad.numpy()[0] == 0) and np.all(np.isfinite(s.grad.numpy()))


@pytest.mark.parametrize("path", sorted(MODELS.glob("*.py")), ids=lambda p: p.name)
def test_models_use_only_public_engine_api(path):
    """No ops.X.apply, no tinygrad_seq.ops / autograd import, no private name imported from another module."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            assert mod.split(".")[-1] not in ("ops", "autograd"), f"{path.name}:{node.lineno} imports {mod}"
            for alias in node.names:
                assert alias.name != "ops", f"{path.name}:{node.lineno} imports ops"
                assert not alias.name.startswith("_") or alias.name == "__future__", \
                    f"{path.name}:{node.lineno} imports the private name {alias.name} from {mod}"
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert node.value.id != "ops", f"{path.name}:{node.lineno} uses ops.{node.attr}"
            if node.value.id in ("tg", "F", "nn", "np") or node.value.id in {"cells", "rnn", "attention"}:
                assert not node.attr.startswith("_"), f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}"
