"""Fashion-MNIST pairs: 100 classes of two items side by side, balanced, deterministic, no item reused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fakedata import write_idx
from kdforaa.config import DataConfig, RunConfig, load_config
from kdforaa.data.datasets import FASHION_MNIST_CLASSES, NAMES, load_dataset
from kdforaa.data.pairs import pair_class_names, pair_indices
from kdforaa.errors import BadInput


def shuffled_labels(per_class: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(10), per_class))


def test_every_block_of_100_pairs_holds_each_class_once_and_no_item_twice():
    labels = shuffled_labels(45)  # 45 // 20 = 2 blocks; 5 items per class left over
    left, right = pair_indices(labels, 10, seed=3)
    assert len(left) == len(right) == 200
    classes = 10 * labels[left] + labels[right]
    for block in (classes[:100], classes[100:]):
        assert sorted(block.tolist()) == list(range(100))
    used = np.concatenate([left, right])
    assert len(np.unique(used)) == len(used)  # every item in at most one pair, on one side
    # any prefix is balanced to within one pair per class
    counts = np.bincount(classes[:150], minlength=100)
    assert counts.min() == 1 and counts.max() == 2


def test_the_draw_is_fixed_by_its_seed():
    labels = shuffled_labels(20)
    first, again, other = (pair_indices(labels, 10, seed) for seed in (0, 0, 1))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])


def test_too_few_items_of_a_class_is_one_clear_line():
    labels = np.concatenate([shuffled_labels(25), np.full(19, 10)])
    with pytest.raises(BadInput, match="class 10 has 19 items.*at least 22 of every class"):
        pair_indices(labels, 11, seed=0)


def test_pair_class_names_follow_the_class_formula():
    names = pair_class_names(("a", "b", "c"))
    assert len(names) == 9 and names[3 * 2 + 1] == "c + b"


def write_balanced_mnist_like(root, per_class_train: int, per_class_test: int):
    """Fashion-MNIST-format files with balanced labels whose images carry their split (pixel ``(0, 0)``:
    0 train, 1 test) and their index (``(0, 1)``: ``i // 256``, ``(0, 2)``: ``i % 256``).
    Returns ``{split: labels (N,)}``."""
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for marker, (split, prefix, per_class) in enumerate(
        (("train", "train", per_class_train), ("test", "t10k", per_class_test))
    ):
        labels = shuffled_labels(per_class, seed=marker).astype(np.uint8)
        images = np.zeros((len(labels), 28, 28), np.uint8)
        index = np.arange(len(labels))
        images[:, 0, 0], images[:, 0, 1], images[:, 0, 2] = marker, index // 256, index % 256
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
        out[split] = labels.astype(np.int64)
    return out


def test_pairs_through_load_dataset(tmp_path):
    labels = write_balanced_mnist_like(tmp_path / "fashion-mnist", per_class_train=40, per_class_test=20)
    cfg = DataConfig(name="fashion-mnist-pairs", root=str(tmp_path), limit=150)
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    assert (len(train), len(test)) == (150, 100)  # the limit keeps the first pairs; the test split: 1 block
    assert train.data.shape == (150, 1, 28, 56) and train.image_size == (28, 56) and train.in_channels == 1
    assert train.num_classes == 100 and train.classes[37] == "Dress + Sneaker"
    assert train.mean == (0.2860,) and train.std == (0.3530,)  # Fashion-MNIST's: the same pixels
    for marker, (ds, split) in enumerate(((train, "train"), (test, "test"))):
        corner = ds.data[:, 0, 0].long()  # (P, 56): each half's first row
        assert bool((corner[:, [0, 28]] == marker).all())  # both items from the pair's own split
        left, right = (256 * corner[:, 1 + side] + corner[:, 2 + side] for side in (0, 28))
        assert len(set(left.tolist()) | set(right.tolist())) == 2 * len(ds)  # no item twice
        split_labels = torch.from_numpy(labels[split])
        assert torch.equal(ds.labels, 10 * split_labels[left] + split_labels[right])
    assert torch.bincount(train.labels[:100], minlength=100).tolist() == [1] * 100


def test_the_real_pairs_use_every_fashion_mnist_item_once():
    """30 000 training pairs and 5 000 test pairs, 300 and 50 of every class; test items each once."""
    train = load_dataset(DataConfig(name="fashion-mnist-pairs"), "train")
    assert train.data.shape == (30000, 1, 28, 56) and train.labels.dtype == torch.int64
    assert torch.bincount(train.labels).tolist() == [300] * 100
    test = load_dataset(DataConfig(name="fashion-mnist-pairs"), "test")
    assert test.data.shape == (5000, 1, 28, 56) and torch.bincount(test.labels).tolist() == [50] * 100
    assert test.classes == tuple(f"{a} + {b}" for a in FASHION_MNIST_CLASSES for b in FASHION_MNIST_CLASSES)
    items = load_dataset(DataConfig(name="fashion-mnist"), "test").data.flatten(1).numpy()
    halves = torch.cat([test.data[..., :28], test.data[..., 28:]]).flatten(1).numpy()
    assert sorted(map(bytes, halves)) == sorted(map(bytes, items))
    limited = load_dataset(DataConfig(name="fashion-mnist-pairs", test_limit=1000), "test")
    assert torch.bincount(limited.labels).tolist() == [10] * 100


def test_the_name_is_accepted_everywhere_a_data_set_is_named():
    assert "fashion-mnist-pairs" in NAMES


def test_a_flip_would_change_the_class_so_it_is_off_and_refused():
    with pytest.raises(BadInput, match="flip mirrors a fashion-mnist-pairs image.*augment.flip=false"):
        load_config(None, ["data.name=fashion-mnist-pairs", "augment.flip=true"])
    assert load_config(None, ["data.name=fashion-mnist-pairs"]).augment.flip is False  # the default
    assert load_config(None, ["data.name=fashion-mnist-pairs", "augment.flip=false"]).augment.flip is False
    assert load_config(None, []).augment.flip is True  # other data sets keep theirs
    assert RunConfig(data=DataConfig(name="fashion-mnist-pairs")).augment.flip is False
    assert RunConfig().augment.flip is True  # the shared default section was not changed
