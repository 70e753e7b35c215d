"""tg.utils.data against torch.utils.data: same batches where the order is deterministic, same collation
types/dtypes/shapes, same lengths and errors; shuffling and splitting reproducible under a seed."""
import collections
import warnings

import numpy as np
import pytest

import tinygrad_seq as tg
from tinygrad_seq.utils import data as tgdata
from tinygrad_seq.utils.data import (BatchSampler, ConcatDataset, DataLoader, Dataset, IterableDataset,
                                     RandomSampler, SequentialSampler, Subset, SubsetRandomSampler,
                                     TensorDataset, WeightedRandomSampler, default_collate, random_split)

torch = pytest.importorskip("torch")
tdata = torch.utils.data

Point = collections.namedtuple("Point", ["x", "y"])


def assert_same(ours, theirs, path="batch"):
    """Same structure, container types, dtypes, shapes and values."""
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, tg.Tensor), f"{path}: {type(ours).__name__} instead of a Tensor"
        assert np.dtype(ours.dtype).name == str(theirs.dtype).removeprefix("torch."), \
            f"{path}: dtype {ours.dtype} vs torch {theirs.dtype}"
        assert tuple(ours.shape) == tuple(theirs.shape), f"{path}: shape {ours.shape} vs {tuple(theirs.shape)}"
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=path)
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs), f"{path}: {ours!r} vs {theirs!r}"
        for k in theirs:
            assert_same(ours[k], theirs[k], f"{path}[{k!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), f"{path}: {ours!r} vs {theirs!r}"
        for i, (o, t) in enumerate(zip(ours, theirs)):
            assert_same(o, t, f"{path}[{i}]")
    else:
        assert type(ours) is type(theirs) and ours == theirs, f"{path}: {ours!r} vs {theirs!r}"


# ------------------------------------------------------------ collation table

A = np.arange(6.0).reshape(2, 3)

# each case builds a batch given a tensor constructor (tg.Tensor or torch.from_numpy), so tensor samples
# are the same data in both libraries
COLLATE_CASES = {
    "ints": lambda T: [1, 2, 3],
    "bools": lambda T: [True, False],
    "floats": lambda T: [1.5, -2.25],
    "int then float": lambda T: [1, 2.5],
    "np.float32 scalars": lambda T: [np.float32(1.5), np.float32(2)],
    "np.float64 scalars": lambda T: [np.float64(1.5), np.float64(2)],
    "np.int32 scalars": lambda T: [np.int32(1), np.int32(2)],
    "np.int64 scalars": lambda T: [np.int64(1), np.int64(2)],
    "np.bool_ scalars": lambda T: [np.bool_(True), np.bool_(False)],
    "float64 arrays": lambda T: [A, A + 1],
    "float32 arrays": lambda T: [A.astype(np.float32), A.astype(np.float32) * 2],
    "int32 arrays": lambda T: [np.array([1, 2], np.int32), np.array([3, 4], np.int32)],
    "uint8 arrays": lambda T: [np.array([1, 255], np.uint8), np.array([0, 7], np.uint8)],
    "bool arrays": lambda T: [np.array([True, False]), np.array([False, False])],
    "0-d arrays": lambda T: [np.array(1.5), np.array(2.5)],
    "float32 tensors": lambda T: [T(A.astype(np.float32)), T(A.astype(np.float32) + 1)],
    "float64 tensors": lambda T: [T(A.copy()), T(A * 3)],
    "int64 tensors": lambda T: [T(np.array([1, 2])), T(np.array([3, 4]))],
    "0-d tensors": lambda T: [T(np.array(1.0)), T(np.array(2.0))],
    "strings": lambda T: ["a", "bc"],
    "bytes": lambda T: [b"a", b"bc"],
    "tuples": lambda T: [(1, 2.0, "a"), (3, 4.0, "b")],
    "lists": lambda T: [[1, 2], [3, 4]],
    "dicts": lambda T: [{"x": A, "y": 1, "name": "p"}, {"x": A * 2, "y": 2, "name": "q"}],
    "namedtuples": lambda T: [Point(1, 2.0), Point(3, 4.0)],
    "nested": lambda T: [{"a": (T(A.copy()), [1, np.float32(2)]), "b": {"c": 1.0}},
                         {"a": (T(A + 1), [3, np.float32(4)]), "b": {"c": 2.0}}],
    "tensor and label pairs": lambda T: [(T(A[0].copy()), 0), (T(A[1].copy()), 1)],
}


@pytest.mark.parametrize("case", list(COLLATE_CASES))
def test_default_collate_matches_torch(case):
    ours = default_collate(COLLATE_CASES[case](tg.Tensor))
    theirs = tdata.default_collate(COLLATE_CASES[case](lambda a: torch.from_numpy(np.array(a))))
    assert_same(ours, theirs)


def test_default_collate_stacks_graph_tensors():
    w = tg.tensor(np.arange(3.0), requires_grad=True)
    batch = default_collate([w * 2, w * 3])
    batch.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), [5.0, 5.0, 5.0])


@pytest.mark.parametrize("batch, error, match", [
    ([np.array(["a", "b"]), np.array(["c", "d"])], TypeError, "default_collate: batch must contain"),
    ([object(), object()], TypeError, "default_collate: batch must contain"),
    ([[1, 2], [3]], RuntimeError, "each element in list of batch should be of equal size"),
    ([np.zeros(2), np.zeros(3)], RuntimeError, "equal size"),
])
def test_default_collate_errors_as_torch(batch, error, match):
    with pytest.raises(error):
        tdata.default_collate(batch)
    with pytest.raises(error, match=match):
        default_collate(batch)


# ------------------------------------------------------------ loader vs torch

def _xy(n=10):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 3)), rng.integers(0, 5, n)


def _batches(loader):
    return [b for b in loader]


@pytest.mark.parametrize("batch_size, drop_last", [(1, False), (3, False), (3, True), (5, True), (10, False), (12, False),
                                                   (12, True)])
def test_tensor_dataset_batches_equal_torch(batch_size, drop_last):
    x, y = _xy()
    ours = DataLoader(TensorDataset(tg.tensor(x), tg.tensor(y)), batch_size=batch_size, drop_last=drop_last)
    theirs = tdata.DataLoader(tdata.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=batch_size,
                              drop_last=drop_last)
    assert len(ours) == len(theirs)
    got, want = _batches(ours), _batches(theirs)
    assert len(got) == len(want) == len(ours)
    assert_same(got, want)


class DictSet:
    """A map-style dataset that is not a Dataset subclass (DataLoader only needs __getitem__/__len__)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"image": np.full((2, 2), i, np.float32), "label": i % 3, "weight": i / 2, "id": f"s{i}",
                "pair": (np.int64(i), [i, -i])}


@pytest.mark.parametrize("batch_size", [2, 3, None])
def test_dict_samples_equal_torch(batch_size):
    ours = _batches(DataLoader(DictSet(7), batch_size=batch_size))
    theirs = _batches(tdata.DataLoader(DictSet(7), batch_size=batch_size))
    assert_same(ours, theirs)  # batch_size=None goes through default_convert, as torch


class Stream(IterableDataset):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter((np.array([i, i * i]), i) for i in range(self.n))

    def __len__(self):
        return self.n


class TorchStream(tdata.IterableDataset):
    def __init__(self, n):
        self.n = n

    __iter__ = Stream.__iter__
    __len__ = Stream.__len__


@pytest.mark.parametrize("batch_size, drop_last", [(3, False), (3, True), (None, False), (7, False)])
def test_iterable_dataset_equal_torch(batch_size, drop_last):
    ours = DataLoader(Stream(7), batch_size=batch_size, drop_last=drop_last)
    theirs = tdata.DataLoader(TorchStream(7), batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    assert_same(_batches(ours), _batches(theirs))


def test_custom_collate_fn_and_batch_sampler_equal_torch():
    x, y = _xy(9)

    def collate(batch):
        return [s[1] for s in batch]

    sampler = [[8, 0], [3, 4, 5], [1]]
    ours = _batches(DataLoader(TensorDataset(tg.tensor(x), tg.tensor(y)), batch_sampler=sampler))
    theirs = _batches(tdata.DataLoader(tdata.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_sampler=sampler))
    assert_same(ours, theirs)
    ours = _batches(DataLoader(list(zip(x, y.tolist())), batch_size=4, collate_fn=collate))
    assert ours == [y[:4].tolist(), y[4:8].tolist(), y[8:].tolist()]


def test_sampler_argument_equal_torch():
    x, y = _xy(8)
    order = [7, 1, 2, 6, 0]
    ours = DataLoader(TensorDataset(tg.tensor(x), tg.tensor(y)), batch_size=2, sampler=order)
    theirs = tdata.DataLoader(tdata.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=2, sampler=order)
    assert len(ours) == len(theirs) == 3
    assert_same(_batches(ours), _batches(theirs))


@pytest.mark.parametrize("kwargs", [
    dict(shuffle=True, sampler=[0, 1]),
    dict(batch_sampler=[[0]], batch_size=2),
    dict(batch_sampler=[[0]], drop_last=True),
    dict(batch_sampler=[[0]], shuffle=True),
    dict(batch_size=None, drop_last=True),
    dict(num_workers=-1),
    dict(timeout=-1),
    dict(prefetch_factor=2),
    dict(persistent_workers=True),
])
def test_loader_argument_errors_as_torch(kwargs):
    with pytest.raises(ValueError) as theirs:
        tdata.DataLoader(list(range(4)), **kwargs)
    with pytest.raises(ValueError) as ours:
        DataLoader(list(range(4)), **kwargs)
    assert str(ours.value).replace(" ", "") == str(theirs.value).replace(" ", "")  # torch misses a space once


@pytest.mark.parametrize("kwargs", [dict(shuffle=True), dict(sampler=[0]), dict(batch_sampler=[[0]])])
def test_iterable_dataset_rejects_ordering_as_torch(kwargs):
    with pytest.raises(ValueError, match="DataLoader with IterableDataset: expected unspecified"):
        tdata.DataLoader(TorchStream(3), **kwargs)
    with pytest.raises(ValueError, match="DataLoader with IterableDataset: expected unspecified"):
        DataLoader(Stream(3), **kwargs)


def test_num_workers_loads_in_process_and_says_so_once(monkeypatch):
    monkeypatch.setattr(tgdata, "_WARNED_WORKERS", False)
    x, y = _xy()
    ds = TensorDataset(tg.tensor(x), tg.tensor(y))
    with pytest.warns(UserWarning, match="main process"):
        loader = DataLoader(ds, batch_size=4, num_workers=2, pin_memory=True, persistent_workers=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DataLoader(ds, batch_size=4, num_workers=4, prefetch_factor=2)
    assert tgdata.get_worker_info() is None
    theirs = tdata.DataLoader(tdata.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=4)
    assert_same(_batches(loader), _batches(theirs))


# ------------------------------------------------------------ shuffling

def _epoch(loader):
    return np.concatenate([b[0].numpy() for b in loader]).tolist()


def test_shuffle_is_a_permutation_each_epoch_and_reproducible():
    ds = TensorDataset(tg.arange(20))
    loader = DataLoader(ds, batch_size=6, shuffle=True, generator=tg.Generator().manual_seed(0))
    epochs = [_epoch(loader) for _ in range(3)]
    for e in epochs:
        assert sorted(e) == list(range(20))
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]  # a fresh order each epoch
    again = DataLoader(ds, batch_size=6, shuffle=True, generator=tg.Generator().manual_seed(0))
    assert [_epoch(again) for _ in range(3)] == epochs
    other = DataLoader(ds, batch_size=6, shuffle=True, generator=tg.Generator().manual_seed(1))
    assert _epoch(other) != epochs[0]


def test_shuffle_without_generator_follows_manual_seed():
    ds = TensorDataset(tg.arange(20))
    tg.manual_seed(3)
    first = [_epoch(DataLoader(ds, batch_size=4, shuffle=True)) for _ in range(2)]
    tg.manual_seed(3)
    second = [_epoch(DataLoader(ds, batch_size=4, shuffle=True)) for _ in range(2)]
    assert first == second and first[0] != first[1]
    assert sorted(first[0]) == list(range(20))


def test_epoch_order_is_drawn_when_the_epoch_starts():
    """iter(loader) fixes the epoch's order: draws made from tg.rng() afterwards (model init, dropout
    between batches) do not change it."""
    ds = TensorDataset(tg.arange(12))
    tg.manual_seed(5)
    plain = _epoch(DataLoader(ds, batch_size=3, shuffle=True))
    tg.manual_seed(5)
    epoch = iter(DataLoader(ds, batch_size=3, shuffle=True))
    tg.randn(4)
    order = []
    for (b,) in epoch:
        order += b.numpy().tolist()
        tg.randn(4)  # e.g. dropout
    assert order == plain


def test_generator():
    g = tg.Generator()
    assert g.manual_seed(7) is g and g.initial_seed() == 7
    state = g.get_state()
    a = list(RandomSampler(range(10), generator=g))
    g.set_state(state)
    assert list(RandomSampler(range(10), generator=g)) == a
    assert isinstance(tg.Generator().seed(), int)
    with pytest.raises(RuntimeError, match="CPU"):
        tg.Generator(device="cuda")


# ------------------------------------------------------------ samplers

def test_sequential_and_batch_sampler_equal_torch():
    for drop_last in (False, True):
        ours = BatchSampler(SequentialSampler(range(10)), 3, drop_last)
        theirs = tdata.BatchSampler(tdata.SequentialSampler(range(10)), 3, drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


@pytest.mark.parametrize("args", [(0, False), (2.0, False), (True, False), (2, 1)])
def test_batch_sampler_errors_as_torch(args):
    with pytest.raises(ValueError) as theirs:
        tdata.BatchSampler(range(4), *args)
    with pytest.raises(ValueError) as ours:
        BatchSampler(range(4), *args)
    assert str(ours.value) == str(theirs.value)


def test_random_sampler():
    g = tg.Generator().manual_seed(0)
    assert sorted(RandomSampler(range(8), generator=g)) == list(range(8))
    twice = list(RandomSampler(range(5), num_samples=12, generator=g))
    assert len(twice) == 12 and sorted(twice[:5]) == sorted(twice[5:10]) == list(range(5))
    assert len(set(twice[10:])) == 2
    drawn = list(RandomSampler(range(3), replacement=True, num_samples=50, generator=g))
    assert len(drawn) == len(RandomSampler(range(3), replacement=True, num_samples=50)) == 50
    assert set(drawn) == {0, 1, 2}
    with pytest.raises(TypeError, match="replacement should be a boolean value"):
        RandomSampler(range(3), replacement=1)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value"):
        RandomSampler(range(3), num_samples=0)


def test_subset_random_sampler():
    idx = [10, 20, 30, 40]
    out = list(SubsetRandomSampler(idx, generator=tg.Generator().manual_seed(0)))
    assert sorted(out) == idx and len(SubsetRandomSampler(idx)) == 4
    assert out == list(SubsetRandomSampler(idx, generator=tg.Generator().manual_seed(0)))


def test_weighted_random_sampler():
    g = tg.Generator().manual_seed(0)
    drawn = list(WeightedRandomSampler([0.0, 1.0, 3.0], 400, generator=g))
    assert len(drawn) == 400 and 0 not in drawn
    assert 200 < drawn.count(2) < 400  # weight 3 of 4: ~300
    distinct = list(WeightedRandomSampler([1.0, 0.0, 2.0, 5.0], 3, replacement=False, generator=g))
    assert sorted(distinct) == [0, 2, 3]
    with pytest.raises(RuntimeError, match="without replacement"):
        list(WeightedRandomSampler([1.0, 0.0], 2, replacement=False))
    with pytest.raises(ValueError, match="weights should be a 1d sequence"):
        WeightedRandomSampler([[1.0, 2.0]], 2)
    with pytest.raises(ValueError, match="num_samples should be a positive integer value"):
        WeightedRandomSampler([1.0], 0)
    with pytest.raises(RuntimeError, match="finite and >= 0"):
        list(WeightedRandomSampler([1.0, -1.0], 2))


# ------------------------------------------------------------ datasets and random_split

def test_dataset_add_concat_subset():
    class Squares(Dataset[int]):
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return i * i

    cat = Squares(3) + Squares(2)
    assert isinstance(cat, ConcatDataset) and len(cat) == 5
    assert [cat[i] for i in range(5)] == [0, 1, 4, 0, 1] and cat[-1] == 1 and cat[-5] == 0
    assert cat.cumulative_sizes == tdata.ConcatDataset([range(3), range(2)]).cumulative_sizes
    with pytest.raises(IndexError):
        cat[5]
    with pytest.raises(ValueError, match="absolute value of index should not exceed dataset length"):
        cat[-6]
    with pytest.raises(AssertionError, match="ConcatDataset does not support IterableDataset"):
        ConcatDataset([Stream(2)])
    with pytest.raises(AssertionError, match="should not be an empty iterable"):
        ConcatDataset([])
    sub = Subset(cat, [4, 2])
    assert len(sub) == 2 and [sub[0], sub[1]] == [1, 4]
    assert list(Stream(2) + Stream(1)) and len(Stream(2) + Stream(1)) == 3
    with pytest.raises(NotImplementedError):
        Dataset()[0]


def test_tensor_dataset_checks_sizes():
    with pytest.raises(AssertionError, match=r"Size mismatch between tensors.*\(3, 2\), \(4,\)"):
        TensorDataset(tg.zeros(3, 2), tg.zeros(4))
    ds = TensorDataset(tg.zeros(3, 2), tg.arange(3))
    x, y = ds[1]
    assert len(ds) == 3 and x.shape == (2,) and y.shape == () and y.item() == 1


@pytest.mark.parametrize("n, lengths", [(10, [3, 7]), (10, [0.3, 0.3, 0.4]), (11, [0.5, 0.5]), (7, [0.1, 0.2, 0.7]),
                                        (5, [5, 0]), (3, [1, 1, 1])])
def test_random_split_sizes_disjoint_reproducible(n, lengths):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch and we both warn about an empty split
        ours = random_split(range(n), lengths, generator=tg.Generator().manual_seed(0))
        theirs = tdata.random_split(range(n), lengths, generator=torch.Generator().manual_seed(0))
        again = random_split(range(n), lengths, generator=tg.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    items = [list(s) for s in ours]
    assert sorted(sum(items, [])) == list(range(n))
    assert items == [list(s) for s in again]


def test_random_split_follows_manual_seed_and_warns_on_empty_split():
    tg.manual_seed(1)
    a = [list(s) for s in random_split(range(20), [0.5, 0.5])]
    tg.manual_seed(1)
    b = [list(s) for s in random_split(range(20), [0.5, 0.5])]
    assert a == b and a[0] != list(range(10))
    with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
        random_split(range(2), [0.9, 0.1])


def test_random_split_errors_as_torch():
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset"):
        tdata.random_split(range(5), [2, 2])
    with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset"):
        random_split(range(5), [2, 2])
    with pytest.raises(ValueError, match="Fraction at index 1 is not between 0 and 1"):
        random_split(range(5), [0.5, 1.5, -1.0])


def test_reachable_as_torch_utils_data():
    import tinygrad_seq as torch_alias
    from tinygrad_seq.utils.data import DataLoader as Direct
    assert torch_alias.utils.data.DataLoader is Direct
    assert torch_alias.utils.data.TensorDataset is TensorDataset


def _train_with_loader(torch_like, x, y, w0):
    """Teaching-style loop, written once for both libraries (`torch_like` is torch or tinygrad_seq)."""
    ds = torch_like.utils.data.TensorDataset(torch_like.tensor(x), torch_like.tensor(y))
    loader = torch_like.utils.data.DataLoader(ds, batch_size=4, drop_last=True)
    w = torch_like.tensor(w0, requires_grad=True)
    opt = torch_like.optim.SGD([w], lr=0.1)
    losses = []
    for _ in range(3):
        for xb, yb in loader:
            opt.zero_grad()
            loss = ((xb @ w - yb) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses, w.detach().numpy()


def test_training_loop_through_loader_equals_torch():
    rng = np.random.default_rng(1)
    x, y, w0 = rng.standard_normal((10, 3)), rng.standard_normal(10), rng.standard_normal(3)
    # copies: tg.tensor(ndarray) shares the array today (torch.tensor copies), and SGD updates w in place
    ours, w_ours = _train_with_loader(tg, x.copy(), y.copy(), w0.copy())
    theirs, w_theirs = _train_with_loader(torch, x, y, w0)
    assert len(ours) == 6
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    np.testing.assert_allclose(w_ours, w_theirs, rtol=1e-12)
