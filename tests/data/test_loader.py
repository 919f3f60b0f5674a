import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdforaa.augment.random import permutation
from kdforaa.config import DataConfig
from kdforaa.data.datasets import InMemoryDataset, load_dataset
from kdforaa.data.loader import batches, normalize
from kdforaa.errors import BadInput


def _toy(n: int = 10, channels: int = 1) -> InMemoryDataset:
    """Image i is filled with the value i, its label is i % 3: every batch says where it came from."""
    data = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, channels, 4, 4).contiguous()
    labels = torch.arange(n) % 3
    return InMemoryDataset(data, labels, ("a", "b", "c"), (0.5,) * channels, (0.25,) * channels)


def test_in_memory_batches_follow_order_with_short_last_batch():
    ds = _toy(10)
    order = permutation(seed=3, epoch=1, n=10)
    out = list(batches(ds, order, batch_size=4))
    assert [len(b[2]) for b in out] == [4, 4, 2]
    for images, labels, indices in out:
        assert images.dtype == torch.uint8 and images.shape[1:] == (1, 4, 4)
        assert labels.dtype == torch.int64 and indices.dtype == torch.int64
        assert torch.equal(images[:, 0, 0, 0].long(), indices) and torch.equal(labels, indices % 3)
    assert torch.equal(torch.cat([b[2] for b in out]), order)


def test_subsets_repeats_and_empty_orders():
    ds = _toy(10)
    out = list(batches(ds, torch.tensor([9, 9, 0], dtype=torch.int32), batch_size=8))
    assert len(out) == 1 and out[0][2].tolist() == [9, 9, 0] and out[0][2].dtype == torch.int64
    assert list(batches(ds, torch.tensor([], dtype=torch.long), batch_size=4)) == []


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 50), seed=st.integers(0, 2**31))
def test_batches_partition_any_order(n, batch_size, seed):
    ds = _toy(n, channels=3)
    order = permutation(seed, 0, n)
    out = list(batches(ds, order, batch_size))
    sizes = [len(b[2]) for b in out]
    assert all(s == batch_size for s in sizes[:-1]) and 0 < sizes[-1] <= batch_size
    assert torch.equal(torch.cat([b[0] for b in out]), ds.data[order])
    assert torch.equal(torch.cat([b[2] for b in out]), order)


@pytest.mark.parametrize(
    "order, message",
    [
        (torch.tensor([0.0, 1.0]), "1-D integer tensor"),
        (torch.zeros(2, 2, dtype=torch.long), "1-D integer tensor"),
        (torch.tensor([0, 10]), r"outside 0\.\.9"),
        (torch.tensor([-1]), r"outside 0\.\.9"),
    ],
    ids=["float", "2-D", "past-end", "negative"],
)
def test_bad_orders_are_bad_input_at_the_call(order, message):
    with pytest.raises(BadInput, match=message):
        batches(_toy(10), order, batch_size=2)


def test_bad_batch_size():
    with pytest.raises(BadInput, match="batch_size must be positive"):
        batches(_toy(), torch.arange(3), batch_size=0)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_folder_batches_follow_order(make_image_folder, num_workers):
    fake = make_image_folder(classes=("a", "b"), per_class=(3, 1), size=(6, 6))
    folder = load_dataset(DataConfig(name="folder", root=str(fake.root), image_size=5), "train")
    order = torch.tensor([5, 0, 3, 1, 4])
    out = list(batches(folder, order, batch_size=2, num_workers=num_workers))
    assert [len(b[2]) for b in out] == [2, 2, 1]
    assert all(b[1].dtype == torch.int64 and b[2].dtype == torch.int64 for b in out)
    images = torch.cat([b[0] for b in out])
    assert images.dtype == torch.uint8 and images.shape == (5, 3, 5, 5)
    assert torch.cat([b[2] for b in out]).tolist() == order.tolist()
    assert torch.cat([b[1] for b in out]).tolist() == [1, 0, 1, 0, 1]
    png = [i for i, p in enumerate(folder.paths) if p.suffix == ".png"]
    for k, index in enumerate(order.tolist()):
        if index in png:
            colour = torch.from_numpy(fake.train[0][index]).expand(3, 5, 5)
            assert torch.equal(images[k], colour)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_undecodable_image_is_one_line_bad_input(make_image_folder, num_workers):
    fake = make_image_folder(classes=("a",), per_class=(2, 1))
    (fake.root / "train" / "a" / "001.jpg").write_bytes(b"not an image")
    folder = load_dataset(DataConfig(name="folder", root=str(fake.root), image_size=4), "train")
    with pytest.raises(BadInput) as caught:
        list(batches(folder, torch.arange(2), batch_size=1, num_workers=num_workers))
    assert str(caught.value).startswith("cannot decode image ") and "\n" not in str(caught.value)
    assert str(caught.value).endswith("001.jpg'")


def test_normalize_matches_formula_and_keeps_device():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 3, 1, 1).expand(2, 3, 2, 2)
    y = normalize(x, (0.1, 0.2, 0.3), (0.5, 0.5, 2.0))
    assert y.dtype == torch.float32 and y.shape == x.shape and y.device == x.device
    expected = torch.tensor([(0 - 0.1) / 0.5, (0.2 - 0.2) / 0.5, (1.0 - 0.3) / 2.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(y, expected.expand(2, 3, 2, 2))
    single = normalize(x[0], (0.1, 0.2, 0.3), (0.5, 0.5, 2.0))
    torch.testing.assert_close(single, y[0])


def test_normalize_grey_uses_dataset_constants(tiny_fashion_mnist):
    ds = load_dataset(DataConfig(root=str(tiny_fashion_mnist.root)), "train")
    y = normalize(ds.data[:4], ds.mean, ds.std)
    torch.testing.assert_close(y, (ds.data[:4].float() / 255 - 0.2860) / 0.3530)
