import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from fakedata import idx_bytes, write_mnist_like
from kdforaa.config import DataConfig
from kdforaa.data.datasets import FASHION_MNIST_CLASSES, InMemoryDataset, data_home, load_dataset, search_dirs
from kdforaa.errors import BadInput

REAL_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_idx_splits_round_trip(make_mnist_like, name, gz):
    fake = make_mnist_like(name, n_train=30, n_test=12, gz=gz)
    for split, (images, labels) in (("train", fake.train), ("test", fake.test)):
        ds = load_dataset(DataConfig(name=name, root=str(fake.root)), split)
        assert isinstance(ds, InMemoryDataset) and ds.in_memory
        assert ds.data.dtype == torch.uint8 and ds.data.shape == (len(images), 1, 28, 28)
        assert torch.equal(ds.data, torch.from_numpy(images))
        assert ds.labels.dtype == torch.int64 and torch.equal(ds.labels, torch.from_numpy(labels))
        assert len(ds) == len(images) and ds.num_classes == 10
        assert ds.in_channels == 1 and ds.image_size == (28, 28)
    assert ds.mean == ((0.2860,) if name == "fashion-mnist" else (0.1307,))
    assert ds.std == ((0.3530,) if name == "fashion-mnist" else (0.3081,))
    assert ds.classes == (FASHION_MNIST_CLASSES if name == "fashion-mnist" else tuple("0123456789"))


def test_images_is_an_index_gather(tiny_fashion_mnist):
    ds = load_dataset(DataConfig(root=str(tiny_fashion_mnist.root)), "train")
    idx = torch.tensor([5, 0, 5, 63])
    assert torch.equal(ds.images(idx), torch.from_numpy(tiny_fashion_mnist.train[0][[5, 0, 5, 63]]))


def test_test_limit_applies_to_test_split_only(tiny_fashion_mnist):
    cfg = DataConfig(root=str(tiny_fashion_mnist.root), test_limit=5)
    assert (len(load_dataset(cfg, "train")), len(load_dataset(cfg, "test"))) == (64, 5)


def test_limit_applies_to_train_split_only(tiny_fashion_mnist):
    cfg = DataConfig(root=str(tiny_fashion_mnist.root), limit=10)
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    assert len(train) == 10 and torch.equal(train.data, torch.from_numpy(tiny_fashion_mnist.train[0][:10]))
    assert torch.equal(train.labels, torch.from_numpy(tiny_fashion_mnist.train[1][:10]))
    assert len(test) == 16
    assert len(load_dataset(DataConfig(root=str(tiny_fashion_mnist.root), limit=1000), "train")) == 64


def test_root_may_be_the_parent_holding_name_folder(tiny_fashion_mnist):
    ds = load_dataset(DataConfig(root=str(tiny_fashion_mnist.root.parent)), "test")
    assert len(ds) == 16


def test_without_root_looks_in_kdforaa_data(tmp_path, monkeypatch):
    write_mnist_like(tmp_path / "mnist", n_train=7, n_test=3)
    monkeypatch.setenv("KDFORAA_DATA", str(tmp_path))
    assert data_home() == tmp_path
    assert search_dirs("mnist", None) == [tmp_path / "mnist", Path("/usr/share/datasets/mnist")]
    assert len(load_dataset(DataConfig(name="mnist"), "train")) == 7


def test_data_home_defaults_to_user_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("KDFORAA_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_home() == tmp_path / ".cache" / "kdforaa"


def test_explicit_root_never_falls_back(tmp_path):
    with pytest.raises(BadInput, match=r"fashion-mnist not found in .*kdforaa data fetch fashion-mnist"):
        load_dataset(DataConfig(root=str(tmp_path)), "train")


def test_missing_label_file_is_named(tiny_fashion_mnist):
    (tiny_fashion_mnist.root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        BadInput, match=r"missing file .*t10k-labels-idx1-ubyte \(or t10k-labels-idx1-ubyte.gz\)"
    ):
        load_dataset(DataConfig(root=str(tiny_fashion_mnist.root)), "test")


def test_truncated_idx_is_named(tiny_fashion_mnist):
    path = tiny_fashion_mnist.root / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    with pytest.raises(BadInput, match=r"train-images-idx3-ubyte.gz is truncated"):
        load_dataset(DataConfig(root=str(tiny_fashion_mnist.root)), "train")


def test_corrupt_gzip_is_named(tiny_fashion_mnist):
    path = tiny_fashion_mnist.root / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(BadInput, match=r"cannot read .*train-labels-idx1-ubyte.gz"):
        load_dataset(DataConfig(root=str(tiny_fashion_mnist.root)), "train")


def test_label_image_count_mismatch(tiny_fashion_mnist):
    (tiny_fashion_mnist.root / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(15, np.uint8)))
    )
    with pytest.raises(BadInput, match=r"has 15 labels but .* has 16 images"):
        load_dataset(DataConfig(root=str(tiny_fashion_mnist.root)), "test")


def test_label_out_of_range_and_wrong_rank(tiny_fashion_mnist):
    labels = tiny_fashion_mnist.root / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(idx_bytes(np.full(16, 12, np.uint8))))
    with pytest.raises(BadInput, match=r"label 12 outside 0..9"):
        load_dataset(DataConfig(root=str(tiny_fashion_mnist.root)), "test")
    labels.write_bytes(gzip.compress(idx_bytes(np.zeros((16, 2), np.uint8))))
    with pytest.raises(BadInput, match=r"expected uint8 labels of shape \(N,\)"):
        load_dataset(DataConfig(root=str(tiny_fashion_mnist.root)), "test")


def test_unknown_split_and_name(tiny_fashion_mnist):
    with pytest.raises(BadInput, match="unknown split 'val'"):
        load_dataset(DataConfig(root=str(tiny_fashion_mnist.root)), "val")
    with pytest.raises(BadInput, match="unknown data set 'svhn'"):
        load_dataset(DataConfig.model_construct(name="svhn", root=None, limit=None), "train")


def test_folder_needs_root():
    with pytest.raises(BadInput, match="data.name=folder needs data.root"):
        load_dataset(DataConfig(name="folder"), "train")


def test_folder_through_load_dataset(make_image_folder):
    fake = make_image_folder(per_class=(3, 2))
    cfg = DataConfig(name="folder", root=str(fake.root), image_size=8, limit=4)
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    assert (len(train), len(test)) == (4, 4) and not train.in_memory
    assert train.image_size == (8, 8) and train.in_channels == 3
    assert train.mean == (0.485, 0.456, 0.406) and train.std == (0.229, 0.224, 0.225)


@pytest.mark.skipif(
    not REAL_FASHION_MNIST.is_dir(), reason="real Fashion-MNIST not installed at /usr/share/datasets"
)
def test_real_fashion_mnist():
    cfg = DataConfig(root=str(REAL_FASHION_MNIST))
    train, test = load_dataset(cfg, "train"), load_dataset(cfg, "test")
    assert train.data.shape == (60000, 1, 28, 28) and test.data.shape == (10000, 1, 28, 28)
    assert train.num_classes == 10 and train.image_size == (28, 28) and train.in_channels == 1
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.classes[int(train.labels[0])] == "Ankle boot"
    mean = train.data.float().mean().item() / 255
    assert abs(mean - train.mean[0]) < 1e-3
