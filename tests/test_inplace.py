"""In-place writes as torch records them: each case runs the same code under tinygrad_seq and torch (float64)
and compares values and every gradient; the rules that torch enforces with an error are enforced here too."""
import numpy as np
import pytest

import tinygrad_seq as tg

torch = pytest.importorskip("torch")
R = np.random.default_rng(0)
W0 = R.standard_normal((4, 3))
V0 = R.standard_normal((4, 3))
S0 = R.standard_normal(3)


def run(case, lib):
    """case(lib, w, v, s) -> output; returns (output values, grads of the leaves w, v, s)."""
    w, v, s = (lib.tensor(a.copy(), requires_grad=True) for a in (W0, V0, S0))
    out = case(lib, w, v, s)
    g = np.cos(np.arange(out.numel())).reshape(tuple(out.shape))
    out.backward(lib.tensor(g))
    grads = [None if t.grad is None else t.grad.numpy() for t in (w, v, s)]
    return out.detach().numpy(), grads


def same(case):
    ours, theirs = run(case, tg), run(case, torch)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12, atol=1e-14)
    for name, a, b in zip("wvs", ours[1], theirs[1]):
        assert (a is None) == (b is None), f"grad of {name}: {a} vs {b}"
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14, err_msg=f"grad of {name}")


CASES = {
    # a buffer filled row by row with graph tensors (the seq2seq tutorial's encoder_outputs[ei] = ...)
    "buffer_rows": lambda lib, w, v, s: _buffer_rows(lib, w, v),
    "setitem_mask": lambda lib, w, v, s: _setitem_mask(lib, w, v),
    "setitem_into_graph_tensor": lambda lib, w, v, s: _setitem_graph(w, v, s),
    "iadd_column": lambda lib, w, v, s: _iadd_column(w, s),
    "add_alpha": lambda lib, w, v, s: (w * 1).add_(v, alpha=-0.5),
    "sub_alpha": lambda lib, w, v, s: (w * 1).sub_(v, alpha=2.0),
    "mul_": lambda lib, w, v, s: (w * 1).mul_(v),
    "mul_twice": lambda lib, w, v, s: (w * 1).mul_(v).mul_(s),
    "div_": lambda lib, w, v, s: (w * 1).div_(v * v + 1),
    "pow_": lambda lib, w, v, s: (w * w + 1).pow_(1.5),
    "clamp_": lambda lib, w, v, s: (w * 1).clamp_(-0.3, 0.4),
    "neg_exp_": lambda lib, w, v, s: (w * 1).neg_().exp_() * v,
    "tanh_sigmoid_relu_": lambda lib, w, v, s: (w * 1).tanh_() + (v * 1).sigmoid_() + (w - v).relu_(),
    "fill_number": lambda lib, w, v, s: (w * 1).fill_(2.5) * v,
    "fill_0d_tensor": lambda lib, w, v, s: (w * 1).fill_(s[1]) * v,
    "zero_": lambda lib, w, v, s: (w * v).zero_() + w,
    "copy_broadcast": lambda lib, w, v, s: (w * 1).copy_(s) * v,
    "masked_fill_": lambda lib, w, v, s: (w * 1).masked_fill_(v > 0, 0.25) * v,
    "index_fill_": lambda lib, w, v, s: (w * 1).index_fill_(1, lib.tensor([0, 2]), -1.0) * v,
    "unsqueeze_squeeze_": lambda lib, w, v, s: (w * 1).unsqueeze_(0).squeeze_(0) * v,
    "t_": lambda lib, w, v, s: (w * 1).t_() @ v,
    # earlier consumers keep the old value; later ones see the new one
    "consumer_before_write": lambda lib, w, v, s: _consumer_before(w, v),
    # a write through a view changes the base and its graph (torch's CopySlices)
    "write_through_view": lambda lib, w, v, s: _through_view(w, v),
    "write_through_reshape_view": lambda lib, w, v, s: _through_reshape(w, v),
    # the char_rnn_generation tutorial's `loss = torch.Tensor([0]); loss += l`
    "accumulate_into_zero_tensor": lambda lib, w, v, s: _accumulate(lib, w, v),
    # a buffer that does not require grad, written with a graph value, keeps its other values constant
    "buffer_keeps_constants": lambda lib, w, v, s: _buffer_constants(lib, w),
}


def _buffer_rows(lib, w, v):
    buf = lib.zeros(4, 3, dtype=lib.float64)
    h = v[0]
    for i in range(4):
        h = (w[i] * h + v[i]).tanh()
        buf[i] = h
    return buf.softmax(0) * w


def _setitem_mask(lib, w, v):
    buf = lib.zeros(4, 3, dtype=lib.float64)
    buf[v > 0] = (w * 2)[v > 0]
    return buf * v


def _setitem_graph(w, v, s):
    a = w * v
    a[1:3, 0] = s[:2] * 3
    return a * w


def _iadd_column(w, s):
    x = w * 1
    x[:, 0] += s[0] * w[:, 1]
    return x * x


def _consumer_before(w, v):
    a = w * 1
    b = (a + v) * v    # made before the write: uses the old a (Add saves nothing, so the write is allowed)
    a.mul_(2)
    return a * 3 + b


def _through_view(w, v):
    a = w * 1
    a[1:3].mul_(v[1:3])
    a[0].add_(v[0])
    return a * a


def _through_reshape(w, v):
    a = w * 1
    a.view(12).mul_(v.reshape(12))
    return a * v


def _accumulate(lib, w, v):
    loss = lib.zeros(1, dtype=lib.float64)
    for i in range(4):
        loss += (w[i] * v[i]).sum()
    return loss


def _buffer_constants(lib, w):
    buf = lib.ones(4, 3, dtype=lib.float64) * 2
    buf[1] = w[1].tanh()
    return buf * w


@pytest.mark.parametrize("name", sorted(CASES))
def test_inplace_matches_torch(name):
    same(CASES[name])


def test_buffer_write_gives_the_encoder_gradient():
    """The silent-wrong case the issue names: attention over a buffer written step by step must train the encoder."""
    def case(lib, w, v, s):
        outs = lib.zeros(4, 3, dtype=lib.float64)
        h = s
        for i in range(4):
            h = (w[i] + v[i] * h).tanh()
            outs[i] = h
        alpha = (outs @ s).softmax(0)
        return (alpha.unsqueeze(1) * outs).sum(0)
    same(case)
    _, grads = run(case, tg)
    assert np.abs(grads[0]).min() > 0  # every encoder weight gets gradient


def test_leaf_that_requires_grad_refuses_in_place_outside_no_grad():
    w = tg.tensor(W0.copy(), requires_grad=True)
    for op in (lambda: w.add_(1), lambda: w.mul_(2), lambda: w.zero_(), lambda: w.__setitem__(0, 1.0),
               lambda: w.fill_(1), lambda: w.copy_(tg.zeros(4, 3))):
        with pytest.raises(RuntimeError, match="a leaf Variable that requires grad is being used in an in-place"):
            op()
    with pytest.raises(RuntimeError, match="a view of a leaf Variable that requires grad"):
        w[0].add_(1)
    np.testing.assert_array_equal(w.numpy(), W0)  # nothing was written
    with tg.no_grad():
        w.add_(1)
        w[0] = 0.0
    assert w._version == 2 and w.is_leaf and w.requires_grad
    np.testing.assert_allclose(w.numpy()[1:], W0[1:] + 1)


def test_data_writes_are_untracked_and_detach_shares_the_version():
    w = tg.tensor(W0.copy(), requires_grad=True)
    z = w.tanh()
    z.data.add_(1)
    assert z._version == 0  # as torch: .data has its own version counter
    z.sum().backward()  # allowed, as torch (and so as silently stale as torch's .data)
    y = w * 2
    d = y.detach()
    d.add_(1)
    assert y._version == 1
    # the idiom of old tutorials: p.data.add_(-lr, p.grad.data)
    p = tg.tensor(np.ones(3), requires_grad=True)
    (p * p).sum().backward()
    p.data.add_(-0.5, p.grad.data)
    np.testing.assert_allclose(p.numpy(), 0.0)


@pytest.mark.parametrize("name", ["exp_output", "tanh_output", "mul_input", "sigmoid_output", "matmul_input"])
def test_a_saved_tensor_modified_in_place_raises_at_backward(name):
    def make(lib):
        w = lib.tensor(W0.copy(), requires_grad=True)
        a = w * 1
        if name == "exp_output":
            y = a.exp(); y.add_(1); return y, "Exp"
        if name == "tanh_output":
            y = a.tanh(); y.mul_(2); return y, "Tanh"
        if name == "sigmoid_output":
            y = a.sigmoid(); y[0] = 0.0; return y, "Sigmoid"
        if name == "mul_input":
            y = a * w; a.add_(1); return y, "Mul"
        y = a @ w.T; a.zero_(); return y, "Linear"  # x @ W.T is one Linear node
    y, op = make(tg)
    with pytest.raises(RuntimeError, match=rf"modified by an inplace operation.*{op}.*version 1"):
        y.sum().backward()
    ty, _ = make(torch)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        ty.sum().backward()


def test_ops_that_do_not_save_their_inputs_allow_writes_afterwards():
    same(lambda lib, w, v, s: _add_then_write(w, v))


def _add_then_write(w, v):
    a = w * 1
    y = a + v          # Add saves nothing: writing a afterwards is fine
    a.add_(1)
    return y * 2 + a


def test_write_rules_match_torch():
    ops = {
        "int add_ float": lambda lib: lib.tensor([1, 2]).add_(1.5),
        "self would broadcast": lambda lib: lib.zeros(3, 1).add_(lib.zeros(3, 4)),
        "expanded": lambda lib: lib.zeros(3, 1).expand(3, 4).add_(1),
        "fill_ with 1-d": lambda lib: lib.zeros(3).fill_(lib.ones(2)),
    }
    for what, op in ops.items():
        with pytest.raises(RuntimeError):
            op(torch)
        with pytest.raises(RuntimeError):
            op(tg)
    assert tg.zeros(3).add_(tg.zeros(3, dtype=tg.float64)).dtype == np.float32  # same kind: cast, as torch
    x = tg.tensor([1, 2])
    x += 3
    assert x.tolist() == [4, 5] and x.dtype == np.int64


def test_aliases_see_in_place_writes():
    a = tg.zeros(3)
    b = a
    b += 1               # in place, as torch: a is b
    v = a[1:]
    v.mul_(5)
    np.testing.assert_array_equal(a.numpy(), [1, 5, 5])
    x = tg.arange(4.0)
    e = x[2]
    assert type(e.numpy()) is np.ndarray and e.ndim == 0
    x.fill_(e)
    np.testing.assert_array_equal(x.numpy(), [2, 2, 2, 2])


def test_autograd_grad_sums_outputs_and_returns_a_tuple():
    for lib in (tg, torch):
        p = lib.tensor(S0.copy(), requires_grad=True)
        q = lib.tensor(S0.copy() * 2, requires_grad=True)
        g = lib.autograd.grad([p.sum(), (p * q).sum()], p)
        assert isinstance(g, tuple) and len(g) == 1
        np.testing.assert_allclose(g[0].numpy(), 1 + S0 * 2)
        g = lib.autograd.grad((p * q).sum(), [p, q], grad_outputs=lib.tensor(3.0, dtype=lib.float64))
        np.testing.assert_allclose(g[1].numpy(), 3 * S0)
        with pytest.raises(RuntimeError, match="appears to not have been used"):
            lib.autograd.grad((p * 2).sum(), [p, q])
        g = lib.autograd.grad((p * 2).sum(), [p, q], allow_unused=True)
        assert g[1] is None
        assert p.grad is None and q.grad is None


def test_backward_inputs_accumulates_only_into_those():
    for lib in (tg, torch):
        p = lib.tensor(S0.copy(), requires_grad=True)
        q = lib.tensor(S0.copy(), requires_grad=True)
        m = p * q
        m.retain_grad()
        (m * m).sum().backward(inputs=[p])
        np.testing.assert_allclose(p.grad.numpy(), 2 * S0 ** 3)
        assert q.grad is None
        np.testing.assert_allclose(m.grad.numpy(), 2 * S0 ** 2)  # retain_grad still applies, as torch
    p = tg.tensor(S0.copy(), requires_grad=True)
    m = p * 2
    (m * m).sum().backward(inputs=[m])
    np.testing.assert_allclose(m.grad.numpy(), 4 * S0)
    assert p.grad is None


def test_long_in_place_chain_backprops_without_recursion():
    x = tg.tensor(np.ones(2), requires_grad=True)
    y = x * 1
    for _ in range(3000):
        y.mul_(1.0001)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.0001 ** 3000)


def test_setitem_with_ints_and_index_arrays_uses_torchs_shape():
    def case(lib, w, v, s):
        x = (w * 1).reshape(2, 2, 3)
        x[0, :, [0, 2]] = v[:2, :2] * 3  # torch: shape (2, 2) after the int is applied
        return x * x
    same(case)


def test_backward_after_an_optimizer_step_or_load_raises_as_torch():
    for lib in (tg, torch):
        for x_grad in (True, False):  # the weight is saved only for the input's gradient
            lin = lib.nn.Linear(3, 2).double()
            opt = lib.optim.SGD(lin.parameters(), lr=0.1)
            x = lib.tensor(W0.copy(), requires_grad=x_grad)
            loss = (lin(x) ** 2).sum()
            (lin(x) ** 2).sum().backward()
            opt.step()  # writes the weight that `loss`'s graph may have saved
            if x_grad:
                with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                    loss.backward()
            else:
                loss.backward()
            loss = (lin(x) ** 2).sum()
            lin.load_state_dict(lin.state_dict())
            if x_grad:
                with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                    loss.backward()


def test_matmul_with_a_transposed_weight_is_one_linear_node_and_exact():
    def case(lib, w, v, s):
        return ((v @ w.T) @ w.permute(0, 1)) @ w.T.T.T
    same(case)
    w = tg.tensor(W0.copy(), requires_grad=True)
    y = tg.tensor(V0) @ w.T  # (outside the assert: pytest's rewriting would hold w.T, which keeps it a MatMul)
    assert type(y._ctx).__name__ == "Linear"
    assert type((tg.tensor(V0.T.copy()) @ w.permute(0, 1))._ctx).__name__ != "Linear"


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "selu", "silu", "mish", "hardtanh", "relu6"])
def test_functional_inplace_true_writes_into_the_input_as_torch(name):
    def case(lib, w, v, s):
        x = w * 1
        y = getattr(lib.nn.functional, name)(x, inplace=True)
        assert y is x
        return x * v
    same(case)
    with pytest.raises(RuntimeError, match="leaf Variable"):
        tg.nn.functional.relu(tg.tensor(W0.copy(), requires_grad=True), inplace=True)
    m = tg.nn.ReLU(inplace=True)
    x = tg.tensor(W0.copy())
    assert m(x) is x and (x.numpy() >= 0).all()


def test_a_view_used_after_its_base_was_written_raises_instead_of_a_wrong_gradient():
    def stale(lib):
        w = lib.tensor(W0.copy(), requires_grad=True)
        a = w * 1
        v = a[0]            # taken before the write ...
        a.mul_(2)
        return (v * 3).sum(), w  # ... used after it: torch rebuilds v's graph, we refuse
    y, w = stale(torch)
    y.backward()
    np.testing.assert_allclose(w.grad.numpy()[0], 6.0)  # what torch computes
    y, _ = stale(tg)
    with pytest.raises(RuntimeError, match="view .* was used .* after the tensor it views was modified in place"):
        y.backward()


def _view_cases():
    def written_through_itself(lib, w, v, s):
        a = w * 1
        r = a[0]
        r.mul_(s)
        return r * 3 + a[1]

    def sibling_written(lib, w, v, s):
        a = w * 1
        r0 = a[0]
        a[1].add_(s)
        return r0 * 2 + a[1]

    def used_before_the_write(lib, w, v, s):
        a = w * 1
        b = a[0] + s  # Add saves nothing: the write after it is allowed
        a.mul_(v)
        return b + a[2]
    return [written_through_itself, sibling_written, used_before_the_write]


@pytest.mark.parametrize("case", _view_cases(), ids=lambda f: f.__name__)
def test_views_that_stay_valid_match_torch(case):
    same(case)


def test_writing_the_result_of_an_in_place_op_that_saved_it_raises_as_torch():
    for lib in (tg, torch):
        w = lib.tensor(W0.copy(), requires_grad=True)
        y = w * 1
        y.exp_()
        z = (y * 1).sum()   # exp_ alone is fine
        z.backward()
        y = w * 1
        y.exp_()
        y.mul_(2)           # exp_'s backward needs its output, which this overwrites
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()
